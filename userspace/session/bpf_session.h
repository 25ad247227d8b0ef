// The BPF side of a trace: loads memobserve's programs, keeps the target set,
// attaches the probes, and reads the maps. Detaches everything when destroyed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "memobserve/abi.h"
#include "model/snapshot.h"
#include "session/allocators.h"

struct memobserve_bpf;
struct bpf_link;
struct bpf_map;
struct bpf_program;
struct ring_buffer;

namespace memobserve {

struct TraceOptions {
    bool alloc_probes = true;
    bool follow_children = true;
    mo_filter_mode filter = MO_FILTER_PIDS;
    std::uint64_t cgroup_id = 0;     // MO_FILTER_CGROUP: the v2 cgroup and its level
    std::uint32_t cgroup_level = 0;
    std::uint32_t max_sites = 65536;
    std::uint32_t max_stacks = 16384;
    std::uint32_t max_live_allocations = 524288;
    std::uint32_t max_targets = 8192;
    // Bytes faulted per process between two user stacks of the fault layer;
    // 0 takes a stack on every fault.
    std::uint64_t fault_sample_bytes = 256 * 1024;
    // Detach the allocator probes when they take more than this share of
    // the targets' CPU time, in percent; 0 turns the guard off.
    double max_overhead_percent = 5;
};

class BpfSession {
public:
    static constexpr int kAllProcesses = -1;

    // Opens, sizes, loads and attaches the tracepoint programs. Throws Error
    // with what is missing (privileges, BTF, a tracepoint).
    explicit BpfSession(const TraceOptions& options);
    ~BpfSession();
    BpfSession(const BpfSession&) = delete;
    BpfSession& operator=(const BpfSession&) = delete;

    void add_target(int pid);
    // Take `pid` out of the target map and delete its site counters and live
    // blocks, as if it had never been traced.
    void forget_target(int pid);

    // Attach the allocator probes of `file` for process `pid`, once per file
    // and process. The kernel then places breakpoints only in that process,
    // so other users of the same libc, memobserve included, run at full
    // speed. With `pid` kAllProcesses the probes trap in every process that
    // maps the file, and the BPF filter keeps the targets. Returns an empty
    // string on success, else why a probe failed (and detaches the file's
    // probes attached so far).
    std::string attach_allocator(const AllocatorFile& file, int pid);
    bool has_allocator_probes(const AllocatorFile& file, int pid) const;
    // Detach the probes attached for process `pid` alone, once it has exited.
    void detach_process(int pid);
    // Detach every allocator probe, entry probes first (the overhead guard);
    // the tracepoint layers stay.
    void detach_allocator_probes();

    // Attach the no-op probe at `file_offset` of the file at `open_path` for
    // process `pid`. See attach_step_probes() in tracer.cpp for why.
    void attach_step_probe(const std::string& open_path, std::uint64_t file_offset, int pid);
    std::size_t attached_probe_count() const;

    // Deliver ring-buffer events to `handler` for up to `timeout_ms`.
    void poll_events(int timeout_ms, const std::function<void(const mo_event&)>& handler);

    // Every site's key and counters, in the order of their slots.
    std::vector<std::pair<mo_site_key, mo_site_counters>> read_sites() const;
    // The key of the site in `slot` (a live block's site_slot); nullopt for
    // a slot that holds no site.
    std::optional<mo_site_key> site_in_slot(std::uint32_t slot) const;
    std::vector<std::pair<mo_live_key, mo_live_value>> read_live_allocations() const;
    // Return addresses of stack `id`, innermost first; empty if unknown.
    std::vector<std::uint64_t> read_stack(std::int32_t id) const;
    Drops read_drops() const;
    std::uint64_t read_stat(mo_stat stat) const;

private:
    struct LinkDeleter {
        void operator()(bpf_link* link) const;
    };
    using Link = std::unique_ptr<bpf_link, LinkDeleter>;

    // A uprobe_multi link (Linux 6.6): probes on several offsets of one file,
    // which the kernel removes together when the descriptor is closed.
    class UprobeLink {
    public:
        UprobeLink(int fd, std::size_t probes, bool is_return)
            : fd_(fd), probes_(probes), is_return_(is_return) {}
        ~UprobeLink();
        UprobeLink(UprobeLink&& other) noexcept;
        UprobeLink& operator=(UprobeLink&& other) noexcept;
        std::size_t probes() const { return probes_; }
        bool is_return() const { return is_return_; }

    private:
        int fd_ = -1;
        std::size_t probes_ = 0;
        bool is_return_ = false;
    };

    // Attach `program` at `offsets` of the file at `path` for process `pid`
    // (kAllProcesses: every process), one cookie per offset. Returns the
    // link, or -errno.
    int attach_uprobes(bpf_program* program, const std::string& path,
                       const std::vector<std::uint64_t>& offsets,
                       const std::vector<std::uint64_t>& cookies, int pid, bool is_return);

    // A BPF array mapped into memobserve's memory, read-only.
    class MappedArray {
    public:
        MappedArray() = default;
        explicit MappedArray(bpf_map* map);
        ~MappedArray();
        MappedArray(const MappedArray&) = delete;
        MappedArray& operator=(MappedArray&& other) noexcept;
        template <typename Value>
        const Value* values() const { return static_cast<const Value*>(address_); }

    private:
        void* address_ = nullptr;
        std::size_t length_ = 0;
    };

    std::uint32_t sites_used() const;
    // The key in `slot`, below sites_used(); nullopt while the slot is empty.
    std::optional<mo_site_key> stored_site(std::uint32_t slot) const;
    void attach_tracepoints();
    // Detach the return probes, or every other uprobe.
    void detach_uprobes(bool return_probes);

    memobserve_bpf* skeleton_ = nullptr;
    MappedArray site_keys_;
    MappedArray site_counters_;
    ring_buffer* ring_ = nullptr;
    std::vector<Link> tracepoint_links_;
    std::vector<UprobeLink> uprobe_links_;                  // for every process
    std::map<int, std::vector<UprobeLink>> process_links_;  // for one process each
    std::set<std::tuple<std::uint64_t, std::uint64_t, int>> probed_files_;  // device, inode, pid
    std::function<void(const mo_event&)> handler_;
};

}  // namespace memobserve
