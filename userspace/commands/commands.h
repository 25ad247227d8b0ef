// Subcommands. Each registers its options on a CLI11 subcommand and returns
// the function that runs it, which returns the exit code.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace memobserve {

using CommandRunner = std::function<int()>;

CommandRunner setup_top_command(CLI::App& app);
CommandRunner setup_snapshot_command(CLI::App& app);
CommandRunner setup_report_command(CLI::App& app);
CommandRunner setup_diff_command(CLI::App& app);

}  // namespace memobserve
