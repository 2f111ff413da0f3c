"""bisep.train.allocator: glibc's malloc keeps freed memory from one step to the next."""
import platform
import subprocess
import sys

import pytest

# One "step" allocates and writes blocks of 1 to 30 MiB (as a training step's activations
# and gradients), then frees them all; the child prints the minor page faults of each step.
STEPS = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from bisep.train.allocator import keep_freed_memory
    assert keep_freed_memory()
def step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.empty(mib << 18).fill_(1.0) for mib in (1, 9, 4, 17, 30, 2, 12, 25, 6, 20)]
    del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(*[step() for _ in range(6)])
"""


def faults(setting: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", STEPS, setting], capture_output=True,
                         text=True, check=True)
    return [int(n) for n in out.stdout.split()]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_freed_memory_is_reused_by_the_next_step():
    default, kept = faults("default"), faults("keep")
    # The first step faults its pages in either way (126 MiB: some 32,000 pages).
    assert default[0] > 20000 and kept[0] > 20000
    # With glibc's defaults the first step's blocks were mmap'd and went back to the system,
    # so the second step faults them in again from the heap; with the setting they stay.
    # Later steps are not compared: glibc raises its mmap threshold after the first free, so
    # the default often settles too, and either may fault a few thousand pages while the
    # heap's holes settle (seen on a loaded CI machine).
    assert kept[1] < 0.5 * default[1]


def test_elsewhere_it_does_nothing(monkeypatch):
    from bisep.train import allocator

    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_memory() is False
