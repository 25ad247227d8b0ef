"""Overhead benchmark of memobserve: workloads run side by side with and
without an observer, alternating, and compared by their medians."""
