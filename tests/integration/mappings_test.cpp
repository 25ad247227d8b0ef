// Per-mapping residency in snapshots: memory written before memobserve
// attached must show up as untraced, memory written after it as traced, and
// the mappings must add up to the kernel's own RSS.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "harness.h"
#include "snapshot_schema.h"

using namespace memobserve::testing;
using nlohmann::json;

namespace {

// The hex address after "NAME 0x" on a line of the workload's output.
std::uint64_t printed_address(const std::string& output, const std::string& name) {
    std::size_t at = output.find(name + " 0x");
    REQUIRE(at != std::string::npos);
    return std::strtoull(output.c_str() + at + name.size() + 1, nullptr, 16);
}

// Rss of /proc/PID/smaps_rollup, in bytes.
std::uint64_t rollup_rss(int pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/smaps_rollup");
    std::string line;
    while (std::getline(file, line)) {
        if (line.rfind("Rss:", 0) == 0)
            return std::strtoull(line.c_str() + 4, nullptr, 10) * 1024;
    }
    FAIL("no Rss line in smaps_rollup of pid " << pid);
    return 0;
}

const json* mapping_containing(const json& mappings, std::uint64_t address) {
    for (const json& mapping : mappings) {
        if (mapping.at("start").get<std::uint64_t>() <= address && address < mapping.at("end").get<std::uint64_t>())
            return &mapping;
    }
    return nullptr;
}

struct PremappedRun {
    json snapshot;
    std::string report;
    std::uint64_t premapped = 0;
    std::uint64_t postmapped = 0;
    std::uint64_t thread_stack = 0;
    std::uint64_t kernel_rss = 0;  // smaps_rollup right after the snapshot
};

// The workload maps and writes 64 MiB and starts a waiting thread, then
// memobserve attaches, then the workload maps and writes 32 MiB.
PremappedRun run_premapped() {
    PremappedRun run;
    Child target({workload("alloc_cases"), "premapped"});
    REQUIRE(target.wait_for_line("ready"));
    run.premapped = printed_address(target.stdout_text(), "premapped");
    run.thread_stack = printed_address(target.stdout_text(), "thread-stack");

    std::string output = temporary_path("mappings.json");
    Child tracer({memobserve_binary(), "snapshot", "-p", std::to_string(target.pid()), "--duration", "3600",
                  "-o", output});
    REQUIRE(tracer.wait_for_stderr("memobserve: tracing"));
    target.write_line("go");
    REQUIRE(target.wait_for_line("done", 300));
    run.postmapped = printed_address(target.stdout_text(), "postmapped");
    tracer.signal(SIGINT);
    int status = tracer.wait();
    INFO("memobserve stderr: " << tracer.stderr_text());
    REQUIRE(status == 0);

    // The workload is idle now, so its RSS is the one the snapshot saw.
    run.kernel_rss = rollup_rss(target.pid());
    target.close_stdin();
    REQUIRE(target.wait() == 0);

    check_snapshot_schema(output);
    std::ifstream file(output);
    REQUIRE(file.good());
    run.snapshot = json::parse(file);
    Run report = run_memobserve({"report", output});
    INFO("report stderr: " << report.stderr_text);
    REQUIRE(report.status == 0);
    run.report = report.stdout_text;
    unlink(output.c_str());
    return run;
}

}  // namespace

