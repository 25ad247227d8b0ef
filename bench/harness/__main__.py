"""Command line of the overhead benchmark: python3 -m harness [options].
bench/run installs the tools, builds, and calls this as root."""

import argparse
import dataclasses
import json
import pathlib
import shlex
import sys
import tempfile

from . import detach_safety, docs, report, runner, self_cost, setup, targets

DEFAULT_JSON = setup.REPOSITORY / "bench" / "results" / "latest.json"
QUICK_JSON = setup.REPOSITORY / "bench" / "results" / "quick.json"
DEFAULT_DOCS = setup.REPOSITORY / "docs" / "performance.md"
# memobserve's default for -p. Stacks are stored under a 31-bit hash of
# their frames, so 10000 stacks fit with room to spare.
SELF_COST_MAX_STACKS = 16384


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Measure what memobserve and other tracers cost a workload, side by side "
                    "with unobserved runs, and memobserve's own CPU and memory.")
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and smaller workloads (about 4 minutes instead of 8 to 10)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="observed runs (each beside a bare run) per workload and observer "
                             "(default: 5, or 3 with --quick)")
    parser.add_argument("--json", type=pathlib.Path, metavar="PATH",
                        help=f"where to write the results as JSON (default: {DEFAULT_JSON}, "
                             f"or {QUICK_JSON} with --quick)")
    parser.add_argument("--update-docs", nargs="?", const=DEFAULT_DOCS, type=pathlib.Path,
                        metavar="PATH",
                        help=f"rewrite the Overhead section of PATH (default: {DEFAULT_DOCS})")
    parser.add_argument("--workload", action="append", metavar="TEXT",
                        help="run only workloads whose name contains TEXT (repeatable)")
    parser.add_argument("--observer", action="append", metavar="TEXT",
                        help="run only observers whose name contains TEXT (repeatable)")
    parser.add_argument("--no-self-cost", action="store_true",
                        help="skip the measure of memobserve's own CPU and memory")
    parser.add_argument("--self-cost-max-stacks", type=int, default=SELF_COST_MAX_STACKS,
                        metavar="N",
                        help="memobserve --max-stacks for the self-cost measure, in stacks "
                             f"(default: {SELF_COST_MAX_STACKS})")
    parser.add_argument("--detach-runs", type=int, metavar="N",
                        help="runs of each detach-safety scenario, 0 to skip them "
                             "(default: 10, or 3 with --quick)")
    arguments = parser.parse_args(argv)
    if arguments.rounds is not None and arguments.rounds < 1:
        parser.error(f"invalid --rounds {arguments.rounds}: expected 1 or more")
    if arguments.detach_runs is not None and arguments.detach_runs < 0:
        parser.error(f"invalid --detach-runs {arguments.detach_runs}: expected 0 or more")
    return arguments


def selected(names: list[str] | None, name: str) -> bool:
    return names is None or any(text in name for text in names)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    problems = setup.check_prerequisites()
    if problems:
        for problem in problems:
            print(f"bench/run: {problem}", file=sys.stderr)
        return 1

    sizes = setup.QUICK if arguments.quick else setup.FULL
    if arguments.rounds is not None:
        sizes = setup.Sizes(**{**sizes.__dict__, "rounds": arguments.rounds})
    json_path = arguments.json or (QUICK_JSON if arguments.quick else DEFAULT_JSON)
    command = shlex.join(["sudo", "bash", "bench/run", *argv])
    observers = [observer for observer in setup.OBSERVERS
                 if selected(arguments.observer, observer.name)]
    workloads = [workload for workload in setup.workloads(sizes)
                 if selected(arguments.workload, workload.name)]

    comparisons = []
    costs = []
    with tempfile.TemporaryDirectory(prefix="memobserve-bench-") as scratch_name:
        scratch = pathlib.Path(scratch_name)
        for workload in workloads:
            comparisons += runner.compare(workload, observers, sizes.rounds, scratch)
        for state in () if arguments.no_self_cost else self_cost.STATES:
            runner.log(f"[self cost] memobserve top with 10000 sites, {state} target, for "
                       f"{sizes.self_cost_seconds:.0f} s")
            costs.append(self_cost.measure(state, sizes.self_cost_seconds,
                                           arguments.self_cost_max_stacks,
                                           scratch / "self-cost"))
        detach_runs = arguments.detach_runs
        if detach_runs is None:
            detach_runs = 3 if arguments.quick else 10
        safety = []
        for scenario in ("exit", "guard") if detach_runs > 0 else ():
            runner.log(f"[detach safety] {scenario}: {detach_runs} runs with 30 threads of new "
                       "and delete")
            safety.append(detach_safety.measure(scenario, detach_runs, scratch / "detach"))

    checks = targets.check_all(comparisons, costs)
    host = report.machine()
    print(f"Machine: {report.machine_line(host)}")
    print()
    print(report.text_table(report.HEADERS, report.comparison_rows(comparisons, checks)))
    print()
    print(report.text_table(["target", "workload", "observer", "measured", "result"],
                            [[check.target, check.workload, check.observer, check.measured,
                              report.verdict(check.passed)] for check in checks]))
    if costs:
        print()
        print("memobserve's own cost with 10000 live sites:")
        print(report.text_table(report.self_cost_headers(costs),
                                report.self_cost_rows(costs, checks)))

    if safety:
        print()
        print("Detaching during 30 threads of new and delete:")
        print(report.text_table(report.SAFETY_HEADERS, report.safety_rows(safety)))

    results = report.to_json(comparisons, costs, checks, host, command, sizes)
    results["detach_safety"] = [dataclasses.asdict(result) for result in safety]
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nResults written to {json_path}")
    if arguments.update_docs:
        docs.update(arguments.update_docs,
                    docs.section(comparisons, costs, checks, host, command, sizes,
                                 results["finished_at"], safety))
        print(f"Overhead section written to {arguments.update_docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
