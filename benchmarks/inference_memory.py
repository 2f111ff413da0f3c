"""Peak memory of chunked inference on a long file against one-pass inference on a short
one: chunking keeps the working memory bounded by the chunk, not the file.

    python benchmarks/inference_memory.py                    # 10 min vs 60 s, ~3 min on 2 cores
    python benchmarks/inference_memory.py --max-chunks 0     # every chunk of every model (slow)
    python benchmarks/inference_memory.py --models film_masknet:small --short-seconds 20
    python benchmarks/inference_memory.py --smoke    # film_masknet:small, 30 s vs 4 s

For each model (``NAME:PRESET``; default ``cond_unet:paper``, the default preset, and
``film_masknet:small``) three fresh processes each build a :class:`bisep.inference.Separator`
(the separator with ``query_dim``/``token_dim`` set to the conditioner's, and the
``mini_clap`` conditioner with ``checkpoint=None``: random audio tower, real MiniLM text
tower) and embed the queries:

- ``baseline`` stops there;
- ``chunked`` then reads a ``--long-minutes`` 16 kHz WAV and separates it with
  ``chunk_seconds=8, overlap=0.25`` (the defaults of ``Separator``);
- ``one pass`` reads a ``--short-seconds`` WAV and separates it with ``chunk_seconds=None``.

Peak RSS is each child's own high-water mark (``VmHWM`` in ``/proc/self/status``, the
figure ``getrusage(RUSAGE_SELF).ru_maxrss`` reports), read by the child as it finishes. Two
things keep it from measuring model loading instead of inference. Loading briefly needs more
than the models keep, and a small model's inference fits under that transient peak, so each
child resets its peak (``echo 5 > /proc/self/clear_refs``, Linux 4.0+) once the models are
built and the queries embedded: the baseline's peak is then the built models' resident size.
And the parent does not read the children's ``ru_maxrss`` (``RUSAGE_CHILDREN`` or
``os.wait4``): that includes the helper processes a child forks while it imports (each
starts as a copy of the child at its size then), which hides the reset.
``working`` is a
case's peak minus its model's baseline peak: what inference itself needs, the file's samples
and the separated output included. The ``I/O`` column is the part of it that must grow
with the file: the float32 input plus one float32 output per query.

Every chunk does the same work and ``Separator`` allocates the full-length input and output
before the first chunk, so the peak is reached within the first chunks. The paper-size
``cond_unet`` takes ~10 s per 8 s chunk on 2 loaded cores (100 chunks for 10 minutes), so by
default its chunked run stops after 3 chunks (``--max-chunks``; the table says how many
ran); the other models separate the whole file. Wall time and RTF (seconds of processing per
second of audio actually processed) are printed per case. The paper preset's one-pass 60 s
needs about 7 GB.

``OMP_WAIT_POLICY=PASSIVE`` is set unless the environment sets it: on cores shared with
other jobs, OpenMP threads that spin while waiting made ``film_masknet`` small 10-80x slower
with 2 threads than with 1 (the spinning thread holds the core its partner needs).
"""
from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP; see above

SR = 16000
CHUNK_SECONDS = 8.0
OVERLAP = 0.25
PROMPTS = ["the sound of a violin", "the sound of a flute", "the sound of a trumpet",
           "the sound of a piano", "the sound of a cello", "the sound of a clarinet"]
SLOW_PRESETS = {("cond_unet", "paper"): 3}  # default chunk cap (chunks take ~10 s each)


class _Stop(Exception):
    """Raised from the progress callback to end a capped chunked run."""


# -- child: one case in a fresh process ------------------------------------------------------
def build_separator(model: str, preset: str, chunk_seconds: float | None):
    import warnings

    from bisep.inference import Separator
    from bisep.registry import get_registry

    registry = get_registry()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="mini_clap was built without a checkpoint")
        conditioner = registry.build("conditioner", "mini_clap", checkpoint=None)
    conf = {"preset": preset, "query_dim": conditioner.embed_dim}
    if "token_dim" in inspect.signature(registry.factory("separator", model)).parameters:
        conf["token_dim"] = conditioner.token_dim
    separator = registry.build("separator", model, **conf)
    return Separator(separator, conditioner, chunk_seconds=chunk_seconds, overlap=OVERLAP)


def reset_peak_rss() -> bool:
    """Set this process's peak RSS (``ru_maxrss``, VmHWM) to its current RSS (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kib() -> float:
    """This process's peak RSS in KiB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child(spec: dict) -> None:
    import torch

    from bisep import audio as audio_io

    torch.set_num_threads(spec["threads"])
    sep = build_separator(spec["model"], spec["preset"], spec["chunk_seconds"])
    queries = spec["queries"]
    sep.condition(queries)  # fills the text-embedding cache, as a warm CLI would
    gc.collect()
    result = {"chunks": 0, "total_chunks": 0, "seconds": 0.0, "audio_seconds": 0.0,
              "peak_reset": reset_peak_rss()}
    if spec["case"] != "baseline":
        wav, rate = audio_io.read(spec["wav"])
        length = wav.shape[-1]
        size = length if sep.chunk_seconds is None else int(sep.chunk_seconds * rate)
        hop = size - int(size * OVERLAP)
        done = {"n": 0, "total": 1}

        def progress(n, total):
            done.update(n=n, total=total)
            if spec["max_chunks"] and n >= spec["max_chunks"] and n < total:
                raise _Stop

        start = time.perf_counter()
        try:
            sep.separate(wav, queries, rate, progress=progress, channels_first=True)
        except _Stop:
            pass
        result["seconds"] = time.perf_counter() - start
        covered = length if done["n"] == done["total"] else \
            min(length, (done["n"] - 1) * hop + size)  # samples the chunks that ran covered
        result.update(chunks=done["n"], total_chunks=done["total"], audio_seconds=covered / rate,
                      samples=length)
    result["peak_mib"] = peak_rss_kib() / 1024
    print(json.dumps(result), flush=True)


