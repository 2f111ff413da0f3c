"""Keep freed memory in the process between training steps (glibc's malloc).

A CPU training step allocates and frees the same large tensors every step: activations,
their gradients, the weak step's phrase rows (8 to 16 MB each on the synth_music recipe).
With glibc's default settings, blocks over the mmap threshold come from fresh ``mmap``
pages and freed memory at the top of the heap goes back to the system once it passes the
trim threshold, so every step pays a page fault per 4 KiB the first time it writes those
tensors again. In ``torch.profiler`` that cost lands on whichever kernel first writes the
memory: a ``fill_`` or an element-wise backward taking many times its usual time.
:func:`keep_freed_memory` serves blocks up to the largest mmap threshold glibc allows from
the heap and keeps freed heap memory for the next step, so the same blocks are reused;
the process's memory stops shrinking between steps (its peak did not grow in
``benchmarks/train_step.py``). jemalloc and tcmalloc, which PyTorch's CPU performance
notes suggest preloading, keep freed memory too; calling ``mallopt`` needs neither.
"""
from __future__ import annotations

import ctypes
import platform

# mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
# glibc refuses an mmap threshold above half its largest heap (32 MiB on 64-bit systems).
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 256 << 20


def keep_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed memory across steps instead of returning it.

    Process-wide and lasting; call it once, before training. Outside glibc (macOS,
    Windows, musl) it does nothing.

    Returns:
        True when every setting was taken, False where there is no glibc ``mallopt``.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                (M_TOP_PAD, TOP_PAD))
    # Every setting is tried, even after one is refused: each helps on its own.
    taken = [mallopt(param, value) == 1 for param, value in settings]
    return all(taken)
