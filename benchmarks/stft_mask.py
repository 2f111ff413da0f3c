"""Benchmark the fused Triton STFT-masking kernel against torch eager and torch.compile.

What is timed is ``apply_mask_logits``: ``sigmoid(logits) * X`` for mask logits
``(B, Q, F, T)`` and a mixture STFT ``(B, F, T)`` as torch.stft returns it, forward only
and forward + backward (gradient w.r.t. the logits; ``--spec-grad`` adds the mixture's).
Four implementations:

- ``eager``: the torch path of :func:`bisep.dsp.apply_mask_logits`;
- ``compile``: ``torch.compile`` of that same function (Inductor cannot generate code for
  complex operators, so the complex multiply stays an ATen call);
- ``compile_real``: ``torch.compile`` of the same math written on ``torch.view_as_real``
  views, which Inductor can fuse: the strongest compiled baseline;
- ``triton``: the fused kernels (``backend="triton"``).

Bandwidth is the *effective* one: the bytes a single fused pass must move (see
:func:`ideal_bytes`) divided by the time, for every implementation, so the fraction of
the device's peak says how close each one gets to the memory-bound limit.

Usage::

    python benchmarks/stft_mask.py                      # needs a CUDA GPU
    python benchmarks/stft_mask.py --batch 64 --queries 4 --spec-grad
    python benchmarks/stft_mask.py --dry-run            # CPU, Triton interpreter, tiny shapes
    python benchmarks/stft_mask.py --smoke              # --dry-run --no-compile (seconds)
    python benchmarks/stft_mask.py --profile            # op profile of the torch path

On a machine without a GPU and without ``--dry-run``/``--profile`` it says so and exits 0.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from bisep.dsp import Stft, StftConfig, apply_mask_logits

# Peak DRAM bandwidth in GB/s by device-name substring, most specific first. GH200 comes
# in HBM3 and HBM3e variants with different peaks, so it needs --peak-gbps.
PEAK_GBPS = (
    ("GH200", None),
    ("H200", 4800.0),
    ("H100 NVL", 3900.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),
    ("L40S", 864.0),
    ("A10G", 600.0),
    ("L4", 300.0),
    ("V100", 900.0),
    ("RTX 4090", 1008.0),
)

TARGET_FRACTION = 0.70


def peak_gbps(device_name: str, override: float | None) -> float | None:
    """Peak bandwidth for ``device_name`` from :data:`PEAK_GBPS`, unless ``override``."""
    if override is not None:
        return override
    for key, gbps in PEAK_GBPS:
        if key in device_name:
            return gbps
    return None


def ideal_bytes(batch: int, queries: int, n_freq: int, n_frames: int, logit_size: int,
                spec_size: int, backward: bool, spec_grad: bool) -> int:
    """Bytes one fused pass must read and write (the mixture read once per batch item).

    Args:
        batch, queries, n_freq, n_frames: the problem shape.
        logit_size: bytes per logit (4 for float32, 2 for bf16/fp16).
        spec_size: bytes per complex mixture bin (8 for complex64).
        backward: add the backward pass (gradient w.r.t. the logits).
        spec_grad: the backward pass also produces the mixture gradient.

    Returns:
        Forward: logits + mixture + estimates. Backward adds: output gradient + logits +
        mixture + logit gradient (+ mixture gradient).
    """
    bins = batch * n_freq * n_frames
    rows = bins * queries
    total = rows * logit_size + bins * spec_size + rows * spec_size
    if backward:
        total += rows * spec_size + 2 * rows * logit_size + bins * spec_size
        if spec_grad:
            total += bins * spec_size
    return total


def eager(spec: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return apply_mask_logits(spec, logits, backend="torch")


def real_view(spec: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The torch path's math on real views; returns the ``(B, Q, F, T, 2)`` real view."""
    mask = torch.sigmoid(logits.to(spec.real.dtype))
    return torch.view_as_real(spec).unsqueeze(1) * mask.unsqueeze(-1)


def fused(spec: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return apply_mask_logits(spec, logits, backend="triton")


def implementations(compile_: bool) -> dict:
    """name -> callable(spec, logits) returning the complex estimates."""
    impls = {"eager": eager}
    if compile_:
        # A fresh Dynamo cache per shape: with many shapes the recompile limit would
        # otherwise silently send later shapes back to eager.
        torch._dynamo.reset()
        compiled = torch.compile(eager, dynamic=False)
        compiled_real = torch.compile(real_view, dynamic=False)
        impls["compile"] = compiled
        impls["compile_real"] = lambda s, l: torch.view_as_complex(compiled_real(s, l))
    impls["triton"] = fused
    return impls


class Timer:
    """Median wall time of a callable; on CUDA with events and the L2 cache flushed.

    Args:
        device: where the timed work runs.
        warmup: untimed calls first (compilation, autotuning, allocator warm-up).
        reps: timed calls.
    """

    def __init__(self, device: torch.device, warmup: int, reps: int):
        self.device, self.warmup, self.reps = device, warmup, reps
        # Writing 1 GiB evicts any L2 (H200: 60 MB), so each rep reads its inputs from
        # DRAM, and keeps the GPU busy for ~0.2 ms while the CPU queues the timed call:
        # launch and autograd overhead stay hidden and device time is what is measured.
        self.flush = torch.empty(2**30, dtype=torch.uint8, device=device) \
            if device.type == "cuda" else None

    def __call__(self, fn) -> float:
        """Median seconds per call of ``fn``."""
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.reps):
            if self.flush is not None:
                self.flush.zero_()
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                begin = time.perf_counter()
                fn()
                times.append(time.perf_counter() - begin)
        return statistics.median(times)


