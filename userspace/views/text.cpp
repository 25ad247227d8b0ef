#include "views/text.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include <fmt/format.h>

namespace memobserve {

namespace {

}  // namespace

std::uint64_t site_value(const SiteCounters& counters, SortKey key) {
    switch (key) {
    case SortKey::allocated:
        return counters.allocated_bytes;
    case SortKey::live:
        return counters.live_bytes;
    case SortKey::mapped:
        return counters.mapped_bytes;
    case SortKey::faulted:
        return counters.faulted_bytes;
    case SortKey::resident:
        return counters.resident_bytes;
    }
    return 0;
}

namespace {

std::string basename_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Frames inside the allocator or libc's syscall wrappers: the label starts
// below them, at the code that asked for memory.
bool is_allocator_frame(const Frame& frame) {
    std::string module = basename_of(frame.module);
    return module.rfind("libc.so", 0) == 0 || module.rfind("libc-", 0) == 0 ||
           module.rfind("libstdc++", 0) == 0 || module.rfind("ld-musl", 0) == 0 ||
           module.rfind("libjemalloc", 0) == 0;
}

std::string frame_name(const Frame& frame) {
    if (!frame.symbol.empty())
        return frame.symbol;
    return fmt::format("{}+{:#x}", basename_of(frame.module), frame.offset);
}

// Describe the slowdown that a share p of the targets' CPU time in probes
// means: the same work takes 1 / (1 - p) as long. It is a lower bound,
// because a hit is timed on one thread and contending threads cost more.
std::string describe_slowdown(double percent) {
    if (percent >= 90)
        return "10x slower or more";
    double factor = 100.0 / (100.0 - percent);
    if (factor < 1.5)
        return fmt::format("about {:.0f}% slower or more", (factor - 1) * 100);
    return fmt::format("about {:.1f}x slower or more", factor);
}

std::string describe_drops(const Drops& drops) {
    if (drops.total() == 0)
        return "none";
    std::string text;
    auto add = [&](std::uint64_t count, const char* what) {
        if (count == 0)
            return;
        if (!text.empty())
            text += ", ";
        text += fmt::format("{} {}", count, what);
    };
    add(drops.live_map_full, "allocations not tracked (live map full, raise --max-live)");
    add(drops.site_map_full, "counter updates lost (site map full, raise --max-sites)");
    add(drops.stack_map_full, "stacks not stored (stack map full, raise --max-stacks)");
    add(drops.stack_collisions, "stacks not stored (another stack has the same 31-bit hash)");
    add(drops.stack_errors, "stacks not read");
    add(drops.allocator_calls_map_full, "allocator calls not tracked (no memory for a thread's state)");
    add(drops.event_ring_full, "mapping events lost (ring buffer full)");
    add(drops.allocator_returns_lost, "allocator returns not seen (block unknown)");
    return text;
}

std::string describe_process(const ProcessInfo& process) {
    const auto& memory = process.memory;
    std::string text = fmt::format(
        "pid {} {}{}: RSS {} (anon {}, file {}, shmem {})  PSS {}  USS {}  swap {}  VSS {}\n",
        process.pid, process.comm, process.exited ? " [exited]" : "", format_bytes(memory.rss_bytes),
        format_bytes(memory.rss_anon_bytes), format_bytes(memory.rss_file_bytes),
        format_bytes(memory.rss_shmem_bytes), format_bytes(memory.pss_bytes),
        format_bytes(memory.uss_bytes), format_bytes(memory.swap_bytes),
        format_bytes(memory.vss_bytes));
    if (process.cgroup) {
        const auto& cgroup = *process.cgroup;
        text += fmt::format(
            "  cgroup {}: usage {}, limit {}\n", cgroup.path,
            cgroup.memory_current_bytes ? format_bytes(*cgroup.memory_current_bytes) : "unknown",
            cgroup.memory_max_bytes ? format_bytes(*cgroup.memory_max_bytes) : "none");
    }
    for (const auto& allocator : process.allocators) {
        if (allocator.probed)
            text += fmt::format("  allocator {} ({}): probed\n", basename_of(allocator.module),
                                allocator.kind);
        else
            text += fmt::format("  allocator {} ({}): NOT probed: {}\n",
                                basename_of(allocator.module), allocator.kind, allocator.note);
    }
    return text;
}

}  // namespace

bool parse_sort_key(const std::string& text, SortKey& key) {
    static const std::array<std::pair<const char*, SortKey>, 5> names = {{
        {"allocated", SortKey::allocated},
        {"live", SortKey::live},
        {"mapped", SortKey::mapped},
        {"faulted", SortKey::faulted},
        {"resident", SortKey::resident},
    }};
    for (const auto& [name, value] : names) {
        if (text == name) {
            key = value;
            return true;
        }
    }
    return false;
}

const char* sort_key_name(SortKey key) {
    switch (key) {
    case SortKey::allocated:
        return "allocated";
    case SortKey::live:
        return "live";
    case SortKey::mapped:
        return "mapped";
    case SortKey::faulted:
        return "faulted";
    case SortKey::resident:
        return "resident";
    }
    return "";
}

std::string format_bytes(std::uint64_t bytes) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024)
        return fmt::format("{} B", bytes);
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024 && unit < 5) {
        value /= 1024;
        ++unit;
    }
    return fmt::format("{:.2f} {}", value, units[unit]);
}

