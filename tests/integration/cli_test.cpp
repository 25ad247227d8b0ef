// Command-line behaviour: bad input, exits, detaching, the live view.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>

#include <catch2/catch.hpp>

#include "harness.h"
#include "model/snapshot.h"
#include "snapshot_schema.h"

using namespace memobserve::testing;


TEST_CASE("missing pid is reported, nothing written", "[integration][cli]") {
    if (!have_root("missing pid is reported, nothing written"))
        return;
    std::string output = temporary_path("never.json");
    Run run = run_memobserve({"snapshot", "-p", "4194303", "--duration", "1", "-o", output});
    CHECK(run.status != 0);
    CHECK_THAT(run.stderr_text, Catch::Contains("process 4194303 not found"));
    CHECK_FALSE(file_exists(output));
}

TEST_CASE("command that cannot start is reported", "[integration][cli]") {
    if (!have_root("command that cannot start is reported"))
        return;
    std::string output = temporary_path("never.json");
    INFO("these tests need that no other memobserve runs at the same time");
    REQUIRE(programs_return_to(0));
    std::size_t programs_before = 0;
    Run run = run_memobserve({"snapshot", "--duration", "1", "-o", output, "--",
                              "no-such-command-for-memobserve"});
    CHECK(run.status != 0);
    CHECK_THAT(run.stderr_text,
               Catch::Contains("cannot start command 'no-such-command-for-memobserve'"));
    CHECK_FALSE(file_exists(output));
    CHECK(programs_return_to(programs_before));
}

TEST_CASE("usage errors name the option", "[cli]") {
    Run sort = run_memobserve({"top", "--sort", "rss", "-p", "1"});
    CHECK(sort.status != 0);
    CHECK_THAT(sort.stderr_text, Catch::Contains("--sort"));

    Run both = run_memobserve({"snapshot", "-p", "1", "-o", "/tmp/x.json", "--", "true"});
    CHECK(both.status != 0);
    CHECK_THAT(both.stderr_text, Catch::Contains("more than one kind of target"));

    Run none = run_memobserve({"top"});
    CHECK(none.status != 0);
    CHECK_THAT(none.stderr_text, Catch::Contains("no target"));

    Run pid = run_memobserve({"-p", "abc"});
    CHECK(pid.status == 2);
    CHECK_THAT(pid.stderr_text, Catch::Contains("--pid: invalid value 'abc': expected a whole "
                                                "number from 1 to 4194304"));
    CHECK_THAT(pid.stderr_text, Catch::Contains("memobserve top --help"));

    Run interval = run_memobserve({"top", "-p", "1", "--interval", "0.01"});
    CHECK(interval.status == 2);
    CHECK_THAT(interval.stderr_text, Catch::Contains("expected a number from 0.1 to 3600"));

    // A mistyped command name or a program without -- starts nothing.
    Run typo = run_memobserve({"reprot", "x.json"});
    CHECK(typo.status == 2);
    CHECK_THAT(typo.stderr_text, Catch::Contains("unknown command 'reprot'"));
    Run no_separator = run_memobserve({"top", "true"});
    CHECK(no_separator.status == 2);
    CHECK_THAT(no_separator.stderr_text, Catch::Contains("'memobserve top -- true'"));

    Run unknown = run_memobserve({"snapshot", "-o", "/tmp/x.json", "--no-such-option"});
    CHECK(unknown.status == 2);
    CHECK_THAT(unknown.stderr_text, Catch::Contains("--no-such-option"));

    Run directory = run_memobserve(
        {"snapshot", "-p", "1", "-o", "/nonexistent-memobserve-dir/out.json"});
    CHECK(directory.status != 0);
    CHECK_THAT(directory.stderr_text, Catch::Contains("does not exist"));
}

TEST_CASE("without privileges the message says what is needed", "[integration][cli]") {
    if (!have_root("without privileges the message says what is needed"))
        return;
    Child target({workload("alloc_cases"), "sites"});
    REQUIRE(target.wait_for_line("ready"));
    // setpriv from util-linux switches to uid 65534 without capabilities.
    Child child({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 memobserve_binary(), "snapshot", "-p", std::to_string(target.pid()),
                 "--duration", "1", "-o", "/tmp/memobserve-never.json"});
    int status = child.wait(60);
    CHECK(status != 0);
    CHECK_THAT(child.stderr_text(), Catch::Contains("needs root"));
    CHECK_FALSE(file_exists("/tmp/memobserve-never.json"));
}

TEST_CASE("SIGTERM detaches everything and exits 0", "[integration][cli]") {
    if (!have_root("SIGTERM detaches everything and exits 0"))
        return;
    Child target({workload("alloc_cases"), "sites"});
    REQUIRE(target.wait_for_line("ready"));
    INFO("these tests need that no other memobserve runs at the same time");
    REQUIRE(programs_return_to(0));
    std::size_t programs_before = 0;
    std::size_t links_before = page_fault_links();
    Child tracer({memobserve_binary(), "-p", std::to_string(target.pid()), "--interval", "0.5"});
    REQUIRE(tracer.wait_for_stderr("memobserve: tracing"));
    CHECK(memobserve_programs() == programs_before + 6);
    CHECK(page_fault_links() == links_before + 1);

    tracer.signal(SIGTERM);
    CHECK(tracer.wait(60) == 0);
    CHECK(page_fault_links() == links_before);
    CHECK(programs_return_to(programs_before));
}

