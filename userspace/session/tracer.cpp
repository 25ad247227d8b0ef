#include "session/tracer.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "collectors/cgroup.h"
#include "collectors/pagemap.h"
#include "collectors/process_mappings.h"
#include "collectors/procfs.h"
#include "session/overhead.h"
#include "util/error.h"
#include "util/log.h"

namespace memobserve {

namespace {

// Sites ahead of the one being copied whose frame chains are prefetched.
constexpr std::ptrdiff_t kPrefetchDistance = 16;

// The share of one core that measuring residency may take: a pass that
// costs more waits longer before the next one.
constexpr double kResidencyCpuShare = 0.005;

double thread_cpu_seconds() {
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

std::vector<int> list_tasks(int pid) {
    std::vector<int> tasks;
    std::error_code error;
    for (const auto& entry :
         std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), error))
        tasks.push_back(std::atoi(entry.path().filename().c_str()));
    return tasks;
}

SiteCounters counters_from(const mo_site_counters& raw) {
    SiteCounters counters;
    counters.allocated_bytes = raw.allocated_bytes;
    counters.allocations = raw.allocations;
    counters.freed_bytes = raw.freed_bytes;
    counters.frees = raw.frees;
    counters.failed_allocations = raw.failed_allocations;
    counters.faulted_bytes = raw.faulted_bytes;
    // Blocks allocated before tracing began are neither allocated nor freed
    // here, so the difference is what is live of what was traced.
    counters.live_bytes = raw.allocated_bytes - std::min(raw.freed_bytes, raw.allocated_bytes);
    counters.live_allocations = raw.allocations - std::min(raw.frees, raw.allocations);
    return counters;
}

std::string kernel_release() {
    struct utsname names;
    return uname(&names) == 0 ? names.release : "";
}

}  // namespace

Tracer::Tracer(const TargetSpec& targets, const TraceOptions& options)
    : targets_(targets), options_(options),
      mappings_(static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE))),
      page_size_(static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE))) {
    for (int pid : targets.pids) {
        if (pid <= 0 || !process_exists(pid))
            throw Error(fmt::format("process {} not found", pid),
                        "check the PID with 'ps -p PID'");
    }

    std::vector<int> initial = targets.pids;
    if (targets.cgroup) {
        initial = cgroup_processes(*targets.cgroup);
        if (targets.cgroup->hierarchy == "v2") {
            options_.filter = MO_FILTER_CGROUP;
            options_.cgroup_id = targets.cgroup->id;
            options_.cgroup_level = targets.cgroup->level;
        }
        if (initial.empty())
            log::warning("cgroup {} has no processes yet: waiting for processes to start in it",
                         targets.cgroup->path);
    } else if (targets.all) {
        options_.filter = MO_FILTER_ALL;
        initial = list_processes();
        std::erase(initial, static_cast<int>(getpid()));
    }
    if (auto maps = read_maps(static_cast<int>(getpid()))) {
        for (const auto& mapped : executable_files(static_cast<int>(getpid()), *maps))
            own_files_.insert({mapped.device, mapped.inode});
    }

    // The child exists before the probes, but runs nothing of the command
    // until release().
    if (!targets.command.empty())
        command_ = std::make_unique<LaunchedCommand>(targets.command);

    bpf_ = std::make_unique<BpfSession>(options_);
    if (options_.alloc_probes && options_.max_overhead_percent > 0) {
        overhead_.max_percent = options_.max_overhead_percent;
        overhead_.probe_cost_ns = measure_probe_cost_ns(*bpf_);
        log::info("one allocator probe hit costs about {:.0f} ns here", overhead_.probe_cost_ns);
    }
    for (int pid : initial) {
        add_process(pid, options_.filter == MO_FILTER_PIDS);
        if (options_.alloc_probes)
            attach_step_probes(pid);
    }

    if (command_) {
        add_process(command_->pid());
        std::string program = command_->program();
        processes_[command_->pid()].info.comm = program.substr(program.rfind('/') + 1);
        // The child is still memobserve's fork: probe the allocators of the
        // program it is about to run and of memobserve itself (same libc).
        if (options_.alloc_probes) {
            if (auto file = inspect_allocator_file(command_->program())) {
                struct stat status;
                if (stat(command_->program().c_str(), &status) == 0 && !file->functions.empty()) {
                    file->path = command_->program();
                    file->device = status.st_dev;
                    file->inode = status.st_ino;
                    std::string failure = bpf_->attach_allocator(*file, command_->pid());
                    if (!failure.empty())
                        throw Error(failure);
                }
            }
        }
        command_->release();
    }

    if (options_.alloc_probes && bpf_->attached_probe_count() == 0 && !processes_.empty())
        log::warning("no allocator found to probe in {}: allocated and live stay at zero; "
                     "mapped, faulted and resident still work", describe_targets());
    started_ = last_tick_ = std::chrono::steady_clock::now();
    last_probe_hits_ = bpf_->read_stat(MO_STAT_ALLOC_PROBE_HITS);
}

