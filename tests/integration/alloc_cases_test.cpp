// Allocation cases with known numbers, traced by memobserve with real BPF.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.h"
#include "snapshot_schema.h"

using namespace memobserve::testing;
using nlohmann::json;

namespace {

std::uint64_t drop(const json& snapshot, const char* name) {
    return snapshot.at("drops").at(name).get<std::uint64_t>();
}

bool within(std::uint64_t value, std::uint64_t expected, double tolerance) {
    double difference = static_cast<double>(value) - static_cast<double>(expected);
    return std::abs(difference) <= tolerance * static_cast<double>(expected);
}

// Trace the running process `pid` for `seconds` and return the snapshot.
json snapshot_of_running(int pid, const std::string& seconds,
                         const std::vector<std::string>& options = {"--max-overhead", "none"}) {
    std::string output = temporary_path("running.json");
    std::vector<std::string> command = {memobserve_binary(), "snapshot", "-p", std::to_string(pid),
                                        "--duration", seconds, "-o", output};
    command.insert(command.end(), options.begin(), options.end());
    Child tracer(command);
    REQUIRE(tracer.wait(60) == 0);
    std::ifstream file(output);
    json snapshot = json::parse(file);
    unlink(output.c_str());
    return snapshot;
}

}  // namespace

TEST_CASE("untouched, written and half-written blocks", "[integration][alloc]") {
    if (!have_root("untouched, written and half-written blocks"))
        return;
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "sites"});

    CHECK(sum_at(snapshot, "allocate_untouched", "allocated_bytes") == 512 * kMiB);
    CHECK(sum_at(snapshot, "allocate_untouched", "allocations") == 8);
    CHECK(sum_at(snapshot, "allocate_written", "allocated_bytes") == 256 * kMiB);
    CHECK(sum_at(snapshot, "allocate_half_written", "allocated_bytes") == 256 * kMiB);

    CHECK(sum_at(snapshot, "allocate_untouched", "resident_bytes") < 1 * kMiB);
    std::uint64_t written = sum_at(snapshot, "allocate_written", "resident_bytes");
    CHECK(within(written, 256 * kMiB, 0.05));
    std::uint64_t half = sum_at(snapshot, "allocate_half_written", "resident_bytes");
    CHECK(within(half, 128 * kMiB, 0.05));
    CHECK(sum_at(snapshot, "allocate_written", "live_bytes") == 256 * kMiB);
    CHECK(drop(snapshot, "allocator_returns_lost") == 0);
}

TEST_CASE("calloc of 1 GiB with one element written", "[integration][alloc]") {
    if (!have_root("calloc of 1 GiB with one element written"))
        return;
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "calloc"});

    CHECK(sum_at(snapshot, "allocate_zeroed", "allocated_bytes") == 1024 * kMiB);
    CHECK(sum_at(snapshot, "allocate_zeroed", "allocations") == 1);
    CHECK(sum_at(snapshot, "allocate_zeroed", "resident_bytes") <= 2 * 4096);
}

TEST_CASE("anonymous mmaps with partial munmap", "[integration][vm]") {
    if (!have_root("anonymous mmaps with partial munmap"))
        return;
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "mmaps"});

    std::uint64_t expected = 49 * kMiB + 3 * kMiB / 4;
    CHECK(sum_at(snapshot, "map_and_unmap", "mapped_bytes") == expected);
    CHECK(within(sum_at(snapshot, "map_and_unmap", "resident_bytes"), expected, 0.05));
    CHECK(sum_at(snapshot, "map_and_unmap", "mapped_file_bytes") == 0);
}

TEST_CASE("read-only file mapping is file-backed", "[integration][vm]") {
    if (!have_root("read-only file mapping is file-backed"))
        return;
    std::string path = temporary_path("mapped-file");
    {
        std::ofstream file(path, std::ios::binary);
        std::string chunk(kMiB, 'x');
        for (int i = 0; i < 64; ++i)
            file << chunk;
    }
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "filemap", path});
    unlink(path.c_str());

    CHECK(sum_at(snapshot, "map_file", "mapped_bytes") == 64 * kMiB);
    CHECK(sum_at(snapshot, "map_file", "mapped_file_bytes") == 64 * kMiB);
    const json& memory = snapshot.at("processes").at(0).at("memory");
    CHECK(memory.at("rss_file_bytes").get<std::uint64_t>() >= 60 * kMiB);
    CHECK(memory.at("rss_anon_bytes").get<std::uint64_t>() < 16 * kMiB);
}

