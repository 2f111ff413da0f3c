"""All metrics of one separated item, and the paper's rule for items that cannot be scored."""
from __future__ import annotations

import numpy as np

from bisep.metrics._common import as_float64
from bisep.metrics.bss_eval import bss_eval_sources, bss_eval_with_sdr
from bisep.metrics.simple import energy_ratio_db, si_sdr, snr

# The paper drops a test mixture when any reference or estimate has sum|x| <= 1e-5
# (docs/paper.md#p7-sdr-not-sdri). That is digital silence in practice (one 16-bit step is 3e-5),
# where SDR is undefined (all zeros) or measures rounding noise.
SILENCE_THRESHOLD = 1e-5

METRICS = ("sdr", "sir", "sar", "si_sdr", "snr", "energy_ratio_db")
MIXTURE_METRICS = ("sdr_mix", "si_sdr_mix", "sdri", "si_sdri")


def is_silent(signals, threshold: float = SILENCE_THRESHOLD) -> np.ndarray:
    """Whether each signal has ``sum |x| <= threshold`` (the paper's skip rule).

    Shape:
        - signals: ``(..., time)``.
        - output: ``(...)`` bool.
    """
    return np.sum(np.abs(as_float64(signals, "signals")), axis=-1) <= threshold


def score_item(references, estimates, mixture=None, backend: str = "fast"
               ) -> dict[str, np.ndarray]:
    """Every metric of each estimated source, and its improvement over the mixture.

    The improvements score the unprocessed mixture as if it were the estimate of every
    source: ``SDRi = SDR(estimate) - SDR(mixture)``, likewise SI-SDRi.

    Args:
        references: the true sources.
        estimates: the separated sources, in the order of ``references``.
        mixture: the input mixture, or ``None`` to skip the improvement metrics.
        backend: BSS-Eval backend, ``"fast"`` or ``"mir_eval"``
            (see :mod:`bisep.metrics.bss_eval`).

    Shape:
        - references, estimates: ``(..., n_src, time)``.
        - mixture: ``(..., time)``.
        - each output: ``(..., n_src)``.

    Returns:
        ``{name: float64 array}`` for the names in :data:`METRICS`, plus
        :data:`MIXTURE_METRICS` when a mixture is given.
    """
    refs = as_float64(references, "references")
    ests = as_float64(estimates, "estimates")
    if mixture is None:
        bss = bss_eval_sources(refs, ests, backend=backend)
    else:
        mix = as_float64(mixture, "mixture")
        if mix.shape != refs.shape[:-2] + refs.shape[-1:]:
            raise ValueError(f"mixture must have shape (..., time) = "
                             f"{refs.shape[:-2] + refs.shape[-1:]} to match references "
                             f"{refs.shape}; got {mix.shape}")
        mix_as_estimates = np.broadcast_to(mix[..., None, :], refs.shape)
        # One pass for both: the fast backend shares the references' work.
        bss, sdr_mix = bss_eval_with_sdr(refs, ests, mix_as_estimates, backend=backend)
    scores = {"sdr": bss.sdr, "sir": bss.sir, "sar": bss.sar,
              "si_sdr": si_sdr(refs, ests), "snr": snr(refs, ests),
              "energy_ratio_db": energy_ratio_db(refs, ests)}
    if mixture is None:
        return scores
    scores["sdr_mix"] = sdr_mix
    scores["si_sdr_mix"] = si_sdr(refs, mix_as_estimates)
    scores["sdri"] = scores["sdr"] - scores["sdr_mix"]
    scores["si_sdri"] = scores["si_sdr"] - scores["si_sdr_mix"]
    return scores
