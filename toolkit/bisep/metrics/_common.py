"""Input coercion and checks shared by the metric functions (numpy or torch in, float64 out)."""
from __future__ import annotations

import numpy as np


def as_float64(signals, name: str) -> np.ndarray:
    """``signals`` as a float64 numpy array; a torch tensor (any device, any float dtype) is
    copied to the CPU. Duck-typed, so that the metrics import without torch.

    Metrics are computed in float64: BSS-Eval solves 1024 x 1024 normal equations and
    sums error terms 10 orders of magnitude below the signal, beyond float32.

    Raises:
        ValueError: no time axis, an empty one, or NaN / infinite samples.
    """
    if hasattr(signals, "detach"):
        signals = signals.detach().cpu().double().numpy()
    array = np.asarray(signals, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name}: expected shape (..., time) with time > 0, "
                         f"got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite samples; a metric of them would be "
                         f"meaningless. Fix the signal that produced them.")
    return array


def broadcast_pair(references: np.ndarray, estimates: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast two ``(..., time)`` arrays to one shape; the time axes must be equal."""
    if references.shape[-1] != estimates.shape[-1]:
        raise ValueError(f"references and estimates differ in length: "
                         f"{references.shape[-1]} vs {estimates.shape[-1]} samples. "
                         f"Trim or pad them to the same length first.")
    try:
        return tuple(np.broadcast_arrays(references, estimates))
    except ValueError:
        raise ValueError(f"references {references.shape} and estimates {estimates.shape} "
                         f"do not broadcast") from None


def require_nonsilent(signals: np.ndarray, name: str, metric: str) -> None:
    """Raise if any signal along the last axis is all zeros (the metric is undefined)."""
    silent = np.all(signals == 0, axis=-1)
    if silent.any():
        index = [int(i) for i in np.argwhere(silent)[0]]
        raise ValueError(f"{name}{index} is all zeros: {metric} is undefined for a "
                         f"silent signal. Leave the item out (`bisep score` skips such "
                         f"items and counts them).")


def energy(signals: np.ndarray) -> np.ndarray:
    """Sum of squares along the last axis."""
    return np.sum(signals ** 2, axis=-1)


def to_db(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``10 log10(numerator / denominator)``; a zero denominator gives ``+inf`` (as
    mir_eval reports a vanished error term), with no epsilon bias."""
    with np.errstate(divide="ignore"):
        return 10 * np.log10(numerator / denominator)
