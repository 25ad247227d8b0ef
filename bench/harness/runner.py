"""Run workloads bare and under observers, alternating, and keep the times."""

import dataclasses
import os
import pathlib
import signal
import statistics
import subprocess
import sys

from .setup import Observer, Workload

RESULT_TAG = "memobserve-bench:"
RUN_TIMEOUT_SECONDS = 600


class RunFailed(Exception):
    """A run that exited with an error, timed out or printed no result line."""


@dataclasses.dataclass
class RunResult:
    wall_ns: int
    cpu_ns: int
    operations: int
    unit: str


@dataclasses.dataclass
class Comparison:
    """Every run of one workload under one observer and its paired baselines."""

    workload: str
    observer: str
    command: list[str]
    baseline: list[RunResult] = dataclasses.field(default_factory=list)
    observed: list[RunResult] = dataclasses.field(default_factory=list)
    failure: str | None = None

    @property
    def operations(self) -> int:
        return self.observed[0].operations if self.observed else 0

    @property
    def unit(self) -> str:
        return self.observed[0].unit if self.observed else ""

    def median_wall_seconds(self, runs: list[RunResult]) -> float:
        return statistics.median(run.wall_ns for run in runs) / 1e9

    def median_cpu_ns_per_operation(self, runs: list[RunResult]) -> float:
        return statistics.median(run.cpu_ns / run.operations for run in runs)

    @property
    def ratio(self) -> float:
        """Median observed wall time over median baseline wall time."""
        return self.median_wall_seconds(self.observed) / self.median_wall_seconds(self.baseline)

    @property
    def baseline_spread(self) -> float:
        """(slowest - fastest) / median of the bare wall times: the noise that
        any ratio of this comparison carries."""
        walls = [run.wall_ns for run in self.baseline]
        return (max(walls) - min(walls)) / statistics.median(walls)

    @property
    def cpu_ratio(self) -> float:
        """Median observed CPU time over median baseline CPU time."""
        return (self.median_cpu_ns_per_operation(self.observed) /
                self.median_cpu_ns_per_operation(self.baseline))


def parse_result(stdout: str) -> RunResult:
    for line in stdout.splitlines():
        if not line.startswith(RESULT_TAG):
            continue
        fields = dict(item.split("=", 1) for item in line[len(RESULT_TAG):].split())
        return RunResult(int(fields["wall_ns"]), int(fields["cpu_ns"]),
                         int(fields["operations"]), fields["unit"])
    raise RunFailed("the workload printed no result line")


def failure_reason(stderr: str) -> str:
    """Pick the line of `stderr` that most likely names the cause of a failed run."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # bpftrace warns about RLIMIT_MEMLOCK on every start, even when it works.
    lines = [line for line in lines if "RLIMIT_MEMLOCK" not in line]
    for line in lines:
        if "error" in line.lower() or "failed" in line.lower():
            return line[:160]
    return lines[-1][:160] if lines else "no error output"


def run_once(command: list[str], environment: dict, scratch: pathlib.Path) -> RunResult:
    """Run `command` to completion and return its result line."""
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        # A session of its own, so that a timeout ends the observer and the
        # workload it started.
        process = subprocess.Popen(command, cwd=scratch, env={**os.environ, **environment},
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as error:
        raise RunFailed(f"failed to start {command[0]}: {error.strerror}") from error
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as error:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise RunFailed(f"timed out after {RUN_TIMEOUT_SECONDS} s") from error
    if process.returncode != 0:
        raise RunFailed(f"exit status {process.returncode}: {failure_reason(stderr)}")
    try:
        return parse_result(stdout)
    except RunFailed as error:
        raise RunFailed(f"{error}: {failure_reason(stderr)}") from error


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def compare(workload: Workload, observers: list[Observer], rounds: int,
            scratch: pathlib.Path) -> list[Comparison]:
    """Run `workload` under each observer `rounds` times, each observed run
    next to a bare run of the same command. The order of the pair flips every
    round, so that drift and other load on the machine hit both sides."""
    comparisons = []
    for observer in observers:
        command, _ = observer.command(workload.command(observer), scratch)
        comparisons.append(Comparison(workload.name, observer.name, command))

    # One bare run of each command first, so that no measured run pays for a
    # cold page cache.
    for command in {tuple(workload.command(observer)) for observer in observers}:
        try:
            run_once(list(command), {}, scratch)
        except RunFailed as error:
            for comparison in comparisons:
                comparison.failure = f"baseline failed: {error}"
            return comparisons

    for round_index in range(rounds):
        for observer, comparison in zip(observers, comparisons):
            if comparison.failure:
                continue
            run_pair(workload, observer, comparison, scratch, observed_first=round_index % 2 == 1)
            if comparison.observed and not comparison.failure:
                log(f"[{workload.name}] round {round_index + 1}/{rounds} {observer.name}: "
                    f"{comparison.observed[-1].wall_ns / 1e9:.4f} s, "
                    f"bare {comparison.baseline[-1].wall_ns / 1e9:.4f} s")
    return comparisons


def run_pair(workload: Workload, observer: Observer, comparison: Comparison,
             scratch: pathlib.Path, observed_first: bool) -> None:
    bare_command = workload.command(observer)
    observed_command, environment = observer.command(bare_command, scratch)
    steps = [("observed", observed_command, environment), ("baseline", bare_command, {})]
    if not observed_first:
        steps.reverse()

    results = {}
    for side, command, step_environment in steps:
        try:
            results[side] = run_once(command, step_environment, scratch)
        except RunFailed as error:
            prefix = "baseline failed: " if side == "baseline" else "failed: "
            comparison.failure = f"{prefix}{error}"
            log(f"[{workload.name}] {observer.name}: {comparison.failure}")
            return
    comparison.baseline.append(results["baseline"])
    comparison.observed.append(results["observed"])