TEST_CASE("memory mapped before attaching is untraced", "[integration][mappings]") {
    if (!have_root("memory mapped before attaching is untraced"))
        return;
    PremappedRun run = run_premapped();
    const json& process = run.snapshot.at("processes").at(0);
    const json& mappings = process.at("mappings");
    REQUIRE(mappings.size() > 10);

    // The kernel may merge the two anonymous mappings into one, so each
    // address is looked up on its own.
    const json* before = mapping_containing(mappings, run.premapped);
    REQUIRE(before != nullptr);
    INFO("mapping of the 64 MiB written before attaching: " << before->dump());
    CHECK(before->at("untraced_resident_bytes").get<std::uint64_t>() >= 63 * kMiB);
    CHECK((before->at("kind") == "anonymous" || before->at("kind") == "huge"));

    const json* after = mapping_containing(mappings, run.postmapped);
    REQUIRE(after != nullptr);
    INFO("mapping of the 32 MiB written after attaching: " << after->dump());
    CHECK(after->at("traced_resident_bytes").get<std::uint64_t>() >= 31 * kMiB);
    CHECK(sum_at(run.snapshot, "map_after_attach", "resident_bytes") >= 31 * kMiB);
    CHECK(sum_at(run.snapshot, "map_after_attach", "mapped_bytes") == 32 * kMiB);

    // Apart from the 32 MiB, the workload creates only a few pages while
    // tracing (stdio buffers, the kernel's uprobe area).
    std::uint64_t traced = 0;
    for (const json& mapping : mappings)
        traced += mapping.at("traced_resident_bytes").get<std::uint64_t>();
    CHECK(traced >= 31 * kMiB);
    CHECK(traced <= 33 * kMiB);
}

TEST_CASE("mapping kinds and sums match the kernel", "[integration][mappings]") {
    if (!have_root("mapping kinds and sums match the kernel"))
        return;
    PremappedRun run = run_premapped();
    const json& process = run.snapshot.at("processes").at(0);
    const json& mappings = process.at("mappings");

    std::uint64_t rss = 0;
    for (const json& mapping : mappings) {
        INFO(mapping.dump());
        std::uint64_t mapping_rss = mapping.at("rss_bytes").get<std::uint64_t>();
        rss += mapping_rss;
        CHECK(mapping.at("size_bytes").get<std::uint64_t>() ==
              mapping.at("end").get<std::uint64_t>() - mapping.at("start").get<std::uint64_t>());
        CHECK(mapping.at("traced_resident_bytes").get<std::uint64_t>() +
                  mapping.at("untraced_resident_bytes").get<std::uint64_t>() ==
              mapping_rss);
        CHECK(mapping.at("pss_bytes").get<std::uint64_t>() <= mapping_rss);
        CHECK(mapping.at("uss_bytes").get<std::uint64_t>() <= mapping_rss);
    }
    double kernel_rss = static_cast<double>(run.kernel_rss);
    INFO("sum of mapping RSS " << rss << ", smaps_rollup Rss " << run.kernel_rss);
    CHECK(std::abs(static_cast<double>(rss) - kernel_rss) <= 0.01 * kernel_rss);
    CHECK(rss >= 96 * kMiB);

    auto has = [&](const char* kind, const std::function<bool(const json&)>& also) {
        return std::any_of(mappings.begin(), mappings.end(),
                           [&](const json& mapping) { return mapping.at("kind") == kind && also(mapping); });
    };
    CHECK(has("heap", [](const json& mapping) { return mapping.at("path") == "[heap]"; }));
    CHECK(has("stack", [](const json& mapping) { return mapping.at("path") == "[stack]"; }));
    CHECK(has("file", [](const json& mapping) {
        return mapping.at("path").get<std::string>().find("alloc_cases") != std::string::npos;
    }));
    // The waiting thread's stack: anonymous memory that glibc mapped.
    const json* thread_stack = mapping_containing(mappings, run.thread_stack);
    REQUIRE(thread_stack != nullptr);
    CHECK(thread_stack->at("kind") == "stack");
    CHECK(thread_stack->at("path").is_null());
}

TEST_CASE("report shows mappings and untraced memory", "[integration][mappings]") {
    if (!have_root("report shows mappings and untraced memory"))
        return;
    PremappedRun run = run_premapped();
    INFO(run.report);
    CHECK_THAT(run.report, Catch::Contains("mappings (largest by RSS)"));
    CHECK_THAT(run.report, Catch::Contains("  untraced  "));
    CHECK_THAT(run.report, Catch::Contains("resident outside the blocks and mappings seen while tracing"));
    // The largest mapping by RSS is the 64 MiB (with the 32 MiB when merged),
    // shown with its untraced bytes.
    std::string pid = std::to_string(run.snapshot.at("processes").at(0).at("pid").get<int>());
    CHECK_THAT(run.report, Catch::Contains("pid " + pid + " alloc_cases: "));
    CHECK_THAT(run.report, Catch::Contains("64.00 MiB"));
}