# -- parent ----------------------------------------------------------------------------------
def write_wav(path: Path, seconds: float, seed: int) -> Path:
    """Noise shaped like music at the level of a mastered track (the content does not
    change the work a mask separator does); 16-bit, as a file on disk would be."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    data = np.empty(n, np.float32)
    for start in range(0, n, 60 * SR):  # in blocks: no 10-minute float64 temporaries
        block = rng.standard_normal(min(60 * SR, n - start), dtype=np.float32)
        data[start:start + block.size] = 0.1 * block
    sf.write(str(path), data, SR, subtype="PCM_16")
    return path


def run_case(spec: dict) -> dict:
    """Run one case in a fresh interpreter and return what it reports."""
    name = f"{spec['model']}_{spec['preset']}_{spec['case'].replace(' ', '_')}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"case {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_model(text: str) -> tuple[str, str]:
    name, _, preset = text.partition(":")
    if not preset:
        raise argparse.ArgumentTypeError(f"give models as NAME:PRESET, got {text!r}")
    return name, preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=parse_model, nargs="+",
                        default=[("cond_unet", "paper"), ("film_masknet", "small")],
                        help="separators as NAME:PRESET (default cond_unet:paper "
                             "film_masknet:small)")
    parser.add_argument("--long-minutes", type=float, default=10.0,
                        help="file separated in chunks (default 10)")
    parser.add_argument("--short-seconds", type=float, default=60.0,
                        help="file separated in one pass (default 60)")
    parser.add_argument("--queries", type=int, default=1, choices=range(1, len(PROMPTS) + 1),
                        help="text queries per run (default 1)")
    parser.add_argument("--max-chunks", type=int, default=None,
                        help="stop chunked runs after this many chunks; 0 = the whole file "
                             "(default: 3 for cond_unet:paper, the whole file otherwise)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true",
                        help="film_masknet:small only, 30 s in chunks against 4 s in one pass: "
                             "checks the script, the figures mean little")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.models, args.long_minutes, args.short_seconds = [("film_masknet", "small")], 0.5, 4.0
    if args.child:
        child(json.loads(args.child))
        return

    start = time.perf_counter()
    queries = PROMPTS[:args.queries]
    print(f"{args.threads} threads, {args.queries} quer{'y' if args.queries == 1 else 'ies'}; "
          f"chunked: {args.long_minutes:g} min in {CHUNK_SECONDS:g} s chunks, overlap "
          f"{OVERLAP:g}; one pass: {args.short_seconds:g} s; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bisep_infmem_") as tmp:
        tmp = Path(tmp)
        long_wav = write_wav(tmp / "long.wav", args.long_minutes * 60, seed=0)
        short_wav = write_wav(tmp / "short.wav", args.short_seconds, seed=1)
        for model, preset in args.models:
            cap = args.max_chunks if args.max_chunks is not None else \
                SLOW_PRESETS.get((model, preset), 0)
            common = dict(model=model, preset=preset, threads=args.threads, queries=queries)
            cases = [("baseline", None, None, 0), ("chunked", CHUNK_SECONDS, long_wav, cap),
                     ("one pass", None, short_wav, 0)]
            results = {}
            for case, chunk, wav, max_chunks in cases:
                results[case] = run_case(dict(common, case=case, chunk_seconds=chunk,
                                              wav=str(wav), max_chunks=max_chunks))
                print(f"  {model}:{preset} {case}: peak {results[case]['peak_mib']:.0f} MiB",
                      flush=True)
            rows.append((f"{model}:{preset}", results))

    print(f"\npeak RSS in MiB (working = peak - baseline peak; I/O = float32 input + "
          f"{args.queries} output{'s' if args.queries > 1 else ''}; model = working - I/O)")
    print(f"{'model':22s} {'case':9s} {'audio s':>8s} {'chunks':>9s} {'peak':>7s} "
          f"{'working':>8s} {'I/O':>6s} {'model':>6s} {'wall s':>7s} {'RTF':>6s}")
    ratios = []
    for label, results in rows:
        base = results["baseline"]["peak_mib"]
        print(f"{label:22s} {'baseline':9s} {'':>8s} {'':>9s} {base:7.0f}")
        own = {}
        for case in ("chunked", "one pass"):
            r = results[case]
            io = r["samples"] * 4 * (1 + args.queries) / 2**20
            own[case] = (r["peak_mib"] - base, r["peak_mib"] - base - io)
            print(f"{label:22s} {case:9s} {r['samples'] / SR:8.0f} "
                  f"{r['chunks']:>4d}/{r['total_chunks']:<4d} {r['peak_mib']:7.0f} "
                  f"{own[case][0]:8.0f} {io:6.0f} {own[case][1]:6.0f} {r['seconds']:7.2f} "
                  f"{r['seconds'] / r['audio_seconds']:6.3f}")
        ratios.append((label, own["chunked"][0] / own["one pass"][0],
                       own["chunked"][1] / own["one pass"][1]))
    if not all(r["peak_reset"] for _, results in rows for r in results.values()):
        print("warning: the peak RSS could not be reset (/proc/self/clear_refs): peaks include "
              "model loading, and a working memory under that transient reads as too small")
    print(f"\nchunked {args.long_minutes:g} min / one pass {args.short_seconds:g} s "
          f"(below 1: the long file needs less)")
    print(f"{'model':22s} {'working':>8s} {'model':>6s}")
    for label, working, model_only in ratios:
        print(f"{label:22s} {working:8.2f} {model_only:6.2f}")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; total "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