std::string site_label(const Site& site, bool with_location) {
    if (site.unknown_stack && site.frames.empty())
        return "[unknown stack: not stored, see drops]";
    if (site.unknown_stack)
        return frame_name(site.frames.front()) + " [caller only: stack not stored, see drops]";
    if (site.fault_residue)
        return "[faults since the last sampled stack]";
    if (site.frames.empty())
        return "[no stack]";

    // Start below the allocator's frames, unless nothing known lies below.
    std::size_t first = 0;
    while (first + 1 < site.frames.size() && is_allocator_frame(site.frames[first]))
        ++first;
    if (site.frames[first].module == "[unknown]")
        first = 0;
    std::string label;
    for (std::size_t i = first; i < site.frames.size() && i < first + 3; ++i) {
        const Frame& frame = site.frames[i];
        if (!label.empty())
            label += " < ";
        label += frame_name(frame);
        if (i == first && with_location && frame.line > 0 && !frame.file.empty())
            label += fmt::format(" ({}:{})", basename_of(frame.file), frame.line);
        else if (i == first && with_location && !frame.symbol.empty())
            label += fmt::format("+{:#x}", frame.offset);
    }
    return label;
}

namespace {

bool is_group_target(const Snapshot& snapshot) {
    return snapshot.target.kind == "cgroup" || snapshot.target.kind == "all";
}

std::string describe_target(const TargetInfo& target) {
    if (target.kind == "all")
        return "every process on the host";
    std::string text = fmt::format("cgroup {} ({}", target.path, target.hierarchy);
    if (target.cgroup_id != 0)
        text += fmt::format(" id {}", target.cgroup_id);
    text += ")";
    if (!target.container_id.empty())
        text += fmt::format(", container {}", target.container_id.substr(0, 12));
    return text;
}

std::string describe_cgroup(const CgroupMemory& cgroup, const SiteCounters& traced) {
    std::string text = fmt::format("memory cgroup {} ({}): usage {}", cgroup.path, cgroup.hierarchy,
                                   cgroup.memory_current_bytes ? format_bytes(*cgroup.memory_current_bytes)
                                                               : std::string("unknown"));
    if (cgroup.memory_max_bytes) {
        std::uint64_t usage = cgroup.memory_current_bytes.value_or(0);
        std::uint64_t limit = *cgroup.memory_max_bytes;
        text += fmt::format(" of limit {}, headroom {}", format_bytes(limit),
                            format_bytes(limit > usage ? limit - usage : 0));
        if (traced.allocated_bytes > limit)
            text += fmt::format(" (allocated {} is address space, not usage)",
                                format_bytes(traced.allocated_bytes));
    } else {
        text += ", no limit";
    }
    CgroupBreakdown parts = cgroup_breakdown(cgroup);
    text += fmt::format("\n  anon {}, file {}, kernel {}, shmem {}, other {}; limit reached {} {}, "
                        "OOM kills {}\n",
                        format_bytes(parts.anon), format_bytes(parts.file), format_bytes(parts.kernel),
                        format_bytes(parts.shmem), format_bytes(parts.other), parts.limit_hits,
                        parts.limit_hits == 1 ? "time" : "times", parts.oom_kills);
    return text;
}

// Per process: the kernel's totals beside the traced layers summed over its sites.
std::string render_process_table(const Snapshot& snapshot, std::size_t rows) {
    std::map<int, SiteCounters> traced;
    for (const auto& site : snapshot.sites)
        traced[site.pid] += site.counters;
    std::vector<const ProcessInfo*> processes;
    for (const auto& process : snapshot.processes)
        processes.push_back(&process);
    std::stable_sort(processes.begin(), processes.end(), [](const ProcessInfo* left, const ProcessInfo* right) {
        return left->memory.rss_bytes > right->memory.rss_bytes;
    });

    std::string text = fmt::format("{:>7} {:>7} {:<15} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}\n",
                                   "PID", "NSPID", "COMM", "RSS", "SWAP", "ALLOCATED", "LIVE", "MAPPED",
                                   "FAULTED", "RESIDENT", "MEMORY CGROUP");
    std::size_t shown = 0;
    for (const ProcessInfo* process : processes) {
        if (shown++ == rows)
            break;
        const SiteCounters& counters = traced[process->pid];
        text += fmt::format("{:>7} {:>7} {:<15} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}{}\n",
                            process->pid, process->nspid != 0 ? std::to_string(process->nspid) : "-",
                            process->comm.substr(0, 15), format_bytes(process->memory.rss_bytes),
                            format_bytes(process->memory.swap_bytes),
                            format_bytes(counters.allocated_bytes), format_bytes(counters.live_bytes),
                            format_bytes(counters.mapped_bytes), format_bytes(counters.faulted_bytes),
                            format_bytes(counters.resident_bytes),
                            process->cgroup ? process->cgroup->path : std::string("-"),
                            process->exited ? " [exited]" : "");
    }
    if (processes.size() > rows)
        text += fmt::format("({} more processes)\n", processes.size() - rows);
    return text;
}

// For the whole host: memory cgroups ranked by the RSS of their processes.
std::string render_cgroup_ranking(const Snapshot& snapshot, std::size_t rows) {
    struct Group {
        std::uint64_t rss = 0;
        std::uint64_t resident = 0;
        std::size_t processes = 0;
        std::optional<std::uint64_t> limit;
    };
    std::map<std::string, Group> groups;
    std::map<int, std::uint64_t> resident;
    for (const auto& site : snapshot.sites)
        resident[site.pid] += site.counters.resident_bytes;
    for (const auto& process : snapshot.processes) {
        Group& group = groups[process.cgroup ? process.cgroup->path : std::string("-")];
        group.rss += process.memory.rss_bytes;
        group.resident += resident[process.pid];
        group.processes += 1;
        if (process.cgroup)
            group.limit = process.cgroup->memory_max_bytes;
    }
    std::vector<std::pair<std::string, Group>> sorted(groups.begin(), groups.end());
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& left, const auto& right) { return left.second.rss > right.second.rss; });
    std::string text = fmt::format("{:>10} {:>10} {:>10} {:>6}  {}\n", "RSS", "RESIDENT", "LIMIT", "PROCS",
                                   "MEMORY CGROUP (sum over its traced processes)");
    for (std::size_t i = 0; i < sorted.size() && i < rows; ++i) {
        const auto& [path, group] = sorted[i];
        text += fmt::format("{:>10} {:>10} {:>10} {:>6}  {}\n", format_bytes(group.rss),
                            format_bytes(group.resident),
                            group.limit ? format_bytes(*group.limit) : std::string("none"),
                            group.processes, path);
    }
    return text;
}

