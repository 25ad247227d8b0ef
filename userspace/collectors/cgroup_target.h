// A cgroup named on the command line (--cgroup ID|PATH, --container ID): where
// it is, which processes it holds, and how the BPF side filters on it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace memobserve {

struct CgroupTarget {
    // "v2": filtered in the kernel by cgroup id, descendants included.
    // "v1": followed by process membership and the children of its processes.
    std::string hierarchy;
    std::string path;          // below the hierarchy's mount point, "/" for the root
    std::string directory;     // the cgroup's directory under /sys/fs/cgroup
    std::uint64_t id = 0;      // inode of the directory: the cgroup v2 id
    std::uint32_t level = 0;   // depth below the v2 root, which is level 0
    std::string container_id;  // full container id, when named with --container
};

// `spec` is a cgroup v2 id (digits: the directory's inode number, what
// bpf_get_current_cgroup_id returns), an absolute directory below `root`, or
// a path relative to a cgroup mount (v2 first, then the v1 hierarchies).
// Throws Error naming the problem.
CgroupTarget resolve_cgroup(const std::string& spec, const std::string& root = "/sys/fs/cgroup");

// Find the cgroup of a container by its id or a unique prefix of 12 or more
// hex digits, under the naming of Docker (docker-ID.scope, /docker/ID),
// containerd (cri-containerd-ID.scope), CRI-O (crio-ID.scope) and Podman
// (libpod-ID.scope). The v2 hierarchy is preferred. Throws Error listing the
// close matches when none or several match.
CgroupTarget resolve_container(const std::string& id, const std::string& root = "/sys/fs/cgroup");

// The container id in a cgroup directory name, or an empty string.
std::string container_id_of(const std::string& directory_name, const std::string& parent_name);

// Processes of the cgroup and of its descendants, sorted.
std::vector<int> cgroup_processes(const CgroupTarget& target);

}  // namespace memobserve
