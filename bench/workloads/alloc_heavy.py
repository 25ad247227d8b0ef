"""Allocation-heavy Python program for the overhead benchmark.

Each round builds records (small objects from CPython's own pymalloc arenas),
lists and strings of more than 512 bytes (which CPython takes from malloc and
realloc), indexes them in dicts, and drops everything.

Usage: python3 alloc_heavy.py [ROUNDS]
Prints the benchmark result line (wall and CPU time of the rounds).
"""

import sys
import time


class Record:
    __slots__ = ("key", "values", "label")

    def __init__(self, key, values, label):
        self.key = key
        self.values = values
        self.label = label


def build_round(round_index):
    records = []
    for i in range(2000):
        values = list(range(i % 200))
        label = ("item-%d-" % i) * (1 + i % 120)
        records.append(Record(i + round_index, values, label))

    by_key = {record.key: record for record in records}
    by_label = {}
    for record in records:
        by_label.setdefault(len(record.label) % 97, []).append(record.key)

    text = ",".join(record.label for record in records[:500])
    return len(by_key) + len(by_label) + len(text)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if rounds <= 0:
        sys.exit(f"alloc_heavy.py: invalid round count {rounds}: expected a positive integer")

    wall_start = time.perf_counter_ns()
    cpu_start = time.process_time_ns()
    checksum = 0
    for round_index in range(rounds):
        checksum += build_round(round_index)
    cpu_ns = time.process_time_ns() - cpu_start
    wall_ns = time.perf_counter_ns() - wall_start

    print(f"memobserve-bench: wall_ns={wall_ns} cpu_ns={cpu_ns} operations={rounds} "
          f"unit=round checksum={checksum}", flush=True)


if __name__ == "__main__":
    main()
