"""The cost of one click of "Separate" on the demo page against the separation alone.

    python benchmarks/demo_request.py                              # 10 s clip, best of 3
    python benchmarks/demo_request.py --model exp/weak/model.pth   # a trained model
    python benchmarks/demo_request.py --smoke                      # 3 s clip, one run

A request of ``bisep demo`` (:func:`bisep.demo.separation.separate_for_page`) separates
the mixture with :meth:`bisep.inference.Separator.separate`, then writes the target and
the residual as WAVs and draws three spectrograms (matplotlib). This prints the best wall
time of each over ``--repeats`` runs on the same clip (a 16 kHz mono harmonic signal, one
query) and their ratio: what the page's extras add to the separation. Without ``--model``
the separator is ``film_masknet`` small with a ``mini_clap`` query encoder built without a
checkpoint (random audio tower, real MiniLM text tower), as the other benchmarks build it.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: see inference_memory.py

import numpy as np  # noqa: E402
from _timing import best_time  # noqa: E402  (benchmarks/_timing.py)

RATE = 16000


def build_separator(model: str | None):
    from bisep.inference import Separator
    from bisep.registry import get_registry

    if model:
        return Separator.from_pretrained(model)
    registry = get_registry()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="mini_clap was built without a checkpoint")
        conditioner = registry.build("conditioner", "mini_clap", checkpoint=None)
    separator = registry.build("separator", "film_masknet", preset="small",
                               query_dim=conditioner.embed_dim)
    return Separator(separator, conditioner)


def clip(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wav = sum(0.1 * np.sin(2 * np.pi * 220 * k * t) / k for k in (1, 2, 3, 4))
    return wav[None].astype(np.float32)  # (1, time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a model.pth or model folder (default: random "
                                        "film_masknet small)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument("--smoke", action="store_true", help="3 s clip, one run")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.repeats = 3.0, 1

    import torch

    from bisep.demo.separation import separate_for_page
    from bisep.demo.uploads import build_queries

    sep = build_separator(args.model)
    wav = clip(args.seconds, RATE)
    queries, names = build_queries("the sound of a violin")
    with tempfile.TemporaryDirectory() as out:
        # Warm-up, as `bisep demo` does at start: the text tower loads on its first query,
        # matplotlib its fonts on its first figure.
        separate_for_page(sep, (wav, RATE), queries, names, out)
        alone = best_time(lambda: sep.separate(wav, queries, RATE), args.repeats)
        page = best_time(lambda: separate_for_page(sep, (wav, RATE), queries, names, out),
                    args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seconds:g} s "
          f"clip, best of {args.repeats}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'case':34s} {'seconds':>8s} {'RTF':>7s}")
    for name, seconds in (("Separator.separate", alone), ("separate_for_page (demo)", page)):
        print(f"{name:34s} {seconds:8.3f} {seconds / args.seconds:7.3f}")
    print(f"page / separation {page / alone:.2f}x")


if __name__ == "__main__":
    main()
