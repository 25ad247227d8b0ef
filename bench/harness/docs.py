"""The "## Overhead" section of docs/performance.md, rewritten from a run.
Other sections of the file stay as they are."""

import pathlib
import re

from . import report, self_cost
from .setup import OBSERVERS, Sizes

SECTION_HEADING = "## Overhead"
ANALYSIS_HEADING = "### Analysis"


def section(comparisons, costs, checks, host, command, sizes: Sizes, finished_at: str,
            safety=()) -> str:
    observers = "\n".join(f"- **{observer.name}**: {observer.description}."
                          for observer in OBSERVERS)
    target_rows = [[check.target, check.workload, check.observer, check.measured,
                    report.verdict(check.passed)] for check in checks]
    parts = [
        SECTION_HEADING,
        "",
        f"Measured with `{command}`, finished {finished_at}.",
        "",
        f"Machine: {report.machine_line(host)}.",
        "",
        "How the numbers are made:",
        "",
        "- Each workload times its own measured loop (wall clock, and the CPU time of "
        "all its threads from getrusage) and prints it, so the start-up and teardown "
        "of an observer are not counted.",
        f"- For each observer, every round runs the same workload command bare and "
        f"observed, in an order that flips each round (rounds: {sizes.rounds}). Bare runs "
        "are paired with the observer they sit next to.",
        "- ratio: median observed wall time over median bare wall time. CPU ratio: the "
        "same with the process's CPU time, which includes the BPF programs and uprobe "
        "traps that run in the target's context, and which other load on the machine "
        "disturbs less. CPU ns/op: median over runs of the CPU time divided by the "
        "operations (for 4 threads this is CPU time, not wall time, per pair).",
        "- bare spread: (slowest - fastest) / median of the bare runs. A ratio closer "
        "to 1 than this spread is within the noise of the run.",
        "- A --no-alloc-probes target holds only when both the wall and the CPU ratio "
        "hold. The full-mode target compares CPU ns per pair with the empty probes' on "
        "the same instructions: what memobserve adds to the uprobe traps themselves.",
        f"- The malloc loops run {sizes.pairs_trapped} pairs under observers that take a "
        f"uprobe trap on every allocator call (memobserve, the empty probes, bpftrace "
        f"equivalent) and {sizes.pairs_untrapped} pairs under the others. So trapped runs "
        "stay short, and untrapped ones are long enough to time. Each ratio compares "
        "runs of equal size.",
        "- Other work on the machine during a run moves the bare times too, and the "
        "bare spread column shows by how much.",
        "",
        "Observers:",
        "",
        observers,
        "",
        "### Workloads under each observer",
        "",
        report.markdown_table(report.HEADERS, report.comparison_rows(comparisons, checks)),
        "",
        "### Targets",
        "",
        report.markdown_table(["target", "workload", "observer", "measured", "result"],
                              target_rows),
        "",
    ]
    if costs:
        parts += [
            "### memobserve's own cost with 10000 live sites",
            "",
            "The many_sites workload allocates one block at each of 10000 call sites "
            "after `memobserve top -p PID --interval 1` has attached. Then it "
            + "; or ".join(f"{description} ({state})"
                           for state, description in self_cost.STATES.items()
                           if any(cost.state == state for cost in costs))
            + ". On a busy target each residency pass reads the live-allocation map again. "
            "CPU is utime + stime from /proc/PID/stat over the window, which starts after "
            "the first refresh that shows every site. Memory is VmRSS and VmHWM from "
            "/proc/PID/status at its end, and the memlock bytes of its BPF maps from "
            "/proc/PID/fdinfo, which are kernel memory outside VmRSS.",
            "",
            report.markdown_table(report.self_cost_headers(costs),
                                  report.self_cost_rows(costs, checks)),
            "",
        ]
    if safety:
        parts += [
            "### Detaching while the target allocates",
            "",
            "Thirty threads of tests/workloads/cxx_cases call operator new and delete "
            "without pause while memobserve traces them, so that threads are inside the "
            "probed functions when the probes go. exit: memobserve is stopped with Ctrl-C "
            "(guard off). guard: the overhead guard detaches the allocator probes, then "
            "memobserve is stopped. A target that is gone a second later counts as crashed. "
            "Exit time: from SIGINT to memobserve's exit.",
            "",
            report.markdown_table(report.SAFETY_HEADERS, report.safety_rows(safety)),
            "",
        ]
    return "\n".join(parts)


def update(path: pathlib.Path, new_section: str) -> None:
    """Replace the Overhead section of `path`, from its heading to the next
    heading of the same level, or append it when the file has none. A
    hand-written "### Analysis" subsection of the old section is kept at the
    end of the new one."""
    text = path.read_text() if path.exists() else "# Performance\n"
    pattern = re.compile(rf"^{re.escape(SECTION_HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    replacement = new_section.rstrip("\n") + "\n\n"
    old_section = pattern.search(text)
    if old_section:
        analysis = re.search(rf"^{re.escape(ANALYSIS_HEADING)}\n.*?(?=^### |\Z)",
                             old_section.group(0), re.S | re.M)
        if analysis:
            replacement += analysis.group(0).rstrip("\n") + "\n\n"
        text = pattern.sub(lambda _: replacement, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + replacement
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
