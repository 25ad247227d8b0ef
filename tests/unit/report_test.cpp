#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "model/snapshot_file.h"
#include "snapshot_schema.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "views/folded.h"
#include "views/text.h"

using namespace memobserve;

namespace {

Snapshot two_site_snapshot() {
    Snapshot snapshot;
    snapshot.taken_at = "2026-12-04T20:01:26Z";
    snapshot.host = {"6.18.0", 4096};
    ProcessInfo process;
    process.pid = 7;
    process.comm = "service";
    snapshot.processes.push_back(process);

    Site leak;
    leak.pid = 7;
    leak.frames = {{0x10, "malloc", "/lib/libc.so.6", 0, "", 0},
                   {0x20, "leak", "/srv/service", 4, "", 0},
                   {0x30, "main", "/srv/service", 9, "", 0}};
    leak.counters.live_bytes = 300;
    leak.counters.resident_bytes = 4096;
    snapshot.sites.push_back(leak);

    Site unknown;
    unknown.pid = 7;
    unknown.unknown_stack = true;
    unknown.counters.live_bytes = 64;
    snapshot.sites.push_back(unknown);
    return snapshot;
}

std::string temporary_file(const std::string& name) {
    return "/tmp/memobserve-unit-" + std::to_string(getpid()) + "-" + name;
}

}  // namespace

TEST_CASE("folded stacks run from root to leaf", "[folded]") {
    std::string folded = render_folded(two_site_snapshot(), SortKey::live);
    CHECK(folded == "service (7);[unknown stack] 64\n"
                    "service (7);main;leak;malloc 300\n");
    std::string resident = render_folded(two_site_snapshot(), SortKey::resident);
    CHECK(resident == "service (7);main;leak;malloc 4096\n");
}

TEST_CASE("site table sorts and limits rows", "[text]") {
    Snapshot snapshot = two_site_snapshot();
    TableOptions options;
    options.sort = SortKey::live;
    options.rows = 1;
    std::string table = render_sites(snapshot, options);
    CHECK(table.find("leak < main") != std::string::npos);
    CHECK(table.find("[unknown stack") == std::string::npos);
    CHECK(table.find("(1 more sites)") != std::string::npos);

    options.rows = 5;
    table = render_sites(snapshot, options);
    CHECK(table.find("leak < main") < table.find("[unknown stack"));
    CHECK(table.find("more sites") == std::string::npos);
}

TEST_CASE("site table tells apart one function's sites", "[text]") {
    Snapshot snapshot = two_site_snapshot();
    Site second = snapshot.sites.front();
    second.frames = {{0x10, "malloc", "/lib/libc.so.6", 0, "", 0},
                     {0x28, "leak", "/srv/service", 12, "service.c", 41},
                     {0x30, "main", "/srv/service", 9, "", 0}};
    snapshot.sites.push_back(second);
    TableOptions options;
    options.sort = SortKey::live;
    std::string table = render_sites(snapshot, options);
    CHECK(table.find("leak+0x4 < main") != std::string::npos);
    CHECK(table.find("leak (service.c:41) < main") != std::string::npos);
    // A label that no other row shares stays short.
    CHECK(table.find("[unknown stack: not stored, see drops]") != std::string::npos);
}

TEST_CASE("cgroup site table merges processes", "[text]") {
    Snapshot snapshot = two_site_snapshot();
    snapshot.target.kind = "cgroup";
    Site other = snapshot.sites.front();
    other.pid = 8;
    other.counters.live_bytes = 700;
    snapshot.sites.push_back(other);
    TableOptions options;
    options.sort = SortKey::live;
    std::string table = render_sites(snapshot, options);
    // 300 + 700 bytes live in two processes, on one row.
    CHECK(table.find("1000 B") != std::string::npos);
    CHECK(table.find("2 pids  leak < main") != std::string::npos);
}

TEST_CASE("header shows the residency age", "[text]") {
    Snapshot snapshot = two_site_snapshot();
    TableOptions options;
    CHECK(render_header(snapshot, options).find("resident: as of") == std::string::npos);
    snapshot.resident_age_s = 2.04;
    CHECK(render_header(snapshot, options).find("resident: as of 2.0s ago") != std::string::npos);
}

TEST_CASE("snapshot file round trip", "[snapshot_file]") {
    std::string path = temporary_file("round-trip.json");
    write_file_atomically(path, to_json(two_site_snapshot()).dump());
    memobserve::testing::check_snapshot_schema(path);
    Snapshot loaded = load_snapshot(path);
    unlink(path.c_str());
    CHECK(loaded.sites.size() == 2);
    CHECK(loaded.sites[1].unknown_stack);
}

TEST_CASE("bad snapshot files name the problem", "[snapshot_file]") {
    std::string path = temporary_file("bad.json");
    std::string text = to_json(two_site_snapshot()).dump();

    write_file_atomically(path, text.substr(0, text.size() / 2));
    CHECK_THROWS_WITH(load_snapshot(path), Catch::Contains(path) && Catch::Contains("invalid JSON"));

    nlohmann::json other = to_json(two_site_snapshot());
    other["schema"] = "memobserve.snapshot/2";
    write_file_atomically(path, other.dump());
    CHECK_THROWS_WITH(load_snapshot(path), Catch::Contains("memobserve.snapshot/2"));

    write_file_atomically(path, "{\"name\": \"not a snapshot\"}");
    CHECK_THROWS_WITH(load_snapshot(path), Catch::Contains("not a memobserve snapshot"));
    unlink(path.c_str());

    CHECK_THROWS_WITH(load_snapshot(path), Catch::Contains("cannot read snapshot"));
}

TEST_CASE("atomic write replaces a symlink, not its target", "[atomic_file]") {
    std::string target = temporary_file("target.txt");
    std::string link = temporary_file("link.txt");
    {
        std::ofstream file(target);
        file << "original";
    }
    REQUIRE(symlink(target.c_str(), link.c_str()) == 0);
    write_file_atomically(link, "new contents");

    std::ifstream original(target);
    std::string contents((std::istreambuf_iterator<char>(original)), std::istreambuf_iterator<char>());
    CHECK(contents == "original");
    struct stat status;
    REQUIRE(lstat(link.c_str(), &status) == 0);
    CHECK(S_ISREG(status.st_mode));
    CHECK((status.st_mode & 0777) == 0600);
    unlink(target.c_str());
    unlink(link.c_str());
}

TEST_CASE("atomic write rejects a FIFO", "[atomic_file]") {
    std::string fifo = temporary_file("fifo");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THROWS_WITH(check_output_path(fifo), Catch::Contains("not a regular file"));
    CHECK_THROWS_WITH(write_file_atomically(fifo, "text"), Catch::Contains(fifo));

    struct stat status;
    REQUIRE(lstat(fifo.c_str(), &status) == 0);
    CHECK(S_ISFIFO(status.st_mode));
    unlink(fifo.c_str());
}

TEST_CASE("output check creates a trial file", "[atomic_file]") {
    // /proc is a directory, and writable by root, but takes no new file. The
    // check must fail before a snapshot traces for its whole duration.
    CHECK_THROWS_WITH(check_output_path("/proc/memobserve-output-check.json"),
                      Catch::Contains("cannot create a file in '/proc'"));
    // A writable directory passes and keeps no trial file.
    std::string directory = temporary_file("check-dir-XXXXXX");
    REQUIRE(mkdtemp(directory.data()) != nullptr);
    CHECK_NOTHROW(check_output_path(directory + "/checked.json"));
    CHECK(std::filesystem::is_empty(directory));
    std::filesystem::remove_all(directory);
}
