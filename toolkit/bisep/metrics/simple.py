"""Closed-form waveform metrics: SI-SDR, SNR and the estimate/reference energy ratio.

With ``s`` the reference and ``ŝ`` the estimate (no zero-mean step, as in BSS-Eval):

- SI-SDR (Le Roux et al. 2019): ``α = <ŝ, s> / |s|²``,
  ``SI-SDR = 10 log10 |α s|² / |ŝ − α s|²``; blind to the gain of ``ŝ``.
- SNR: ``10 log10 |s|² / |ŝ − s|²``; penalises a wrong gain.
- energy ratio: ``10 log10 |ŝ|² / |s|²``; 0 dB at the right level, negative when the
  output is too quiet. SDR and SI-SDR cannot see the gain, and weakly-supervised
  separators tend to shrink their outputs (docs/paper.md#p11-clap-input-length), so it is reported beside them.

No epsilon is added (unlike the losses in :mod:`bisep.losses.sdr`): a perfect estimate
gives ``+inf``, and silent references are refused rather than scored.
"""
from __future__ import annotations

import numpy as np

from bisep.metrics._common import (as_float64, broadcast_pair, energy, require_nonsilent,
                                   to_db)


def si_sdr(references, estimates) -> np.ndarray:
    """Scale-invariant SDR in dB.

    Args:
        references: the true signals (numpy array or torch tensor).
        estimates: the estimated signals.

    Shape:
        - references, estimates: ``(..., time)``, broadcastable (e.g. a mixture
          ``(..., 1, time)`` against references ``(..., n_src, time)``).
        - output: the broadcast shape without ``time``.

    Returns:
        float64 numpy array.

    Raises:
        ValueError: different lengths, NaN/inf, or an all-zero reference or estimate
            (the scaled target and the error are then both zero).
    """
    refs, ests = _pair(references, estimates, "SI-SDR")
    require_nonsilent(ests, "estimates", "SI-SDR")
    scale = np.sum(ests * refs, axis=-1, keepdims=True) / energy(refs)[..., None]
    target = scale * refs
    return to_db(energy(target), energy(ests - target))


def snr(references, estimates) -> np.ndarray:
    """Signal-to-noise ratio ``10 log10 |s|² / |ŝ − s|²`` in dB.

    Args:
        references: the true signals.
        estimates: the estimated signals.

    Shape:
        - references, estimates: ``(..., time)``, broadcastable.
        - output: the broadcast shape without ``time``.

    Returns:
        float64 numpy array.
    """
    refs, ests = _pair(references, estimates, "SNR")
    return to_db(energy(refs), energy(ests - refs))


def energy_ratio_db(references, estimates) -> np.ndarray:
    """Estimate energy over reference energy, ``10 log10 |ŝ|² / |s|²`` in dB.

    Args:
        references: the true signals.
        estimates: the estimated signals.

    Shape:
        - references, estimates: ``(..., time)``, broadcastable.
        - output: the broadcast shape without ``time``.

    Returns:
        float64 numpy array; ``-inf`` for an all-zero estimate.
    """
    refs, ests = _pair(references, estimates, "the energy ratio")
    return to_db(energy(ests), energy(refs))


def _pair(references, estimates, metric: str):
    refs, ests = broadcast_pair(as_float64(references, "references"),
                                as_float64(estimates, "estimates"))
    require_nonsilent(refs, "references", metric)
    return refs, ests