Tracer::~Tracer() = default;

void Tracer::add_process(int pid, bool add_to_target_map) {
    if (processes_.count(pid) || unreadable_.count(pid))
        return;
    if (add_to_target_map)
        bpf_->add_target(pid);
    ProcessState& process = processes_[pid];
    process.info.pid = pid;
    cpu_seconds_[pid] = process_cpu_seconds(pid);
    try {
        process.info.nspid = read_nspid(pid).value_or(0);
        process.info.comm = read_comm(pid).value_or("");
        process.info.cmdline = read_cmdline(pid).value_or("");
        inspect_allocators(process);
        read_process_totals(process);
    } catch (const Error& error) {
        // A process named with -p must be readable. In a cgroup or on the
        // whole host, one that is not (such as another user namespace's
        // init) is left out and counted.
        if (options_.filter == MO_FILTER_PIDS)
            throw;
        log::info("process {} left out: {}", pid, error.what());
        processes_.erase(pid);
        unreadable_.insert(pid);
    }
}

// Linux (seen on 6.18) loses the return probe of a process's first probed
// call until some probe in that process has been single-stepped, and the
// allocators start with pushes, which the kernel emulates instead. A thread of
// a running process that waits in a system call resumes at the instruction
// after it, read from /proc/PID/task/TID/syscall: a no-op probe there is
// single-stepped before the thread can call an allocator again.
bool Tracer::attach_step_probes(int pid) {
    if (!processes_.count(pid))
        return false;
    auto maps = read_maps(pid);
    auto tasks = list_tasks(pid);
    if (!maps)
        return false;
    std::set<std::uint64_t> addresses;
    for (int task : tasks) {
        auto text = read_text_file(fmt::format("/proc/{}/task/{}/syscall", pid, task));
        if (!text || text->rfind("running", 0) == 0)
            continue;
        auto last_space = text->find_last_of(' ');
        if (last_space == std::string::npos)
            continue;
        addresses.insert(std::strtoull(text->c_str() + last_space + 1, nullptr, 16));
    }
    auto files = executable_files(pid, *maps);
    for (std::uint64_t address : addresses) {
        for (const auto& entry : *maps) {
            if (address < entry.start || address >= entry.end || !entry.executable || !entry.is_file())
                continue;
            auto file = std::find_if(files.begin(), files.end(),
                                     [&](const MappedFile& mapped) { return mapped.inode == entry.inode; });
            if (file != files.end())
                bpf_->attach_step_probe(file->open_path, address - entry.start + entry.offset, pid);
            break;
        }
    }
    return !addresses.empty();
}

