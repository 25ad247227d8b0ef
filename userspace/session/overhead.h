// Cost of the allocator probes to the traced processes: the time of one probe
// hit, measured at start-up, and the share of the targets' CPU time that the
// hits take while tracing.
#pragma once

#include <cstdint>

namespace memobserve {

class BpfSession;

// Time of one allocator probe hit on this machine, in nanoseconds: a child of
// memobserve times malloc and free pairs without probes, then traced with
// probes on its libc, and the difference is divided by the hits the BPF
// programs counted. What the child recorded is deleted afterwards. Returns 0
// when the measurement failed.
double measure_probe_cost_ns(BpfSession& bpf);

// CPU time (user and system) that process `pid` has used, in seconds; 0 when
// the process is gone. The traps of the probes count as its system time.
double process_cpu_seconds(int pid);

// Over one interval: the estimated share of the targets' CPU time spent in
// allocator probes, in percent.
double probe_share_percent(std::uint64_t probe_hits, double probe_cost_ns, double target_cpu_seconds);

}  // namespace memobserve
