// Benchmark: time to write the snapshot of a large target and to read it back
// with `memobserve report`. The snapshot is built in memory with 10000 sites
// of 8 to 16 frames each, over 4 processes that map 16 GiB in all and have
// 2000 mappings each, and is written through save_snapshot(), the snapshot
// command's own write path. It also times reading the mappings of a process
// with 2000 mappings from /proc (smaps, pagemap), which the snapshot command
// does for each process before writing.
// Prints the median of several runs and its ratio to the 1 s budget. It
// reports; it does not pass or fail.
//
// Usage: snapshot_write [--runs N] [--dir DIRECTORY]
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "collectors/process_mappings.h"
#include "commands/commands.h"
#include "model/snapshot_file.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace {

using namespace memobserve;

constexpr std::size_t kSites = 10000;
constexpr std::size_t kProcesses = 4;
constexpr std::uint64_t kMappedTotal = 16ULL << 30;
constexpr std::size_t kFunctions = 600;
constexpr std::size_t kMappingsPerProcess = 2000;
constexpr double kBudgetSeconds = 1.0;

struct FunctionInfo {
    std::string symbol;
    std::string module;
    std::string file;
};

// Names as long as the demangled C++ names and library paths of real
// services, so that the file has a realistic size.
std::vector<FunctionInfo> make_functions(std::mt19937_64& random) {
    static const char* const verbs[] = {"handle", "parse", "encode", "lookup", "insert", "flush",
                                        "resize", "compact", "dispatch", "serialize"};
    static const char* const nouns[] = {"request", "session", "buffer", "index", "record",
                                        "segment", "message", "table", "batch", "response"};
    std::vector<FunctionInfo> functions;
    for (std::size_t i = 0; i < kFunctions; ++i) {
        std::size_t library = random() % 12;
        functions.push_back(
            {fmt::format("service::component{}::{}_{}(std::basic_string_view<char>, unsigned long)",
                         library, verbs[random() % 10], nouns[random() % 10]),
             fmt::format("/usr/lib/x86_64-linux-gnu/libservice-component{}.so.3", library),
             fmt::format("src/component{}/{}.cpp", library, nouns[i % 10])});
    }
    return functions;
}

// Mappings of 8 MiB each (16 GiB over 4 processes). Every fourth one maps a
// library and the rest are anonymous memory. A random part of each is
// resident, and half of that is traced in the anonymous ones.
void add_mappings(ProcessInfo& process, std::mt19937_64& random) {
    constexpr std::uint64_t kMappingBytes = kMappedTotal / kProcesses / kMappingsPerProcess;
    std::uint64_t address = 0x7f0000000000;
    for (std::size_t i = 0; i < kMappingsPerProcess; ++i) {
        MappingInfo mapping;
        bool file = i % 4 == 0;
        mapping.kind = file ? "file" : "anonymous";
        mapping.start = address;
        mapping.end = address + kMappingBytes;
        mapping.permissions = file ? "r-xp" : "rw-p";
        if (file)
            mapping.path = fmt::format("/usr/lib/x86_64-linux-gnu/libservice-component{}.so.3", i % 12);
        mapping.size_bytes = kMappingBytes;
        mapping.rss_bytes = (random() % (kMappingBytes / 4096)) * 4096;
        mapping.pss_bytes = mapping.uss_bytes = mapping.rss_bytes;
        mapping.traced_resident_bytes = file ? 0 : mapping.rss_bytes / 2;
        mapping.untraced_resident_bytes = mapping.rss_bytes - mapping.traced_resident_bytes;
        process.mappings.push_back(std::move(mapping));
        address += kMappingBytes + 4096;
    }
}

Snapshot make_snapshot() {
    std::mt19937_64 random(20261204);
    std::vector<FunctionInfo> functions = make_functions(random);

    Snapshot snapshot;
    snapshot.taken_at = "2026-12-04T20:01:26Z";
    snapshot.duration_s = 30;
    snapshot.host = {"6.18.0", 4096};
    for (std::size_t p = 0; p < kProcesses; ++p) {
        ProcessInfo process;
        process.pid = static_cast<int>(1000 + p);
        process.comm = "service";
        process.cmdline = fmt::format("/usr/bin/service --worker {} --config /etc/service/main.conf", p);
        process.memory.vss_bytes = kMappedTotal / kProcesses + (64ULL << 20);
        process.memory.rss_bytes = process.memory.rss_anon_bytes = 2ULL << 30;
        process.memory.pss_bytes = process.memory.uss_bytes = 2ULL << 30;
        process.cgroup = CgroupMemory{"/system.slice/service.service", 9ULL << 30, 16ULL << 30};
        process.allocators.push_back({"/usr/lib/x86_64-linux-gnu/libc.so.6", "malloc", true, ""});
        add_mappings(process, random);
        snapshot.processes.push_back(process);
    }

    for (std::size_t i = 0; i < kSites; ++i) {
        Site site;
        site.pid = static_cast<int>(1000 + i % kProcesses);
        std::size_t depth = 8 + random() % 9;
        site.frames.push_back({0x7f1234560000 + random() % 0x100000, "malloc",
                               "/usr/lib/x86_64-linux-gnu/libc.so.6", 0, "", 0});
        for (std::size_t f = 1; f < depth; ++f) {
            const FunctionInfo& function = functions[random() % functions.size()];
            site.frames.push_back({0x7f0000000000 + random() % 0x10000000, function.symbol, function.module,
                                   random() % 0x400, function.file, static_cast<int>(1 + random() % 2000)});
        }
        site.counters.mapped_bytes = kMappedTotal / kSites;
        site.counters.allocated_bytes = site.counters.live_bytes = site.counters.mapped_bytes;
        site.counters.allocations = site.counters.live_allocations = 1 + random() % 1000;
        site.counters.faulted_bytes = site.counters.resident_bytes = (random() % 256) * 4096;
        snapshot.totals += site.counters;
        snapshot.sites.push_back(std::move(site));
    }
    return snapshot;
}