// Processes that joined the cgroup without a fork or exec that the BPF side
// saw: moved in by a container runtime or by hand.
void Tracer::add_cgroup_members() {
    if (!targets_.cgroup)
        return;
    for (int pid : cgroup_processes(*targets_.cgroup)) {
        if (processes_.count(pid) || pid == static_cast<int>(getpid()))
            continue;
        add_process(pid, options_.filter == MO_FILTER_PIDS);
        if (options_.alloc_probes)
            attach_step_probes(pid);
    }
}

std::optional<AllocatorFile> Tracer::allocator_file(const MappedFile& mapped) {
    auto key = std::make_pair(mapped.device, mapped.inode);
    auto cached = allocator_files_.find(key);
    if (cached == allocator_files_.end())
        cached = allocator_files_.emplace(key, inspect_allocator_file(mapped.open_path)).first;
    if (!cached->second)
        return std::nullopt;
    AllocatorFile file = *cached->second;
    file.path = mapped.path;
    file.open_path = mapped.open_path;
    file.device = mapped.device;
    file.inode = mapped.inode;
    return file;
}

// For processes named with -p or started as a command, probes trap only in
// those processes. For a cgroup or the whole host, one probe per file serves
// every process that maps it, including processes that start later. In
// cgroup mode, a file that memobserve maps too (the host's libc, when a
// cgroup runs host programs) keeps per-process probes, so that the rest of
// the host does not trap on every malloc.
std::string Tracer::attach_allocator(const AllocatorFile& file, int pid) {
    bool per_process = options_.filter == MO_FILTER_PIDS ||
                       (options_.filter == MO_FILTER_CGROUP &&
                        own_files_.count({file.device, file.inode}));
    return bpf_->attach_allocator(file, per_process ? pid : BpfSession::kAllProcesses);
}

void Tracer::inspect_allocators(ProcessState& process) {
    auto maps = read_maps(process.info.pid);
    if (!maps)
        return;

    bool changed = false;
    for (const auto& mapped : executable_files(process.info.pid, *maps)) {
        if (!process.inspected_files.insert({mapped.device, mapped.inode}).second)
            continue;
        changed = true;
        auto file = allocator_file(mapped);
        if (!file || (file->functions.empty() && file->unprobed_allocator.empty()))
            continue;

        AllocatorInfo info;
        info.module = mapped.path;
        if (!file->unprobed_allocator.empty()) {
            info.kind = file->unprobed_allocator;
            info.note = fmt::format("{} in {} has no probes: its allocations are not in "
                                    "allocated and live; mapped, faulted and resident still are",
                                    file->unprobed_allocator, mapped.path);
            process.info.allocators.push_back(info);
            log::warning("process {}: {}", process.info.pid, info.note);
        }
        if (file->functions.empty())
            continue;

        bool has_malloc = std::any_of(file->functions.begin(), file->functions.end(),
                                      [](const auto& function) { return function.name == "malloc"; });
        info.kind = has_malloc ? "malloc" : "operator new";
        info.note.clear();
        if (overhead_.tripped) {
            info.note = "allocator probes detached: over --max-overhead";
        } else if (!options_.alloc_probes) {
            info.note = "allocator probes off (--no-alloc-probes)";
        } else {
            std::string failure = attach_allocator(*file, process.info.pid);
            info.probed = failure.empty();
            // Probed while it runs: its next allocation may be its first
            // probed call, whose return needs a single-stepped probe first.
            process.needs_step_probe = info.probed && command_ == nullptr;
            info.note = failure;
            if (!failure.empty())
                log::warning("process {}: {}", process.info.pid, failure);
        }
        process.info.allocators.push_back(info);
    }

    if (changed && process.symbolizer_loaded)
        symbolizer_.refresh(process.info.pid);
}

