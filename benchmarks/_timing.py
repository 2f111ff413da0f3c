"""The timing rule the benchmarks share: one warm-up call, then the best of ``repeats``."""
from __future__ import annotations

import time
from typing import Callable


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn``, after one untimed warm-up
    (first-call allocations, kernel selection, file caches)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
