// Text rendering of a snapshot: process header, totals and the site table.
// Shared by the live view and the snapshot summary.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/snapshot.h"

namespace memobserve {

enum class SortKey { allocated, live, mapped, faulted, resident };

// Parse "allocated", "live", "mapped", "faulted" or "resident".
bool parse_sort_key(const std::string& text, SortKey& key);
const char* sort_key_name(SortKey key);

// The counter of `counters` that `key` names, in bytes.
std::uint64_t site_value(const SiteCounters& counters, SortKey key);

// "0 B", "512 B", "1.5 KiB", "49.75 MiB", "4.00 GiB".
std::string format_bytes(std::uint64_t bytes);

// Calling function of a site, skipping the allocator's own frames, and its
// next two callers: "leak_foo < main < __libc_start_call_main". With
// `with_location`, the calling function's source line, or else its offset:
// "leak_foo (leak.c:12) < main < ...", to tell apart sites in one function.
std::string site_label(const Site& site, bool with_location = false);

struct TableOptions {
    SortKey sort = SortKey::resident;
    std::size_t rows = 20;
    double probe_hit_rate = -1;  // hits per second; negative to leave out
};

// Sites with the same frame chain (module, symbol and offset) in several
// processes, summed into one, with the processes it sums.
struct MergedSite {
    Site site;  // pid of the first process
    std::vector<int> pids;
};
std::vector<MergedSite> merge_across_processes(const std::vector<Site>& sites);

// Process totals, traced totals, allocator and loss notes. For a cgroup or
// the host: the target, its memory cgroups and a table of its processes.
std::string render_header(const Snapshot& snapshot, const TableOptions& options);
// The top `options.rows` sites by `options.sort`.
std::string render_sites(const Snapshot& snapshot, const TableOptions& options);

}  // namespace memobserve