void Tracer::read_process_totals(ProcessState& process) {
    int pid = process.info.pid;
    if (process.info.exited)
        return;
    if (auto memory = read_process_memory(pid))
        process.info.memory = *memory;
    if (auto cgroup = read_cgroup_memory(pid))
        process.info.cgroup = *cgroup;
    if (process.info.cmdline.empty())
        process.info.cmdline = read_cmdline(pid).value_or("");
    if (auto comm = read_comm(pid))
        process.info.comm = *comm;
    if (!process.symbolizer_loaded) {
        symbolizer_.refresh(pid);
        process.symbolizer_loaded = true;
    }
}

void Tracer::handle_event(const mo_event& event) {
    mappings_.apply(event);
    switch (event.type) {
    case MO_EVENT_MMAP:
        if ((event.prot & PROT_EXEC) && event.fd >= 0 && processes_.count(static_cast<int>(event.pid)))
            stale_symbols_.insert(static_cast<int>(event.pid));
        break;
    case MO_EVENT_CODE_MAPPING:
        // The kernel's device number: major in the upper 12 bits, minor below.
        symbolizer_.add_mapping(static_cast<int>(event.pid), event.address, event.address + event.length,
                                event.old_address, makedev(event.device >> 20, event.device & 0xfffff),
                                event.inode);
        break;
    case MO_EVENT_FORK:
        // The fork program has put the child in the target map already.
        add_process(static_cast<int>(event.pid), false);
        break;
    case MO_EVENT_EXEC: {
        auto found = processes_.find(static_cast<int>(event.pid));
        // In cgroup and host mode a process can join without a fork seen.
        std::string comm(event.comm, strnlen(event.comm, sizeof(event.comm)));
        if (found == processes_.end() && options_.filter != MO_FILTER_PIDS) {
            add_process(static_cast<int>(event.pid), false);
            found = processes_.find(static_cast<int>(event.pid));
            if (found->second.info.comm.empty())
                found->second.info.comm = comm;
        } else if (found != processes_.end()) {
            // Read now: a short-lived process may be gone by the next tick.
            found->second.info.cmdline = read_cmdline(found->first).value_or("");
            found->second.info.comm = read_comm(found->first).value_or(comm);
            found->second.inspected_files.clear();
            found->second.info.allocators.clear();
            found->second.symbolizer_loaded = false;
            symbolizer_.clear(found->first);
        }
        break;
    }
    case MO_EVENT_EXIT: {
        auto found = processes_.find(static_cast<int>(event.pid));
        if (found != processes_.end()) {
            found->second.info.exited = true;
            exited_.insert(found->first);
        }
        break;
    }
    default:
        break;
    }
}

void Tracer::poll(std::chrono::milliseconds timeout) {
    bpf_->poll_events(static_cast<int>(timeout.count()),
                      [this](const mo_event& event) { handle_event(event); });
    settle_symbols();
}

// Code mapped since the symbolizer last read a process's mappings (the
// loader mapping libraries after exec, dlopen) is read while the process
// lives: a short-lived process may be gone by the next tick. A process that
// has exited gets its sites symbolized now, and its mappings are dropped, so
// that memobserve's memory and open files do not grow with every process a
// container starts.
void Tracer::settle_symbols() {
    for (int pid : stale_symbols_) {
        auto found = processes_.find(pid);
        if (found != processes_.end() && !found->second.info.exited && process_exists(pid)) {
            symbolizer_.refresh(pid);
            found->second.symbolizer_loaded = true;
            inspect_allocators(found->second);
        }
    }
    stale_symbols_.clear();
    // A thread that runs has no known resume address: try again after the
    // next poll, until one waits in a system call.
    for (auto& [pid, process] : processes_) {
        if (process.needs_step_probe && !process.info.exited)
            process.needs_step_probe = !attach_step_probes(pid);
    }
    if (exited_.empty())
        return;
    for (const auto& [key, counters] : bpf_->read_sites()) {
        if (exited_.count(static_cast<int>(key.pid)))
            frames_of(SiteId::from(key));
    }
    merge_added_frames();
    for (int pid : exited_) {
        symbolizer_.forget(pid);
        bpf_->detach_process(pid);
    }
    exited_.clear();
}

