// Naming a cgroup or a container on the command line, against a hybrid
// hierarchy built in a temporary directory: v2 at unified/ without the memory
// controller, v1's memory controller at memory/.
#include "collectors/cgroup_target.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "collectors/cgroup.h"
#include "collectors/procfs.h"
#include "util/error.h"

using namespace memobserve;
namespace fs = std::filesystem;

namespace {

const std::string kDockerId(64, 'a');
const std::string kPodmanId = std::string(12, 'b') + std::string(52, 'c');
const std::string kPodmanTwinId = std::string(12, 'b') + std::string(52, 'd');
const std::string kV1OnlyId(64, 'e');

void write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
}

std::uint64_t inode_of(const fs::path& path) {
    struct stat status;
    REQUIRE(stat(path.c_str(), &status) == 0);
    return status.st_ino;
}

// A hybrid host's /sys/fs/cgroup, removed at the end of the test.
struct HybridTree {
    fs::path root;

    HybridTree() {
        root = fs::temp_directory_path() / ("memobserve-cgroups-" + std::to_string(getpid()));
        fs::remove_all(root);
        write(root / "unified/cgroup.controllers", "cpu io pids\n");
        write(root / "unified/cgroup.procs", "1\n");
        write(root / "unified/system.slice/cgroup.procs", "");
        write(root / ("unified/system.slice/docker-" + kDockerId + ".scope/cgroup.procs"), "101\n102\n");
        write(root / ("unified/system.slice/docker-" + kDockerId + ".scope/init/cgroup.procs"), "103\n");
        write(root / ("unified/machine.slice/libpod-" + kPodmanId + ".scope/cgroup.procs"), "301\n");
        write(root / ("unified/machine.slice/libpod-" + kPodmanTwinId + ".scope/cgroup.procs"), "302\n");
        write(root / "memory/cgroup.procs", "1\n");
        write(root / "memory/memory.usage_in_bytes", "1000000000\n");
        fs::path v1 = root / "memory/docker" / kV1OnlyId;
        write(v1 / "cgroup.procs", "201\n");
        write(v1 / "memory.usage_in_bytes", "322961408\n");
        write(v1 / "memory.limit_in_bytes", "1073741824\n");
        write(v1 / "memory.stat", "cache 8192\nrss 4096\ntotal_cache 41943040\ntotal_rss 262144000\n"
                                  "total_shmem 4194304\n");
        write(v1 / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
        write(v1 / "memory.failcnt", "17\n");
        write(v1 / "memory.kmem.usage_in_bytes", "8388608\n");
    }

    ~HybridTree() { fs::remove_all(root); }
};

}  // namespace

TEST_CASE("resolve_cgroup by v2 path, id and directory", "[cgroup_target]") {
    HybridTree tree;
    std::string path = "/system.slice/docker-" + kDockerId + ".scope";
    fs::path directory = tree.root / "unified" / fs::path(path).relative_path();

    CgroupTarget by_path = resolve_cgroup(path, tree.root.string());
    CHECK(by_path.hierarchy == "v2");
    CHECK(by_path.path == path);
    CHECK(by_path.level == 2);
    CHECK(by_path.id == inode_of(directory));
    CHECK(by_path.directory == directory.string());

    CgroupTarget by_id = resolve_cgroup(std::to_string(inode_of(directory)), tree.root.string());
    CHECK(by_id.path == path);
    CHECK(by_id.level == 2);

    CgroupTarget by_directory = resolve_cgroup(directory.string(), tree.root.string());
    CHECK(by_directory.path == path);

    CgroupTarget root = resolve_cgroup("/", tree.root.string());
    CHECK(root.hierarchy == "v2");
    CHECK(root.level == 0);
    CHECK(root.path == "/");
}

TEST_CASE("resolve_cgroup of a v1 memory cgroup", "[cgroup_target]") {
    HybridTree tree;
    CgroupTarget target = resolve_cgroup("/docker/" + kV1OnlyId, tree.root.string());
    CHECK(target.hierarchy == "v1");
    CHECK(target.path == "/docker/" + kV1OnlyId);
    CHECK(cgroup_processes(target) == std::vector<int>{201});

    fs::path directory = tree.root / "memory/docker" / kV1OnlyId;
    CgroupTarget by_directory = resolve_cgroup(directory.string(), tree.root.string());
    CHECK(by_directory.hierarchy == "v1");

    // Its inode is not a v2 id: the message says what it is instead.
    try {
        resolve_cgroup(std::to_string(inode_of(directory)), tree.root.string());
        FAIL("a v1 directory's inode was taken as a v2 id");
    } catch (const Error& error) {
        CHECK_THAT(error.what(), Catch::Contains("is the v1 cgroup"));
        CHECK_THAT(error.what(), Catch::Contains("not a cgroup v2 id"));
    }
}

TEST_CASE("resolve_cgroup errors", "[cgroup_target]") {
    HybridTree tree;
    CHECK_THROWS_WITH(resolve_cgroup("/no/such/group", tree.root.string()),
                      Catch::Contains("cgroup path /no/such/group not found under"));
    CHECK_THROWS_WITH(resolve_cgroup("999999999999", tree.root.string()),
                      Catch::Contains("has id 999999999999"));
    CHECK_THROWS_WITH(resolve_cgroup("", tree.root.string()), Catch::Contains("empty --cgroup"));
    CHECK_THROWS_WITH(resolve_cgroup((tree.root / "unified/nothing").string(), tree.root.string()),
                      Catch::Contains("not found"));
}

