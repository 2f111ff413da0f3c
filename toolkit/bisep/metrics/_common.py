"""Input coercion and checks shared by the metric functions (numpy or torch in, float64 out)."""
from __future__ import annotations

import numpy as np
import torch


def as_float64(signals, name: str) -> torch.Tensor:
    """``signals`` as a float64 tensor (torch inputs keep their device, numpy goes to CPU).

    Metrics are computed in float64: BSS-Eval solves 1024 x 1024 normal equations and
    subtracts energies that can differ by 10 orders of magnitude, beyond float32.

    Raises:
        ValueError: no time axis, an empty one, or NaN / infinite samples.
    """
    if isinstance(signals, torch.Tensor):
        tensor = signals.detach().to(torch.float64)
    else:
        tensor = torch.from_numpy(np.asarray(signals, dtype=np.float64))
    if tensor.ndim == 0 or tensor.shape[-1] == 0:
        raise ValueError(f"{name}: expected shape (..., time) with time > 0, "
                         f"got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} holds NaN or infinite samples; a metric of them would be "
                         f"meaningless. Fix the signal that produced them.")
    return tensor


def broadcast_pair(references: torch.Tensor, estimates: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Broadcast two ``(..., time)`` tensors to one shape; the time axes must be equal."""
    if references.shape[-1] != estimates.shape[-1]:
        raise ValueError(f"references and estimates differ in length: "
                         f"{references.shape[-1]} vs {estimates.shape[-1]} samples. "
                         f"Trim or pad them to the same length first.")
    try:
        return torch.broadcast_tensors(references, estimates.to(references.device))
    except RuntimeError:
        raise ValueError(f"references {tuple(references.shape)} and estimates "
                         f"{tuple(estimates.shape)} do not broadcast") from None


def require_nonsilent(signals: torch.Tensor, name: str, metric: str) -> None:
    """Raise if any signal along the last axis is all zeros (the metric is undefined)."""
    silent = (signals == 0).all(dim=-1)
    if silent.any():
        index = tuple(torch.nonzero(silent)[0].tolist())
        raise ValueError(f"{name}{list(index)} is all zeros: {metric} is undefined for a "
                         f"silent signal. Leave the item out (`bisep score` skips such "
                         f"items and counts them).")


def energy(signals: torch.Tensor) -> torch.Tensor:
    """Sum of squares along the last axis."""
    return (signals ** 2).sum(dim=-1)


def to_db(numerator: torch.Tensor, denominator: torch.Tensor) -> np.ndarray:
    """``10 log10(numerator / denominator)`` as numpy; a zero denominator gives ``+inf``
    (as mir_eval reports a vanished error term), with no epsilon bias."""
    return (10 * torch.log10(numerator / denominator)).cpu().numpy()
