"""Time bisep's fast BSS-Eval against mir_eval, and measure how far apart they are.

    python benchmarks/scoring.py              # 64 pairs of 2 sources x 4 s at 16 kHz
    python benchmarks/scoring.py --pairs 16   # quicker
    python benchmarks/scoring.py --mixture    # what `bisep score` computes with mixtures
    python benchmarks/scoring.py --smoke      # seconds: checks that the script runs

Each pair is two references (harmonic tones plus noise) and two partial separations
(reference + leakage of the other source + noise). Both backends score the same pairs in
the same process (``compute_permutation=False``), after one untimed call each (imports,
first calls). The fast backend scores ``--batch`` pairs per call, as ``bisep score``
does (its recursion steps are shared by a batch); mir_eval scores one pair per call (its
only form). Batch by batch, alternating, so that load from other processes hits both
alike. ``--batch 1`` times the fast backend one pair per call. ``--mixture`` times
:func:`bisep.metrics.score_item` with the mixture instead (as ``bisep score --mix-dir``
does: the mixture's SDR as well, for SDRi), and compares SDR, SIR, SAR and SDRi.

Prints the time of each, the speed ratio (``speed ratio mir_eval / fast: N.Nx``) and the
largest absolute difference in dB over SDR, SIR and SAR.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bisep.metrics import bss_eval_sources, score_item


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
    parser.add_argument("--pairs", type=int, default=64, help="number of pairs (default 64)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each (default 4)")
    parser.add_argument("--rate", type=int, default=16000, help="sample rate (default 16000)")
    parser.add_argument("--batch", type=int, default=16,
                        help="pairs per call of the fast backend (default 16)")
    parser.add_argument("--mixture", action="store_true",
                        help="time score_item with the mixture (SDRi), as bisep score does")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true",
                        help="4 pairs of 0.25 s: checks the script, the times mean little")
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.seconds, args.batch = 4, 0.25, 2

    refs, ests = make_pairs(args.pairs, args.seconds, args.rate, args.seed)
    mixes = refs.sum(axis=1)
    names = ("sdr", "sir", "sar", "sdri") if args.mixture else ("sdr", "sir", "sar")

    def scores_of(backend, chunk):
        if not args.mixture:
            return np.array(bss_eval_sources(refs[chunk], ests[chunk], backend=backend))
        scores = score_item(refs[chunk], ests[chunk], mixes[chunk], backend=backend)
        return np.stack([scores[name] for name in names])  # (metrics, pairs, 2)

    print(f"{args.pairs} pairs of 2 sources x {args.seconds:g} s at {args.rate} Hz"
          f"{', with the mixture' if args.mixture else ''}; fast: {args.batch} pairs per "
          f"call; load average {os.getloadavg()[0]:.2f}", flush=True)
    for backend in ("fast", "mir_eval"):  # warm-up, not timed
        scores_of(backend, slice(0, 1))
    times = {"fast": 0.0, "mir_eval": 0.0}
    scores = {"fast": [], "mir_eval": []}
    for start in range(0, args.pairs, args.batch):
        chunk = slice(start, start + args.batch)
        begin = time.perf_counter()
        scores["fast"].append(scores_of("fast", chunk))
        times["fast"] += time.perf_counter() - begin
        begin = time.perf_counter()  # mir_eval scores one pair per call whatever the batch
        scores["mir_eval"].append(np.concatenate(
            [scores_of("mir_eval", slice(i, i + 1)) for i in range(*chunk.indices(args.pairs))],
            axis=1))
        times["mir_eval"] += time.perf_counter() - begin

    for backend, seconds in times.items():
        print(f"  {backend:<9} {seconds:8.2f} s  ({1000 * seconds / args.pairs:6.1f} ms/pair)")
    print(f"  speed ratio mir_eval / fast: {times['mir_eval'] / times['fast']:.1f}x")
    fast = np.concatenate(scores["fast"], axis=1)
    reference = np.concatenate(scores["mir_eval"], axis=1)
    for k, name in enumerate(names):
        diff = np.abs(fast[k] - reference[k]).max()
        print(f"  max |{name} fast - mir_eval| = {diff:.2e} dB")
    print(f"  load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
