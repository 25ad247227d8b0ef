// Snapshot: everything memobserve reports about its targets at one moment.
// Pure data, with a JSON form (schema "memobserve.snapshot/1").
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
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

// The frames of one stack, innermost first. Copies share one list, which
// is copied only when a copy is changed: the live view builds a snapshot of
// every site at each refresh, and a site's frames stay the same.
class FrameChain {
public:
    using const_iterator = std::vector<Frame>::const_iterator;
    using const_reverse_iterator = std::vector<Frame>::const_reverse_iterator;

    FrameChain() = default;
    FrameChain(std::vector<Frame> frames);
    FrameChain(std::initializer_list<Frame> frames);

    const_iterator begin() const { return list().begin(); }
    const_iterator end() const { return list().end(); }
    const_reverse_iterator rbegin() const { return list().rbegin(); }
    const_reverse_iterator rend() const { return list().rend(); }
    std::size_t size() const { return frames_ ? frames_->size() : 0; }
    bool empty() const { return size() == 0; }
    const Frame& operator[](std::size_t index) const { return list()[index]; }
    const Frame& front() const { return list().front(); }
    const Frame& back() const { return list().back(); }

    void push_back(Frame frame);
    // Ask the processor to fetch the chain's shared state ahead of a copy
    // (a copy writes its reference count, usually a cache miss).
    void prefetch() const { __builtin_prefetch(frames_.get(), 1); }

private:
    const std::vector<Frame>& list() const;

    std::shared_ptr<const std::vector<Frame>> frames_;
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

// A memory cgroup (cgroup v2, or the v1 memory controller).
struct CgroupMemory {
    std::string path;  // path below the hierarchy's mount point, "/" for the root
    std::optional<std::uint64_t> memory_current_bytes;
    std::optional<std::uint64_t> memory_max_bytes;  // empty when unlimited
    std::uint64_t id = 0;        // inode of the directory (the cgroup id on v2)
    std::string hierarchy;       // "v2" or "v1"
    // memory.stat as the kernel writes it, in bytes (page and event counts
    // as they are). Empty for the per-process entries.
    std::map<std::string, std::uint64_t> stat;
    // v2: memory.events. v1: failcnt, oom_kill and under_oom (memory.failcnt,
    // memory.oom_control), and kernel_bytes (memory.kmem.usage_in_bytes).
    std::map<std::string, std::uint64_t> events;
};

// Parts of a cgroup's usage, in bytes, from its memory.stat.
struct CgroupBreakdown {
    std::uint64_t anon = 0;
    std::uint64_t file = 0;    // page cache without shared memory
    std::uint64_t shmem = 0;
    std::uint64_t kernel = 0;
    std::uint64_t other = 0;   // usage not in the four above
    std::uint64_t oom_kills = 0;
    std::uint64_t limit_hits = 0;  // v2 "max" events, v1 failcnt
};
CgroupBreakdown cgroup_breakdown(const CgroupMemory& cgroup);

// The target of a trace. "pid": processes named with -p; "command": a command
// memobserve started; "cgroup": a cgroup and its descendants; "all": the host.
struct TargetInfo {
    std::string kind = "pid";
    std::uint64_t cgroup_id = 0;  // v2 id, 0 for other kinds or a v1 cgroup
    std::string path;             // cgroup path below its hierarchy's mount
    std::string hierarchy;        // "v2" or "v1" for a cgroup
    std::string container_id;     // full id when named with --container
};

// An allocator found in a process, and whether its functions are probed.
struct AllocatorInfo {
    std::string module;    // path of the file as the process maps it
    std::string kind;      // "malloc" (libc-compatible exports), "operator new", "jemalloc"...
    bool probed = false;
    std::string note;      // why it is not probed, or what is missing
};

// One mapping of a process at the snapshot, from /proc/PID/smaps. Sizes in bytes.
struct MappingInfo {
    // "heap", "stack" (the main stack and thread stacks), "anonymous", "file"
    // (private file mapping), "shared" (shared memory and MAP_SHARED),
    // "huge" (transparent or hugetlbfs huge pages), "vdso" or "other".
    std::string kind;
    std::uint64_t start = 0;
    std::uint64_t end = 0;  // exclusive
    std::string permissions;  // as in /proc/PID/maps, e.g. "rw-p"
    std::string path;         // "[heap]", "[stack]", a file... Empty for anonymous memory.
    std::uint64_t size_bytes = 0;
    std::uint64_t rss_bytes = 0;
    std::uint64_t pss_bytes = 0;
    std::uint64_t uss_bytes = 0;  // Private_Clean + Private_Dirty + Private_Hugetlb
    std::uint64_t swap_bytes = 0;
    // Resident bytes inside live blocks or mappings that memobserve saw
    // being created, and the rest of the RSS: memory that predates tracing
    // or that no probe saw (file pages, the loader's and the stack's pages).
    std::uint64_t traced_resident_bytes = 0;
    std::uint64_t untraced_resident_bytes = 0;
};

struct ProcessInfo {
    int pid = 0;
    int nspid = 0;  // pid in the process's own pid namespace (a container's)
    std::string comm;
    std::string cmdline;
    bool exited = false;
    ProcessMemory memory;
    std::optional<CgroupMemory> cgroup;
    std::vector<AllocatorInfo> allocators;
    // Read by `memobserve snapshot` only. Empty in the live view, for a
    // process that exited, and in files written before mappings existed.
    std::vector<MappingInfo> mappings;
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
    // Stack not stored (map full or collision); frames then hold at most
    // the calling function.
    bool unknown_stack = false;
    // Faults of the process since its last sampled stack (see
    // Snapshot::fault_sample_bytes): no stack, only faulted bytes.
    bool fault_residue = false;
    FrameChain frames;
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

// The overhead guard: the measured cost of a probe hit, the share of the
// targets' CPU time the hits took, and whether that share passed the budget
// and the allocator probes were detached.
struct OverheadInfo {
    double max_percent = 0;      // --max-overhead; 0 when the guard is off
    double probe_cost_ns = 0;    // one probe hit, measured at start-up; 0 when not measured
    double last_percent = 0;     // share of the targets' CPU in the last interval
    bool tripped = false;        // the allocator probes were detached
    double tripped_after_s = 0;  // seconds of tracing before that
};

struct HostInfo {
    std::string kernel;
    std::uint64_t page_size = 4096;
};

struct Snapshot {
    std::string taken_at;  // RFC 3339, UTC
    double duration_s = 0;
    HostInfo host;
    TargetInfo target;
    std::vector<CgroupMemory> cgroups;  // memory cgroups of the targets, with stat and events
    std::vector<ProcessInfo> processes;
    std::vector<Site> sites;
    SiteCounters totals;
    Drops drops;
    std::uint64_t untracked_frees = 0;   // frees of blocks allocated before attaching
    std::uint64_t alloc_probe_hits = 0;  // allocator probe runs while tracing
    bool alloc_probes = true;            // false with --no-alloc-probes
    OverheadInfo overhead;
    // The fault layer takes a user stack once per this many bytes faulted
    // in a process, and charges it the bytes since the last one; 0 when
    // every fault took its stack.
    std::uint64_t fault_sample_bytes = 0;
    // Seconds since resident was measured, when the live view measures it
    // less often than it refreshes (not saved in snapshot files).
    double resident_age_s = 0;
};

nlohmann::json to_json(const Snapshot& snapshot);
Snapshot snapshot_from_json(const nlohmann::json& document);

// Current time as RFC 3339 in UTC, e.g. "2026-12-04T20:01:26Z".
std::string rfc3339_now();

}  // namespace memobserve
