"""Timing helper shared by the benchmarks (run them as scripts: ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def paired_times(fn_ours: Callable[[], object], fn_base: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall times of two functions run alternately after one warm-up call each.

    Alternating makes a change in machine load (the 2 cores are shared) hit both sides alike,
    so their ratio stays meaningful even when the absolute times drift.
    """
    fn_ours()
    fn_base()
    t_ours: list[float] = []
    t_base: list[float] = []
    for _ in range(repeats):
        for fn, times in ((fn_ours, t_ours), (fn_base, t_base)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(t_ours), statistics.median(t_base)
