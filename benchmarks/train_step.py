"""Seconds per training step of each training mode against the unsupervised step, and what
running the separator's encoder once per mixture (not once per query) saves.

    python benchmarks/train_step.py                      # ~1 min on 2 loaded cores
    python benchmarks/train_step.py --repeats 5 --work-dir /tmp/bench_data   # keep the data
    python benchmarks/train_step.py separator=cond_unet separator_conf.preset=small \\
        separator_conf.token_dim=384                     # overrides applied to every config
    python benchmarks/train_step.py --smoke              # unsupervised only, 1 s clips, 1 step
    python benchmarks/train_step.py --device cuda        # on a GPU (wall times, synchronised)

Data: a tiny synth_music corpus is rendered with the real data code, ``bisep prepare
synth_music DIR --conf tests/recipe_tiny/data.yaml duration=--clip-seconds`` (24 training
clips with stems) and ``bisep mix --supervised-fraction 0.5`` (so that semi-supervised
batches hold stems), into a temporary folder or ``--work-dir``. Batches come from
:class:`bisep.train.datamodule.MoMDataModule`, built as ``bisep train`` builds it (stems
loaded in the supervised and semi modes only).

Each mode is ``egs/synth_music/bimodal/conf/train_<mode>.yaml`` read with
:func:`bisep.config.load_config` (plus ``conditioner_conf.checkpoint=null``, i.e. mini_clap
with a random audio tower and the real MiniLM text tower, and the command line's overrides),
its ``mode`` checked as ``bisep train`` does, and a
:class:`bisep.train.module.SeparationModule` in train mode with the optimizer of
``configure_optimizers`` (Adam; the scheduler is left out). A step is
``compute_losses(batch)``, ``backward()``, ``optimizer.step()`` and ``zero_grad()``. Every
mode runs on the same ``--repeats`` batches of the seeded loader after one untimed step, the
modes interleaved so that load from other processes hits all of them alike. The table gives
the mean and the best s/step and the mean's ratio to the unsupervised mean, in wall time and
in CPU time of all threads (on cores shared with other jobs the CPU time is the steadier). A semi-supervised
batch runs its supervised term only when it drew a MoM with stems: the table says how many
timed batches did.

The second table splits each mode's step into stages (:func:`step_breakdown`, the medians
of the same timed batches): the separator forward (``encode`` once per MoM,
``predict_masks`` for the mixture and phrase queries), the STFTs of the targets, the iSTFT
of the phrase outputs, the query encoder's audio tower on them, the loss terms, and the
backward pass split into loss, query encoder, iSTFT and separator parts, then Adam.

The third table times one batch of the weak mode's separator, forward and backward (no
conditioner, no loss): ``encode`` once per MoM (B items), ``predict_masks`` for the N*K
phrase queries of each MoM (the predict time is the encode+predict time minus the encode
time), and the same B*N*K masks with the encoder run once per query (``encode`` on B*N*K
copies, one query each). Times are the best of ``--repeats``.

As in ``bisep train``, ``trainer.keep_freed_memory`` (default true) has glibc's malloc keep
freed memory for the next step (:mod:`bisep.train.allocator`); the header says whether it
took. Pass ``trainer.keep_freed_memory=false`` to time the steps with the allocator as the
system set it: it is process-wide, so the two settings are two runs.

With ``--device cuda`` the modules and batches are moved to the GPU (as Lightning moves
them), every timer waits for the GPU (``torch.cuda.synchronize``), and the "CPU" columns and
the breakdown are synchronised wall seconds instead: CPU time says nothing about GPU work.

``OMP_WAIT_POLICY=PASSIVE`` is set unless the environment sets it: on cores shared with
other jobs, OpenMP threads spinning while they wait made 2-thread runs several times slower
than 1-thread ones.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP; see above

import warnings  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import wall_clock  # noqa: E402

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # via torchmetrics

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "egs" / "synth_music" / "bimodal" / "conf"
MODES = {"unsupervised": "train_unsup.yaml", "weak": "train_weak.yaml",
         "supervised": "train_sup.yaml", "semi": "train_semi.yaml"}
SOURCES = {"supervised": "all", "semi": "sup"}  # as bisep.train.fit.fit
DEVICE = torch.device("cpu")  # set by --device


def wall() -> float:
    """Wall seconds, after the GPU's queued work (if any) is done."""
    return wall_clock(DEVICE)


