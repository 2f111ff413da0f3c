"""Plan lines per second of ``bisep mix`` (``make_mom_plan``), against the sampler it had
before (a pass over every label-set group per part drawn).

    python benchmarks/mix_plan.py                    # about 20 s of CPU
    python benchmarks/mix_plan.py --lines 2000 --old-lines 100 --repeats 1
    python benchmarks/mix_plan.py --smoke    # manifests 1/50 the size: checks the script

Three synthetic manifests, shaped like the recipes' data:

- ``synth_music``: 10 labels, 2-4 per clip, 2,000 clips (a few hundred label sets);
- ``vggsound``: 300 labels, 1 per clip, 100,000 clips (300 label sets, but beyond 62
  labels the old sampler's bit masks are Python ints in object arrays);
- ``audiocaps``: a vocabulary of 20,000 caption phrases drawn with Zipf weights
  (1 / rank: a few phrases are in thousands of clips, most in none), 1-4 per clip (fewer
  when a draw repeats), 40,000 clips (nearly one label set per clip).

Both samplers draw 2-part plans with ``supervised_fraction=0.1`` (so both samplers of a
plan, all clips and the supervised subset, are used). The reference is a private copy of
the old ``_PartSampler``, swapped into :mod:`bisep.data.mom_plan` for its runs. For each
manifest it times plans of ``--old-lines`` (old) and ``--lines`` (new) lines, old and new
interleaved, each the best of ``--repeats`` runs; ``same`` checks that both wrote the same
``--old-lines`` plan (the new sampler picks the same clips from the same random stream).
lines/s counts the time spent in the samplers' ``draw`` (two parts per line); ``rest`` is
the rest of the plan's time (the vocabulary, the supervised subset, grouping the clips,
gains, line dicts), and the last two columns estimate a plan of ``--full`` lines (a large
corpus's) as ``rest`` + ``--full`` / lines/s. The load average is printed:
the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bisep.data import mom_plan


class OldPartSampler:
    """``bisep.data.mom_plan._PartSampler`` as it was before the label index (the reference)."""

    def __init__(self, items, vocabulary):
        groups: dict[int, list[str]] = {}
        for item in items:
            mask = sum(1 << vocabulary[label] for label in item["labels"])
            groups.setdefault(mask, []).append(item["id"])
        self.masks = np.array(list(groups), dtype=np.int64 if len(vocabulary) < 63 else object)
        self.members = list(groups.values())
        self.sizes = np.array([len(m) for m in self.members], dtype=np.float64)

    def draw(self, rng, num_parts, tries=100):
        for _ in range(tries):
            used, parts = 0, []
            for _ in range(num_parts):
                free = (self.masks & used) == 0
                if not free.any():
                    break
                weights = self.sizes * free
                group = int(rng.choice(len(self.masks), p=weights / weights.sum()))
                parts.append(self.members[group][int(rng.integers(len(self.members[group])))])
                used |= int(self.masks[group])
            if len(parts) == num_parts:
                return parts
        return None


def manifest(kind: str, seed: int = 0, scale: float = 1.0) -> list[dict]:
    """Synthetic manifest items (``id``, ``labels``) shaped like a recipe's data; ``scale``
    multiplies the number of clips (and the audiocaps vocabulary)."""
    rng = np.random.default_rng(seed)
    if kind == "synth_music":
        names = [f"instrument{k}" for k in range(10)]
        return [{"id": f"c{i:06d}", "labels": rng.choice(names, int(rng.integers(2, 5)),
                                                          replace=False).tolist()}
                for i in range(int(2000 * scale))]
    if kind == "vggsound":
        classes = rng.integers(0, 300, int(100_000 * scale))
        return [{"id": f"c{i:06d}", "labels": [f"class{c}"]} for i, c in enumerate(classes)]
    if kind == "audiocaps":
        clips = int(40_000 * scale)
        cdf = np.cumsum(1.0 / np.arange(1, int(20_000 * scale) + 1))
        draws = cdf.searchsorted(rng.random((clips, 4)) * cdf[-1], side="right")
        counts = rng.integers(1, 5, clips)
        return [{"id": f"c{i:06d}",
                 "labels": [f"phrase{k}" for k in dict.fromkeys(row[:count].tolist())]}
                for i, (row, count) in enumerate(zip(draws, counts))]
    raise ValueError(kind)


def plan(items, lines: int, sampler) -> tuple[list[dict], float, float]:
    """``(plan lines, plan seconds, seconds in draw)`` of ``make_mom_plan`` with
    ``sampler`` as ``_PartSampler``."""
    drawing = [0.0]

    class Timed(sampler):
        def draw(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return super().draw(*args, **kwargs)
            finally:
                drawing[0] += time.perf_counter() - start

    saved = mom_plan._PartSampler
    mom_plan._PartSampler = Timed
    try:
        start = time.perf_counter()
        out, _ = mom_plan.make_mom_plan(items, lines, num_parts=2, supervised_fraction=0.1, seed=0)
        return out, time.perf_counter() - start, drawing[0]
    finally:
        mom_plan._PartSampler = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=5000, help="new sampler's plan lines")
    parser.add_argument("--old-lines", type=int, default=300, help="old sampler's plan lines")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--full", type=int, default=150_000,
                        help="plan size of the last two columns (default 150,000)")
    parser.add_argument("--smoke", action="store_true",
                        help="manifests 1/50 the size, 200/20-line plans, one repeat: checks "
                             "the script, the times mean little")
    args = parser.parse_args()
    scale = 1.0
    if args.smoke:
        scale, args.lines, args.old_lines, args.repeats = 0.02, 200, 20, 1
    samplers = {"old": (OldPartSampler, args.old_lines), "new": (mom_plan._PartSampler, args.lines)}
    print(f"load average {os.getloadavg()[0]:.2f}; 2-part plans, supervised_fraction 0.1; "
          f"old: {args.old_lines} lines, new: {args.lines} lines; best of {args.repeats}")
    print(f"{'manifest':<12}{'clips':>7}{'labels':>7}{'groups':>7}{'same':>6}"
          f"{'rest old s':>11}{'rest new s':>11}{'old lines/s':>12}{'new lines/s':>12}"
          f"{'speed-up':>9}{f'{args.full} old s':>15}{f'{args.full} new s':>15}")
    for kind in ("synth_music", "vggsound", "audiocaps"):
        items = manifest(kind, scale=scale)
        labels = len({lab for item in items for lab in item["labels"]})
        groups = len({frozenset(item["labels"]) for item in items})
        best = {}
        for _ in range(args.repeats):  # interleaved, so that load hits both alike
            for name, (sampler, lines) in samplers.items():
                out, seconds, drawing = plan(items, lines, sampler)
                if name not in best or drawing < best[name][1]:
                    best[name] = (seconds - drawing, drawing)
                if name == "old":
                    old_plan = out
        same = plan(items, args.old_lines, mom_plan._PartSampler)[0] == old_plan
        rate = {name: lines / best[name][1] for name, (_, lines) in samplers.items()}
        full = {name: best[name][0] + args.full / rate[name] for name in samplers}
        print(f"{kind:<12}{len(items):>7}{labels:>7}{groups:>7}{'yes' if same else 'NO':>6}"
              f"{best['old'][0]:>11.2f}{best['new'][0]:>11.2f}{rate['old']:>12.0f}"
              f"{rate['new']:>12.0f}{rate['new'] / rate['old']:>8.1f}x"
              f"{full['old']:>15.1f}{full['new']:>15.1f}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