void Tracer::tick() {
    // Drain what is queued first, so that exits and mappings are current.
    poll(std::chrono::milliseconds(0));
    add_cgroup_members();

    for (auto& [pid, process] : processes_) {
        if (process.info.exited)
            continue;
        if (!process_exists(pid)) {
            process.info.exited = true;
            exited_.insert(pid);
            continue;
        }
        inspect_allocators(process);
        read_process_totals(process);
    }
    if (std::chrono::steady_clock::now() >= next_residency_)
        measure_residency();

    auto now = std::chrono::steady_clock::now();
    double seconds = std::chrono::duration<double>(now - last_tick_).count();
    std::uint64_t hits = bpf_->read_stat(MO_STAT_ALLOC_PROBE_HITS);
    if (seconds > 0)
        probe_hit_rate_ = static_cast<double>(hits - last_probe_hits_) / seconds;
    check_overhead(hits - last_probe_hits_);
    last_probe_hits_ = hits;
    last_tick_ = now;
    if (command_)
        command_->poll_exit();
}

// The traps of the probes run as the targets' system time, so their share of
// the targets' CPU time over the interval is hits x cost / CPU time. Past the
// budget, the allocator probes go and the page-level layers stay.
void Tracer::check_overhead(std::uint64_t probe_hits) {
    double cpu_seconds = 0;
    for (const auto& [pid, process] : processes_) {
        if (process.info.exited)
            continue;
        double now = process_cpu_seconds(pid);
        auto [previous, added] = cpu_seconds_.emplace(pid, now);
        if (!added) {
            cpu_seconds += std::max(0.0, now - previous->second);
            previous->second = now;
        }
    }
    if (overhead_.probe_cost_ns <= 0 || overhead_.tripped)
        return;
    // Below a tenth of a CPU second the share is too noisy to act on: the
    // intervals add up until the targets have used that much. The live view
    // shows the share of the last full window, the one the guard judged.
    guard_hits_ += probe_hits;
    guard_cpu_seconds_ += cpu_seconds;
    if (guard_cpu_seconds_ < 0.1)
        return;
    overhead_.last_percent =
        probe_share_percent(guard_hits_, overhead_.probe_cost_ns, guard_cpu_seconds_);
    log::debug("probe hits {} in {:.2f} CPU seconds: {:.1f}%", guard_hits_, guard_cpu_seconds_,
               overhead_.last_percent);
    guard_hits_ = 0;
    guard_cpu_seconds_ = 0;
    if (overhead_.max_percent <= 0 || overhead_.last_percent <= overhead_.max_percent)
        return;
    // When the budget was passed, before the time detaching takes.
    overhead_.tripped_after_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    bpf_->detach_allocator_probes();
    options_.alloc_probes = false;
    overhead_.tripped = true;
    for (auto& [pid, process] : processes_) {
        for (auto& allocator : process.info.allocators) {
            if (!allocator.probed)
                continue;
            allocator.probed = false;
            allocator.note = fmt::format("probes detached by the overhead guard after {:.1f}s",
                                         overhead_.tripped_after_s);
        }
    }
    log::warning("allocator probes detached: they took about {:.1f}% of the traced processes' CPU "
                 "time, over --max-overhead {}%; allocated and live stop here, mapped, faulted and "
                 "resident go on",
                 overhead_.last_percent, overhead_.max_percent);
}

void Tracer::measure_residency() {
    double cpu_before = thread_cpu_seconds();
    last_residency_ = std::chrono::steady_clock::now();
    measure_residency_now();
    // A process with many live blocks makes each pass cost more: the next
    // pass waits so that the passes stay within their share of a core.
    double cost = thread_cpu_seconds() - cpu_before;
    next_residency_ = std::chrono::steady_clock::now() +
                      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                          std::chrono::duration<double>(cost / kResidencyCpuShare));
}

