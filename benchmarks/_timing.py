"""The timing rules the benchmarks share: one warm-up call, then the best of ``repeats``;
a wall clock that waits for a GPU's queued work."""
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


def wall_clock(device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` (a ``torch.device``) is
    done: kernels run asynchronously, so an unsynchronised clock times their launch."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
    return time.perf_counter()