TEST_CASE("failed allocations, realloc and calloc edges", "[integration][alloc]") {
    if (!have_root("failed allocations, realloc and calloc edges"))
        return;
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "edges"});

    CHECK(sum_at(snapshot, "fail_allocations", "failed_allocations") == 10);
    CHECK(sum_at(snapshot, "fail_allocations", "live_allocations") == 0);
    CHECK(sum_at(snapshot, "fail_allocations", "allocated_bytes") == 0);

    CHECK(sum_at(snapshot, "realloc_from_null", "allocated_bytes") == 123);
    CHECK(sum_at(snapshot, "realloc_from_null", "live_bytes") == 123);
    CHECK(sum_at(snapshot, "calloc_array", "allocated_bytes") == 24000);

    CHECK(sum_at(snapshot, "grow_by_realloc", "live_bytes") == 1000000);
    CHECK(sum_at(snapshot, "grow_by_realloc", "live_allocations") == 1);
    CHECK(sum_at(snapshot, "grow_by_realloc", "freed_bytes") == 100);

    CHECK(sum_at(snapshot, "free_by_realloc", "allocated_bytes") == 50);
    CHECK(sum_at(snapshot, "free_by_realloc", "frees") == 1);
    CHECK(sum_at(snapshot, "free_by_realloc", "live_allocations") == 0);
}

TEST_CASE("jemalloc's malloc and free, probed past their first instructions",
          "[integration][alloc]") {
    if (!have_root("jemalloc's malloc and free"))
        return;
    // jemalloc's free computes for nine instructions before its first jump,
    // and its malloc starts with a compare: both probes sit further in.
    const std::string jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    REQUIRE(file_exists(jemalloc));  // scripts/install-deps.sh installs libjemalloc2
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "half-freed"}, {},
                                         {"LD_PRELOAD=" + jemalloc});

    bool probed = false;
    for (const auto& process : snapshot.at("processes")) {
        for (const auto& allocator : process.at("allocators")) {
            if (allocator.at("module").get<std::string>().find("libjemalloc") != std::string::npos)
                probed = allocator.at("probed").get<bool>();
        }
    }
    CHECK(probed);
    std::string site = "allocate_and_free_half";
    CHECK(sum_at(snapshot, site, "allocations") == 1000);
    CHECK(sum_at(snapshot, site, "allocated_bytes") == 100000);
    CHECK(sum_at(snapshot, site, "frees") == 500);
    CHECK(sum_at(snapshot, site, "freed_bytes") == 50000);
    CHECK(sum_at(snapshot, site, "live_allocations") == 500);
    CHECK(sum_at(snapshot, site, "live_bytes") == 50000);
    CHECK(drop(snapshot, "allocator_returns_lost") == 0);
}

TEST_CASE("two threads leaking at one site", "[integration][alloc]") {
    if (!have_root("two threads leaking at one site"))
        return;
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "leak-threads"});

    CHECK(sum_at(snapshot, "leak_small_blocks", "allocations") == 200000);
    CHECK(sum_at(snapshot, "leak_small_blocks", "allocated_bytes") == 800000);
    CHECK(sum_at(snapshot, "leak_small_blocks", "live_allocations") == 200000);
    std::size_t sites = 0;
    for (const auto& stack : snapshot.at("stacks"))
        if (calling_function(stack) == "leak_small_blocks" && stack.at("allocations") != 0)
            ++sites;
    CHECK(sites == 1);
}

TEST_CASE("operator new caller is in the stack", "[integration][alloc]") {
    if (!have_root("operator new caller is in the stack"))
        return;
    json snapshot = snapshot_of_workload({workload("cxx_cases"), "new-leak"});

    bool found = false;
    for (const auto& stack : snapshot.at("stacks")) {
        if (stack.at("live_bytes") != 4)
            continue;
        const auto& frames = stack.at("frames");
        for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
            std::string symbol = frames[i].at("symbol").is_null() ? "" : frames[i].at("symbol").get<std::string>();
            std::string next = frames[i + 1].at("symbol").is_null() ? "" : frames[i + 1].at("symbol").get<std::string>();
            if (symbol.find("operator new") != std::string::npos && next == "foo()")
                found = true;
        }
    }
    CHECK(found);
    CHECK(sum_at(snapshot, "foo()", "live_allocations") == 1);
}