def clock() -> float:
    """CPU seconds of all threads; on a GPU, :func:`wall`: CPU time says nothing of GPU work."""
    return wall() if DEVICE.type == "cuda" else time.process_time()


def to_device(batch: dict) -> dict:
    """The batch's tensors on :data:`DEVICE` (phrases and ids stay as they are)."""
    return {k: v.to(DEVICE) if torch.is_tensor(v) else v for k, v in batch.items()}


def bisep_cli(*args: str) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    subprocess.run([sys.executable, "-m", "bisep", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def make_data(work: Path, clip_seconds: float, num_moms: int) -> tuple[Path, Path]:
    """Stage 1 and 2 of the recipe on the tiny test corpus; reused when already there."""
    data, dump = work / "data", work / f"dump_{num_moms}"
    bisep_cli("prepare", "synth_music", str(data), "--conf",
              str(ROOT / "tests" / "recipe_tiny" / "data.yaml"), f"duration={clip_seconds}")
    if not (dump / "mom_train.jsonl").exists():
        bisep_cli("mix", "--data-dir", str(data), "--dump-dir", str(dump),
                  "--num-train-mom", str(num_moms), "--num-valid-mom", "4",
                  "--supervised-fraction", "0.5")
    return data, dump


def build(mode: str, overrides: list[str], data: Path, dump: Path, batches: int):
    """``(module, optimizer, first `batches` training batches)`` for one mode."""
    from bisep.config import load_config
    from bisep.train.datamodule import MoMDataModule
    from bisep.train.fit import check_mode
    from bisep.train.module import SeparationModule

    config = load_config(CONF_DIR / MODES[mode], ["conditioner_conf.checkpoint=null", *overrides])
    config = dict(config, mode=check_mode(config))
    if config["mode"] != mode:
        raise SystemExit(f"{MODES[mode]} says mode {config['mode']}, expected {mode}")
    torch.manual_seed(config["seed"])
    try:  # MiniLM's "Loading weights" bar, once per mode
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="mini_clap was built without a checkpoint")
        module = SeparationModule(config)
    module.to(DEVICE).train()
    optimizer = module.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    datamodule = MoMDataModule(data, dump, config["data"], sources=SOURCES.get(mode, "none"),
                               sample_rate=module.separator.sample_rate, seed=config["seed"])
    datamodule.setup("fit")
    # The plan's epochs one after another, as training reads them, for any --repeats.
    loader = (batch for epoch in itertools.count() for batch in datamodule.train_dataloader())
    return module, optimizer, [to_device(next(loader)) for _ in range(batches)]


def step(module, optimizer, batch) -> tuple[float, float]:
    """Wall and CPU seconds (all threads; on a GPU, both wall) of one optimisation step."""
    start, cpu = wall(), clock()
    total, _ = module.compute_losses(batch)
    total.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return wall() - start, clock() - cpu


# Stage order of the breakdown: forward stages in the order they are forced, then backward.
FORWARD_STAGES = {
    "separator forward": ("features", "mixture_masks", "row_masks", "phrase_masks",
                          "source_masks"),
    "target STFTs": ("mixture_mags", "source_mags"),
    "iSTFT forward": ("phrase_wavs", "source_estimates"),
    "query encoder forward": ("phrase_audio_emb",),
}
BACKWARD_STAGES = ("losses backward", "query encoder backward", "iSTFT backward",
                   "separator backward")
STAGES = (*FORWARD_STAGES, "losses forward", *BACKWARD_STAGES, "optimizer step")


def step_breakdown(module, optimizer, batch) -> dict[str, float]:
    """CPU seconds (all threads) of each stage of one step, the step being ``compute_losses``' work done in a
    fixed order (the same inputs and terms; every term at full weight).

    Forward stages are timed as the inputs they produce are forced. The backward pass is one
    ``backward()`` call, split at the moments the gradients of the phrase embeddings, the
    phrase waveforms and the masks are complete (tensor hooks): the autograd engine runs the
    nodes created last first, and the forward order above puts the query encoder last and
    the separator first, so each interval is one stage's backward.
    """
    from bisep.train.inputs import SOURCE_INPUTS, StepInputs

    inputs = StepInputs(module.separator, module.conditioner, module.embed_prompts, batch,
                        query_source=module.query_source)
    wanted = set()
    for name, _, required, optional in module.term_specs:
        if SOURCE_INPUTS.intersection(required) and "sources" not in batch:
            continue
        wanted.update(required)
        wanted.update(n for n in optional if "sources" in batch or not n.startswith("source_"))
    if wanted & {"phrase_audio_emb", "source_estimates"}:
        wanted.add("phrase_wavs")
    seconds = dict.fromkeys(STAGES, 0.0)
    start = clock()
    for stage, names in FORWARD_STAGES.items():
        for name in names:
            if name in wanted or name == "features":
                inputs[name]
        now = clock()
        seconds[stage], start = now - start, now
    total = 0.0
    for term, (name, weight, required, optional) in zip(module.terms, module.term_specs):
        if SOURCE_INPUTS.intersection(required) and "sources" not in batch:
            continue
        total = total + weight * term(**inputs.kwargs_for(required, optional))
    now = clock()
    seconds["losses forward"], start = now - start, now

    marks = {}
    def mark(stage):
        def hook(grad):
            marks.setdefault(stage, clock())
        return hook
    boundaries = {"losses backward": ("phrase_audio_emb",),
                  "query encoder backward": ("row_wavs",),
                  "iSTFT backward": ("row_masks", "source_masks")}
    for stage, names in boundaries.items():
        for name in names:
            if name in inputs._cache and inputs._cache[name].requires_grad:
                inputs._cache[name].register_hook(mark(stage))
    total.backward()
    end = clock()
    previous = start
    for stage in BACKWARD_STAGES[:-1]:
        if stage in marks:
            seconds[stage], previous = marks[stage] - previous, marks[stage]
    seconds["separator backward"] = end - previous
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    seconds["optimizer step"] = clock() - end
    return seconds


def tensors(obj):
    """The tensors in a separator's ``encode`` output (tensor, sequence, dict or dataclass)."""
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors(item)
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from tensors(getattr(obj, f.name))


def per_query_costs(module, batch, repeats: int) -> dict:
    """Best-of-``repeats`` forward+backward seconds of the separator on one batch."""
    from bisep.separators.base import Conditioning

    sep = module.separator
    phrases = batch["phrases"]
    b, n, k = len(phrases), len(phrases[0]), len(phrases[0][0])
    q = n * k
    cond = module.embed_prompts([p for item in phrases for mix in item for p in mix])

    def reshape(x, *lead):
        return None if x is None else x.reshape(*lead, *x.shape[2:])

    shared = Conditioning(*(reshape(x, b, q) for x in (cond.embedding, cond.tokens,
                                                        cond.token_mask)))
    single = Conditioning(*(reshape(x, b * q, 1) for x in (cond.embedding, cond.tokens,
                                                            cond.token_mask)))
    with torch.no_grad():
        _, mag = sep.analyze(batch["mom"])
    copies = mag.repeat_interleave(q, dim=0)

    def encode_only():
        sum(t.mean() for t in tensors(sep.encode(mag)) if t.requires_grad).backward()

    def encode_predict():
        sep.predict_masks(sep.encode(mag), shared).mean().backward()

    def encode_per_query():
        sep.predict_masks(sep.encode(copies), single).mean().backward()

    fns = {"encode": encode_only, "encode+predict": encode_predict, "per query": encode_per_query}
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats + 1):  # the first round warms up
        for name, fn in fns.items():
            start = wall()
            fn()
            seconds = wall() - start
            sep.zero_grad(set_to_none=True)
            if _:
                best[name] = min(best[name], seconds)
    return {"B": b, "N": n, "K": k, **best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides for every mode, as for `bisep train`")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per mode (default 5)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clip-seconds", type=float, default=3.0,
                        help="length of the rendered clips, i.e. of a MoM (default 3)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                        help="modes to time; unsupervised is always run (the reference)")
    parser.add_argument("--work-dir", type=Path,
                        help="where to render the data (kept and reused); default: a "
                             "temporary folder")
    parser.add_argument("--smoke", action="store_true",
                        help="the unsupervised mode only, 1 s clips, one timed step: "
                             "checks the script, the times mean little")
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"),
                        help="where the steps run: cpu (default) or cuda[:N]")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    from bisep.train.allocator import keep_freed_memory

    if args.smoke:
        args.modes, args.clip_seconds, args.repeats = ["unsupervised"], 1.0, 1
    torch.set_num_threads(args.threads)
    modes = ["unsupervised"] + [m for m in args.modes if m != "unsupervised"]
    start = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bisep_trainstep_") as tmp:
        work = args.work_dir or Path(tmp)
        data, dump = make_data(work, args.clip_seconds, num_moms=64)
        gpu = f" on {torch.cuda.get_device_name(DEVICE)}" if DEVICE.type == "cuda" else ""
        print(f"torch {torch.__version__}, {args.threads} threads{gpu}; data rendered in "
              f"{time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.2f}",
              flush=True)
        built = {m: build(m, args.overrides, data, dump, args.repeats + 1) for m in modes}
        # As bisep.train.fit.fit, before the first step (the overrides are every mode's).
        kept = (built["unsupervised"][0].config["trainer"]["keep_freed_memory"]
                and keep_freed_memory())
        allocator = "glibc keeps freed memory" if kept else "as the system set it"
        print(f"modules built at {time.perf_counter() - start:.0f} s; allocator: {allocator}",
              flush=True)
        times = {m: [] for m in modes}
        for r in range(args.repeats + 1):
            for m in modes:
                seconds = step(*built[m][:2], built[m][2][r])
                if r:
                    times[m].append(seconds)
        stages = {m: [] for m in modes}
        for r in range(1, args.repeats + 1):
            for m in modes:
                stages[m].append(step_breakdown(*built[m][:2], built[m][2][r]))

    module, _, batches = built["unsupervised"]
    config = module.config
    first = batches[0]
    print(f"\n{config['separator']} {config['separator_conf'].get('preset') or ''}, "
          f"{config['conditioner']} (random audio tower); batch {first['mom'].shape[0]} MoMs "
          f"of {first['mom'].shape[-1] / module.separator.sample_rate:g} s, "
          f"N={len(first['phrases'][0])} K={len(first['phrases'][0][0])}; "
          f"{args.repeats} timed steps per mode")
    second = "sync s" if DEVICE.type == "cuda" else "CPU s"
    print(f"{'mode':13s} {'mean s':>7s} {'best s':>7s} {'x unsup':>8s} {second:>7s} "
          f"{'x unsup':>8s}  loss terms")
    ref = sum(wall for wall, _ in times["unsupervised"]) / args.repeats
    ref_cpu = sum(cpu for _, cpu in times["unsupervised"]) / args.repeats
    for m in modes:
        mean = sum(wall for wall, _ in times[m]) / args.repeats
        cpu = sum(c for _, c in times[m]) / args.repeats
        terms = " + ".join(f"{item['weight']:g} {item['name']}"
                           for item in built[m][0].config["criterions"])
        if m == "semi":
            with_stems = sum("sources" in b and bool(b["source_valid"].any())
                             for b in built[m][2][1:])
            terms += f" ({with_stems}/{args.repeats} batches with stems)"
        print(f"{m:13s} {mean:7.2f} {min(w for w, _ in times[m]):7.2f} {mean / ref:8.2f} "
              f"{cpu:7.2f} {cpu / ref_cpu:8.2f}  {terms}")

    print(f"\nstep breakdown, {'synchronised wall' if DEVICE.type == 'cuda' else 'CPU'} "
          f"seconds (median of {args.repeats} steps; backward split at "
          f"the gradients of the phrase embeddings, waveforms and masks)")
    print(f"  {'stage':26s}" + "".join(f" {m:>12s}" for m in modes))
    for stage in (*STAGES, "total"):
        values = [statistics.median(sum(s.values()) if stage == "total" else s[stage]
                                    for s in stages[m]) for m in modes]
        print(f"  {stage:26s}" + "".join(f" {v:12.3f}" for v in values))

    weak = built.get("weak", built["unsupervised"])
    c = per_query_costs(weak[0], weak[2][0], args.repeats)
    q = c["N"] * c["K"]
    predict = max(c["encode+predict"] - c["encode"], 0.0)
    print(f"\nper-query cost, {config['separator']} forward+backward on {c['B']} MoMs x "
          f"N*K = {q} phrase queries, seconds (best of {args.repeats})")
    rows = [(f"encode, once per MoM ({c['B']} items)", c["encode"]),
            (f"predict_masks, {q} queries per MoM", predict),
            ("  per query", predict / q),
            ("encode + predict_masks (shared encoder)", c["encode+predict"]),
            (f"encode once per query ({c['B'] * q} items, 1 query each)", c["per query"])]
    for label, seconds in rows:
        print(f"  {label:52s} {seconds:7.3f}")
    print(f"  {'shared / once per query':52s} {c['encode+predict'] / c['per query']:7.2f}")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; total "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
