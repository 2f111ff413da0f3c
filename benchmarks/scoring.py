"""Time bisep's fast BSS-Eval against mir_eval, and measure how far apart they are.

    python benchmarks/scoring.py              # 100 pairs of 2 sources x 4 s at 16 kHz
    python benchmarks/scoring.py --pairs 10   # quicker

Each pair is two references (harmonic tones plus noise) and two partial separations
(reference + leakage of the other source + noise). Both backends score the same pairs in
the same process (``compute_permutation=False``), pair by pair and alternating so that
load from other processes hits both alike, after one untimed pair each (imports, first
calls). Prints the time of each, the speed ratio and
the largest absolute difference in dB over SDR, SIR and SAR.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from bisep.metrics import bss_eval_sources


def make_pairs(n_pairs: int, seconds: float, rate: int, seed: int):
    """``(references, estimates)``, each ``(n_pairs, 2, seconds * rate)`` float64."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate

    def source():
        f0 = rng.uniform(80, 500)
        harmonics = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * t
                                                         + rng.uniform(0, 2 * np.pi))
                        for k in range(1, 9) if f0 * k < rate / 2)
        return harmonics + rng.uniform(0.01, 0.1) * rng.standard_normal(t.size)

    refs = np.stack([np.stack([source(), source()]) for _ in range(n_pairs)])
    leak = rng.uniform(0.05, 0.5, size=(n_pairs, 2, 1))
    noise = rng.uniform(0.01, 0.1, size=(n_pairs, 2, 1)) * rng.standard_normal(refs.shape)
    return refs, refs + leak * refs[:, ::-1] + noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100, help="number of pairs (default 100)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each (default 4)")
    parser.add_argument("--rate", type=int, default=16000, help="sample rate (default 16000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    refs, ests = make_pairs(args.pairs, args.seconds, args.rate, args.seed)
    backends = ("fast", "mir_eval")
    times = dict.fromkeys(backends, 0.0)
    scores = {backend: [] for backend in backends}
    for backend in backends:
        bss_eval_sources(refs[0], ests[0], backend=backend)  # warm-up, not timed
    # Pair by pair, alternating, so that load from other processes hits both alike.
    for ref, est in zip(refs, ests):
        for backend in backends:
            start = time.perf_counter()
            scores[backend].append(bss_eval_sources(ref, est, backend=backend))
            times[backend] += time.perf_counter() - start

    print(f"{args.pairs} pairs of 2 sources x {args.seconds:g} s at {args.rate} Hz")
    for backend, seconds in times.items():
        print(f"  {backend:<9} {seconds:8.2f} s  ({1000 * seconds / args.pairs:6.1f} ms/pair)")
    print(f"  speed ratio mir_eval / fast: {times['mir_eval'] / times['fast']:.1f}x")
    fast, reference = np.array(scores["fast"]), np.array(scores["mir_eval"])  # (pairs, 3, 2)
    for k, name in enumerate(("sdr", "sir", "sar")):
        diff = np.abs(fast[:, k] - reference[:, k]).max()
        print(f"  max |{name} fast - mir_eval| = {diff:.2e} dB")


if __name__ == "__main__":
    main()