TEST_CASE("thirty threads of new and delete leave nothing", "[integration][alloc][slow]") {
    if (!have_root("thirty threads of new and delete leave nothing"))
        return;
    // MEMOBSERVE_TEST_PAIRS shortens the case for local runs; CI runs it whole.
    const char* pairs_text = std::getenv("MEMOBSERVE_TEST_PAIRS");
    std::uint64_t pairs = pairs_text ? std::strtoull(pairs_text, nullptr, 10) : 1000000;
    json snapshot = snapshot_of_workload(
        {workload("cxx_cases"), "threads", "30", std::to_string(pairs)}, {"--max-overhead", "none"});

    std::string site = "churn_new_delete(int, int)";
    CHECK(sum_at(snapshot, site, "allocations") == 30 * pairs);
    CHECK(sum_at(snapshot, site, "frees") == 30 * pairs);
    CHECK(sum_at(snapshot, site, "live_allocations") == 0);
    CHECK(sum_at(snapshot, site, "live_bytes") == 0);
    CHECK(drop(snapshot, "allocator_calls_map_full") == 0);
}

TEST_CASE("50000 call paths: exact totals, overflow to unknown", "[integration][alloc]") {
    if (!have_root("50000 call paths"))
        return;
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "paths", "50000"});

    auto in_paths = [](const json& stack) {
        if (stack.at("unknown_stack").get<bool>())
            return true;
        for (const auto& frame : stack.at("frames"))
            if (!frame.at("symbol").is_null() && frame.at("symbol") == "descend")
                return true;
        return false;
    };
    CHECK(sum_where(snapshot, in_paths, "allocations") == 50000);
    CHECK(sum_where(snapshot, in_paths, "allocated_bytes") == 50000 * 64);

    std::uint64_t unknown = 0;
    std::size_t known_sites = 0;
    for (const auto& stack : snapshot.at("stacks")) {
        if (stack.at("unknown_stack").get<bool>()) {
            unknown += stack.at("allocations").get<std::uint64_t>();
            continue;
        }
        if (in_paths(stack) && stack.at("allocations") != 0) {
            ++known_sites;
            // A stored stack never receives another path's allocation.
            CHECK(stack.at("allocations") == 1);
        }
    }
    CHECK(known_sites + unknown == 50000);
    CHECK(unknown > 0);
    CHECK(drop(snapshot, "stack_map_full") + drop(snapshot, "stack_collisions") >= unknown);
}

TEST_CASE("first allocation after attaching is counted", "[integration][alloc]") {
    if (!have_root("first allocation after attaching is counted"))
        return;
    // The workload's first call after attaching is malloc(64 MiB), made by a
    // thread that was waiting in read().
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "sites"});

    CHECK(drop(snapshot, "allocator_returns_lost") == 0);
    CHECK(sum_at(snapshot, "allocate_untouched", "allocations") == 8);
}

TEST_CASE("page layers without allocator probes", "[integration][vm]") {
    if (!have_root("page layers without allocator probes"))
        return;
    json snapshot = snapshot_of_workload({workload("alloc_cases"), "sites"}, {"--no-alloc-probes"});

    CHECK(snapshot.at("alloc_probes") == false);
    CHECK(snapshot.at("alloc_probe_hits") == 0);
    const json& totals = snapshot.at("totals");
    CHECK(totals.at("allocated_bytes") == 0);
    CHECK(totals.at("live_bytes") == 0);
    // malloc maps each block of 64 MiB or more with mmap: 1 GiB in all.
    CHECK(totals.at("mapped_bytes").get<std::uint64_t>() >= 1024 * kMiB);
    CHECK(within(totals.at("faulted_bytes").get<std::uint64_t>(), 384 * kMiB, 0.05));
    CHECK(within(totals.at("resident_bytes").get<std::uint64_t>(), 384 * kMiB, 0.05));
    for (const auto& allocator : snapshot.at("processes").at(0).at("allocators"))
        CHECK(allocator.at("probed") == false);
}

