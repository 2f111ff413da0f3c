"""Seconds per ``bisep train-clap`` step (recipe stage 3) against the step as it was before
its speed-up, both measured in this run on the same batches.

    python benchmarks/train_clap_step.py                   # ~2 min on 2 loaded cores
    python benchmarks/train_clap_step.py --data-dir egs/synth_music/bimodal/data --repeats 8
    python benchmarks/train_clap_step.py masked_per_batch=64   # overrides of the config
    python benchmarks/train_clap_step.py --smoke           # 1 s clips, small batches, 1 step

Config: ``egs/synth_music/bimodal/conf/mini_clap.yaml`` (the ``energy`` objective: 80 clips
of 3 s per batch, 32 of them separator-like masked outputs) with the command line's
overrides, read by :func:`bisep.train.clap_config.load_train_config`. Data: the
``clap_pool.jsonl`` of ``--data-dir`` (only read), or the tiny synth_music corpus rendered
with the real data code (``bisep prepare synth_music DIR --conf tests/recipe_tiny/data.yaml``)
into a temporary folder or ``--work-dir``.

Two trainers start from the same seed: *optimised*, the package's own
(:func:`bisep.train.mini_clap.start_training`, :func:`~bisep.train.mini_clap.train_step`),
and *reference*, the same with the audio tower's blocks back in contiguous (NCHW) memory and
the masked outputs made by :func:`reference_masked_outputs`, the implementation before the
speed-up (every source row transformed, complex ``abs`` and product). Their steps are
interleaved so that load from other processes hits both alike. Every batch pair must be
identical and the losses of the first three steps must agree to 1e-5 (relative): after
that, float rounding grows step by step, as between any two runs that round differently.

The table gives the mean and best seconds per step, wall and CPU (all threads; on cores
shared with other jobs the CPU time is the steadier), split into making the batch and the
rest (audio tower forward, loss, backward, AdamW), and the reference / optimised ratio.
``OMP_WAIT_POLICY=PASSIVE`` is set unless the environment sets it, as the recipe does.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from unittest import mock
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs" / "synth_music" / "bimodal" / "conf" / "mini_clap.yaml"
# Steps whose losses must agree to 1e-5 (relative).
CLOSE_STEPS = 3
SMOKE_OVERRIDES = ["clean_per_batch=4", "pool_mixtures_per_batch=2", "made_mixtures_per_batch=4",
                   "masked_per_batch=6", "clip_seconds=1.0"]


def reference_masked_outputs(parts, sharpness, blend, generator=None):
    """:func:`bisep.train.clap_batches.masked_outputs` before its speed-up: the same
    outputs (bit for bit), with the STFT and iSTFT of every source row, absent ones too."""
    from bisep.train.clap_batches import MASK_HOP, MASK_N_FFT

    n, p, length = parts.shape
    window = torch.hann_window(MASK_N_FFT, device=parts.device)
    spec = torch.stft(parts.reshape(n * p, length), MASK_N_FFT, MASK_HOP, window=window,
                      return_complex=True).reshape(n, p, MASK_N_FFT // 2 + 1, -1)
    mag = spec.abs()
    ratio = mag[:, 0] / mag.sum(dim=1).clamp_min(1e-8)
    freqs, frames = ratio.shape[-2:]
    coarse = torch.rand(n, 1, freqs // 16 + 2, frames // 8 + 2, generator=generator)
    noise = F.interpolate(coarse, size=(freqs, frames), mode="bilinear",
                          align_corners=False)[:, 0]
    mask = (1 - blend)[:, None, None] * ratio ** sharpness[:, None, None] \
        + blend[:, None, None] * noise
    masked = torch.istft((mask[:, None] * spec).reshape(n * p, freqs, frames), MASK_N_FFT,
                         MASK_HOP, window=window, length=length).reshape(n, p, length)
    return masked.sum(dim=1), masked


class TimedBatches:
    """A :class:`~bisep.train.clap_batches.BatchMaker` that keeps its last batch and the
    seconds (wall, CPU) it took; ``reference`` draws the masked outputs with
    :func:`reference_masked_outputs`."""

    def __init__(self, maker, reference: bool):
        self.maker, self.reference = maker, reference
        self.last, self.seconds = None, (0.0, 0.0)

    def __getattr__(self, name):  # caption(), generator, ...: the maker's
        return getattr(self.maker, name)

    def __call__(self):
        import bisep.train.clap_batches as clap_batches

        swap = contextlib.nullcontext()
        if self.reference:
            swap = mock.patch.object(clap_batches, "masked_outputs", reference_masked_outputs)
        start, cpu = time.perf_counter(), time.process_time()
        with swap:
            self.last = self.maker()
        self.seconds = (time.perf_counter() - start, time.process_time() - cpu)
        return self.last


def load_pool(data_dir: Path, conf: dict):
    """``(singles, mixtures, labels)`` of ``clap_pool.jsonl`` as ``bisep train-clap`` reads it."""
    from bisep.train.clap_batches import load_clips, split_by_count
    from bisep.train.mini_clap import POOL_MANIFEST

    pool = load_clips(data_dir / POOL_MANIFEST, 16000, conf["clip_seconds"])
    singles, mixtures = split_by_count(pool)
    return singles, mixtures, sorted({lab for clip in pool.labels for lab in clip})


def build(conf: dict, pool, reference: bool) -> dict:
    """A trainer as ``bisep train-clap`` builds it (seeded); ``reference``: the pre-speed-up
    tower layout and masked outputs."""
    from bisep.conditioners.mini_clap import MiniClapConditioner
    from bisep.data.prompts import TEMPLATES
    from bisep.train.clap_batches import BatchMaker
    from bisep.train.clap_eval import class_text
    from bisep.train.mini_clap import start_training

    singles, mixtures, labels = pool
    torch.manual_seed(conf["seed"])
    conditioner = MiniClapConditioner(text_model_dir=conf["text_model_dir"], frozen=False,
                                      audio_conf=conf["audio_conf"])
    captions = list(TEMPLATES) + [None]
    batches = TimedBatches(BatchMaker(singles, mixtures, conf, captions), reference)
    # The steady state of a run: after the first pass over the templates every class
    # caption's MiniLM embedding is cached and no step runs the text tower.
    for template in captions:
        class_text(conditioner, labels, template)
    optimizer, scheduler = start_training(conditioner, conf)
    if reference:  # no optimizer state yet: the parameters just change layout
        conditioner.audio.blocks.to(memory_format=torch.contiguous_format)
    return {"conditioner": conditioner, "batches": batches, "optimizer": optimizer,
            "scheduler": scheduler, "labels": labels, "captions": captions, "conf": conf,
            "step": 0}


def step(trainer: dict) -> dict:
    """One :func:`~bisep.train.mini_clap.train_step`: its loss, batch and seconds."""
    from bisep.train.mini_clap import train_step

    number, captions = trainer["step"], trainer["captions"]
    start, cpu = time.perf_counter(), time.process_time()
    parts = train_step(trainer["conditioner"], trainer["batches"], captions[number % len(captions)],
                       trainer["labels"], trainer["conf"], trainer["optimizer"],
                       trainer["scheduler"])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    trainer["step"] += 1
    batch_wall, batch_cpu = trainer["batches"].seconds
    return {"loss": sum(parts.values()), "batch": trainer["batches"].last,
            "wall": wall, "cpu": cpu, "batch wall": batch_wall, "batch cpu": batch_cpu}


def same_batch(a, b) -> bool:
    return (torch.equal(a.audio, b.audio) and a.labels == b.labels
            and a.energies == b.energies)


def render_tiny(work: Path, clip_seconds: float) -> Path:
    data = work / "data"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    subprocess.run([sys.executable, "-m", "bisep", "prepare", "synth_music", str(data), "--conf",
                    str(ROOT / "tests" / "recipe_tiny" / "data.yaml"),
                    f"duration={clip_seconds}"], check=True, env=env, stdout=subprocess.DEVNULL)
    return data


def main() -> None:
    from bisep.train.clap_config import load_train_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="overrides of conf/mini_clap.yaml, as for `bisep train-clap`")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per trainer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path,
                        help="a prepared data folder (its clap_pool.jsonl is read); default: "
                             "the tiny corpus, rendered")
    parser.add_argument("--work-dir", type=Path,
                        help="where to render the tiny corpus (kept and reused); default: a "
                             "temporary folder")
    parser.add_argument("--smoke", action="store_true",
                        help="1 s clips, small batches, one timed step: checks the script, "
                             "the times mean little")
    args = parser.parse_args()
    overrides = list(args.overrides)
    if args.smoke:
        overrides, args.repeats = SMOKE_OVERRIDES + overrides, 1
    torch.set_num_threads(args.threads)
    conf = load_train_config(CONF, overrides)
    try:  # MiniLM's "Loading weights" bar
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bisep_clapstep_") as tmp:
        data = args.data_dir or render_tiny(args.work_dir or Path(tmp), conf["clip_seconds"])
        pool = load_pool(data, conf)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="mini_clap was built without a checkpoint")
        trainers = {name: build(conf, pool, name == "reference")
                    for name in ("reference", "optimised")}
    first = None
    print(f"torch {torch.__version__}, {args.threads} threads; {len(pool[0].ids)} clean clips "
          f"and {len(pool[1].ids)} mixtures from {data if args.data_dir else 'the tiny corpus'} "
          f"loaded in {time.perf_counter() - start:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    times = {name: [] for name in trainers}
    gaps = []
    for r in range(args.repeats + 1):  # the first step of each is untimed
        done = {name: step(trainer) for name, trainer in trainers.items()}
        ref, opt = done["reference"], done["optimised"]
        if not same_batch(ref["batch"], opt["batch"]):
            raise SystemExit(f"step {r}: the optimised batch differs from the reference's")
        gaps.append(abs(opt["loss"] - ref["loss"]) / abs(ref["loss"]))
        # Rounding differences grow step by step (Adam's first steps are nearly sign
        # steps), so only the first steps are held to a rounding tolerance.
        if r < CLOSE_STEPS and gaps[-1] > 1e-5:
            raise SystemExit(f"step {r}: the losses differ by {gaps[-1]:.1e} (relative): "
                             f"more than rounding")
        first = first or ref["batch"]
        if r:
            for name in trainers:
                times[name].append(done[name])
    worst = max(gaps[:CLOSE_STEPS])

    print(f"\nbatch of {first.audio.shape[0]} clips of {first.audio.shape[1] / 16000:g} s "
          f"({conf['masked_per_batch']} masked outputs); {args.repeats} timed steps each; "
          f"batches identical; losses within {worst:.1e} (relative) over the first "
          f"{min(CLOSE_STEPS, len(gaps))} steps, {max(gaps):.1e} over all {len(gaps)}")
    print(f"{'trainer':10s} {'mean s':>7s} {'best s':>7s} {'CPU s':>7s} {'batch CPU':>10s} "
          f"{'rest CPU':>9s}")
    means = {}
    for name, rows in times.items():
        mean = statistics.mean(row["wall"] for row in rows)
        cpu = statistics.mean(row["cpu"] for row in rows)
        batch_cpu = statistics.mean(row["batch cpu"] for row in rows)
        means[name] = (mean, cpu, batch_cpu)
        print(f"{name:10s} {mean:7.3f} {min(row['wall'] for row in rows):7.3f} {cpu:7.3f} "
              f"{batch_cpu:10.3f} {cpu - batch_cpu:9.3f}")
    (ref_wall, ref_cpu, ref_batch), (opt_wall, opt_cpu, opt_batch) = means.values()
    print(f"  reference / optimised, CPU: batch {ref_batch / opt_batch:.2f}x, rest "
          f"{(ref_cpu - ref_batch) / (opt_cpu - opt_batch):.2f}x")
    print(f"  step time reference / optimised: wall {ref_wall / opt_wall:.2f}x, "
          f"CPU {ref_cpu / opt_cpu:.2f}x")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; total "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