std::string render_group_header(const Snapshot& snapshot, const TableOptions& options) {
    std::size_t running = std::count_if(snapshot.processes.begin(), snapshot.processes.end(),
                                        [](const ProcessInfo& process) { return !process.exited; });
    std::string text = fmt::format("target: {}: {} {} running, {} exited\n", describe_target(snapshot.target),
                                   running, running == 1 ? "process" : "processes",
                                   snapshot.processes.size() - running);
    if (snapshot.target.kind == "cgroup") {
        for (const auto& cgroup : snapshot.cgroups)
            text += describe_cgroup(cgroup, snapshot.totals);
    } else {
        text += render_cgroup_ranking(snapshot, 10);
    }
    text += render_process_table(snapshot, options.rows);
    return text;
}

}  // namespace

std::vector<MergedSite> merge_across_processes(const std::vector<Site>& sites) {
    std::map<std::string, std::size_t> index;
    std::vector<MergedSite> merged;
    for (const auto& site : sites) {
        std::string identity;
        if (site.unknown_stack)
            identity = "unknown";
        else if (site.fault_residue)
            identity = "residue";
        for (const auto& frame : site.frames)
            identity += fmt::format("|{}:{}+{:x}", frame.module, frame.symbol, frame.offset);
        auto [found, added] = index.emplace(identity, merged.size());
        if (added)
            merged.push_back({site, {}});
        else
            merged[found->second].site.counters += site.counters;
        auto& pids = merged[found->second].pids;
        if (std::find(pids.begin(), pids.end(), site.pid) == pids.end())
            pids.push_back(site.pid);
    }
    return merged;
}