TEST_CASE("cgroup_processes includes descendants", "[cgroup_target]") {
    HybridTree tree;
    CgroupTarget target = resolve_cgroup("/system.slice", tree.root.string());
    CHECK(cgroup_processes(target) == std::vector<int>{101, 102, 103});
}

TEST_CASE("resolve_container by unique prefix", "[cgroup_target]") {
    HybridTree tree;
    CgroupTarget docker = resolve_container(kDockerId.substr(0, 12), tree.root.string());
    CHECK(docker.hierarchy == "v2");
    CHECK(docker.container_id == kDockerId);
    CHECK(docker.path == "/system.slice/docker-" + kDockerId + ".scope");

    // Upper case is accepted, as some tools print it.
    CgroupTarget upper = resolve_container(std::string(16, 'A'), tree.root.string());
    CHECK(upper.container_id == kDockerId);

    CgroupTarget v1_only = resolve_container(kV1OnlyId, tree.root.string());
    CHECK(v1_only.hierarchy == "v1");
    CHECK(v1_only.container_id == kV1OnlyId);
}

TEST_CASE("resolve_container errors list the candidates", "[cgroup_target]") {
    HybridTree tree;
    CHECK_THROWS_WITH(resolve_container(kPodmanId.substr(0, 12), tree.root.string()),
                      Catch::Contains("matches 2 containers: bbbbbbbbbbbb, bbbbbbbbbbbb"));
    CHECK_THROWS_WITH(resolve_container("aaaaaaaaaaaf", tree.root.string()),
                      Catch::Contains("closest of the 4 running: aaaaaaaaaaaa"));
    CHECK_THROWS_WITH(resolve_container("not-hex-at-all", tree.root.string()),
                      Catch::Contains("invalid container id 'not-hex-at-all'"));
    CHECK_THROWS_WITH(resolve_container("abc", tree.root.string()), Catch::Contains("invalid container id"));
}

TEST_CASE("container_id_of knows the runtimes' names", "[cgroup_target]") {
    const std::string id(64, 'f');
    CHECK(container_id_of("docker-" + id + ".scope", "system.slice") == id);
    CHECK(container_id_of("cri-containerd-" + id + ".scope", "kubepods-burstable.slice") == id);
    CHECK(container_id_of("crio-" + id + ".scope", "kubepods.slice") == id);
    CHECK(container_id_of("libpod-" + id + ".scope", "machine.slice") == id);
    CHECK(container_id_of("libpod-" + id, "libpod_parent") == id);
    CHECK(container_id_of(id, "docker") == id);
    CHECK(container_id_of("crio-conmon-" + id + ".scope", "kubepods.slice").empty());
    CHECK(container_id_of("docker-" + id.substr(1) + ".scope", "system.slice").empty());
    CHECK(container_id_of("session-3.scope", "user.slice").empty());
}

TEST_CASE("memory cgroup details and breakdown on v1", "[cgroup_target]") {
    HybridTree tree;
    auto memory = read_memory_cgroup_at("/docker/" + kV1OnlyId, tree.root.string());
    REQUIRE(memory);
    CHECK(memory->hierarchy == "v1");
    CHECK(memory->memory_max_bytes == std::optional<std::uint64_t>(1073741824));
    CHECK(memory->stat.at("total_rss") == 262144000u);
    CHECK(memory->events.at("oom_kill") == 2u);
    CHECK(memory->events.at("failcnt") == 17u);
    CHECK(memory->events.count("oom_kill_disable") == 0);

    CgroupBreakdown parts = cgroup_breakdown(*memory);
    CHECK(parts.anon == 262144000u);
    CHECK(parts.file == 41943040u - 4194304u);
    CHECK(parts.shmem == 4194304u);
    CHECK(parts.kernel == 8388608u);
    CHECK(parts.other == 322961408u - 262144000u - 41943040u - 8388608u);
    CHECK(parts.oom_kills == 2u);
    CHECK(parts.limit_hits == 17u);
}

TEST_CASE("memory cgroup breakdown on v2", "[cgroup_target]") {
    CgroupMemory memory;
    memory.hierarchy = "v2";
    memory.memory_current_bytes = 100 << 20;
    memory.stat = {{"anon", 60 << 20}, {"file", 30 << 20}, {"shmem", 10 << 20}, {"kernel", 5 << 20}};
    memory.events = {{"max", 3}, {"oom", 1}, {"oom_kill", 1}};
    CgroupBreakdown parts = cgroup_breakdown(memory);
    CHECK(parts.anon == 60u << 20);
    CHECK(parts.file == 20u << 20);
    CHECK(parts.shmem == 10u << 20);
    CHECK(parts.kernel == 5u << 20);
    CHECK(parts.other == 5u << 20);
    CHECK(parts.limit_hits == 3u);
    CHECK(parts.oom_kills == 1u);
}

TEST_CASE("parse_nspid takes the innermost namespace", "[procfs]") {
    CHECK(parse_nspid("Name:\tsh\nNSpid:\t4242\t7\t1\nNSpgid:\t4242\n") == 1);
    CHECK(parse_nspid("Name:\tsh\nNSpid:\t4242\nNSpgid:\t4242\n") == 4242);
    CHECK(parse_nspid("Name:\tsh\n") == 0);
}