def make_inputs(batch: int, queries: int, samples: int, config: StftConfig,
                logits_dtype: torch.dtype, device: torch.device, spec_grad: bool):
    """Mixture STFT (torch.stft's layout), mask logits and an output gradient."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    wav = torch.randn(batch, samples, generator=gen).to(device)
    spec = Stft(config).to(device)(wav).requires_grad_(spec_grad)
    n_freq, n_frames = spec.shape[-2:]
    logits = (4 * torch.randn(batch, queries, n_freq, n_frames, generator=gen)).to(
        device, logits_dtype).requires_grad_()
    grad = torch.randn(batch, queries, n_freq, n_frames, dtype=spec.dtype,
                       generator=gen).to(device)
    return spec, logits, grad


def check(impls: dict, spec, logits, grad, spec_grad: bool) -> dict:
    """The implementations that run and agree with eager (values, gradients).

    A compiled baseline that fails to compile is reported and dropped, so the kernel is
    still timed against the others; any implementation that disagrees stops the run.
    """
    inputs = [spec, logits] if spec_grad else [logits]
    ref = eager(spec, logits)
    ref_grads = torch.autograd.grad(ref, inputs, grad)
    working = {}
    for name, fn in impls.items():
        try:
            out = fn(spec, logits)
            grads = torch.autograd.grad(out, inputs, grad)
        except Exception as error:  # whatever Dynamo/Inductor raise: report, go on
            if name.startswith("compile"):
                print(f"{name} skipped: {type(error).__name__}: {error}")
                continue
            raise
        for value, expected in zip((out, *grads), (ref, *ref_grads)):
            # Relative to the largest value; a low-precision gradient may be 1 ulp off.
            error = ((value - expected).abs().max() / (expected.abs().max() + 1.0)).item()
            if error > max(1e-4, 2 * torch.finfo(expected.real.dtype).eps):
                raise SystemExit(f"{name} disagrees with eager: relative error {error:.2e}")
        working[name] = fn
    return working


def run_benchmark(args, device: torch.device) -> bool:
    """Time every implementation for every shape; True if the target was met everywhere."""
    config = StftConfig(n_fft=args.n_fft, hop_length=args.hop)
    samples = int(args.seconds * args.sample_rate)
    logits_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                    "float16": torch.float16}[args.logits_dtype]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_gbps(name, args.peak_gbps)
    print(f"device: {name}; peak {f'{peak:.0f} GB/s' if peak else 'unknown (--peak-gbps)'}")
    print(f"{args.seconds} s at {args.sample_rate} Hz, n_fft {args.n_fft}, hop {args.hop}, "
          f"logits {args.logits_dtype}, mixture gradient: {args.spec_grad}")
    timer = Timer(device, args.warmup, args.reps)
    met = True
    header = f"{'B':>3} {'Q':>2} {'pass':<8} {'impl':<13} {'ms':>9} {'GB/s':>8} {'%peak':>6} " \
             f"{'triton x':>8}"
    print(header)
    print("-" * len(header))
    for batch in args.batch:
        for queries in args.queries:
            spec, logits, grad = make_inputs(batch, queries, samples, config, logits_dtype,
                                             device, args.spec_grad)
            impls = check(implementations(not args.no_compile), spec, logits, grad,
                          args.spec_grad)
            inputs = [spec, logits] if args.spec_grad else [logits]
            for backward in (False, True):
                size = ideal_bytes(batch, queries, *spec.shape[-2:], logits.element_size(),
                                   spec.element_size(), backward, args.spec_grad)
                times = {}
                for impl, fn in impls.items():
                    if backward:
                        def step(fn=fn, spec=spec, logits=logits, inputs=inputs, grad=grad):
                            torch.autograd.grad(fn(spec, logits), inputs, grad)
                    else:
                        def step(fn=fn, spec=spec, logits=logits):
                            with torch.no_grad():
                                fn(spec, logits)
                    times[impl] = timer(step)
                for impl, seconds in times.items():
                    gbps = size / seconds / 1e9
                    fraction = f"{100 * gbps / peak:6.1f}" if peak else f"{'n/a':>6}"
                    ratio = seconds / times["triton"]
                    print(f"{batch:>3} {queries:>2} {'fwd+bwd' if backward else 'fwd':<8} "
                          f"{impl:<13} {1e3 * seconds:9.3f} {gbps:8.1f} {fraction} "
                          f"{ratio:8.2f}")
                fast_enough = all(times["triton"] < t for k, t in times.items() if k != "triton")
                near_peak = peak is not None and \
                    size / times["triton"] / 1e9 >= TARGET_FRACTION * peak
                met &= fast_enough and near_peak and len(times) == 4
            # Free this shape's tensors before the next shape's are made.
            del spec, logits, grad, inputs, step
    return met


def profile_torch_path(args, device: torch.device) -> None:
    """Where the separator's front/back end spends its time with the torch masking path.

    Times each stage (STFT + magnitude, masking, iSTFT; forward, then forward + backward)
    and prints the operator profile of the masking step, the part the kernel replaces.
    """
    from torch.profiler import ProfilerActivity, profile

    config = StftConfig(n_fft=args.n_fft, hop_length=args.hop)
    stft = Stft(config).to(device)
    batch, queries = args.batch[0], args.queries[0]
    samples = int(args.seconds * args.sample_rate)
    wav = torch.randn(batch, samples, device=device)
    spec = stft(wav)
    n_freq, n_frames = spec.shape[-2:]
    logits = torch.randn(batch, queries, n_freq, n_frames, device=device, requires_grad=True)
    est = eager(spec, logits).detach()
    grad = torch.randn_like(est)
    timer = Timer(device, args.warmup, args.reps)

    def front():
        stft(wav).abs()

    def back():
        stft.inverse(est, samples)

    def chain():
        mix = stft(wav)
        mix.abs()
        stft.inverse(eager(mix, logits), samples).square().mean().backward()

    def masking():
        torch.autograd.grad(eager(spec, logits), [logits], grad)

    with torch.no_grad():
        stages = {"stft + |X|": timer(front), "masking fwd": timer(lambda: eager(spec, logits)),
                  "istft": timer(back)}
    stages["masking fwd+bwd"] = timer(masking)
    stages["chain fwd+bwd"] = timer(chain)
    print(f"B={batch} Q={queries} F={n_freq} T={n_frames} on {device}, median of {args.reps}")
    for stage, seconds in stages.items():
        print(f"  {stage:<16} {1e3 * seconds:8.1f} ms")

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    with profile(activities=activities) as prof:
        for _ in range(args.reps):
            masking()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print("masking forward + backward, operator profile:")
    print(prof.key_averages().table(sort_by=sort, row_limit=12))
    for backward in (False, True):
        size = ideal_bytes(batch, queries, n_freq, n_frames, 4, 8, backward, False)
        print(f"a fused masking {'fwd+bwd' if backward else 'fwd'} moves {size / 1e6:.1f} MB")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--queries", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--n-fft", type=int, default=1024)
    parser.add_argument("--hop", type=int, default=256)
    parser.add_argument("--logits-dtype", choices=["float32", "bfloat16", "float16"],
                        default="float32")
    parser.add_argument("--spec-grad", action="store_true",
                        help="the mixture STFT also needs a gradient")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--peak-gbps", type=float, default=None,
                        help="device peak memory bandwidth (default: from the name table)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, Triton interpreter, tiny shapes: checks the script only")
    parser.add_argument("--profile", action="store_true",
                        help="profile the torch path (STFT, masking, iSTFT) and exit")
    parser.add_argument("--smoke", action="store_true",
                        help="--dry-run --no-compile: checks the script in seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.dry_run = args.no_compile = True
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.profile:
        profile_torch_path(args, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        return 0
    if args.dry_run:
        if "triton" in sys.modules:
            raise SystemExit("--dry-run must set TRITON_INTERPRET=1 before Triton is imported")
        os.environ["TRITON_INTERPRET"] = "1"
        args.seconds, args.n_fft, args.hop = min(args.seconds, 0.05), 64, 16
        args.batch, args.queries = [1, 2], [2]
        args.warmup, args.reps = 1, 2
        print("dry run: Triton interpreter on CPU, tiny shapes; the times mean nothing")
        run_benchmark(args, torch.device("cpu"))
        return 0
    if not torch.cuda.is_available():
        print("stft_mask benchmark needs a CUDA GPU (none found); nothing measured. "
              "Use --dry-run to check the script on CPU or --profile for the torch path.")
        return 0
    met = run_benchmark(args, torch.device("cuda"))
    verdict = "not assessed (--no-compile)" if args.no_compile else "met" if met else "NOT met"
    print(f"target (triton faster than eager and torch.compile, >= "
          f"{100 * TARGET_FRACTION:.0f}% of peak bandwidth): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