std::string render_header(const Snapshot& snapshot, const TableOptions& options) {
    std::string text;
    if (is_group_target(snapshot))
        text = render_group_header(snapshot, options);
    else {
        for (const auto& process : snapshot.processes)
            text += describe_process(process);
    }

    const auto& totals = snapshot.totals;
    text += fmt::format("traced: allocated {} in {} {}, live {}, mapped {}, faulted {}, resident {}\n",
                        format_bytes(totals.allocated_bytes), totals.allocations,
                        totals.allocations == 1 ? "call" : "calls",
                        format_bytes(totals.live_bytes), format_bytes(totals.mapped_bytes),
                        format_bytes(totals.faulted_bytes), format_bytes(totals.resident_bytes));
    // The tracer measures residency less often when a pass costs more (see
    // Tracer::measure_residency).
    if (snapshot.resident_age_s >= 0.5)
        text += fmt::format("resident: as of {:.1f}s ago; measured less often than the view "
                            "refreshes, to keep its cost under 0.5% of a CPU\n",
                            snapshot.resident_age_s);
    const OverheadInfo& overhead = snapshot.overhead;
    if (!snapshot.alloc_probes && snapshot.target.kind == "all") {
        text += "allocator probes: off, the default for -a (--alloc-probes turns them on): allocated "
                "and live are not measured\n";
    } else if (!snapshot.alloc_probes) {
        text += "allocator probes: off (--no-alloc-probes): allocated and live are not measured\n";
    } else if (overhead.tripped) {
        text += fmt::format("allocator probes: DETACHED after {:.1f}s: they took about {:.1f}% of the "
                            "traced processes' CPU time ({}), over --max-overhead {}%; allocated "
                            "and live stop there, the other layers go on\n",
                            overhead.tripped_after_s, overhead.last_percent,
                            describe_slowdown(overhead.last_percent), overhead.max_percent);
    } else if (options.probe_hit_rate >= 0) {
        text += fmt::format("allocator probe hits: {:.0f}/s", options.probe_hit_rate);
        if (overhead.probe_cost_ns > 0)
            text += fmt::format(", about {:.1f}% of the traced processes' CPU time ({}; {:.1f} us "
                                "per hit)",
                                overhead.last_percent, describe_slowdown(overhead.last_percent),
                                overhead.probe_cost_ns / 1000);
        if (overhead.max_percent > 0)
            text += fmt::format("; detached above {}% (--max-overhead)", overhead.max_percent);
        text += "\n";
    }
    if (snapshot.fault_sample_bytes != 0)
        text += fmt::format("faults: all counted; one stack per {} faulted per process, so FAULTED "
                            "per site is a sample (--fault-sample exact for a stack on every fault)\n",
                            format_bytes(snapshot.fault_sample_bytes));
    text += fmt::format("drops: {}\n", describe_drops(snapshot.drops));
    return text;
}

std::string render_sites(const Snapshot& snapshot, const TableOptions& options) {
    // Each row points to a site of the snapshot (or of a group's merged
    // sites) and counts its processes, so a view of 10000 sites copies none.
    std::vector<MergedSite> merged;
    std::vector<std::pair<const Site*, std::size_t>> sites;
    if (is_group_target(snapshot)) {
        merged = merge_across_processes(snapshot.sites);
        for (const auto& site : merged)
            sites.emplace_back(&site.site, site.pids.size());
    } else {
        for (const auto& site : snapshot.sites)
            sites.emplace_back(&site, 1);
    }
    std::stable_sort(sites.begin(), sites.end(), [&](const auto& left, const auto& right) {
        return site_value(left.first->counters, options.sort) > site_value(right.first->counters, options.sort);
    });

    std::string text = fmt::format("{:>11} {:>11} {:>11} {:>11} {:>11} {:>9} {:>7}  {}\n", "RESIDENT",
                                   "MAPPED", "FAULTED", "LIVE", "ALLOCATED", "ALLOCS", "PID",
                                   "SITE (calling function < its callers)");
    // Two rows from one function read alike: those get their source lines.
    std::size_t shown_rows = std::min(sites.size(), options.rows);
    std::map<std::string, int> label_counts;
    for (std::size_t i = 0; i < shown_rows; ++i)
        ++label_counts[site_label(*sites[i].first)];
    std::size_t rows = 0;
    for (const auto& [site, processes] : sites) {
        if (rows++ == options.rows)
            break;
        std::string label = site_label(*site);
        if (label_counts[label] > 1)
            label = site_label(*site, true);
        const auto& counters = site->counters;
        text += fmt::format("{:>11} {:>11} {:>11} {:>11} {:>11} {:>9} {:>7}  {}\n",
                            format_bytes(counters.resident_bytes), format_bytes(counters.mapped_bytes),
                            format_bytes(counters.faulted_bytes), format_bytes(counters.live_bytes),
                            format_bytes(counters.allocated_bytes), counters.allocations,
                            processes == 1 ? std::to_string(site->pid)
                                           : fmt::format("{} pids", processes),
                            label);
    }
    if (sites.size() > options.rows)
        text += fmt::format("({} more sites)\n", sites.size() - options.rows);
    return text;
}

}  // namespace memobserve
