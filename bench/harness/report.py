"""Tables, JSON and the docs section of the overhead benchmark."""

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess

from .runner import Comparison
from .self_cost import SelfCost
from .targets import TargetCheck, self_cost_workload

HEADERS = ["workload", "observer", "runs", "operations", "median s", "bare median s",
           "bare spread", "ratio", "CPU ratio", "CPU ns/op", "bare CPU ns/op", "target",
           "result"]


def verdict(passed: bool | None) -> str:
    if passed is None:
        return "not measured"
    return "pass" if passed else "FAIL"


def comparison_rows(comparisons: list[Comparison], checks: list[TargetCheck]) -> list[list[str]]:
    rows = []
    for comparison in comparisons:
        row_checks = [check for check in checks
                      if check.workload == comparison.workload
                      and check.observer == comparison.observer]
        target = "; ".join(check.target for check in row_checks)
        result = "; ".join(f"{verdict(check.passed)} ({check.measured})" for check in row_checks
                           if check.passed is not None)
        if comparison.failure or not comparison.observed:
            reason = comparison.failure or "failed: no run finished"
            rows.append([comparison.workload, comparison.observer, "0", "", "", "", "",
                         reason, "", "", "", target, verdict(None) if target else ""])
            continue
        observed, bare = comparison.observed, comparison.baseline
        rows.append([
            comparison.workload,
            comparison.observer,
            str(len(observed)),
            f"{comparison.operations} {comparison.unit}s",
            f"{comparison.median_wall_seconds(observed):.4f}",
            f"{comparison.median_wall_seconds(bare):.4f}",
            f"{100 * comparison.baseline_spread:.0f}%",
            f"{comparison.ratio:.3f}x",
            f"{comparison.cpu_ratio:.3f}x",
            f"{comparison.median_cpu_ns_per_operation(observed):.0f}",
            f"{comparison.median_cpu_ns_per_operation(bare):.0f}",
            target,
            result,
        ])
    return rows


def self_cost_headers(costs: list[SelfCost]) -> list[str]:
    return ["measure", *(f"{cost.state} target" for cost in costs)]


def self_cost_rows(costs: list[SelfCost], checks: list[TargetCheck]) -> list[list[str]]:
    """Lay out one row per measure and one column per workload state."""
    def verdict_of(cost: SelfCost, target_start: str) -> str:
        check = next((check for check in checks
                      if check.workload == self_cost_workload(cost)
                      and check.target.startswith(target_start)), None)
        return verdict(check.passed) if check else ""

    def cells(render) -> list[str]:
        return [cost.failure if cost.failure else render(cost) for cost in costs]

    return [
        ["sites in the last refresh", *cells(lambda cost: f"{cost.sites_shown} "
                                                          f"({cost.drops_reported})")],
        ["first refresh with every site",
         *cells(lambda cost: f"{cost.first_full_refresh_seconds:.1f} s after the allocation")],
        ["refreshes in the window",
         *cells(lambda cost: f"{cost.refreshes} in {cost.window_seconds:.1f} s")],
        ["CPU in the window (target < 2%)",
         *cells(lambda cost: f"{cost.cpu_percent_of_one_core:.1f}% of one core: "
                             f"{verdict_of(cost, 'CPU')}")],
        ["CPU from start to window end",
         *cells(lambda cost: f"{cost.cpu_seconds_whole_run:.2f} s "
                             f"({cost.cpu_percent_whole_run:.1f}% of one core)")],
        ["resident, VmRSS and peak VmHWM (target < 100 MiB)",
         *cells(lambda cost: f"{cost.resident_mib:.1f} MiB, peak {cost.peak_resident_mib:.1f} "
                             f"MiB: {verdict_of(cost, 'resident')}")],
        ["BPF maps (kernel memory, not in VmRSS)",
         *cells(lambda cost: f"{cost.bpf_map_mib:.1f} MiB")],
        ["stack map capacity", *cells(lambda cost: f"--max-stacks {cost.max_stacks}")],
    ]


SAFETY_HEADERS = ["scenario", "runs", "target crashed", "guard tripped", "exit time (median)"]


def safety_rows(results) -> list[list[str]]:
    rows = []
    for result in results:
        if result.failure:
            rows.append([result.scenario, str(result.runs), result.failure, "", ""])
            continue
        tripped = f"{result.guard_tripped} of {result.runs}" if result.scenario == "guard" else "off"
        rows.append([result.scenario, str(result.runs),
                     f"{result.crashes} of {result.runs}: {verdict(result.crashes == 0)}",
                     tripped, f"{result.exit_seconds:.2f} s"])
    return rows


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers))] + [line(row) for row in rows])


def command_version(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    output = (completed.stdout + completed.stderr).strip().splitlines()
    return output[0] if output else "unknown"


def package_version(package: str) -> str:
    return command_version(["dpkg-query", "-W", "-f=${Version}", package])


def machine() -> dict:
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    debian = pathlib.Path("/etc/debian_version")
    return {
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "debian": debian.read_text().strip() if debian.exists() else "unknown",
        "bpftrace": package_version("bpftrace"),
        "heaptrack": package_version("heaptrack"),
        "python3": package_version("python3"),
        "glibc": package_version("libc6"),
    }


def to_json(comparisons, costs, checks, host, command, sizes) -> dict:
    def runs(results):
        return [dataclasses.asdict(result) for result in results]

    return {
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "machine": host,
        "sizes": dataclasses.asdict(sizes),
        "comparisons": [
            {
                "workload": comparison.workload,
                "observer": comparison.observer,
                "command": comparison.command,
                "failure": comparison.failure,
                "ratio": comparison.ratio if comparison.observed and not comparison.failure
                else None,
                "cpu_ratio": comparison.cpu_ratio
                if comparison.observed and not comparison.failure else None,
                "observed": runs(comparison.observed),
                "baseline": runs(comparison.baseline),
            }
            for comparison in comparisons
        ],
        "self_cost": [dataclasses.asdict(cost) for cost in costs],
        "targets": [dataclasses.asdict(check) for check in checks],
    }


def machine_line(host: dict) -> str:
    return (f"{host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB RAM, "
            f"kernel {host['kernel']}, Debian {host['debian']}; bpftrace {host['bpftrace']}, "
            f"heaptrack {host['heaptrack']}, python3 {host['python3']}, glibc {host['glibc']}")
