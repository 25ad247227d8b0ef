// A trace of a set of processes: targets, probes, events and the snapshot they
// add up to. The order is fixed: construct (load and attach tracepoints), add
// targets, run ticks and polls, take snapshots, destroy (detach everything).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "collectors/cgroup_target.h"
#include "model/mappings.h"
#include "model/snapshot.h"
#include "session/bpf_session.h"
#include "session/launcher.h"
#include "symbolizer/symbolizer.h"

namespace memobserve {

// What to trace: processes, a command, a cgroup, or every process.
struct TargetSpec {
    std::vector<int> pids;
    std::vector<std::string> command;  // empty unless tracing a command
    std::optional<CgroupTarget> cgroup;
    bool all = false;
};

// Detail of a snapshot beyond the counters. Reading every mapping of every
// process (smaps) takes long in a large process, so the live view leaves it
// out.
enum class SnapshotDetail { counters, mappings };

class Tracer {
public:
    // Checks the targets, loads the BPF programs and attaches every probe.
    // A command is started only after its probes are in place.
    Tracer(const TargetSpec& targets, const TraceOptions& options);
    ~Tracer();

    // Handle ring-buffer events for up to `timeout`.
    void poll(std::chrono::milliseconds timeout);

    // Once per interval: probe allocators that appeared (exec, dlopen), read
    // process totals, and measure residency while the processes are alive.
    void tick();

    // Everything known now, symbolized. Residency of exited processes is the
    // last one measured. With SnapshotDetail::mappings, also each running
    // process's mappings.
    Snapshot snapshot(SnapshotDetail detail = SnapshotDetail::counters);

    // True once every traced process has exited. Never for a cgroup or the
    // whole host, where new processes may still start.
    bool all_exited() const;
    // "pid 12 (redis-server), pid 40 (python3)"
    std::string describe_targets() const;
    std::size_t probe_count() const { return bpf_->attached_probe_count(); }
    // Exit status of the traced command, once it has ended.
    std::optional<int> command_exit_status();
    double probe_hit_rate() const { return probe_hit_rate_; }
    const OverheadInfo& overhead() const { return overhead_; }
    std::chrono::steady_clock::time_point started() const { return started_; }

private:
    struct ProcessState {
        ProcessInfo info;
        std::set<std::pair<std::uint64_t, std::uint64_t>> inspected_files;
        std::unordered_map<SiteId, std::uint64_t, SiteIdHash> resident_by_site;
        std::uint64_t resident_total = 0;
        // Live blocks and mappings seen being created, at the last residency
        // measurement.
        std::vector<AddressRange> traced_ranges;
        bool symbolizer_loaded = false;
        bool needs_step_probe = false;
    };

    void add_process(int pid, bool add_to_target_map = true);
    void add_cgroup_members();
    std::string attach_allocator(const AllocatorFile& file, int pid);
    std::optional<AllocatorFile> allocator_file(const MappedFile& mapped);
    void inspect_allocators(ProcessState& process);
    // Returns false when no thread of `pid` waits in a system call.
    bool attach_step_probes(int pid);
    void read_process_totals(ProcessState& process);
    TargetInfo target_info() const;
    std::vector<CgroupMemory> target_cgroups() const;
    // Reads the live allocations into live_ and the residency of every
    // site's blocks and mappings, and sets when the next pass is due.
    void measure_residency();
    void measure_residency_now();
    std::vector<MappingInfo> read_mappings(ProcessState& process);
    void handle_event(const mo_event& event);
    void settle_symbols();
    void check_overhead(std::uint64_t probe_hits);
    // The frames of `site`: from the cache, else symbolized and kept in
    // frames_added_ until merge_added_frames().
    FrameChain frames_of(const SiteId& site);
    FrameChain symbolize_site(const SiteId& site);
    void merge_added_frames();

    TargetSpec targets_;
    TraceOptions options_;
    // Files memobserve itself maps (device, inode): probed per process in
    // cgroup mode, so that memobserve and the host's other processes do not
    // trap on every call of their shared libc.
    std::set<std::pair<std::uint64_t, std::uint64_t>> own_files_;
    // Allocator functions by file (device, inode), read once per file.
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::optional<AllocatorFile>> allocator_files_;
    std::unique_ptr<BpfSession> bpf_;
    std::unique_ptr<LaunchedCommand> command_;
    MappingTracker mappings_;
    Symbolizer symbolizer_;
    std::map<int, ProcessState> processes_;
    // Frames by site, sorted by site: a snapshot looks its sites up in that
    // order, in one pass. Sites symbolized since the last merge wait in
    // frames_added_.
    std::vector<std::pair<SiteId, FrameChain>> frames_cache_;
    std::vector<std::pair<SiteId, FrameChain>> frames_added_;
    std::set<int> stale_symbols_;  // processes that mapped code since the last poll
    std::set<int> exited_;         // processes that exited since the last poll
    std::set<int> unreadable_;     // processes whose /proc files memobserve may not read
    std::uint64_t page_size_;
    std::chrono::steady_clock::time_point started_;
    std::chrono::steady_clock::time_point last_tick_;
    std::chrono::steady_clock::time_point last_residency_;
    std::chrono::steady_clock::time_point next_residency_;
    std::vector<std::pair<mo_live_key, mo_live_value>> live_;  // as of last_residency_
    bool live_read_ = false;
    std::uint64_t live_changes_read_ = 0;  // MO_STAT_LIVE_CHANGES when live_ was read
    std::uint64_t last_probe_hits_ = 0;
    double probe_hit_rate_ = 0;
    OverheadInfo overhead_;
    std::map<int, double> cpu_seconds_;  // per process, at the last tick
    // Probe hits and target CPU time since the guard last judged the share.
    std::uint64_t guard_hits_ = 0;
    double guard_cpu_seconds_ = 0;
};

}  // namespace memobserve