void Tracer::measure_residency_now() {
    // Reading the live map walks all its buckets: skip it when no block came
    // or went since the last read.
    std::uint64_t live_changes = bpf_->read_stat(MO_STAT_LIVE_CHANGES);
    if (!live_read_ || live_changes != live_changes_read_) {
        live_ = bpf_->read_live_allocations();
        live_changes_read_ = live_changes;
        live_read_ = true;
    }
    std::map<int, std::unordered_map<SiteId, std::vector<AddressRange>, SiteIdHash>> ranges;
    for (const auto& [key, value] : live_) {
        if (auto site = bpf_->site_in_slot(value.site_slot))
            ranges[static_cast<int>(key.pid)][SiteId::from(*site)].push_back(
                {key.address, key.address + value.size});
    }

    for (auto& [pid, process] : processes_) {
        if (process.info.exited)
            continue;
        auto& sites = ranges[pid];
        for (auto& [site, mapped] : mappings_.ranges_by_site(static_cast<std::uint32_t>(pid)))
            sites[site].insert(sites[site].end(), mapped.begin(), mapped.end());

        try {
            // The pass over every range first reads pagemap in few large
            // reads; the sites' ranges then find their pages read.
            Pagemap pagemap(pid, page_size_);
            std::vector<AddressRange> all;
            for (const auto& [site, site_ranges] : sites)
                all.insert(all.end(), site_ranges.begin(), site_ranges.end());
            process.traced_ranges = all;
            process.resident_total = pagemap.resident_bytes(std::move(all));
            std::unordered_map<SiteId, std::uint64_t, SiteIdHash> resident;
            for (auto& [site, site_ranges] : sites)
                resident[site] = pagemap.resident_bytes(std::move(site_ranges));
            process.resident_by_site = std::move(resident);
        } catch (const Error& error) {
            // The process ended between the check and the read: keep the
            // last numbers.
            if (!process_exists(pid))
                process.info.exited = true;
            else
                log::warning("process {}: {}", pid, error.what());
        }
    }
}

FrameChain Tracer::frames_of(const SiteId& site) {
    auto cached = std::lower_bound(frames_cache_.begin(), frames_cache_.end(), site,
                                   [](const auto& entry, const SiteId& id) { return entry.first < id; });
    if (cached != frames_cache_.end() && cached->first == site)
        return cached->second;
    return symbolize_site(site);
}

FrameChain Tracer::symbolize_site(const SiteId& site) {
    std::vector<std::uint64_t> addresses = bpf_->read_stack(site.stack_id);
    FrameChain chain;
    if (site.stack_id == MO_UNKNOWN_STACK_ID && site.caller != 0) {
        // No stored stack, but the caller is known: one frame, looked up as
        // the return address it is (the symbolizer does so after the first).
        std::vector<Frame> frames = symbolizer_.symbolize(static_cast<int>(site.pid), {0, site.caller});
        frames.erase(frames.begin());
        if (frames.front().module == "[unknown]")
            frames.clear();
        chain = std::move(frames);
    } else {
        // The syscall programs add the return address that the frame-pointer
        // walk skipped; the walk may also have found it, then it is not
        // added twice.
        bool caller_added = site.caller != 0 && !addresses.empty() &&
                            (addresses.size() < 2 || addresses[1] != site.caller);
        if (caller_added)
            addresses.insert(addresses.begin() + 1, site.caller);
        std::vector<Frame> frames = symbolizer_.symbolize(static_cast<int>(site.pid), addresses);
        // The word read from the stack was data, not a return address.
        if (caller_added && frames.size() > 1 && frames[1].module == "[unknown]")
            frames.erase(frames.begin() + 1);
        chain = std::move(frames);
    }
    frames_added_.emplace_back(site, chain);
    return chain;
}

