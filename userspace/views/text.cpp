#include "views/text.h"

#include <algorithm>
#include <array>

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
           module.rfind("libstdc++", 0) == 0 || module.rfind("ld-musl", 0) == 0;
}

std::string frame_name(const Frame& frame) {
    if (!frame.symbol.empty())
        return frame.symbol;
    return fmt::format("{}+{:#x}", basename_of(frame.module), frame.offset);
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
    add(drops.stack_collisions,
        "stacks not stored (hash collision in the stack map; a larger --max-stacks makes it rarer)");
    add(drops.stack_errors, "stacks not read");
    add(drops.allocator_calls_map_full, "allocator calls not tracked (too many threads)");
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

std::string site_label(const Site& site) {
    if (site.unknown_stack)
        return "[unknown stack: not stored, see drops]";
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
        if (!label.empty())
            label += " < ";
        label += frame_name(site.frames[i]);
    }
    return label;
}

std::string render_header(const Snapshot& snapshot, const TableOptions& options) {
    std::string text;
    for (const auto& process : snapshot.processes)
        text += describe_process(process);

    const auto& totals = snapshot.totals;
    text += fmt::format("traced: allocated {} in {} {}, live {}, mapped {}, faulted {}, resident {}\n",
                        format_bytes(totals.allocated_bytes), totals.allocations,
                        totals.allocations == 1 ? "call" : "calls",
                        format_bytes(totals.live_bytes), format_bytes(totals.mapped_bytes),
                        format_bytes(totals.faulted_bytes), format_bytes(totals.resident_bytes));
    if (!snapshot.alloc_probes)
        text += "allocator probes: off (--no-alloc-probes): allocated and live are not measured\n";
    else if (options.probe_hit_rate >= 0)
        text += fmt::format("allocator probe hits: {:.0f}/s\n", options.probe_hit_rate);
    text += fmt::format("drops: {}\n", describe_drops(snapshot.drops));
    return text;
}

std::string render_sites(const Snapshot& snapshot, const TableOptions& options) {
    std::vector<const Site*> sites;
    for (const auto& site : snapshot.sites)
        sites.push_back(&site);
    std::stable_sort(sites.begin(), sites.end(), [&](const Site* left, const Site* right) {
        return site_value(left->counters, options.sort) > site_value(right->counters, options.sort);
    });

    std::string text = fmt::format("{:>11} {:>11} {:>11} {:>11} {:>11} {:>9} {:>7}  {}\n", "RESIDENT",
                                   "MAPPED", "FAULTED", "LIVE", "ALLOCATED", "ALLOCS", "PID",
                                   "SITE (calling function < its callers)");
    std::size_t rows = 0;
    for (const Site* site : sites) {
        if (rows++ == options.rows)
            break;
        const auto& counters = site->counters;
        text += fmt::format("{:>11} {:>11} {:>11} {:>11} {:>11} {:>9} {:>7}  {}\n",
                            format_bytes(counters.resident_bytes), format_bytes(counters.mapped_bytes),
                            format_bytes(counters.faulted_bytes), format_bytes(counters.live_bytes),
                            format_bytes(counters.allocated_bytes), counters.allocations, site->pid,
                            site_label(*site));
    }
    if (sites.size() > options.rows)
        text += fmt::format("({} more sites)\n", sites.size() - options.rows);
    return text;
}

}  // namespace memobserve