TEST_CASE("live view prints one block per interval when piped", "[integration][cli]") {
    if (!have_root("live view prints one block per interval when piped"))
        return;
    Child target({workload("alloc_cases"), "sites"});
    REQUIRE(target.wait_for_line("ready"));
    target.write_line("go");
    REQUIRE(target.wait_for_line("done"));

    Run run = run_memobserve({"-p", std::to_string(target.pid()), "--interval", "0.5", "-n", "3"});
    CHECK(run.status == 0);
    std::size_t blocks = 0;
    for (std::size_t at = run.stdout_text.find("RESIDENT"); at != std::string::npos;
         at = run.stdout_text.find("RESIDENT", at + 1))
        ++blocks;
    CHECK(blocks == 3);
    CHECK_THAT(run.stdout_text, Catch::Contains("allocator libc.so.6 (malloc): probed"));
    CHECK(run.stdout_text.find("\x1b[") == std::string::npos);
}

TEST_CASE("target that exits keeps its last numbers", "[integration][cli]") {
    if (!have_root("target that exits keeps its last numbers"))
        return;
    std::string output = temporary_path("exited.json");
    INFO("these tests need that no other memobserve runs at the same time");
    REQUIRE(programs_return_to(0));
    std::size_t programs_before = 0;
    Child tracer({memobserve_binary(), "snapshot", "--duration", "60", "-o", output, "--",
                  memobserve_binary().substr(0, memobserve_binary().rfind('/')) +
                      "/demo/hungry_service",
                  "3"});
    tracer.close_stdin();
    CHECK(tracer.wait(120) == 0);

    std::ifstream file(output);
    REQUIRE(file.good());
    nlohmann::json snapshot = nlohmann::json::parse(file);
    check_snapshot_schema(output);
    unlink(output.c_str());
    CHECK(snapshot.at("duration_s").get<double>() < 30);
    CHECK(snapshot.at("processes").at(0).at("exited") == true);
    CHECK(sum_at(snapshot, "reserve_cache", "allocated_bytes") == 2048 * kMiB);
    CHECK(sum_at(snapshot, "load_table", "resident_bytes") >= 250 * kMiB);
    CHECK(snapshot.at("drops").at("allocator_returns_lost") == 0);
    CHECK(programs_return_to(programs_before));
}

TEST_CASE("diff sorts sites by resident growth", "[cli]") {
    memobserve::Snapshot older;
    older.taken_at = "2026-12-04T20:00:00Z";
    memobserve::ProcessInfo process;
    process.pid = 5;
    process.comm = "service";
    older.processes.push_back(process);
    memobserve::Site cache;
    cache.pid = 5;
    cache.frames = {{0x10, "fill_cache", "/srv/service", 8, "", 0}};
    cache.counters.resident_bytes = 1024 * 1024;
    memobserve::Site sessions;
    sessions.pid = 5;
    sessions.frames = {{0x20, "open_session", "/srv/service", 4, "", 0}};
    sessions.counters.resident_bytes = 4096;
    memobserve::Site idle;
    idle.pid = 5;
    idle.frames = {{0x30, "idle_loop", "/srv/service", 2, "", 0}};
    idle.counters.resident_bytes = 8192;
    older.sites = {cache, sessions, idle};

    memobserve::Snapshot newer = older;
    newer.taken_at = "2026-12-04T20:10:00Z";
    newer.processes[0].memory.rss_bytes = 9 * 1024 * 1024;
    newer.sites[0].counters.resident_bytes = 2 * 1024 * 1024;
    newer.sites[1].counters.resident_bytes = 8 * 1024 * 1024;

    std::string old_path = temporary_path("old.json");
    std::string new_path = temporary_path("new.json");
    std::ofstream(old_path) << memobserve::to_json(older).dump();
    std::ofstream(new_path) << memobserve::to_json(newer).dump();
    check_snapshot_schema(old_path);
    check_snapshot_schema(new_path);
    Run run = run_memobserve({"diff", old_path, new_path});
    unlink(old_path.c_str());
    unlink(new_path.c_str());

    CHECK(run.status == 0);
    CHECK_THAT(run.stdout_text, Catch::Contains("+9.00 MiB"));
    std::size_t sessions_at = run.stdout_text.find("open_session");
    std::size_t cache_at = run.stdout_text.find("fill_cache");
    REQUIRE(sessions_at != std::string::npos);
    REQUIRE(cache_at != std::string::npos);
    CHECK(sessions_at < cache_at);
    CHECK_THAT(run.stdout_text, Catch::Contains("+8.00 MiB"));
    // A site that did not change is counted, not listed.
    CHECK(run.stdout_text.find("idle_loop") == std::string::npos);
    CHECK_THAT(run.stdout_text, Catch::Contains("(1 site unchanged)"));
    CHECK(run.stdout_text.find("no process in common") == std::string::npos);

    // Snapshots of different processes are compared, with a note.
    memobserve::Snapshot other = newer;
    other.processes[0].pid = 6;
    for (auto& site : other.sites)
        site.pid = 6;
    std::ofstream(old_path) << memobserve::to_json(older).dump();
    std::ofstream(new_path) << memobserve::to_json(other).dump();
    Run unrelated = run_memobserve({"diff", old_path, new_path});
    unlink(old_path.c_str());
    unlink(new_path.c_str());
    CHECK(unrelated.status == 0);
    CHECK_THAT(unrelated.stdout_text, Catch::Contains("no process in common"));

    Run missing = run_memobserve({"diff", old_path, new_path});
    CHECK(missing.status != 0);
    CHECK_THAT(missing.stderr_text, Catch::Contains("cannot read snapshot"));
}