void Tracer::merge_added_frames() {
    if (frames_added_.empty())
        return;
    auto by_site = [](const auto& left, const auto& right) { return left.first < right.first; };
    std::sort(frames_added_.begin(), frames_added_.end(), by_site);
    std::vector<std::pair<SiteId, FrameChain>> merged;
    merged.reserve(frames_cache_.size() + frames_added_.size());
    std::merge(frames_cache_.begin(), frames_cache_.end(), frames_added_.begin(), frames_added_.end(),
               std::back_inserter(merged), by_site);
    merged.erase(std::unique(merged.begin(), merged.end(),
                             [](const auto& left, const auto& right) { return left.first == right.first; }),
                 merged.end());
    frames_cache_ = std::move(merged);
    frames_added_.clear();
}

std::vector<MappingInfo> Tracer::read_mappings(ProcessState& process) {
    int pid = process.info.pid;
    try {
        auto mappings = read_process_mappings(pid, process.traced_ranges, page_size_);
        if (mappings)
            return std::move(*mappings);
    } catch (const Error& error) {
        if (process_exists(pid))
            log::warning("process {}: mappings left out of the snapshot: {}", pid, error.what());
    }
    return {};
}

Snapshot Tracer::snapshot(SnapshotDetail detail) {
    poll(std::chrono::milliseconds(0));
    // The live view takes a snapshot right after each tick, which measured
    // residency when its pass was due. A snapshot file has it fresh.
    if (detail == SnapshotDetail::mappings &&
        std::chrono::steady_clock::now() - last_residency_ > std::chrono::milliseconds(200))
        measure_residency();

    Snapshot snapshot;
    snapshot.taken_at = rfc3339_now();
    snapshot.duration_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    snapshot.resident_age_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - last_residency_).count();
    snapshot.host.kernel = kernel_release();
    snapshot.host.page_size = page_size_;
    // Probes detached by the guard were on: the header says what happened.
    snapshot.alloc_probes = options_.alloc_probes || overhead_.tripped;
    snapshot.fault_sample_bytes = options_.fault_sample_bytes;
    snapshot.overhead = overhead_;
    snapshot.target = target_info();
    snapshot.cgroups = target_cgroups();
    snapshot.drops = bpf_->read_drops();
    snapshot.untracked_frees = bpf_->read_stat(MO_STAT_UNTRACKED_FREES);
    snapshot.alloc_probe_hits = bpf_->read_stat(MO_STAT_ALLOC_PROBE_HITS);

    // One entry per part of a site's numbers. Sorted by site, a site's
    // entries come together, and the sites come in the order of their keys,
    // so that snapshots of the same state list their stacks alike.
    std::vector<std::pair<SiteId, SiteCounters>> parts;
    for (const auto& [key, raw] : bpf_->read_sites())
        parts.emplace_back(SiteId::from(key), counters_from(raw));
    for (const auto& [site, mapped] : mappings_.mapped_by_site()) {
        SiteCounters counters;
        counters.mapped_bytes = mapped.bytes;
        counters.mapped_file_bytes = mapped.file_bytes;
        parts.emplace_back(site, counters);
    }
    for (auto& [pid, process] : processes_) {
        snapshot.processes.push_back(process.info);
        if (detail == SnapshotDetail::mappings && !process.info.exited)
            snapshot.processes.back().mappings = read_mappings(process);
        for (const auto& [site, resident] : process.resident_by_site) {
            SiteCounters counters;
            counters.resident_bytes = resident;
            parts.emplace_back(site, counters);
        }
        snapshot.totals.resident_bytes += process.resident_total;
    }
    std::sort(parts.begin(), parts.end(),
              [](const auto& left, const auto& right) { return left.first < right.first; });

    // The frame cache is in the same order: one pass finds every site's frames.
    auto cached = frames_cache_.begin();
    for (std::size_t i = 0; i < parts.size();) {
        const SiteId& id = parts[i].first;
        SiteCounters counters = parts[i].second;
        for (++i; i < parts.size() && parts[i].first == id; ++i)
            counters += parts[i].second;
        while (cached != frames_cache_.end() && cached->first < id)
            ++cached;
        if (frames_cache_.end() - cached > kPrefetchDistance)
            cached[kPrefetchDistance].second.prefetch();

        Site site;
        site.pid = static_cast<int>(id.pid);
        site.unknown_stack = id.stack_id == MO_UNKNOWN_STACK_ID;
        site.fault_residue = id.stack_id == MO_FAULT_RESIDUE_STACK_ID;
        site.frames = cached != frames_cache_.end() && cached->first == id ? cached->second
                                                                            : symbolize_site(id);
        site.counters = counters;
        std::uint64_t resident = snapshot.totals.resident_bytes;
        snapshot.totals += counters;
        snapshot.totals.resident_bytes = resident;
        snapshot.sites.push_back(std::move(site));
    }
    merge_added_frames();
    return snapshot;
}