TEST_CASE("overhead guard detaches the allocator probes", "[integration][overhead]") {
    if (!have_root("overhead guard detaches the allocator probes"))
        return;
    // Four seconds of malloc and free pairs: the traps cost far more than
    // the work, so the guard must trip within the first seconds; the 32 MiB
    // mapped afterwards must still be measured.
    Child target({workload("alloc_cases"), "churn", "4"});
    REQUIRE(target.wait_for_line("ready"));
    std::string output = temporary_path("guard.json");
    Child tracer({memobserve_binary(), "snapshot", "-p", std::to_string(target.pid()), "--duration",
                  "3600", "--max-overhead", "5", "-o", output});
    REQUIRE(tracer.wait_for_stderr("memobserve: tracing"));
    auto attached = std::chrono::steady_clock::now();
    // One link per program and file: the entry probes of libc, its return
    // probes.
    CHECK(links_of_program("allocator_enter") > 0);
    CHECK(links_of_program("allocator_return") > 0);
    // The guard's clock starts with memobserve; the checks above delay the load.
    double checks_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - attached).count();
    target.write_line("go");
    REQUIRE(target.wait_for_line("done", 120));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    // Every allocator probe is gone, return probes included, while
    // memobserve goes on tracing.
    CHECK(links_of_program("allocator_enter") == 0);
    CHECK(links_of_program("allocator_return") == 0);
    tracer.signal(SIGINT);
    REQUIRE(tracer.wait() == 0);
    INFO("memobserve stderr: " << tracer.stderr_text());
    check_snapshot_schema(output);
    std::ifstream file(output);
    json snapshot = json::parse(file);
    unlink(output.c_str());

    const json& overhead = snapshot.at("overhead");
    CHECK(overhead.at("max_percent") == 5.0);
    CHECK(overhead.at("probe_cost_ns").get<double>() > 100.0);
    CHECK(overhead.at("tripped") == true);
    CHECK(overhead.at("tripped_after_s").get<double>() < 3.5 + checks_s);
    CHECK(overhead.at("last_percent").get<double>() > 5.0);
    CHECK_THAT(tracer.stderr_text(), Catch::Contains("allocator probes detached"));
    CHECK_THAT(tracer.stdout_text(), Catch::Contains("DETACHED"));

    // The workload made millions of pairs; only those before the guard
    // tripped were counted.
    std::string text = target.stdout_text();
    auto at = text.find("pairs ");
    REQUIRE(at != std::string::npos);
    std::uint64_t pairs = std::stoull(text.substr(at + 6));
    std::uint64_t counted = sum_at(snapshot, "churn_then_map", "allocations");
    CHECK(counted > 0);
    CHECK(counted < pairs / 2);
    CHECK(sum_at(snapshot, "map_after_churn", "mapped_bytes") == 32 * kMiB);
    CHECK(sum_at(snapshot, "map_after_churn", "resident_bytes") >= 31 * kMiB);
    target.close_stdin();
}

TEST_CASE("attaching to a process inside malloc loses no return", "[integration][alloc]") {
    if (!have_root("attaching to a process inside malloc loses no return"))
        return;
    // The target is already in its malloc/free loop when the probes arrive.
    // Entry probes attached before the return probes would record calls
    // whose returns go unseen: each such call is counted as a lost return.
    Child target({workload("alloc_cases"), "churn", "4"});
    REQUIRE(target.wait_for_line("ready"));
    target.write_line("go");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    json snapshot = snapshot_of_running(target.pid(), "2");

    CHECK(sum_at(snapshot, "churn_then_map", "allocations") > 10000);
    CHECK(drop(snapshot, "allocator_returns_lost") == 0);
    target.close_stdin();
}

TEST_CASE("tracing a process again loses no free", "[integration][alloc]") {
    if (!have_root("tracing a process again loses no free"))
        return;
    // On a process traced before, the kernel took tens of milliseconds to
    // place one probe. Free probes placed after the malloc probes then left
    // the blocks of that time live for good.
    Child target({workload("alloc_cases"), "churn-threads", "8", "30"});
    REQUIRE(target.wait_for_line("ready"));
    target.write_line("go");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // The first trace keeps the default guard, which detaches the probes.
    snapshot_of_running(target.pid(), "1", {});
    json snapshot = snapshot_of_running(target.pid(), "2");

    // Each thread frees its block right after the malloc: at most one
    // block per thread is live.
    CHECK(sum_at(snapshot, "churn_until", "allocations") > 10000);
    CHECK(sum_at(snapshot, "churn_until", "live_allocations") <= 8);
    target.signal(SIGKILL);
}

TEST_CASE("overhead guard off with none", "[integration][overhead]") {
    if (!have_root("overhead guard off with none"))
        return;
    json snapshot =
        snapshot_of_workload({workload("alloc_cases"), "churn", "2"}, {"--max-overhead", "none"});
    CHECK(snapshot.at("overhead").at("max_percent") == 0.0);
    CHECK(snapshot.at("overhead").at("tripped") == false);
    CHECK(sum_at(snapshot, "churn_then_map", "allocations") > 10000);
}
