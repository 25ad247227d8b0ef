#include "collectors/cgroup.h"

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include <catch2/catch.hpp>

#include "collectors/procfs.h"
#include "util/error.h"

using namespace memobserve;

namespace {

std::string fixture_path(const std::string& name) {
    return std::string(FIXTURES_DIR) + "/cgroup/" + name;
}

CgroupMembership fixture_membership(const std::string& tree) {
    auto text = read_text_file(fixture_path(tree + "/proc_cgroup.txt"));
    REQUIRE(text);
    return parse_proc_cgroup(*text);
}

}  // namespace

TEST_CASE("parse_proc_cgroup hybrid host", "[cgroup]") {
    auto text = read_text_file(fixture_path("proc_cgroup_hybrid.txt"));
    REQUIRE(text);
    CgroupMembership membership = parse_proc_cgroup(*text);
    CHECK(membership.v2_path == "/");
    CHECK(membership.memory_path == "/process_api/2a7d378b603cddf00c970778a0a65d47");
}

TEST_CASE("parse_proc_cgroup pure v2", "[cgroup]") {
    CgroupMembership membership = parse_proc_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n");
    CHECK(membership.v2_path == "/user.slice/user-1000.slice/session-2.scope");
    CHECK(membership.memory_path.empty());
}

TEST_CASE("parse_proc_cgroup v1 controller lists", "[cgroup]") {
    // "memory" must be a whole entry of the list, not part of a name.
    CgroupMembership membership = parse_proc_cgroup(
        "5:name=memory_tracker:/wrong\n"
        "4:cpu,memory,pids:/right\n"
        "1:name=systemd:/init.scope\n");
    CHECK(membership.memory_path == "/right");
    CHECK(membership.v2_path.empty());
}

TEST_CASE("parse_proc_cgroup path with colon", "[cgroup]") {
    CgroupMembership membership = parse_proc_cgroup("4:memory:/jobs/run:7\n0::/jobs/run:7");
    CHECK(membership.memory_path == "/jobs/run:7");
    CHECK(membership.v2_path == "/jobs/run:7");
}

TEST_CASE("parse_proc_cgroup empty and malformed", "[cgroup]") {
    CgroupMembership membership = parse_proc_cgroup("\nno colons here\n3\n");
    CHECK(membership.v2_path.empty());
    CHECK(membership.memory_path.empty());
}

TEST_CASE("is_v1_unlimited threshold", "[cgroup]") {
    CHECK(is_v1_unlimited(0x7FFFFFFFFFFFF000));  // PAGE_COUNTER_MAX with 4 KiB pages
    CHECK(is_v1_unlimited(0x7FFFFFFFFFFF0000));  // with 64 KiB pages
    CHECK(is_v1_unlimited(std::uint64_t{1} << 62));
    CHECK_FALSE(is_v1_unlimited((std::uint64_t{1} << 62) - 4096));
    CHECK_FALSE(is_v1_unlimited(268435456));
}

TEST_CASE("read_cgroup_memory v2 with limit", "[cgroup]") {
    auto memory = read_cgroup_memory(fixture_membership("v2_limit"), fixture_path("v2_limit"));
    REQUIRE(memory);
    CHECK(memory->path == "/app.slice/web.service");
    CHECK(memory->memory_current_bytes == std::optional<std::uint64_t>(104857600));
    CHECK(memory->memory_max_bytes == std::optional<std::uint64_t>(536870912));
}

TEST_CASE("read_cgroup_memory v2 max", "[cgroup]") {
    auto memory = read_cgroup_memory(fixture_membership("v2_max"), fixture_path("v2_max"));
    REQUIRE(memory);
    CHECK(memory->path == "/user.slice/session-3.scope");
    CHECK(memory->memory_current_bytes == std::optional<std::uint64_t>(7340032));
    CHECK_FALSE(memory->memory_max_bytes);
}

TEST_CASE("read_cgroup_memory v2 root cgroup", "[cgroup]") {
    // The root of a v2 hierarchy has no memory.current and no memory.max.
    CgroupMembership membership;
    membership.v2_path = "/";
    auto memory = read_cgroup_memory(membership, fixture_path("v2_limit"));
    REQUIRE(memory);
    CHECK(memory->path == "/");
    CHECK_FALSE(memory->memory_current_bytes);
    CHECK_FALSE(memory->memory_max_bytes);
}