TargetInfo Tracer::target_info() const {
    TargetInfo target;
    if (targets_.cgroup) {
        target.kind = "cgroup";
        target.path = targets_.cgroup->path;
        target.hierarchy = targets_.cgroup->hierarchy;
        target.container_id = targets_.cgroup->container_id;
        if (targets_.cgroup->hierarchy == "v2")
            target.cgroup_id = targets_.cgroup->id;
    } else if (targets_.all) {
        target.kind = "all";
    } else if (command_) {
        target.kind = "command";
    }
    return target;
}

// The memory cgroups the traced processes are charged to, with their stat
// and events: the target cgroup first when it has the memory controller.
std::vector<CgroupMemory> Tracer::target_cgroups() const {
    std::vector<CgroupMemory> cgroups;
    std::set<std::string> seen;
    auto add = [&](const std::optional<CgroupMemory>& cgroup) {
        if (cgroup && seen.insert(cgroup->path).second)
            cgroups.push_back(*cgroup);
    };
    CgroupMounts mounts = find_cgroup_mounts();
    if (targets_.cgroup && (targets_.cgroup->hierarchy == "v2") == mounts.v2_has_memory)
        add(read_memory_cgroup_at(targets_.cgroup->path));
    for (const auto& [pid, process] : processes_) {
        if (process.info.cgroup && !seen.count(process.info.cgroup->path))
            add(read_memory_cgroup_at(process.info.cgroup->path));
    }
    return cgroups;
}

std::string Tracer::describe_targets() const {
    if (targets_.cgroup || targets_.all) {
        std::size_t running = std::count_if(processes_.begin(), processes_.end(),
                                            [](const auto& entry) { return !entry.second.info.exited; });
        std::string what = targets_.all ? std::string("every process on the host")
                                        : fmt::format("cgroup {} ({})", targets_.cgroup->path,
                                                      targets_.cgroup->hierarchy == "v2"
                                                          ? fmt::format("id {}", targets_.cgroup->id)
                                                          : std::string("v1, followed by membership"));
        std::string text = fmt::format("{}: {} {} now", what, running, running == 1 ? "process" : "processes");
        if (!unreadable_.empty())
            text += fmt::format(" ({} left out: /proc not readable; -v names them)", unreadable_.size());
        return text;
    }
    std::string text;
    for (const auto& [pid, process] : processes_) {
        if (!text.empty())
            text += ", ";
        text += fmt::format("pid {} ({})", pid, process.info.comm);
    }
    return text;
}

bool Tracer::all_exited() const {
    if (targets_.cgroup || targets_.all)
        return false;
    return std::all_of(processes_.begin(), processes_.end(),
                       [](const auto& entry) { return entry.second.info.exited; });
}

std::optional<int> Tracer::command_exit_status() {
    return command_ ? command_->poll_exit() : std::nullopt;
}

}  // namespace memobserve
