"""Separation metrics, as reported numbers (float64 numpy out; numpy or torch in).

==========================  ====================================================
function                    what
==========================  ====================================================
bss_eval_sources            SDR, SIR, SAR (BSS-Eval v3, ``compute_permutation=False``),
                            backends ``"fast"`` (default) and ``"mir_eval"``
bss_eval_sdr                the SDR alone (well under half the work on the fast backend)
bss_eval_with_sdr           bss_eval_sources of estimates and the SDR of mixtures in one
                            pass (for SDRi)
si_sdr, snr                 scale-invariant SDR, plain SNR
energy_ratio_db             estimate / reference energy (0 dB = right level)
score_item                  all of the above for one item, plus SDRi and SI-SDRi
                            when the mixture is given
is_silent                   the paper's skip rule (``sum |x| <= 1e-5``)
summarize, summarize_rows   mean / median / std / count of score rows
==========================  ====================================================

For differentiable training objectives use :mod:`bisep.losses`; these functions add no
epsilon and refuse silent references. ``docs/scoring.md`` explains each metric.
"""
from bisep.metrics.aggregate import STATS, summarize, summarize_rows
from bisep.metrics.bss_eval import (BACKENDS, BssEvalResult, bss_eval_sdr, bss_eval_sources,
                                    bss_eval_with_sdr)
from bisep.metrics.item import (METRICS, MIXTURE_METRICS, SILENCE_THRESHOLD, is_silent,
                                score_item)
from bisep.metrics.simple import energy_ratio_db, si_sdr, snr

__all__ = ["BACKENDS", "METRICS", "MIXTURE_METRICS", "SILENCE_THRESHOLD", "STATS",
           "BssEvalResult", "bss_eval_sdr", "bss_eval_sources", "bss_eval_with_sdr",
           "energy_ratio_db", "is_silent", "score_item", "si_sdr", "snr", "summarize",
           "summarize_rows"]
