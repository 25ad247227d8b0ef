// Options shared by the commands that trace: targets, probe layers and map sizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "session/tracer.h"

namespace memobserve {

struct TraceCommandOptions {
    std::vector<int> pids;
    std::vector<std::string> command;
    std::string cgroup;
    std::string container;
    bool all = false;
    bool no_alloc_probes = false;
    bool alloc_probes = false;
    std::string fault_sample = "256K";
    std::string max_overhead = "5";
    std::uint32_t max_stacks = 0;  // 0: chosen by the kind of target
    bool no_follow = false;
    TraceOptions trace;
    int verbosity = 0;
};

// Checks of numeric options whose messages name the value and the accepted
// range: "invalid value 'abc': expected a whole number from 1 to 4194304".
CLI::Validator whole_number_in(std::uint64_t low, std::uint64_t high);
CLI::Validator number_in(double low, double high);

// Register the targets (-p, --cgroup, --container, -a, a command after --),
// --no-alloc-probes, map sizes and -v.
void add_trace_options(CLI::App& app, TraceCommandOptions& options);

// Check the combination of options; throws Error naming the problem.
void validate_trace_options(TraceCommandOptions& options);

TargetSpec target_spec(const TraceCommandOptions& options);

}  // namespace memobserve
