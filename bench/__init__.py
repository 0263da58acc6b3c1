"""Benchmarks run on demand (``make bench``), never part of the test suite.

Every script puts all its contenders through the same array, chunks and codec in one run on one
machine and prints absolute figures (seconds, MiB/s, peak RSS) next to ratios. See docs/benchmarks.md.
"""
