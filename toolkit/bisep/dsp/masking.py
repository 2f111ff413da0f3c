"""Applying real-valued masks to a complex mixture spectrogram.

This is the one place where a separator's masks meet the mixture STFT, so an
accelerated kernel (``backend="triton"``) can replace the plain torch path without any
separator changing.
"""
from __future__ import annotations

import torch

BACKENDS = ("torch",)


def apply_mask(spec: torch.Tensor, mask: torch.Tensor, backend: str = "torch") -> torch.Tensor:
    """Multiply a complex mixture spectrogram by one real mask per query.

    The masked estimate keeps the mixture phase: ``Ŝ_q = M_q ⊙ X``.

    Args:
        spec: complex mixture STFT.
        mask: real masks, one per query.
        backend: ``"torch"`` (default).

    Shape:
        - spec: ``(batch, freq, frames)`` complex.
        - mask: ``(batch, queries, freq, frames)`` real.
        - output: ``(batch, queries, freq, frames)`` complex.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown masking backend '{backend}'; available: {', '.join(BACKENDS)}")
    if not torch.is_complex(spec) or spec.dim() != 3:
        raise TypeError(f"spec must be complex (batch, freq, frames), got {spec.dtype} "
                        f"{tuple(spec.shape)}")
    if mask.dim() != 4 or mask.shape[0] != spec.shape[0] or mask.shape[2:] != spec.shape[1:]:
        raise TypeError(f"mask must be (batch, queries, freq, frames) = "
                        f"({spec.shape[0]}, Q, {spec.shape[1]}, {spec.shape[2]}), "
                        f"got {tuple(mask.shape)}")
    return spec.unsqueeze(1) * mask.to(spec.real.dtype)
