#include "commands/trace_options.h"

#include "util/error.h"
#include "util/log.h"

namespace memobserve {

void add_trace_options(CLI::App& app, TraceCommandOptions& options) {
    app.add_option("-p,--pid", options.pids,
                   "Process to trace, with all its threads (repeat or separate with commas)")
        ->delimiter(',')
        ->check(CLI::Range(1, 4194304).description("PID (1 to 4194304)"));
    app.add_option("command", options.command,
                   "Command to start and trace from its first instruction (after --)");
    app.add_flag("--no-alloc-probes", options.no_alloc_probes,
                 "Do not probe the malloc family: keep only the mapped, faulted and resident "
                 "layers (for targets where a trap on every malloc costs too much)");
    app.add_flag("--no-follow", options.no_follow, "Do not trace children the targets fork");
    app.add_option("--max-sites", options.trace.max_sites,
                   "Capacity of the per-site counter map, in sites")
        ->capture_default_str()
        ->check(CLI::Range(1024u, 1u << 24));
    app.add_option("--max-stacks", options.trace.max_stacks,
                   "Capacity of the stack map, in distinct stacks")
        ->capture_default_str()
        ->check(CLI::Range(1024u, 1u << 22));
    app.add_option("--max-live", options.trace.max_live_allocations,
                   "Capacity of the live-allocation map, in allocations")
        ->capture_default_str()
        ->check(CLI::Range(1024u, 1u << 26));
    app.add_flag("-v,--verbose", options.verbosity,
                 "More messages: -v for progress, -vv for BPF loader details");
}

void validate_trace_options(TraceCommandOptions& options) {
    if (options.pids.empty() && options.command.empty())
        throw Error("no target given", "name processes with -p PID, or a command after --");
    if (!options.pids.empty() && !options.command.empty())
        throw Error("both -p and a command given", "trace either processes (-p) or a command (--)");
    options.trace.alloc_probes = !options.no_alloc_probes;
    options.trace.follow_children = !options.no_follow;
    log::set_verbosity(options.verbosity);
}

TargetSpec target_spec(const TraceCommandOptions& options) {
    return TargetSpec{options.pids, options.command};
}

}  // namespace memobserve
