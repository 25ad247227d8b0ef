#include <algorithm>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "commands/commands.h"
#include "model/snapshot_file.h"
#include "views/text.h"

namespace memobserve {

namespace {

struct DiffOptions {
    std::string old_path;
    std::string new_path;
    std::size_t rows = 20;
};

// Identity of a site across two snapshots of the same processes: the pid and
// the frame chain, by module, symbol and offset rather than by address.
std::string site_identity(const Site& site) {
    std::string identity = std::to_string(site.pid);
    if (site.unknown_stack)
        return identity + "|unknown";
    for (const auto& frame : site.frames)
        identity += fmt::format("|{}:{}+{:x}", frame.module, frame.symbol, frame.offset);
    return identity;
}

std::string signed_bytes(std::int64_t delta) {
    std::string magnitude = format_bytes(static_cast<std::uint64_t>(delta < 0 ? -delta : delta));
    return delta < 0 ? "-" + magnitude : "+" + magnitude;
}

std::int64_t difference(std::uint64_t newer, std::uint64_t older) {
    return static_cast<std::int64_t>(newer) - static_cast<std::int64_t>(older);
}

struct SiteGrowth {
    const Site* site = nullptr;
    SiteCounters old_counters;
    SiteCounters new_counters;
};

std::string render_process_growth(const Snapshot& older, const Snapshot& newer) {
    std::string text = fmt::format("{:>7}  {:<16} {:>12} {:>12} {:>12} {:>12}\n", "PID", "COMM", "RSS",
                                   "PSS", "ANON", "SWAP");
    for (const auto& process : newer.processes) {
        auto previous = std::find_if(older.processes.begin(), older.processes.end(),
                                     [&](const ProcessInfo& candidate) { return candidate.pid == process.pid; });
        ProcessMemory before = previous != older.processes.end() ? previous->memory : ProcessMemory{};
        const ProcessMemory& after = process.memory;
        text += fmt::format("{:>7}  {:<16} {:>12} {:>12} {:>12} {:>12}\n", process.pid, process.comm,
                            signed_bytes(difference(after.rss_bytes, before.rss_bytes)),
                            signed_bytes(difference(after.pss_bytes, before.pss_bytes)),
                            signed_bytes(difference(after.rss_anon_bytes, before.rss_anon_bytes)),
                            signed_bytes(difference(after.swap_bytes, before.swap_bytes)));
    }
    return text;
}

int run_diff(const DiffOptions& options) {
    Snapshot older = load_snapshot(options.old_path);
    Snapshot newer = load_snapshot(options.new_path);

    std::map<std::string, SiteGrowth> growth;
    for (const auto& site : older.sites) {
        auto& entry = growth[site_identity(site)];
        entry.site = &site;
        entry.old_counters += site.counters;
    }
    for (const auto& site : newer.sites) {
        auto& entry = growth[site_identity(site)];
        entry.site = &site;
        entry.new_counters += site.counters;
    }
    // Sites that did not change in any column are counted, not listed.
    auto unchanged = [](const SiteGrowth& entry) {
        const auto& before = entry.old_counters;
        const auto& after = entry.new_counters;
        return before.resident_bytes == after.resident_bytes && before.live_bytes == after.live_bytes &&
               before.mapped_bytes == after.mapped_bytes && before.allocated_bytes == after.allocated_bytes;
    };
    std::vector<const SiteGrowth*> sorted;
    std::size_t unchanged_sites = 0;
    for (const auto& [identity, entry] : growth) {
        if (unchanged(entry))
            ++unchanged_sites;
        else
            sorted.push_back(&entry);
    }
    std::stable_sort(sorted.begin(), sorted.end(), [](const SiteGrowth* left, const SiteGrowth* right) {
        return difference(left->new_counters.resident_bytes, left->old_counters.resident_bytes) >
               difference(right->new_counters.resident_bytes, right->old_counters.resident_bytes);
    });

    fmt::print("growth from {} ({}) to {} ({})\n", options.old_path, older.taken_at, options.new_path,
               newer.taken_at);
    bool shared_process = std::any_of(newer.processes.begin(), newer.processes.end(), [&](const ProcessInfo& process) {
        return std::any_of(older.processes.begin(), older.processes.end(),
                           [&](const ProcessInfo& candidate) { return candidate.pid == process.pid; });
    });
    if (!shared_process)
        fmt::print("note: the two snapshots have no process in common, so each site appears as new or gone\n");
    fmt::print("\nprocesses\n{}\nsites, by resident growth\n", render_process_growth(older, newer));
    fmt::print("{:>12} {:>12} {:>12} {:>12} {:>7}  {}\n", "RESIDENT", "LIVE", "MAPPED", "ALLOCATED", "PID",
               "SITE");
    std::size_t rows = 0;
    for (const SiteGrowth* entry : sorted) {
        if (rows++ == options.rows)
            break;
        const auto& before = entry->old_counters;
        const auto& after = entry->new_counters;
        fmt::print("{:>12} {:>12} {:>12} {:>12} {:>7}  {}\n",
                   signed_bytes(difference(after.resident_bytes, before.resident_bytes)),
                   signed_bytes(difference(after.live_bytes, before.live_bytes)),
                   signed_bytes(difference(after.mapped_bytes, before.mapped_bytes)),
                   signed_bytes(difference(after.allocated_bytes, before.allocated_bytes)),
                   entry->site->pid, site_label(*entry->site));
    }
    if (sorted.size() > options.rows)
        fmt::print("({} more sites changed)\n", sorted.size() - options.rows);
    if (unchanged_sites > 0)
        fmt::print("({} {} unchanged)\n", unchanged_sites, unchanged_sites == 1 ? "site" : "sites");
    return 0;
}

}  // namespace

CommandRunner setup_diff_command(CLI::App& app) {
    auto options = std::make_shared<DiffOptions>();
    app.add_option("old", options->old_path, "Earlier snapshot file")->required();
    app.add_option("new", options->new_path, "Later snapshot file of the same target")->required();
    app.add_option("-t,--top", options->rows, "Number of sites shown")->capture_default_str();
    return [options] { return run_diff(*options); };
}

}  // namespace memobserve
