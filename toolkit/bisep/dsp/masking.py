"""Applying real-valued masks to a complex mixture spectrogram.

This is the one place where a separator's masks meet the mixture STFT, so an
accelerated kernel (``backend="triton"``) can replace the plain torch path without any
separator changing. The torch path is the definition; the Triton kernels
(:mod:`bisep.dsp.triton_mask`) must match it (see ``docs/triton.md`` for tolerances).

Backends:
    - ``"torch"``: plain PyTorch, every device.
    - ``"triton"``: fused Triton kernels (forward and backward) on CUDA tensors, or on
      CPU tensors when ``TRITON_INTERPRET=1`` was set before Triton was imported (slow;
      for tests). Where neither applies, or Triton is not installed, it warns and
      falls back to ``"torch"``.
    - ``"auto"``: ``"triton"`` for CUDA tensors when Triton is installed, else ``"torch"``.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from functools import lru_cache

import torch

BACKENDS = ("torch", "triton", "auto")


@lru_cache(maxsize=None)
def _triton_installed() -> bool:
    # find_spec answers without importing Triton, which only the "triton" backend may do.
    return importlib.util.find_spec("triton") is not None


def _interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str, spec: torch.Tensor) -> str:
    """The backend that :func:`apply_mask` would actually use for ``spec``.

    Args:
        backend: one of :data:`BACKENDS`.
        spec: the mixture spectrogram (only its device matters).

    Returns:
        ``"torch"`` or ``"triton"``.

    Raises:
        ValueError: for a name not in :data:`BACKENDS`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown masking backend '{backend}'; available: {', '.join(BACKENDS)}")
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "triton" if spec.is_cuda and _triton_installed() else "torch"
    if not _triton_installed():
        reason = "Triton is not installed"
    elif spec.is_cuda or (spec.device.type == "cpu" and _interpreter_enabled()):
        return "triton"
    else:
        reason = (f"tensors are on '{spec.device}' (Triton needs CUDA, or TRITON_INTERPRET=1 "
                  f"for CPU tensors)")
    warnings.warn(f"masking backend 'triton' unavailable: {reason}; using 'torch'",
                  RuntimeWarning, stacklevel=3)
    return "torch"


def _check(spec: torch.Tensor, mask: torch.Tensor, name: str) -> None:
    if not torch.is_complex(spec) or spec.dim() != 3:
        raise TypeError(f"spec must be complex (batch, freq, frames), got {spec.dtype} "
                        f"{tuple(spec.shape)}")
    if (not mask.is_floating_point() or mask.dim() != 4 or mask.shape[0] != spec.shape[0]
            or mask.shape[2:] != spec.shape[1:]):
        raise TypeError(f"{name} must be real (batch, queries, freq, frames) = "
                        f"({spec.shape[0]}, Q, {spec.shape[1]}, {spec.shape[2]}), "
                        f"got {mask.dtype} {tuple(mask.shape)}")
    if mask.device != spec.device:
        raise TypeError(f"{name} is on {mask.device} but spec is on {spec.device}")


def apply_mask(spec: torch.Tensor, mask: torch.Tensor, backend: str = "torch") -> torch.Tensor:
    """Multiply a complex mixture spectrogram by one real mask per query.

    The masked estimate keeps the mixture phase: ``Ŝ_q = M_q ⊙ X``. The mask is used in
    the mixture's real precision (``mask.to(spec.real.dtype)``); the result is
    differentiable w.r.t. both inputs with either backend.

    Args:
        spec: complex mixture STFT.
        mask: real masks, one per query.
        backend: one of :data:`BACKENDS` (``"torch"``, ``"triton"``, ``"auto"``).

    Shape:
        - spec: ``(batch, freq, frames)`` complex.
        - mask: ``(batch, queries, freq, frames)`` real.
        - output: ``(batch, queries, freq, frames)``, ``spec``'s dtype.

    Returns:
        The masked estimates.
    """
    _check(spec, mask, "mask")
    if resolve_backend(backend, spec) == "triton":
        from bisep.dsp.triton_mask import masked_spec

        return masked_spec(spec, mask, logits=False)
    return spec.unsqueeze(1) * mask.to(spec.real.dtype)


def apply_mask_logits(spec: torch.Tensor, logits: torch.Tensor,
                      backend: str = "torch") -> torch.Tensor:
    """Apply sigmoid masks given as logits: ``Ŝ_q = sigmoid(L_q) ⊙ X``.

    Same as ``apply_mask(spec, torch.sigmoid(logits.to(spec.real.dtype)))``, which is the
    torch path; the Triton path fuses the sigmoid into the masking kernel and recomputes
    it in the backward pass instead of storing it.

    Args:
        spec: complex mixture STFT.
        logits: real mask logits (pre-sigmoid), one per query.
        backend: one of :data:`BACKENDS` (``"torch"``, ``"triton"``, ``"auto"``).

    Shape:
        - spec: ``(batch, freq, frames)`` complex.
        - logits: ``(batch, queries, freq, frames)`` real.
        - output: ``(batch, queries, freq, frames)``, ``spec``'s dtype.

    Returns:
        The masked estimates.
    """
    _check(spec, logits, "logits")
    if resolve_backend(backend, spec) == "triton":
        from bisep.dsp.triton_mask import masked_spec

        return masked_spec(spec, logits, logits=True)
    return spec.unsqueeze(1) * torch.sigmoid(logits.to(spec.real.dtype))
