"""memobserve's own CPU time and resident memory while its live view refreshes
once a second on a process with 10000 live allocation sites, idle or busy."""

import dataclasses
import os
import pathlib
import queue
import signal
import subprocess
import threading
import time

from .setup import MEMOBSERVE, WORKLOAD_BINARIES

SITE_COUNT = 10000
# Seconds between the first refresh that shows every site and the start of
# the measured window, so that the window shows the steady state and not the
# first symbolization of the sites.
SETTLE_SECONDS = 2.0
START_TIMEOUT_SECONDS = 60.0
FIRST_REFRESH_TIMEOUT_SECONDS = 300.0
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


# The workload's behaviour once its sites are allocated, by state.
STATES = {
    "idle": "waits",
    "busy": "frees one block and allocates it again every 10 ms",
}


@dataclasses.dataclass
class SelfCost:
    state: str  # a key of STATES
    max_stacks: int
    first_full_refresh_seconds: float = 0.0  # from the allocation to a refresh showing it
    window_seconds: float = 0.0
    cpu_percent_of_one_core: float = 0.0  # steady state, in the window
    cpu_percent_whole_run: float = 0.0  # from start to the end of the window
    cpu_seconds_whole_run: float = 0.0
    resident_mib: float = 0.0  # VmRSS at the end of the window
    peak_resident_mib: float = 0.0  # VmHWM
    bpf_map_mib: float = 0.0  # kernel memory of its BPF maps, not part of VmRSS
    refreshes: int = 0  # in the measured window
    sites_shown: int = 0  # site rows of the last refresh, with the "more sites" it counts
    traced_reported: str = ""  # the live view's "traced:" line of its last refresh
    drops_reported: str = ""  # the live view's "drops:" line of its last refresh
    failure: str | None = None


def cpu_seconds(pid: int) -> float:
    """User plus system time of `pid`, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat_file:
        text = stat_file.read()
    # Fields after the command name, which may contain spaces, start after ')'.
    fields = text[text.rindex(")") + 2:].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / CLOCK_TICKS_PER_SECOND


def status_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status_file:
        for line in status_file:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no {field} in /proc/{pid}/status")


def bpf_map_mib(pid: int) -> float:
    """Sum the "memlock" bytes that /proc/PID/fdinfo shows for each BPF map
    file descriptor of `pid`."""
    total = 0
    fd_directory = pathlib.Path(f"/proc/{pid}/fd")
    for fd in fd_directory.iterdir():
        try:
            if os.readlink(fd) != "anon_inode:bpf-map":
                continue
            info = pathlib.Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue  # closed since the directory was listed
        for line in info.splitlines():
            if line.startswith("memlock:"):
                total += int(line.split()[1])
    return total / (1 << 20)


def read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def wait_for_line(lines: queue.Queue, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for '{prefix}'")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            raise EOFError(f"output ended before '{prefix}'")
        if line.startswith(prefix):
            return line


def wait_for_traced_calls(lines: queue.Queue, calls: int, timeout: float) -> None:
    """Wait for a "traced: allocated X in N calls" line with N >= `calls`."""
    deadline = time.monotonic() + timeout
    while True:
        line = wait_for_line(lines, "traced:", max(0.0, deadline - time.monotonic()))
        words = line.split()
        if "calls," in words and int(words[words.index("calls,") - 1]) >= calls:
            return


def drain(lines: queue.Queue) -> None:
    while True:
        try:
            if lines.get_nowait() is None:
                return
        except queue.Empty:
            return


def measure(state: str, window_seconds: float, max_stacks: int,
            scratch: pathlib.Path) -> SelfCost:
    """Start the many_sites workload and `memobserve -p PID` piped, let the
    workload allocate its sites once probes are attached, and sample
    memobserve's CPU time and memory over `window_seconds` while the workload
    is in `state`."""
    result = SelfCost(state=state, max_stacks=max_stacks)
    arguments = ["busy"] if state == "busy" else []
    workload = subprocess.Popen([str(WORKLOAD_BINARIES / "many_sites"), *arguments],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    observer = None
    scratch.mkdir(parents=True, exist_ok=True)
    error_log = open(scratch / f"memobserve-top-{state}.stderr", "w+")
    try:
        if workload.stdout.readline().strip() != "waiting":
            raise RuntimeError("many_sites did not start")
        observer = subprocess.Popen(
            [str(MEMOBSERVE), "top", "-p", str(workload.pid), "--interval", "1",
             "--max-stacks", str(max_stacks), "--max-overhead", "none"],
            stdout=subprocess.PIPE, stderr=error_log, text=True)
        started = time.monotonic()
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=read_lines, args=(observer.stdout, lines), daemon=True).start()

        # The first refresh means that the probes are attached.
        wait_for_line(lines, "memobserve ", START_TIMEOUT_SECONDS)
        workload.stdin.write("go\n")
        workload.stdin.flush()
        if not workload.stdout.readline().startswith("allocated"):
            raise RuntimeError("many_sites did not allocate its sites")
        allocated = time.monotonic()

        # The first refresh that counts every site also symbolized them.
        wait_for_traced_calls(lines, SITE_COUNT, FIRST_REFRESH_TIMEOUT_SECONDS)
        result.first_full_refresh_seconds = time.monotonic() - allocated
        time.sleep(SETTLE_SECONDS)
        drain(lines)
        window_start_cpu = cpu_seconds(observer.pid)
        window_start = time.monotonic()
        time.sleep(window_seconds)
        window_end_cpu = cpu_seconds(observer.pid)
        window_end = time.monotonic()

        result.window_seconds = window_end - window_start
        result.cpu_percent_of_one_core = (
            100 * (window_end_cpu - window_start_cpu) / result.window_seconds)
        result.cpu_seconds_whole_run = window_end_cpu
        result.cpu_percent_whole_run = 100 * window_end_cpu / (window_end - started)
        result.resident_mib = status_mib(observer.pid, "VmRSS")
        result.peak_resident_mib = status_mib(observer.pid, "VmHWM")
        result.bpf_map_mib = bpf_map_mib(observer.pid)
        collect_view_lines(lines, result)
    except (OSError, RuntimeError, TimeoutError, EOFError, ValueError) as error:
        error_log.seek(0)
        reason = error_log.read().strip().splitlines()
        result.failure = f"failed: {error}" + (f" ({reason[-1]})" if reason else "")
    finally:
        if observer:
            observer.send_signal(signal.SIGINT)
            try:
                observer.wait(timeout=60)
            except subprocess.TimeoutExpired:
                observer.kill()
                observer.wait()
        workload.stdin.close()
        workload.wait(timeout=30)
        error_log.close()
    return result


def collect_view_lines(lines: queue.Queue, result: SelfCost) -> None:
    """Count the refreshes printed so far and keep the numbers of the last
    complete one. A refresh starts with "memobserve  TIME" and ends with its
    site rows, the last of which may be "(N more sites)"."""
    rows = None
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            return
        if line is None:
            return
        if line.startswith("memobserve "):
            result.refreshes += 1
            rows = None
        elif line.startswith("traced:"):
            result.traced_reported = line
        elif line.startswith("drops:"):
            result.drops_reported = line
        elif line.strip().startswith("RESIDENT"):
            rows = 0
        elif rows is not None and line.startswith("(") and line.endswith("more sites)"):
            result.sites_shown = rows + int(line[1:].split()[0])
        elif rows is not None and line.strip():
            rows += 1
            result.sites_shown = rows
