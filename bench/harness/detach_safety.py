"""Whether detaching memobserve's allocator probes leaves a busy target alive.

Thirty threads of the cxx_cases workload call operator new and delete without
pause while memobserve traces them, so that threads are inside the probed
functions whenever probes go. Two ways the probes go:

- exit: memobserve is stopped with Ctrl-C (SIGINT), the guard off;
- guard: the overhead guard (default budget) detaches the allocator probes,
  then memobserve is stopped.

A target that is gone a second later (killed by a signal) counts as a crash.
"""

import dataclasses
import pathlib
import queue
import signal
import statistics
import subprocess
import threading
import time

from .setup import BUILD, MEMOBSERVE

WORKLOAD = BUILD / "workloads" / "cxx_cases"
THREADS = 30
TRACED_SECONDS = 2.0
GUARD_TIMEOUT_SECONDS = 30.0
ATTACH_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass
class DetachSafety:
    scenario: str  # "exit" or "guard"
    runs: int = 0
    crashes: int = 0
    guard_tripped: int = 0  # guard runs in which the guard detached the probes
    exit_seconds: float = 0.0  # median time from SIGINT to memobserve's exit
    failure: str | None = None


def read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def wait_for(lines: queue.Queue, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            return False
        if line is None:
            return False
        if text in line:
            return True
    return False


def one_run(scenario: str, result: DetachSafety, exit_times: list[float],
            scratch: pathlib.Path) -> None:
    target = subprocess.Popen([str(WORKLOAD), "threads", str(THREADS), "1000000000"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tracer = None
    try:
        if target.stdout.readline().strip() != "ready":
            raise RuntimeError("cxx_cases did not start")
        target.stdin.write("go\n")
        target.stdin.flush()
        command = [str(MEMOBSERVE), "snapshot", "-p", str(target.pid), "-o",
                   str(scratch / f"detach-{scenario}.json")]
        if scenario == "exit":
            command += ["--max-overhead", "none"]
        tracer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=read_lines, args=(tracer.stderr, lines), daemon=True).start()
        if not wait_for(lines, "memobserve: tracing", ATTACH_TIMEOUT_SECONDS):
            tracer.wait(timeout=10)
            raise RuntimeError(f"memobserve did not attach (exit status {tracer.returncode})")
        if scenario == "guard":
            if wait_for(lines, "allocator probes detached", GUARD_TIMEOUT_SECONDS):
                result.guard_tripped += 1
        time.sleep(TRACED_SECONDS)
        stopped = time.monotonic()
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=120)
        exit_times.append(time.monotonic() - stopped)
        time.sleep(1.0)
        result.runs += 1
        if target.poll() is not None:
            result.crashes += 1
    finally:
        if tracer and tracer.poll() is None:
            tracer.kill()
            tracer.wait()
        if target.poll() is None:
            target.kill()
        target.wait()


def measure(scenario: str, runs: int, scratch: pathlib.Path) -> DetachSafety:
    result = DetachSafety(scenario=scenario)
    exit_times: list[float] = []
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        for _ in range(runs):
            one_run(scenario, result, exit_times, scratch)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        result.failure = f"failed: {error}"
    if exit_times:
        result.exit_seconds = statistics.median(exit_times)
    return result