double seconds_of(const std::function<void()>& step) {
    auto start = std::chrono::steady_clock::now();
    step();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

// Maps 2000 anonymous regions of 64 KiB in this process, with PROT_NONE
// pages between them so that the kernel keeps them apart, and writes one
// page of each. Returns the traced ranges: one page in each region.
std::vector<AddressRange> map_regions(std::vector<void*>& regions) {
    const std::uint64_t page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    constexpr std::uint64_t kRegionBytes = 64 * 1024;
    std::vector<AddressRange> traced;
    for (std::size_t i = 0; i < kMappingsPerProcess; ++i) {
        void* address = mmap(nullptr, kRegionBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (address == MAP_FAILED)
            throw Error(fmt::format("mmap of {} bytes for the mapping benchmark failed: {}", kRegionBytes + page,
                                    describe_errno(errno)));
        auto* bytes = static_cast<char*>(address);
        mprotect(bytes + kRegionBytes, page, PROT_NONE);
        bytes[0] = 1;
        regions.push_back(address);
        auto start = reinterpret_cast<std::uint64_t>(address);
        traced.push_back({start, start + page});
    }
    return traced;
}

// `memobserve report FILE -o OUTPUT`, run in this process through the
// command's own option parsing and code.
void run_report(const std::string& input, const std::string& output) {
    CLI::App app;
    CommandRunner run = setup_report_command(app);
    // CLI11 takes a vector of arguments last to first.
    std::vector<std::string> arguments = {input, "-o", output};
    std::reverse(arguments.begin(), arguments.end());
    app.parse(arguments);
    if (run() != 0)
        throw Error("report failed");
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Time writing a snapshot of 10000 sites and 16 GiB mapped, and reading it back"};
    int runs = 5;
    std::string directory = std::filesystem::temp_directory_path().string();
    app.add_option("--runs", runs, "Number of timed runs; the median is printed")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    app.add_option("--dir", directory, "Directory for the snapshot and report files")
        ->check(CLI::ExistingDirectory)
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    try {
        std::string snapshot_path = fmt::format("{}/memobserve-bench-{}.json", directory, getpid());
        std::string report_path = fmt::format("{}/memobserve-bench-{}.txt", directory, getpid());
        Snapshot snapshot;
        double build_s = seconds_of([&] { snapshot = make_snapshot(); });

        // The phases of one write are also timed one by one, to show where the
        // time goes. `write_s` is save_snapshot() as a whole.
        std::vector<void*> regions;
        std::vector<AddressRange> traced = map_regions(regions);
        std::vector<double> to_json_s, dump_s, file_s, free_s, write_s, report_s, mappings_s;
        std::size_t own_mappings = 0;
        for (int run = 0; run < runs; ++run) {
            nlohmann::json document;
            std::string text;
            to_json_s.push_back(seconds_of([&] { document = to_json(snapshot); }));
            dump_s.push_back(seconds_of([&] { text = document.dump(1) + "\n"; }));
            file_s.push_back(seconds_of([&] { write_file_atomically(snapshot_path, text); }));
            free_s.push_back(seconds_of([&] { document = nlohmann::json(); }));
            write_s.push_back(seconds_of([&] { save_snapshot(snapshot_path, snapshot); }));
            report_s.push_back(seconds_of([&] { run_report(snapshot_path, report_path); }));
            mappings_s.push_back(seconds_of([&] {
                own_mappings = read_process_mappings(static_cast<int>(getpid()), traced,
                                                      static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)))
                                   ->size();
            }));
        }
        std::uintmax_t file_bytes = std::filesystem::file_size(snapshot_path);
        std::filesystem::remove(snapshot_path);
        std::filesystem::remove(report_path);

        std::size_t frames = 0;
        for (const auto& site : snapshot.sites)
            frames += site.frames.size();
        fmt::print("snapshot: {} sites, {} frames, {} processes with {} mappings each, {:.1f} GiB mapped, "
                   "file {:.1f} MiB\n",
                   snapshot.sites.size(), frames, snapshot.processes.size(), kMappingsPerProcess,
                   static_cast<double>(snapshot.totals.mapped_bytes) / (1ULL << 30),
                   static_cast<double>(file_bytes) / (1 << 20));
        fmt::print("building the snapshot in memory: {:.3f} s (not part of the budget)\n", build_s);
        fmt::print("write (JSON, temporary file, fsync, rename), median of {}: {:.3f} s = {:.2f} x the "
                   "{:.0f} s budget\n",
                   runs, median(write_s), median(write_s) / kBudgetSeconds, kBudgetSeconds);
        fmt::print("  phases, medians: to_json {:.3f} s, dump {:.3f} s, write_file_atomically {:.3f} s, "
                   "freeing the JSON tree {:.3f} s\n",
                   median(to_json_s), median(dump_s), median(file_s), median(free_s));
        fmt::print("report (read, parse, render text, write), median of {}: {:.3f} s = {:.2f} x the "
                   "{:.0f} s budget\n",
                   runs, median(report_s), median(report_s) / kBudgetSeconds, kBudgetSeconds);
        fmt::print("reading the mappings of this process ({} mappings; smaps, stack pointers, pagemap of "
                   "{} traced ranges), median of {}: {:.3f} s; for {} such processes {:.3f} s\n",
                   own_mappings, traced.size(), runs, median(mappings_s), kProcesses,
                   kProcesses * median(mappings_s));
    } catch (const std::exception& error) {
        fmt::print(stderr, "snapshot_write: error: {}\n", error.what());
        return 1;
    }
    return 0;
}
