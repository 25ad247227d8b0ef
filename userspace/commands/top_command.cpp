#include <unistd.h>

#include <memory>

#include <fmt/format.h>

#include "commands/commands.h"
#include "commands/trace_options.h"
#include "util/error.h"
#include "util/signals.h"
#include "views/text.h"

namespace memobserve {

namespace {

struct TopOptions {
    TraceCommandOptions trace;
    double interval_s = 1.0;
    std::string sort = "resident";
    std::size_t rows = 20;
    std::size_t iterations = 0;
};

// Wait for `seconds` while handling events; returns early on a stop request.
void wait_handling_events(Tracer& tracer, double seconds) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(seconds));
    while (!stop_requested()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            break;
        tracer.poll(std::min(left, std::chrono::milliseconds(100)));
    }
}

int run_top(TopOptions& options) {
    validate_trace_options(options.trace);
    TableOptions table;
    if (!parse_sort_key(options.sort, table.sort))
        throw usage_error(fmt::format("invalid --sort value '{}'", options.sort),
                          "use one of allocated, live, mapped, faulted, resident");
    table.rows = options.rows;

    install_stop_handlers();
    Tracer tracer(target_spec(options.trace), options.trace.trace);
    bool terminal = isatty(STDOUT_FILENO);
    fmt::print(stderr, "memobserve: tracing {} with {} allocator probes; Ctrl-C to stop\n",
               tracer.describe_targets(), tracer.probe_count());

    for (std::size_t iteration = 1; !stop_requested(); ++iteration) {
        wait_handling_events(tracer, options.interval_s);
        tracer.tick();
        Snapshot snapshot = tracer.snapshot();
        table.probe_hit_rate = tracer.probe_hit_rate();

        std::string block = fmt::format("memobserve  {}  sorted by {}  every {}s\n", snapshot.taken_at,
                                        sort_key_name(table.sort), options.interval_s);
        block += render_header(snapshot, table);
        block += "\n";
        block += render_sites(snapshot, table);
        if (terminal)
            fmt::print("\x1b[H\x1b[2J{}", block);
        else
            fmt::print("{}\n", block);
        std::fflush(stdout);

        if (tracer.all_exited()) {
            fmt::print("all traced processes have exited\n");
            break;
        }
        if (options.iterations != 0 && iteration >= options.iterations)
            break;
    }
    return 0;
}

}  // namespace

CommandRunner setup_top_command(CLI::App& app) {
    auto options = std::make_shared<TopOptions>();
    add_trace_options(app, options->trace);
    app.add_option("-i,--interval", options->interval_s, "Seconds between refreshes")
        ->capture_default_str()
        ->check(number_in(0.1, 3600));
    app.add_option("-s,--sort", options->sort,
                   "Sort sites by allocated, live, mapped, faulted or resident bytes")
        ->capture_default_str();
    app.add_option("-t,--top", options->rows, "Number of sites shown")
        ->capture_default_str()
        ->check(whole_number_in(1, 100000));
    app.add_option("-n,--iterations", options->iterations,
                   "Stop after this many refreshes (0: until Ctrl-C or the targets exit)")
        ->capture_default_str()
        ->check(whole_number_in(0, 1000000000));
    return [options] { return run_top(*options); };
}

}  // namespace memobserve
