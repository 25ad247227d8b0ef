#include "commands/trace_options.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "collectors/cgroup_target.h"
#include "util/error.h"
#include "util/log.h"

namespace memobserve {

CLI::Validator whole_number_in(std::uint64_t low, std::uint64_t high) {
    std::string expected = fmt::format("a whole number from {} to {}", low, high);
    return CLI::Validator(
        [=](std::string& text) -> std::string {
            std::uint64_t value = 0;
            const char* end = text.data() + text.size();
            auto [stop, error] = std::from_chars(text.data(), end, value);
            if (text.empty() || error != std::errc() || stop != end || value < low || value > high)
                return fmt::format("invalid value '{}': expected {}", text, expected);
            return {};
        },
        expected);
}

CLI::Validator number_in(double low, double high) {
    std::string expected = fmt::format("a number from {} to {}", low, high);
    return CLI::Validator(
        [=](std::string& text) -> std::string {
            char* stop = nullptr;
            errno = 0;
            double value = text.empty() ? NAN : std::strtod(text.c_str(), &stop);
            bool parsed = !text.empty() && errno == 0 && *stop == '\0' && std::isfinite(value);
            if (!parsed || value < low || value > high)
                return fmt::format("invalid value '{}': expected {}", text, expected);
            return {};
        },
        expected);
}

void add_trace_options(CLI::App& app, TraceCommandOptions& options) {
    app.add_option("-p,--pid", options.pids,
                   "Process to trace, with all its threads (repeat or separate with commas)")
        ->delimiter(',')
        ->check(whole_number_in(1, 4194304));
    app.add_option("-c,--cgroup", options.cgroup,
                   "Trace every process of a cgroup and its descendants, including processes "
                   "that start later: a cgroup v2 id (the directory's inode number) or a path "
                   "as /proc/PID/cgroup shows it");
    app.add_option("--container", options.container,
                   "Trace the processes of a container: its id, or a unique prefix of 12 or more "
                   "hex digits (Docker, containerd, CRI-O and Podman cgroup names)");
    app.add_flag("-a,--all", options.all,
                 "Trace every process on the host. Allocator probes are off unless "
                 "--alloc-probes is given: a trap on every malloc of every process costs too much "
                 "for most hosts, and the page-level layers answer where the memory is");
    app.add_option("command", options.command,
                   "Command to start and trace from its first instruction (after --)");
    app.add_flag("--no-alloc-probes", options.no_alloc_probes,
                 "Do not probe the malloc family: keep only the mapped, faulted and resident "
                 "layers (for targets where a trap on every malloc costs too much)");
    app.add_flag("--alloc-probes", options.alloc_probes,
                 "With -a: probe the malloc family of every process as well");
    app.add_flag("--no-follow", options.no_follow, "Do not trace children the targets fork");
    app.add_option("--max-sites", options.trace.max_sites,
                   "Capacity of the per-site counters, in sites")
        ->capture_default_str()
        ->check(whole_number_in(1024, 1u << 24));
    app.add_option("--max-stacks", options.max_stacks,
                   "Capacity of the stack map, in distinct stacks (default 16384, and 65536 for "
                   "--cgroup, --container and -a)")
        ->check(whole_number_in(1024, 1u << 22));
    app.add_option("--max-live", options.trace.max_live_allocations,
                   "Capacity of the live-allocation map, in allocations")
        ->capture_default_str()
        ->check(whole_number_in(1024, 1u << 26));
    app.add_option("--fault-sample", options.fault_sample,
                   "Bytes faulted in a process between two user stacks of the fault layer "
                   "(suffixes K, M, G: powers of 1024), or 'exact' for a stack on every fault. "
                   "Every fault is counted either way")
        ->capture_default_str();
    app.add_option("--max-overhead", options.max_overhead,
                   "Detach the allocator probes when they take more than this percentage of the "
                   "traced processes' CPU time (estimated from the measured cost of one probe "
                   "hit); mapped, faulted and resident go on. 'none' turns the guard off")
        ->capture_default_str();
    app.add_flag("-v,--verbose", options.verbosity,
                 "More messages: -v for progress, -vv for BPF loader details");
}

namespace {

std::uint64_t parse_fault_sample(const std::string& text) {
    if (text == "exact")
        return 0;
    std::size_t end = 0;
    std::uint64_t value = 0;
    try {
        value = std::stoull(text, &end);
    } catch (const std::exception&) {
        end = 0;
    }
    std::string suffix = text.substr(end);
    std::uint64_t unit = suffix.empty() ? 1
                         : (suffix == "K" || suffix == "KiB") ? 1024
                         : (suffix == "M" || suffix == "MiB") ? 1024 * 1024
                         : (suffix == "G" || suffix == "GiB") ? 1024 * 1024 * 1024
                                                              : 0;
    if (end == 0 || unit == 0 || value == 0 || text[0] == '-')
        throw usage_error(fmt::format("invalid --fault-sample value '{}'", text),
                          "give a size such as 256K or 1M, or 'exact'");
    std::uint64_t bytes = value * unit;
    if (bytes < 4096 || bytes / unit != value)
        throw usage_error(fmt::format("--fault-sample {} is out of range", text),
                          "give at least one page (4K), or 'exact' for a stack on every fault");
    return bytes;
}

double parse_max_overhead(const std::string& given) {
    if (given == "none")
        return 0;
    // "5%" reads as 5, the way the messages print it.
    std::string text = given.ends_with('%') ? given.substr(0, given.size() - 1) : given;
    double percent = 0;
    std::size_t end = 0;
    try {
        percent = std::stod(text, &end);
    } catch (const std::exception&) {
        end = 0;
    }
    if (end == 0 || end != text.size() || !(percent > 0) || percent > 100)
        throw usage_error(fmt::format("invalid --max-overhead value '{}'", given),
                          "give a percentage above 0 and up to 100, such as 5 or 0.5, or 'none'");
    return percent;
}

}  // namespace

void validate_trace_options(TraceCommandOptions& options) {
    int kinds = !options.pids.empty() + !options.command.empty() + !options.cgroup.empty() +
                !options.container.empty() + options.all;
    if (kinds == 0)
        throw usage_error("no target given",
                          "name processes with -p PID, a cgroup with --cgroup, a container with "
                          "--container, every process with -a, or a command after --");
    if (kinds > 1)
        throw usage_error("more than one kind of target given",
                          "trace one of: processes (-p), a cgroup (--cgroup), a container "
                          "(--container), the host (-a), or a command (--)");
    if (options.alloc_probes && options.no_alloc_probes)
        throw usage_error("both --alloc-probes and --no-alloc-probes given", "choose one");
    if (options.alloc_probes && !options.all)
        throw usage_error("--alloc-probes is for -a",
                          "allocator probes are on by default for other targets");
    options.trace.alloc_probes = options.all ? options.alloc_probes : !options.no_alloc_probes;
    options.trace.follow_children = !options.no_follow;
    options.trace.fault_sample_bytes = parse_fault_sample(options.fault_sample);
    options.trace.max_overhead_percent = parse_max_overhead(options.max_overhead);
    // Many processes bring many distinct stacks, and a stack that finds the
    // stack map full is not stored.
    bool many_processes = options.all || !options.cgroup.empty() || !options.container.empty();
    options.trace.max_stacks = options.max_stacks != 0 ? options.max_stacks
                               : many_processes       ? 65536
                                                      : 16384;
    log::set_verbosity(options.verbosity);
}

TargetSpec target_spec(const TraceCommandOptions& options) {
    TargetSpec spec{options.pids, options.command, std::nullopt, options.all};
    if (!options.cgroup.empty())
        spec.cgroup = resolve_cgroup(options.cgroup);
    if (!options.container.empty())
        spec.cgroup = resolve_container(options.container);
    return spec;
}

}  // namespace memobserve
