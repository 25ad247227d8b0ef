// Snapshot: everything memobserve reports about its targets at one moment.
// Pure data, with a JSON form (schema "memobserve.snapshot/1").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace memobserve {

inline constexpr const char* kSnapshotSchema = "memobserve.snapshot/1";

struct Frame {
    std::uint64_t address = 0;  // virtual address in the process
    std::string symbol;         // demangled function name, empty when unknown
    std::string module;         // path of the mapped file, or "[anon]" and the like
    // Offset from the symbol start or, without a symbol, the address in the
    // module's ELF file (what `addr2line -e MODULE` takes). Without a module it
    // is the address itself.
    std::uint64_t offset = 0;
    std::string file;           // source file, empty without debug info
    int line = 0;               // source line, 0 without debug info

    // "symbol+0x1f (module)" or "module+0x1234".
    std::string display() const;
};

// The kernel's totals for one process, in bytes.
struct ProcessMemory {
    std::uint64_t vss_bytes = 0;
    std::uint64_t rss_bytes = 0;
    std::uint64_t rss_anon_bytes = 0;
    std::uint64_t rss_file_bytes = 0;
    std::uint64_t rss_shmem_bytes = 0;
    std::uint64_t pss_bytes = 0;
    std::uint64_t uss_bytes = 0;
    std::uint64_t swap_bytes = 0;
};

// The memory cgroup of a process (cgroup v2, or the v1 memory controller).
struct CgroupMemory {
    std::string path;  // path below the hierarchy's mount point, "/" for the root
    std::optional<std::uint64_t> memory_current_bytes;
    std::optional<std::uint64_t> memory_max_bytes;  // empty when unlimited
};

// An allocator found in a process, and whether its functions are probed.
struct AllocatorInfo {
    std::string module;    // path of the file as the process maps it
    std::string kind;      // "malloc" (libc-compatible exports), "operator new", "jemalloc"...
    bool probed = false;
    std::string note;      // why it is not probed, or what is missing
};

struct ProcessInfo {
    int pid = 0;
    std::string comm;
    std::string cmdline;
    bool exited = false;
    ProcessMemory memory;
    std::optional<CgroupMemory> cgroup;
    std::vector<AllocatorInfo> allocators;
};

struct SiteCounters {
    std::uint64_t allocated_bytes = 0;
    std::uint64_t allocations = 0;
    std::uint64_t freed_bytes = 0;
    std::uint64_t frees = 0;
    std::uint64_t failed_allocations = 0;
    std::uint64_t live_bytes = 0;
    std::uint64_t live_allocations = 0;
    std::uint64_t mapped_bytes = 0;
    std::uint64_t mapped_file_bytes = 0;
    std::uint64_t faulted_bytes = 0;
    std::uint64_t resident_bytes = 0;

    SiteCounters& operator+=(const SiteCounters& other);
};

// One allocation site: a user call stack in one process.
struct Site {
    int pid = 0;
    bool unknown_stack = false;  // stack not stored (map full or collision)
    std::vector<Frame> frames;   // innermost first
    SiteCounters counters;
};

// Losses while tracing; every field is zero when nothing was lost.
struct Drops {
    std::uint64_t live_map_full = 0;
    std::uint64_t site_map_full = 0;
    std::uint64_t stack_map_full = 0;
    std::uint64_t stack_collisions = 0;
    std::uint64_t stack_errors = 0;
    std::uint64_t allocator_calls_map_full = 0;
    std::uint64_t event_ring_full = 0;
    // Allocator calls whose return probe did not run, so their block is not
    // known. Linux creates a process's uprobe area at its first probe hit,
    // and the return of that first call is not seen when it is an allocation.
    std::uint64_t allocator_returns_lost = 0;

    std::uint64_t total() const;
};

struct HostInfo {
    std::string kernel;
    std::uint64_t page_size = 4096;
};

struct Snapshot {
    std::string taken_at;  // RFC 3339, UTC
    double duration_s = 0;
    HostInfo host;
    std::vector<ProcessInfo> processes;
    std::vector<Site> sites;
    SiteCounters totals;
    Drops drops;
    std::uint64_t untracked_frees = 0;   // frees of blocks allocated before attaching
    std::uint64_t alloc_probe_hits = 0;  // allocator probe runs while tracing
    bool alloc_probes = true;            // false with --no-alloc-probes
};

nlohmann::json to_json(const Snapshot& snapshot);
Snapshot snapshot_from_json(const nlohmann::json& document);

// Current time as RFC 3339 in UTC, e.g. "2026-12-04T20:01:26Z".
std::string rfc3339_now();

}  // namespace memobserve
