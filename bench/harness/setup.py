"""Workloads and observers of the overhead benchmark, and the run sizes."""

import dataclasses
import os
import pathlib

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
BUILD = REPOSITORY / "build"
MEMOBSERVE = BUILD / "memobserve"
WORKLOAD_BINARIES = BUILD / "bench"
EMPTY_PROBES = WORKLOAD_BINARIES / "empty_probes"
OBSERVER_SCRIPTS = REPOSITORY / "bench" / "observers"
PYTHON_SCRIPT = REPOSITORY / "bench" / "workloads" / "alloc_heavy.py"

# Debian's own interpreter, not one found first on PATH.
DEBIAN_PYTHON = "/usr/bin/python3"
# The bpftrace scripts name this file in their probes (Debian 12, x86-64).
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"

# Entries of bpftrace's maps, as many as memobserve's live-allocation map.
BPFTRACE_MAP_ENTRIES = 524288


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Iteration counts of one benchmark profile (full or quick)."""

    rounds: int
    # Malloc/free pairs per thread, for observers that trap on every
    # allocator call and for the others. One count for both would make the
    # trapped runs take minutes or the untrapped ones too short to time.
    pairs_trapped: int
    pairs_untrapped: int
    first_touch_mib: int
    churn_cycles: int
    python_rounds: int
    self_cost_seconds: float


FULL = Sizes(rounds=5, pairs_trapped=50_000, pairs_untrapped=100_000_000,
             first_touch_mib=1024, churn_cycles=100_000, python_rounds=50,
             self_cost_seconds=20.0)
QUICK = Sizes(rounds=3, pairs_trapped=10_000, pairs_untrapped=10_000_000,
              first_touch_mib=256, churn_cycles=20_000, python_rounds=10,
              self_cost_seconds=8.0)


@dataclasses.dataclass(frozen=True)
class Observer:
    """A way to run a workload command: bare, or under a tracing tool."""

    name: str
    description: str
    # True when every allocator call of the workload takes a uprobe trap.
    traps_allocations: bool

    def command(self, workload: list[str], scratch: pathlib.Path) -> tuple[list[str], dict]:
        """Return the argument vector and extra environment that run
        `workload` under this observer, with files written below `scratch`."""
        if self.name == "none":
            return workload, {}
        if self.name == "memobserve":
            # The guard would detach the probes whose cost is measured here.
            return [str(MEMOBSERVE), "snapshot", "--duration", "3600", "--max-overhead", "none",
                    "--output", str(scratch / "memobserve.json"), "--", *workload], {}
        if self.name == "memobserve --no-alloc-probes":
            return [str(MEMOBSERVE), "snapshot", "--no-alloc-probes", "--duration", "3600",
                    "--output", str(scratch / "memobserve.json"), "--", *workload], {}
        if self.name == "empty probes, same places":
            return [str(EMPTY_PROBES), *workload], {}
        if self.name == "empty uprobes, entries":
            return bpftrace_command("empty_uprobes.bt", workload), {}
        if self.name == "bpftrace equivalent":
            return (bpftrace_command("alloc_sites.bt", workload),
                    {"BPFTRACE_MAP_KEYS_MAX": str(BPFTRACE_MAP_ENTRIES)})
        if self.name == "heaptrack":
            return ["heaptrack", "--output", str(scratch / "heaptrack"), *workload], {}
        raise ValueError(f"unknown observer {self.name!r}")


def bpftrace_command(script: str, workload: list[str]) -> list[str]:
    # bpftrace -c splits its command at spaces and has no quoting.
    if any(any(character.isspace() for character in argument) for argument in workload):
        raise ValueError(f"bpftrace -c cannot run a command with spaces in an argument: {workload}")
    return ["bpftrace", str(OBSERVER_SCRIPTS / script), "-c", " ".join(workload)]


BASELINE = Observer("none", "the workload alone", traps_allocations=False)
OBSERVERS = [
    Observer("memobserve", "memobserve snapshot: every layer, allocator probes included",
             traps_allocations=True),
    Observer("memobserve --no-alloc-probes",
             "memobserve snapshot --no-alloc-probes: mapped, faulted and resident only",
             traps_allocations=False),
    Observer("empty probes, same places",
             "bench/floor/empty_probes: empty BPF programs on the same instructions as "
             "memobserve's allocator probes, entry and return (the floor)",
             traps_allocations=True),
    Observer("empty uprobes, entries",
             "bpftrace, empty programs on the first instruction of the same allocator functions, "
             "where uprobe tools usually probe",
             traps_allocations=True),
    Observer("bpftrace equivalent",
             "bpftrace, bytes per stack, live-block map, mmap and faults per stack",
             traps_allocations=True),
    Observer("heaptrack", "heaptrack 1.4, in-process through LD_PRELOAD",
             traps_allocations=False),
]


@dataclasses.dataclass(frozen=True)
class Workload:
    """A benchmark program and how to size it for an observer."""

    name: str
    description: str
    binary: str  # file below WORKLOAD_BINARIES, or DEBIAN_PYTHON
    arguments_trapped: tuple[str, ...]
    arguments_untrapped: tuple[str, ...]

    def command(self, observer: Observer) -> list[str]:
        arguments = self.arguments_trapped if observer.traps_allocations else self.arguments_untrapped
        if self.binary == DEBIAN_PYTHON:
            return [DEBIAN_PYTHON, str(PYTHON_SCRIPT), *arguments]
        return [str(WORKLOAD_BINARIES / self.binary), *arguments]


def workloads(sizes: Sizes) -> list[Workload]:
    pairs_trapped_4 = max(1, sizes.pairs_trapped // 4)
    pairs_untrapped_4 = max(1, sizes.pairs_untrapped // 4)
    return [
        Workload("malloc loop, 1 thread", "malloc/free pairs of 16 to 256 bytes",
                 "malloc_loop", ("1", str(sizes.pairs_trapped)),
                 ("1", str(sizes.pairs_untrapped))),
        Workload("malloc loop, 4 threads", "the same pairs split over 4 threads",
                 "malloc_loop", ("4", str(pairs_trapped_4)), ("4", str(pairs_untrapped_4))),
        Workload("first touch", f"write one byte per 4 KiB page of {sizes.first_touch_mib} MiB",
                 "first_touch", (str(sizes.first_touch_mib),), (str(sizes.first_touch_mib),)),
        Workload("mmap churn", "mmap 64 KiB, write one byte, munmap",
                 "mmap_churn", (str(sizes.churn_cycles),), (str(sizes.churn_cycles),)),
        Workload("python3 alloc_heavy.py", "Debian's python3 building and dropping objects",
                 DEBIAN_PYTHON, (str(sizes.python_rounds),), (str(sizes.python_rounds),)),
    ]


def check_prerequisites() -> list[str]:
    """Return what is missing to run the benchmark, as messages."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root: BPF programs and uprobes need root (run: sudo bash bench/run)")
    if not MEMOBSERVE.exists():
        problems.append(f"{MEMOBSERVE} not found: build first (bash scripts/build.sh)")
    if not (WORKLOAD_BINARIES / "malloc_loop").exists() or not EMPTY_PROBES.exists():
        problems.append(f"workloads not found in {WORKLOAD_BINARIES}: build first")
    if not pathlib.Path(DEBIAN_PYTHON).exists():
        problems.append(f"{DEBIAN_PYTHON} not found: apt-get install python3")
    if not pathlib.Path(LIBC).exists():
        problems.append(f"{LIBC} not found: the bpftrace scripts expect Debian's x86-64 glibc")
    return problems
