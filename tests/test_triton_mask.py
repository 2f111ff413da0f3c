"""The Triton masking kernels against the torch path, on CPU through Triton's interpreter.

Triton decides between compiling and interpreting when a kernel is defined, and reads
``TRITON_INTERPRET`` then; other test files may import torch (and through it Triton) into
this pytest process first. So the kernels run in a child process started with
``TRITON_INTERPRET=1`` in its environment: this file run as a script, which computes
every case with ``backend="triton"`` and saves outputs and gradients. The tests here
rebuild the same (seeded) inputs, compute each case with the torch path in the pytest
process and compare. The child also reports that the kernels really ran (no silent
fall-back to torch) and that importing :mod:`bisep.dsp` does not import Triton. A second
child, without the interpreter, compiles the kernels for an sm_90 GPU (no GPU needed).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from bisep.dsp import masking
from bisep.dsp.masking import BACKENDS, apply_mask, apply_mask_logits, resolve_backend

ROOT = Path(__file__).resolve().parents[1]

# Tolerances (atol, rtol) against the torch path. Masks: the same single rounding of the
# same product, so float32 is exact up to the order of the two gradient terms. Logits: the
# sigmoid's exp differs between implementations by a few ulp. Half-precision gradients
# and complex32 outputs are rounded once from float32 by both paths, so they may differ
# by one ulp of the low precision where the float32 values straddle a rounding boundary.
# complex32: the torch path's backward rounds to half precision after every operator
# (G * conj(X), its real part, the sigmoid derivative), the kernel once from float32, so
# they differ by a few half-precision ulp of the unit-scale terms.
TOL = {
    "float32": (1e-6, 1e-6),
    "logits32": (1e-6, 1e-5),
    "float64": (1e-12, 1e-12),
    "bfloat16": (1e-5, 2 ** -7),
    "float16": (1e-5, 2 ** -10),
    "complex32": (1e-3, 2 ** -8),
}

# name: function, (B, Q, F, T), spec dtype, mask dtype, layout, spec grad, mask grad,
# upstream gradient, tolerance of values, tolerance of gradients.
# Layouts: "stft" = frequency-contiguous as torch.stft returns it, "contig" = frames-
# contiguous; "strided" = both operands cut out of larger tensors (non-dense).
# "stft_conj": the "stft" mixture as a lazily conjugated view.
# Upstream gradients: "random" complex, "transposed" (frames-contiguous memory),
# "expanded" (one value broadcast: strides 0 but for re/im), "conj" (lazily conjugated).
CASES = {
    "mask_f32": ("mask", (2, 3, 33, 19), "complex64", "float32", "stft", True, True,
                 "random", "float32", "float32"),
    "logits_f32": ("logits", (2, 3, 33, 45), "complex64", "float32", "stft", True, True,
                   "random", "logits32", "logits32"),
    "logits_f32_contig": ("logits", (2, 2, 21, 37), "complex64", "float32", "contig", True,
                          True, "transposed", "logits32", "logits32"),
    "logits_f32_conj": ("logits", (2, 2, 10, 12), "complex64", "float32", "stft_conj", True,
                        True, "conj", "logits32", "logits32"),
    "logits_f32_strided": ("logits", (2, 3, 17, 35), "complex64", "float32", "strided",
                           True, True, "random", "logits32", "logits32"),
    "mask_f32_strided_expanded": ("mask", (3, 2, 9, 11), "complex64", "float32", "strided",
                                  True, True, "expanded", "float32", "float32"),
    "logits_batch1_q1": ("logits", (1, 1, 5, 7), "complex64", "float32", "stft", True,
                         False, "random", "logits32", "logits32"),
    "mask_only_mask_grad": ("mask", (1, 2, 6, 3), "complex64", "float32", "contig", False,
                            True, "random", "float32", "float32"),
    "logits_empty_batch": ("logits", (0, 2, 9, 5), "complex64", "float32", "stft", True,
                           True, "random", "logits32", "logits32"),
    "logits_empty_queries": ("logits", (2, 0, 9, 5), "complex64", "float32", "stft", True,
                             True, "random", "logits32", "logits32"),
    "logits_bf16": ("logits", (2, 3, 33, 19), "complex64", "bfloat16", "stft", True, True,
                    "random", "logits32", "bfloat16"),
    "mask_f16": ("mask", (2, 2, 13, 34), "complex64", "float16", "stft", True, True,
                 "random", "float32", "float16"),
    # torch has no CPU sum for complex32, so the torch path cannot give a mixture
    # gradient here: only the logits are differentiated.
    "logits_complex32": ("logits", (2, 2, 13, 34), "complex32", "float16", "stft", False,
                         True, "random", "float16", "complex32"),
    "logits_f64": ("logits", (2, 2, 19, 33), "complex128", "float64", "stft", True, True,
                   "random", "float64", "float64"),
}


def make_inputs(name: str, device: str = "cpu"):
    """Deterministic (spec, mask, upstream gradient) for a case, in its layout, on ``device``
    (the same values on every device)."""
    fn, (B, Q, F, T), spec_dtype, mask_dtype, layout, spec_grad, mask_grad, upstream, *_ = \
        CASES[name]
    spec_dtype, mask_dtype = getattr(torch, spec_dtype), getattr(torch, mask_dtype)
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    scale = 6.0 if fn == "logits" else 1.0

    def base(shape, dtype):
        # Drawn in double precision and cast before the layout views are taken, since a
        # cast of a non-dense view would come back contiguous.
        wide = torch.complex128 if dtype.is_complex else torch.float64
        return torch.randn(*shape, dtype=wide, generator=gen).to(dtype).to(device)

    if layout.startswith("stft"):
        spec = base((B, T, F), spec_dtype).transpose(1, 2)
        mask = base((B, Q, F, T), mask_dtype)
        if layout == "stft_conj":
            spec = spec.conj()
    elif layout == "contig":
        spec = base((B, F, T), spec_dtype)
        mask = base((B, F, Q, T), mask_dtype).transpose(1, 2)
    else:
        spec = base((B, F + 3, 2 * T), spec_dtype)[:, 1:F + 1, ::2]
        mask = base((B, T, Q + 1, 3 * F), mask_dtype).permute(0, 2, 3, 1)[:, :Q, ::3]
    with torch.no_grad():
        mask *= scale
        if fn == "logits" and mask.numel():
            # Saturated logits: the sigmoid and its gradient must stay finite.
            mask[0, 0, 0, :4] = torch.tensor([100.0, -100.0, 30.0, -30.0])[:T].to(device)
    grad = base((B, Q, F, T), spec_dtype)
    if upstream == "transposed":
        grad = grad.transpose(2, 3).contiguous().transpose(2, 3)
    elif upstream == "expanded":
        grad = grad[:1, :1, :1, :1].expand(B, Q, F, T)
    elif upstream == "conj":
        grad = grad.conj()
    return spec.requires_grad_(spec_grad), mask.requires_grad_(mask_grad), grad


def run_case(name: str, backend: str, device: str = "cpu"):
    """Output and gradients (spec, mask; None where not required) of one case."""
    spec, mask, grad = make_inputs(name, device)
    fn = apply_mask_logits if CASES[name][0] == "logits" else apply_mask
    out = fn(spec, mask, backend=backend)
    inputs = [x for x in (spec, mask) if x.requires_grad]
    grads = iter(torch.autograd.grad(out, inputs, grad))
    return out.detach(), [next(grads) if x.requires_grad else None for x in (spec, mask)]


def kernel_worker(path: str) -> None:
    """Child process body: run every case through the kernels and save the results."""
    imported_early = "triton" in sys.modules
    results = {"imported_with_dsp": imported_early,
               "backend": resolve_backend("triton", torch.zeros(1, dtype=torch.complex64))}
    apply_mask(torch.zeros(1, 2, 2, dtype=torch.complex64), torch.zeros(1, 1, 2, 2))
    results["imported_by_torch_path"] = "triton" in sys.modules
    results["cases"] = {name: run_case(name, "triton") for name in CASES}
    results["imported_by_triton_path"] = "triton" in sys.modules
    torch.save(results, path)


def compile_worker(path: str) -> None:
    """Child process body: compile the kernels for sm_90 (H100/H200) without a GPU.

    The interpreter cannot catch what only the GPU compiler sees (typing, constexpr
    branches, layouts), so the kernels are also compiled to PTX here, with the arguments
    and the argument specialisation (unit strides, 16-divisibility) a real launch would
    have, for a mixture in torch.stft's layout. Saves TTGIR and PTX per variant.
    """
    import triton
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import BaseBackend, GPUTarget
    from triton.compiler import ASTSource

    from bisep.dsp import Stft, StftConfig, triton_mask

    def source(kernel, args, meta):
        values = dict(zip(kernel.arg_names, args), **meta)
        signature, constexprs, attrs = {}, {}, {}
        for i, name in enumerate(kernel.arg_names):
            if name in meta:
                kind, key = "constexpr", meta[name]
            else:
                kind, key = native_specialize_impl(BaseBackend, values[name], False, True, True)
            signature[name] = kind
            if kind == "constexpr":
                constexprs[name] = key
            elif key == "D":
                attrs[(i,)] = [["tt.divisibility", 16]]
        return ASTSource(kernel, signature, constexprs, attrs)

    mixture = Stft(StftConfig())(torch.randn(1, 4000))
    results = {"inner_strides": [triton_mask._Launch(spec).strides(spec)[-1]
                                 for spec in (mixture, mixture.contiguous())],
               "code": {}}
    for dtype in (torch.complex64, torch.complex128):
        spec = Stft(StftConfig())(torch.randn(2, 4000)).to(dtype)
        logits = torch.randn(2, 3, *spec.shape[1:], dtype=spec.real.dtype)
        launch = triton_mask._Launch(spec)
        out = launch.estimates(spec, 3)
        variants = {
            "forward": (triton_mask._mask_fwd_kernel,
                        *launch.forward_args(spec, logits, out, True)),
            "forward_bf16_mask": (triton_mask._mask_fwd_kernel,
                                  *launch.forward_args(spec, logits.bfloat16(), out, False)),
            "backward": (triton_mask._mask_bwd_kernel,
                         *launch.backward_args(spec, logits, out, torch.empty_like(logits),
                                               torch.empty_like(spec), True, True, True)),
            "backward_spec_only": (triton_mask._mask_bwd_kernel,
                                   *launch.backward_args(out[:, 0], logits, out, logits,
                                                         torch.empty_like(spec), False,
                                                         False, True)),
        }
        for name, (kernel, args, meta) in variants.items():
            options = {"num_warps": meta.pop("num_warps")}
            compiled = triton.compile(source(kernel, args, meta),
                                      target=GPUTarget("cuda", 90, 32), options=options)
            results["code"][name, str(dtype)] = (compiled.asm["ttgir"], compiled.asm["ptx"])
    torch.save(results, path)


@pytest.fixture(scope="module")
def kernel_results(tmp_path_factory):
    path = tmp_path_factory.mktemp("triton_mask") / "results.pt"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, __file__, str(path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with warnings.catch_warnings():
        # Loading the complex32 case; the comparisons below avoid unsupported operators.
        warnings.filterwarnings("ignore", "ComplexHalf support is experimental")
        return torch.load(path)


def test_kernels_really_ran_and_import_is_lazy(kernel_results):
    assert kernel_results["backend"] == "triton"
    assert not kernel_results["imported_with_dsp"]
    assert not kernel_results["imported_by_torch_path"]
    assert kernel_results["imported_by_triton_path"]


def assert_matches_torch(name, out, grads):
    """The case's output and gradients equal the CPU torch path's within its tolerances."""
    ref_out, ref_grads = run_case(name, "torch")
    *_, value_tol, grad_tol = CASES[name]
    assert out.dtype == ref_out.dtype and out.shape == ref_out.shape
    atol, rtol = TOL[value_tol]
    # Compared as real views: CPU torch lacks most complex32 operators.
    torch.testing.assert_close(torch.view_as_real(out).cpu(), torch.view_as_real(ref_out),
                               atol=atol, rtol=rtol)
    atol, rtol = TOL[grad_tol]
    for grad, ref in zip(grads, ref_grads):
        assert (grad is None) == (ref is None)
        if ref is not None:
            assert grad.dtype == ref.dtype and grad.shape == ref.shape
            if grad.is_complex():
                grad, ref = torch.view_as_real(grad), torch.view_as_real(ref)
            assert torch.isfinite(grad).all()
            torch.testing.assert_close(grad.cpu(), ref, atol=atol, rtol=rtol)


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_torch(name, kernel_results):
    assert_matches_torch(name, *kernel_results["cases"][name])


# The interpreter runs the kernels' arithmetic, not the GPU compiler's code: where a GPU
# is present (never in CI), the compiled kernels are checked against the same reference.
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", list(CASES))
def test_compiled_kernel_on_gpu_matches_torch(name):
    spec, _, _ = make_inputs(name, "cuda")
    assert resolve_backend("auto", spec) == "triton"
    out, grads = run_case(name, "triton", "cuda")
    assert out.is_cuda
    assert_matches_torch(name, out, grads)


def test_kernel_layouts(kernel_results):
    # Estimates follow the mixture (torch.istft reads frequency-contiguous ones without a
    # copy); gradients follow their inputs.
    out, _ = kernel_results["cases"]["logits_f32"]
    assert out.stride(2) == 1
    out, (grad_spec, grad_logits) = kernel_results["cases"]["logits_f32_contig"]
    spec, logits, _ = make_inputs("logits_f32_contig")
    assert out.stride(3) == 1
    assert grad_spec.stride() == spec.stride() and grad_logits.stride() == logits.stride()


@pytest.fixture(scope="module")
def gpu_code(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triton_sm90")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(folder / "cache")
    proc = subprocess.run([sys.executable, __file__, "--compile", str(folder / "code.pt")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return torch.load(folder / "code.pt")


def test_kernels_compile_for_sm90_with_coalesced_complex_access(gpu_code):
    # Frequency-contiguous (torch.stft) and frames-contiguous mixtures alike: the inner
    # tile axis is the one with unit stride.
    assert gpu_code["inner_strides"] == [1, 1]
    assert len(gpu_code["code"]) == 8
    for (name, dtype), (ttgir, ptx) in gpu_code["code"].items():
        assert ".target sm_90" in ptx
        bits = 64 if "128" in dtype else 32
        # Complex values move as aligned (re, im) pairs: one 2-vector per bin.
        if name.startswith("forward"):
            assert f"ld.global.v2.b{bits}" in ptx and f"st.global.v2.b{bits}" in ptx
            assert f"st.global.b{bits}" not in ptx
        # The re/im tiles (BLOCK_A x BLOCK_B x 2) put a warp's 32 threads along the inner
        # tile axis, which _Launch makes the mixture's contiguous (frequency) axis.
        layouts = [line for line in ttgir.splitlines()
                   if line.startswith("#blocked") and "sizePerThread = [1, 1, 2]" in line]
        assert layouts and all("threadsPerWarp = [1, 32, 1]" in line for line in layouts)


def test_unknown_backend_lists_options():
    spec = torch.zeros(1, 2, 2, dtype=torch.complex64)
    with pytest.raises(ValueError, match="available: torch, triton, auto"):
        apply_mask(spec, torch.zeros(1, 1, 2, 2), backend="cuda")
    assert BACKENDS == ("torch", "triton", "auto")


def test_bad_inputs_rejected():
    spec = torch.zeros(1, 3, 4, dtype=torch.complex64)
    with pytest.raises(TypeError, match="must be real"):
        apply_mask_logits(spec, torch.zeros(1, 2, 3, 4, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"\(1, Q, 3, 4\)"):
        apply_mask(spec, torch.zeros(1, 2, 4, 3))
    with pytest.raises(TypeError, match="spec must be complex"):
        apply_mask(spec.real, torch.zeros(1, 2, 3, 4))


def test_triton_falls_back_on_cpu_without_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    spec, logits, _ = make_inputs("logits_f32")
    with pytest.warns(RuntimeWarning, match="TRITON_INTERPRET=1"):
        out = apply_mask_logits(spec, logits, backend="triton")
    torch.testing.assert_close(out, apply_mask_logits(spec, logits), atol=0, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_backend("auto", spec) == "torch"


def test_triton_falls_back_when_not_installed(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(masking, "_triton_installed", lambda: False)
    spec = torch.zeros(1, 2, 2, dtype=torch.complex64)
    with pytest.warns(RuntimeWarning, match="not installed"):
        assert resolve_backend("triton", spec) == "torch"


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("stft_mask_bench",
                                                  ROOT / "benchmarks" / "stft_mask.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_bandwidth_model():
    bench = _benchmark_module()
    assert bench.peak_gbps("NVIDIA H200", None) == 4800.0
    assert bench.peak_gbps("NVIDIA H100 80GB HBM3", None) == 3350.0
    assert bench.peak_gbps("NVIDIA GH200 480GB", None) is None
    assert bench.peak_gbps("NVIDIA GH200 480GB", 4000.0) == 4000.0
    # 1 bin, 2 queries, float32 logits, complex64: fwd 2*4 + 8 + 2*8; bwd 2*8 + 2*2*4 + 8.
    assert bench.ideal_bytes(1, 2, 1, 1, 4, 8, False, False) == 32
    assert bench.ideal_bytes(1, 2, 1, 1, 4, 8, True, False) == 32 + 40
    assert bench.ideal_bytes(1, 2, 1, 1, 4, 8, True, True) == 32 + 48


def test_benchmark_dry_run():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stft_mask.py"),
                           "--dry-run", "--no-compile", "--peak-gbps", "100"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[3:4] in
            (["eager"], ["triton"])]
    # 2 batch sizes x 1 query count x (fwd, fwd+bwd) x (eager, triton), each with a time.
    assert len(rows) == 8 and all(float(row[4]) > 0 for row in rows)


if __name__ == "__main__":
    if sys.argv[1] == "--compile":
        compile_worker(sys.argv[2])
    else:
        kernel_worker(sys.argv[1])
