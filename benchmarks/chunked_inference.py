"""Chunked inference against one pass over the same long file: agreement (SNR) and time.

    python benchmarks/chunked_inference.py --model exp/weak/model.pth \\
        --manifest data/test.jsonl --minutes 10        # a trained model, test mixtures end to end
    python benchmarks/chunked_inference.py --smoke      # random film_masknet small, 30 s of tones

The long file is the manifest's mixtures (its ``audio`` paths, relative to the manifest's
folder) put end to end up to ``--minutes``; without ``--manifest``, tones whose level and
pitch change every 3 s over white noise. Each setting of :class:`bisep.inference.Separator`
separates it with the same queries (``--queries``):

- ``one pass``: ``chunk_seconds=None``, the reference;
- ``chunk stats``: 8 s chunks, 25% cross-faded, every chunk normalised by its own
  GroupNorm statistics (``norm_stats="chunk"``);
- ``file stats``: the same chunks run twice, the second time with the file's statistics
  (``norm_stats="file"``, the default);
- ``file stats + Ns``: and ``N`` seconds of context on each side (``--context``).

Per setting: seconds (best of ``--repeats`` after a warm-up, ``benchmarks/_timing.py``),
the real-time factor, the SNR of its output against the one-pass output over all queries,
the largest absolute difference, and the median distance of the 100 largest differences
to the nearest chunk seam (seconds), which tells seams from what each chunk sees. The last
line is the time of the default setting over the single-run ``chunk stats`` setting.

``OMP_WAIT_POLICY=PASSIVE`` is set unless the environment sets it (see
``benchmarks/inference_memory.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

CHUNK_SECONDS = 8.0
OVERLAP = 0.25


def long_file(manifest: str | None, minutes: float, rate: int) -> np.ndarray:
    """Shape: output ``(1, minutes * 60 * rate)`` float32 (or the manifest's total)."""
    from bisep import audio as audio_io

    want = int(minutes * 60 * rate)
    if manifest is None:
        rng = np.random.default_rng(0)
        t = np.arange(3 * rate) / rate
        parts = [rng.uniform(0.02, 0.5) * np.sin(2 * np.pi * rng.uniform(110, 1760) * t)
                 + 0.01 * rng.standard_normal(t.size) for _ in range(-(-want // t.size))]
        return np.concatenate(parts)[None, :want].astype(np.float32)
    root, parts, have = Path(manifest).parent, [], 0
    with open(manifest) as f:
        for line in f:
            if have >= want:
                break
            wav, sr = audio_io.read(root / json.loads(line)["audio"])
            wav = audio_io.resample_audio(wav.mean(0, keepdims=True), sr, rate)
            parts.append(wav)
            have += wav.shape[1]
    return np.concatenate(parts, axis=1)[:, :want]


def build(model: str | None):
    """A Separator (one pass) from ``model``, or a random ``film_masknet`` small."""
    from bisep.inference import Separator
    from bisep.registry import get_registry

    if model is not None:
        return Separator.from_pretrained(model, chunk_seconds=None)
    import warnings

    registry = get_registry()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="mini_clap was built without a checkpoint")
        conditioner = registry.build("conditioner", "mini_clap", checkpoint=None)
    torch.manual_seed(0)
    separator = registry.build("separator", "film_masknet", preset="small",
                               query_dim=conditioner.embed_dim)
    with torch.no_grad():  # FiLM starts as the identity: give the queries an effect
        for name, param in separator.named_parameters():
            if "film" in name:
                param.normal_(0, 0.02)
    return Separator(separator, conditioner, chunk_seconds=None)


def snr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((estimate - reference) ** 2),
                                                            1e-30)))


def seam_distance(estimate: np.ndarray, reference: np.ndarray, rate: int) -> float:
    """Median distance (s) of the 100 largest differences to the nearest chunk seam."""
    size = int(CHUNK_SECONDS * rate)
    step = size - int(size * OVERLAP)
    diff = np.abs(estimate - reference).reshape(-1, estimate.shape[-1]).max(0)
    worst = np.argsort(diff)[-100:]
    # Seams: where a chunk's cross-fade begins and ends.
    seams = np.concatenate([np.arange(step, diff.size, step),
                            np.arange(size, diff.size, step)])
    return float(np.median(np.abs(worst[:, None] - seams[None]).min(1)) / rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a model.pth or model folder (default: random "
                        "film_masknet small)")
    parser.add_argument("--manifest", help="a test.jsonl whose mixtures make the long file")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--queries", nargs="+", default=["violin", "flute"])
    parser.add_argument("--context", type=float, nargs="*", default=[1.024, 2.048],
                        help="context seconds per side to try with file statistics")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="random model, 30 s, one context")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.manifest, args.minutes, args.context = None, None, 0.5, [1.024]
    torch.set_num_threads(args.threads)

    sep = build(args.model)
    rate = sep.sample_rate
    wav = long_file(args.manifest, args.minutes, rate)
    seconds = wav.shape[1] / rate
    settings = [("one pass", None, "file", 0.0), ("chunk stats", CHUNK_SECONDS, "chunk", 0.0),
                ("file stats", CHUNK_SECONDS, "file", 0.0)]
    settings += [(f"file stats + {c:g}s", CHUNK_SECONDS, "file", c) for c in args.context]
    print(f"{seconds:.0f} s at {rate} Hz, queries {args.queries}, {CHUNK_SECONDS:g} s chunks, "
          f"overlap {OVERLAP}, {args.threads} thread(s), load average {os.getloadavg()[0]:.2f}")
    print(f"{'setting':<22}{'seconds':>9}{'RTF':>8}{'SNR dB':>9}{'max diff':>10}"
          f"{'seam s':>8}")
    reference, times = None, {}
    for name, chunk, stats, context in settings:
        sep.chunk_seconds, sep.norm_stats, sep.context_seconds = chunk, stats, context
        out = [None]

        def run():
            out[0] = sep.separate_array(wav, args.queries, rate)
        times[name] = best_time(run, args.repeats)
        if reference is None:
            reference = out[0]
            print(f"{name:<22}{times[name]:>9.2f}{times[name] / seconds:>8.4f}")
            continue
        print(f"{name:<22}{times[name]:>9.2f}{times[name] / seconds:>8.4f}"
              f"{snr_db(out[0], reference):>9.2f}{np.abs(out[0] - reference).max():>10.4f}"
              f"{seam_distance(out[0], reference, rate):>8.2f}")
    print(f"file stats / chunk stats time {times['file stats'] / times['chunk stats']:.2f}x")


if __name__ == "__main__":
    main()