TEST_CASE("read_cgroup_memory hybrid uses v1", "[cgroup]") {
    auto memory = read_cgroup_memory(fixture_membership("hybrid_v1_limit"), fixture_path("hybrid_v1_limit"));
    REQUIRE(memory);
    CHECK(memory->path == "/process_api/abc");
    CHECK(memory->memory_current_bytes == std::optional<std::uint64_t>(3178496));
    CHECK(memory->memory_max_bytes == std::optional<std::uint64_t>(268435456));
}

TEST_CASE("read_cgroup_memory v1 root cgroup", "[cgroup]") {
    CgroupMembership membership;
    membership.v2_path = "/";
    membership.memory_path = "/";
    auto memory = read_cgroup_memory(membership, fixture_path("hybrid_v1_limit"));
    REQUIRE(memory);
    CHECK(memory->path == "/");
    CHECK(memory->memory_current_bytes == std::optional<std::uint64_t>(52428800));
    CHECK_FALSE(memory->memory_max_bytes);
}

TEST_CASE("read_cgroup_memory v1 unlimited", "[cgroup]") {
    auto memory = read_cgroup_memory(fixture_membership("v1_unlimited"), fixture_path("v1_unlimited"));
    REQUIRE(memory);
    CHECK(memory->path == "/docker/f00d");
    CHECK(memory->memory_current_bytes == std::optional<std::uint64_t>(2097152));
    CHECK_FALSE(memory->memory_max_bytes);
}

TEST_CASE("read_cgroup_memory cgroup not found", "[cgroup]") {
    CgroupMembership missing_directory;
    missing_directory.memory_path = "/docker/gone";
    CHECK_FALSE(read_cgroup_memory(missing_directory, fixture_path("v1_unlimited")));

    CgroupMembership no_memory_line;
    no_memory_line.v2_path = "/";
    CHECK_FALSE(read_cgroup_memory(no_memory_line, fixture_path("v1_unlimited")));

    // The path of a cgroup outside the reader's cgroup namespace.
    CgroupMembership outside_namespace;
    outside_namespace.v2_path = "/../app.slice";
    CHECK_FALSE(read_cgroup_memory(outside_namespace, fixture_path("v2_limit")));
}

TEST_CASE("read_cgroup_memory missing process", "[cgroup]") {
    CHECK_FALSE(read_cgroup_memory(2147483647));
}

// Computes the expected file from /proc/self/cgroup and the mounts without the
// code under test, then compares. Usage changes while the test runs, so it
// retries until two reads of the file around the call agree.
TEST_CASE("read_cgroup_memory live process", "[cgroup]") {
    namespace fs = std::filesystem;
    const fs::path root = "/sys/fs/cgroup";

    std::string v2_path;
    std::string memory_path;
    std::istringstream lines(read_text_file("/proc/self/cgroup").value());
    for (std::string line; std::getline(lines, line);) {
        std::size_t first = line.find(':');
        std::size_t second = line.find(':', first + 1);
        std::string controllers = "," + line.substr(first + 1, second - first - 1) + ",";
        if (line.starts_with("0::"))
            v2_path = line.substr(second + 1);
        else if (controllers.find(",memory,") != std::string::npos)
            memory_path = line.substr(second + 1);
    }

    fs::path v2_mount;
    if (fs::exists(root / "cgroup.controllers"))
        v2_mount = root;
    else if (fs::exists(root / "unified/cgroup.controllers"))
        v2_mount = root / "unified";

    bool v2_memory = false;
    if (!v2_mount.empty()) {
        std::istringstream controllers(read_text_file(v2_mount / "cgroup.controllers").value());
        for (std::string name; controllers >> name;)
            v2_memory = v2_memory || name == "memory";
    }

    std::string expected_path = v2_memory ? v2_path : memory_path;
    fs::path usage_file = v2_memory ? v2_mount / ("." + v2_path) / "memory.current"
                                    : root / ("memory/." + memory_path) / "memory.usage_in_bytes";
    INFO("usage file: " << usage_file);

    bool matched = false;
    for (int attempt = 0; attempt < 50 && !matched; ++attempt) {
        auto before = read_text_file(usage_file);
        auto memory = read_cgroup_memory(getpid());
        auto after = read_text_file(usage_file);
        REQUIRE(memory);
        CHECK(memory->path == expected_path);
        if (!before) {
            // The v2 root cgroup has no memory.current.
            CHECK_FALSE(memory->memory_current_bytes);
            matched = true;
        } else if (before == after && memory->memory_current_bytes) {
            matched = *memory->memory_current_bytes == std::stoull(*before);
        }
    }
    CHECK(matched);
}
