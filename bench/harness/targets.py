"""The overhead targets and their checks against measured comparisons."""

import dataclasses

from .runner import Comparison
from .self_cost import SelfCost

MALLOC_LOOPS = ("malloc loop, 1 thread", "malloc loop, 4 threads")
FULL = "memobserve"
NO_ALLOC_PROBES = "memobserve --no-alloc-probes"
FLOOR = "empty probes, same places"


@dataclasses.dataclass
class TargetCheck:
    workload: str
    observer: str
    target: str  # what must hold, in words
    measured: str  # the measured value, in the target's unit
    passed: bool | None  # None when the measurement failed


def find(comparisons: list[Comparison], workload: str, observer: str) -> Comparison | None:
    for comparison in comparisons:
        if comparison.workload == workload and comparison.observer == observer:
            return comparison
    return None


def ratio_check(comparisons, workload, limit) -> TargetCheck | None:
    """Check the slowdown of `workload` under --no-alloc-probes. Both the
    wall-time and the CPU-time ratio must hold, because wall time shows what
    the target feels and CPU time is less disturbed by other load."""
    comparison = find(comparisons, workload, NO_ALLOC_PROBES)
    if comparison is None:
        return None
    target = f"ratio <= {limit:.2f}x"
    if comparison.failure:
        return TargetCheck(workload, NO_ALLOC_PROBES, target, comparison.failure, None)
    wall, cpu = comparison.ratio, comparison.cpu_ratio
    return TargetCheck(workload, NO_ALLOC_PROBES, target, f"wall {wall:.3f}x, CPU {cpu:.3f}x",
                       wall <= limit and cpu <= limit)


def floor_check(comparisons, workload) -> TargetCheck | None:
    """Check memobserve's CPU time per malloc/free pair against the CPU time
    per pair of empty programs on the same instructions. The measured value
    also gives the difference in ns per pair: the cost of memobserve's own
    programs."""
    full = find(comparisons, workload, FULL)
    floor = find(comparisons, workload, FLOOR)
    if full is None or floor is None:
        return None
    target = "per pair <= 1.10x empty probes"
    failure = full.failure or floor.failure
    if failure:
        return TargetCheck(workload, FULL, target, failure, None)
    full_ns = full.median_cpu_ns_per_operation(full.observed)
    floor_ns = floor.median_cpu_ns_per_operation(floor.observed)
    share = full_ns / floor_ns
    return TargetCheck(workload, FULL, target,
                       f"{share:.3f}x ({full_ns:.0f} against {floor_ns:.0f} ns, "
                       f"{full_ns - floor_ns:+.0f} ns per pair)", share <= 1.10)


def check_all(comparisons: list[Comparison], self_costs: list[SelfCost]) -> list[TargetCheck]:
    checks = []
    for workload in MALLOC_LOOPS:
        checks.append(ratio_check(comparisons, workload, 1.02))
    checks.append(ratio_check(comparisons, "first touch", 1.20))
    for workload in MALLOC_LOOPS:
        checks.append(floor_check(comparisons, workload))
    for cost in self_costs:
        checks.extend(self_cost_checks(cost))
    return [check for check in checks if check is not None]


def self_cost_workload(cost: SelfCost) -> str:
    return f"10000 live sites, {cost.state}"


def self_cost_checks(cost: SelfCost) -> list[TargetCheck]:
    workload = self_cost_workload(cost)
    observer = "memobserve -p PID, 1 s refresh"
    cpu_target = "CPU < 2% of one core"
    memory_target = "resident < 100 MiB"
    if cost.failure:
        return [TargetCheck(workload, observer, cpu_target, cost.failure, None),
                TargetCheck(workload, observer, memory_target, cost.failure, None)]
    return [
        TargetCheck(workload, observer, cpu_target, f"{cost.cpu_percent_of_one_core:.1f}%",
                    cost.cpu_percent_of_one_core < 2.0),
        TargetCheck(workload, observer, memory_target,
                    f"{cost.peak_resident_mib:.1f} MiB (peak)", cost.peak_resident_mib < 100.0),
    ]
