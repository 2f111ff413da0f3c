"""Input checks shared by the loss functions (torch only)."""
from __future__ import annotations

import torch

# Low-precision inputs are promoted before energies are summed: a sum of squares over a
# few seconds of 16 kHz audio overflows fp16 (max 65504) and loses all precision in bf16.
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def check(tensor: torch.Tensor, name: str, ndim: int | tuple[int, ...], shape_doc: str) -> None:
    """Raise a TypeError naming the expected shape, or a ValueError on NaN/inf."""
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_doc}, "
                        f"got {type(tensor).__name__}")
    if tensor.dim() not in ndims:
        raise TypeError(f"{name} must have shape {shape_doc}, got {tuple(tensor.shape)}")
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the model output "
                         f"or the data that produced it (a loss would only propagate them)")


def same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise TypeError(f"{names} must have the same shape, got {tuple(a.shape)} "
                        f"and {tuple(b.shape)}")


def phrase_shapes(phrase_masks: torch.Tensor, mom_mag: torch.Tensor,
                  mixture_mags: torch.Tensor) -> tuple[int, int, int, int, int]:
    """Check the inputs every phrase-level term reads; return ``(B, N, K, F, T)``."""
    check(phrase_masks, "phrase_masks", 5, "(B, N, K, F, T)")
    check(mom_mag, "mom_mag", 3, "(B, F, T)")
    check(mixture_mags, "mixture_mags", 4, "(B, N, F, T)")
    b, n, k, f, t = phrase_masks.shape
    if mixture_mags.shape != (b, n, f, t) or mom_mag.shape != (b, f, t):
        raise TypeError(f"with phrase_masks {tuple(phrase_masks.shape)}, mixture_mags must be "
                        f"{(b, n, f, t)} and mom_mag {(b, f, t)}; got "
                        f"{tuple(mixture_mags.shape)} and {tuple(mom_mag.shape)}")
    return b, n, k, f, t


def promote(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """fp16/bf16 -> fp32 (see _LOW_PRECISION); other dtypes unchanged."""
    return [t.float() if t.dtype in _LOW_PRECISION else t for t in tensors]


def reduce(per_item: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_item.mean()
    if reduction == "sum":
        return per_item.sum()
    if reduction == "none":
        return per_item
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
