// Memory cgroup of a process: cgroup v2 (memory.current, memory.max) when the
// v2 hierarchy has the memory controller, else the v1 memory controller
// (memory.usage_in_bytes, memory.limit_in_bytes). Hybrid hosts mount v2 at
// /sys/fs/cgroup/unified without the memory controller and v1's at
// /sys/fs/cgroup/memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "model/snapshot.h"

namespace memobserve {

struct CgroupMembership {
    std::string v2_path;      // the "0::" line, empty when absent
    std::string memory_path;  // the v1 line naming the memory controller, empty when absent
};

CgroupMembership parse_proc_cgroup(std::string_view text);

// Without a limit, v1 memory.limit_in_bytes shows PAGE_COUNTER_MAX pages in
// bytes: 0x7FFFFFFFFFFFF000 with 4 KiB pages, slightly less with larger pages.
// Every value from 2^62 (4 EiB) up is taken as that, because no real limit is
// that large.
inline constexpr std::uint64_t kV1UnlimitedThreshold = std::uint64_t{1} << 62;

bool is_v1_unlimited(std::uint64_t limit_bytes);

// Mount points of the hierarchies below `root`. Empty strings when absent.
struct CgroupMounts {
    std::string v2;         // root itself on a pure v2 host, root/unified on a hybrid one
    std::string v1_memory;  // root/memory when v1 has the memory controller
    bool v2_has_memory = false;
};
CgroupMounts find_cgroup_mounts(const std::string& root = "/sys/fs/cgroup");

// Whether to read memory.stat and the event counters as well.
enum class CgroupDetail { totals, all };

// `root` is the sysfs cgroup mount, "/sys/fs/cgroup" in production; tests pass a
// fixture directory. Empty optional when the process does not exist (any more)
// or its memory cgroup cannot be found below `root`.
std::optional<CgroupMemory> read_cgroup_memory(int pid, const std::string& root = "/sys/fs/cgroup",
                                               CgroupDetail detail = CgroupDetail::totals);
// The same for a membership that was parsed already.
std::optional<CgroupMemory> read_cgroup_memory(const CgroupMembership& membership,
                                               const std::string& root = "/sys/fs/cgroup",
                                               CgroupDetail detail = CgroupDetail::totals);
// The memory cgroup at `path` of the hierarchy that has the memory
// controller; empty optional when there is no such directory.
std::optional<CgroupMemory> read_memory_cgroup_at(const std::string& path,
                                                  const std::string& root = "/sys/fs/cgroup",
                                                  CgroupDetail detail = CgroupDetail::all);

}  // namespace memobserve
