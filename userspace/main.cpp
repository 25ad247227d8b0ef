// memobserve: allocated, mapped, faulted and resident memory per allocation
// site, for running processes, through eBPF.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands/commands.h"
#include "util/error.h"

namespace {

const char* const kCommands[] = {"top", "snapshot", "report", "diff"};

// `memobserve -p PID` means `memobserve top -p PID`. A first word that is
// neither an option nor a command name is a mistyped command: running it
// as a program to trace would start whatever it names.
std::vector<std::string> arguments_with_default_command(int argc, char** argv) {
    std::vector<std::string> arguments(argv + 1, argv + argc);
    if (arguments.empty())
        return arguments;
    const std::string& first = arguments[0];
    bool named = std::any_of(std::begin(kCommands), std::end(kCommands),
                             [&](const char* command) { return first == command; });
    if (named || first == "-h" || first == "--help" || first == "--version")
        return arguments;
    if (first.rfind('-', 0) != 0)
        throw memobserve::usage_error(
            fmt::format("unknown command '{}'", first),
            "use top, snapshot, report or diff; a program to trace goes after --, as in "
            "'memobserve top -- ./server'");
    arguments.insert(arguments.begin(), "top");
    return arguments;
}

// Print `error` and its hint in memobserve's form; returns its exit status.
int report_error(const memobserve::Error& error) {
    fmt::print(stderr, "memobserve: error: {}\n", error.what());
    if (!error.hint().empty())
        fmt::print(stderr, "memobserve: hint: {}\n", error.hint());
    return error.exit_code();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"memobserve: per allocation site, how much memory a process allocated, mapped, "
                 "faulted in and holds resident, traced live with eBPF.\n"
                 "Without a command name, 'top' is assumed: memobserve -p PID"};
    app.name("memobserve");
    app.set_version_flag("--version", "memobserve 0.1.0");
    app.require_subcommand(1);

    CLI::App* top = app.add_subcommand("top", "Live table of allocation sites, refreshed every interval");
    CLI::App* snapshot = app.add_subcommand("snapshot", "Trace for a while and write one JSON snapshot");
    memobserve::CommandRunner run_top = memobserve::setup_top_command(*top);
    CLI::App* report = app.add_subcommand(
        "report", "Render a snapshot file as text, JSON, folded stacks, pprof or an HTML flame graph");
    memobserve::CommandRunner run_snapshot = memobserve::setup_snapshot_command(*snapshot);
    memobserve::CommandRunner run_report = memobserve::setup_report_command(*report);
    CLI::App* diff = app.add_subcommand("diff", "Growth per site and per process between two snapshots");
    memobserve::CommandRunner run_diff = memobserve::setup_diff_command(*diff);

    std::vector<std::string> arguments;
    try {
        arguments = arguments_with_default_command(argc, argv);
    } catch (const memobserve::Error& error) {
        return report_error(error);
    }
    bool separator = std::find(arguments.begin(), arguments.end(), "--") != arguments.end();
    std::string help_command = "memobserve --help";
    if (!arguments.empty() && arguments.front().rfind('-', 0) != 0)
        help_command = fmt::format("memobserve {} --help", arguments.front());
    // CLI11 takes the arguments from the back of the vector.
    std::reverse(arguments.begin(), arguments.end());
    try {
        app.parse(arguments);
    } catch (const CLI::ParseError& error) {
        // Help and version exit 0. A usage error exits 2, as getopt and
        // argparse tools do, with the message in memobserve's form.
        if (error.get_exit_code() == 0)
            return app.exit(error);
        return report_error(memobserve::usage_error(
            error.what(), fmt::format("run '{}' for the options", help_command)));
    }

    try {
        // Words before -- that CLI11 took for the program to trace: a
        // stray word must not start a program.
        for (CLI::App* command : {top, snapshot}) {
            const auto& words = command->get_option("command")->results();
            if (command->parsed() && !words.empty() && !separator)
                throw memobserve::usage_error(
                    fmt::format("unexpected argument '{}'", words.front()),
                    fmt::format("to start a program and trace it, put it after --, as in "
                                "'memobserve {} -- {}'",
                                command->get_name(), words.front()));
        }
        if (top->parsed())
            return run_top();
        if (report->parsed())
            return run_report();
        if (diff->parsed())
            return run_diff();
        return run_snapshot();
    } catch (const memobserve::Error& error) {
        return report_error(error);
    }
}
