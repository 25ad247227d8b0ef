#include <memory>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands/commands.h"
#include "commands/trace_options.h"
#include "model/snapshot_file.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/signals.h"
#include "views/text.h"

namespace memobserve {

namespace {

struct SnapshotOptions {
    TraceCommandOptions trace;
    double duration_s = 10;
    std::string output;
    std::size_t rows = 10;
};

int run_snapshot(SnapshotOptions& options) {
    validate_trace_options(options.trace);
    check_output_path(options.output);

    install_stop_handlers();
    Tracer tracer(target_spec(options.trace), options.trace.trace);
    auto deadline = tracer.started() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                           std::chrono::duration<double>(options.duration_s));
    auto next_tick = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    fmt::print(stderr, "memobserve: tracing {} with {} allocator probes for {}s; Ctrl-C to stop early\n",
               tracer.describe_targets(), tracer.probe_count(), options.duration_s);

    // Measure residency once a second, so that a target that exits early
    // keeps the numbers of its last second.
    while (!stop_requested() && !tracer.all_exited()) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline)
            break;
        if (now >= next_tick) {
            tracer.tick();
            next_tick = now + std::chrono::seconds(1);
        }
        auto wait = std::min(deadline, next_tick) - now;
        tracer.poll(std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(wait),
                               std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
    }
    tracer.tick();
    Snapshot snapshot = tracer.snapshot(SnapshotDetail::mappings);
    save_snapshot(options.output, snapshot);

    TableOptions table;
    table.rows = options.rows;
    fmt::print("{}\n{}", render_header(snapshot, table), render_sites(snapshot, table));
    fmt::print("snapshot of {:.1f}s written to {}{}\n", snapshot.duration_s, options.output,
               stop_requested() ? " (interrupted)" : "");
    return 0;
}

}  // namespace

CommandRunner setup_snapshot_command(CLI::App& app) {
    auto options = std::make_shared<SnapshotOptions>();
    add_trace_options(app, options->trace);
    app.add_option("-d,--duration", options->duration_s,
                   "Seconds to trace before the snapshot (less if every target exits)")
        ->capture_default_str()
        ->check(number_in(0, 86400));
    app.add_option("-o,--output", options->output, "Snapshot file to write (JSON)")->required();
    app.add_option("-t,--top", options->rows, "Number of sites in the printed summary")
        ->capture_default_str()
        ->check(whole_number_in(1, 100000));
    return [options] { return run_snapshot(*options); };
}

}  // namespace memobserve
