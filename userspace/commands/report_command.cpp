#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands/commands.h"
#include "model/snapshot_file.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "views/folded.h"
#include "views/html.h"
#include "views/mapping_table.h"
#include "views/pprof.h"
#include "views/text.h"

namespace memobserve {

namespace {

struct ReportOptions {
    std::string input;
    std::string format = "text";
    std::string value = "resident";
    std::string output;
    std::size_t rows = 20;
};

// Bytes of live blocks and mappings that have no resident page behind them.
std::uint64_t untouched_bytes(const SiteCounters& counters) {
    std::uint64_t address_space = std::max(counters.live_bytes, counters.mapped_bytes);
    return address_space > counters.resident_bytes ? address_space - counters.resident_bytes : 0;
}

// Sites whose live blocks and mappings have the most address space without a
// resident page: allocated or mapped, never written.
std::string render_untouched_sites(const Snapshot& snapshot, std::size_t rows) {
    std::vector<const Site*> sites;
    for (const auto& site : snapshot.sites) {
        if (untouched_bytes(site.counters) > 0)
            sites.push_back(&site);
    }
    std::stable_sort(sites.begin(), sites.end(), [](const Site* left, const Site* right) {
        return untouched_bytes(left->counters) > untouched_bytes(right->counters);
    });
    std::string text = fmt::format("{:>13} {:>11} {:>11} {:>11} {:>7}  {}\n", "NEVER-TOUCHED", "LIVE",
                                   "MAPPED", "RESIDENT", "PID", "SITE (calling function < its callers)");
    for (std::size_t i = 0; i < sites.size() && i < rows; ++i) {
        const SiteCounters& counters = sites[i]->counters;
        text += fmt::format("{:>13} {:>11} {:>11} {:>11} {:>7}  {}\n", format_bytes(untouched_bytes(counters)),
                            format_bytes(counters.live_bytes), format_bytes(counters.mapped_bytes),
                            format_bytes(counters.resident_bytes), sites[i]->pid, site_label(*sites[i]));
    }
    if (sites.empty())
        text += "(none: every live block and mapping has resident pages)\n";
    return text;
}

std::string render_summary(const Snapshot& snapshot) {
    const auto& totals = snapshot.totals;
    std::uint64_t rss = 0;
    std::uint64_t shmem = 0;
    std::optional<std::uint64_t> limit;
    for (const auto& process : snapshot.processes) {
        rss += process.memory.rss_bytes;
        shmem += process.memory.rss_shmem_bytes;
        if (process.cgroup && process.cgroup->memory_max_bytes)
            limit = std::min(limit.value_or(UINT64_MAX), *process.cgroup->memory_max_bytes);
    }
    std::uint64_t untouched = 0;
    for (const auto& site : snapshot.sites)
        untouched += untouched_bytes(site.counters);

    std::string text = fmt::format("snapshot taken {} after {:.1f}s of tracing, kernel {}\n\n",
                                   snapshot.taken_at, snapshot.duration_s, snapshot.host.kernel);
    text += "summary\n";
    text += fmt::format("  allocated {:>11}  address space requested while tracing (not memory use)\n",
                        format_bytes(totals.allocated_bytes));
    text += fmt::format("  live      {:>11}  allocated and not freed\n", format_bytes(totals.live_bytes));
    text += fmt::format("  mapped    {:>11}  address space mapped by traced sites\n",
                        format_bytes(totals.mapped_bytes));
    text += fmt::format("  resident  {:>11}  in RAM, of traced sites (process RSS {})\n",
                        format_bytes(totals.resident_bytes), format_bytes(rss));
    text += fmt::format("  limit     {:>11}  memory cgroup limit\n",
                        limit ? format_bytes(*limit) : std::string("none"));
    text += fmt::format("  gap: {} of live blocks and mappings were never touched, {} is mapped "
                        "from files, {} is shared memory\n",
                        format_bytes(untouched), format_bytes(totals.mapped_file_bytes),
                        format_bytes(shmem));
    text += render_untraced_summary(snapshot);
    return text;
}

std::string render_text(const Snapshot& snapshot, const ReportOptions& options) {
    TableOptions table;
    table.rows = std::min<std::size_t>(options.rows, 5);
    std::string text = render_summary(snapshot);

    text += "\ntop sites by resident bytes\n";
    text += render_sites(snapshot, table);

    text += "\ntop sites by never-touched address space\n";
    text += render_untouched_sites(snapshot, table.rows);

    table.rows = options.rows;
    table.sort = SortKey::resident;
    text += "\nprocesses\n" + render_header(snapshot, table);
    text += "\nmappings (largest by RSS)\n" + render_mappings(snapshot, 5, 5);
    text += "\nsites\n" + render_sites(snapshot, table);
    return text;
}

int run_report(const ReportOptions& options) {
    if (!options.output.empty())
        check_output_path(options.output);
    SortKey value;
    if (!parse_sort_key(options.value, value))
        throw usage_error(fmt::format("invalid --value '{}'", options.value),
                          "use one of allocated, live, mapped, faulted, resident");
    Snapshot snapshot = load_snapshot(options.input);

    std::string text;
    if (options.format == "text")
        text = render_text(snapshot, options);
    else if (options.format == "json")
        text = to_json(snapshot).dump(1) + "\n";
    else if (options.format == "folded")
        text = render_folded(snapshot, value);
    else if (options.format == "pprof")
        text = render_pprof(snapshot);
    else if (options.format == "html")
        text = render_html(snapshot);
    else
        throw usage_error(fmt::format("invalid --format '{}'", options.format),
                          "use text, json, folded, pprof or html");

    if (options.output.empty() && options.format == "pprof" && isatty(STDOUT_FILENO))
        throw usage_error("pprof output is gzip-compressed binary data, not for a terminal",
                          "write it to a file with -o FILE.pb.gz");
    if (options.output.empty()) {
        fmt::print("{}", text);
    } else {
        write_file_atomically(options.output, text);
    }
    return 0;
}

}  // namespace

CommandRunner setup_report_command(CLI::App& app) {
    auto options = std::make_shared<ReportOptions>();
    app.add_option("file", options->input, "Snapshot file written by 'memobserve snapshot'")->required();
    app.add_option("-f,--format", options->format,
                   "Output format: text, json, folded (stacks for flamegraph.pl), pprof (gzipped "
                   "profile.proto) or html (interactive flame graph in one file)")
        ->capture_default_str();
    app.add_option("--value", options->value,
                   "Value of folded stacks: allocated, live, mapped, faulted or resident bytes")
        ->capture_default_str();
    app.add_option("-o,--output", options->output, "Write to this file instead of standard output");
    app.add_option("-t,--top", options->rows, "Number of sites in the text tables")->capture_default_str();
    return [options] { return run_report(*options); };
}

}  // namespace memobserve
