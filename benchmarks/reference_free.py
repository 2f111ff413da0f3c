"""Time of the reference-free score (``bisep score --reference-free``) against the BSS-Eval
score (``bisep score``, fast backend) of the same items, on CPU.

    python benchmarks/reference_free.py                # 64 items of 4 s, two sources each
    python benchmarks/reference_free.py --smoke        # 4 items of 1 s: checks the script

Each item is a mixture of two random harmonic tones at 16 kHz with its references and
(noisy) estimates as wav files, listed the way ``bisep separate --list`` lists them. The
query encoder is mini_clap (random audio tower, the real text tower); its text embeddings are
computed once per distinct query, its audio embeddings once per estimate and mixture. Each
time is the best of ``--repeats`` runs after one warm-up; the last line is the reference-free
time over BSS-Eval's, both measured in the same run (below 1: the proxy is the cheaper one).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from _timing import best_time  # benchmarks/_timing.py

from bisep.apps.reference_free import score_reference_free
from bisep.conditioners.mini_clap import MiniClapConditioner
from bisep.metrics.files import items_from_list
from bisep.metrics.report import score_files

SR = 16000
SOURCES = ("violin", "flute")


def write_items(root: Path, n_items: int, seconds: float) -> Path:
    """``root/items.jsonl`` and its wav files; returns the list's path."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    lines = []
    for i in range(n_items):
        refs = [0.2 * np.sin(2 * np.pi * rng.uniform(100, 800) * t * k) / k
                for k in (1, 2)]
        mix = refs[0] + refs[1]
        entry = {"id": f"item{i}", "mixture": f"{i}/mix.wav", "sources": {}, "estimates": {},
                 "queries": {}}
        (root / str(i)).mkdir()
        sf.write(root / str(i) / "mix.wav", mix, SR, subtype="FLOAT")
        for name, ref in zip(SOURCES, refs):
            est = ref + 0.05 * rng.standard_normal(len(t))
            sf.write(root / str(i) / f"{name}.wav", ref, SR, subtype="FLOAT")
            sf.write(root / str(i) / f"{name}_est.wav", est, SR, subtype="FLOAT")
            entry["sources"][name] = f"{i}/{name}.wav"
            entry["estimates"][name] = f"{i}/{name}_est.wav"
            entry["queries"][name] = f"the sound of a {name}"
        lines.append(json.dumps(entry))
    (root / "items.jsonl").write_text("\n".join(lines) + "\n")
    return root / "items.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script")
    args = parser.parse_args()
    if args.smoke:
        args.items, args.seconds, args.repeats = 4, 1.0, 1
    torch.set_num_threads(1)
    torch.manual_seed(0)
    audio_conf = {"channels": [4, 4, 8, 16]} if args.smoke else None
    with warnings.catch_warnings():  # random weights are what a timing needs
        warnings.simplefilter("ignore", UserWarning)
        encoder = MiniClapConditioner(audio_conf=audio_conf).eval()
    with tempfile.TemporaryDirectory() as tmp:
        listed = write_items(Path(tmp), args.items, args.seconds)
        items = items_from_list(listed)
        bss = best_time(lambda: score_files(items), args.repeats)
        proxy = best_time(lambda: score_reference_free(encoder, items), args.repeats)
    print(f"{args.items} items of {args.seconds:g} s, {len(SOURCES)} sources, 1 thread")
    print(f"  BSS-Eval (fast)     {bss:8.3f} s")
    print(f"  reference-free      {proxy:8.3f} s")
    print(f"  time ratio reference-free / BSS-Eval: {proxy / bss:.2f}x")


if __name__ == "__main__":
    main()
