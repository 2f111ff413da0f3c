"""BSS-Eval v3 source metrics (SDR, SIR, SAR), two backends that agree.

The definition is ``mir_eval.separation.bss_eval_sources(refs, ests,
compute_permutation=False)``, as the paper scores (estimate ``j`` against reference
``j``). For estimate ``j``:

- ``s_filt``: the least-squares projection of the estimate on reference ``j`` delayed
  by 0..511 samples (a 512-tap time-invariant filter of the reference);
- ``e_interf``: the projection on all references delayed by 0..511, minus ``s_filt``;
- ``e_artif``: the estimate minus that projection;
- ``SDR = 10 log10 |s_filt|² / |e_interf + e_artif|²``,
  ``SIR = 10 log10 |s_filt|² / |e_interf|²``,
  ``SAR = 10 log10 |s_filt + e_interf|² / |e_artif|²``.

Backends:

- ``"fast"`` (default): the same algebra in torch float64. The normal equations are
  built from FFT correlations and solved with LU, falling back to the pseudo-inverse
  when the system is singular (mir_eval falls back to ``lstsq`` there), and the
  residuals are formed as time signals and summed, exactly as mir_eval does, rather than
  as differences of energies. About 4x faster than mir_eval on CPU and it runs on the
  inputs' device; the agreement is tested to 0.01 dB (measured: about 1e-12 dB on
  realistic signals). They differ only where an error term is at the float64 rounding
  floor: a perfect estimate, the mixture scored as an estimate (no artifacts),
  identical references (no interference), or signals shorter than
  ``(n_src - 1) * 512 + 1`` samples (the delayed references span everything, so no
  artifacts). Both then give a value above ~150 dB that is rounding noise.
- ``"mir_eval"``: ``mir_eval.separation.bss_eval_sources`` itself, one item at a time.

``fast_bss_eval`` 0.1.4 (an optional extra) has the same defaults as mir_eval apart from
``compute_permutation=True`` (filter length 512, no zero-mean, no dB clamp, exact
solve) and agrees to 1e-3 dB, but it reports ``inf`` where the error term is rounding
noise; bisep does not need it.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch

from bisep.metrics._common import as_float64, energy, require_nonsilent, to_db

FILTER_LENGTH = 512
BACKENDS = ("fast", "mir_eval")


class BssEvalResult(NamedTuple):
    """SDR, SIR and SAR in dB, each of shape ``(..., n_src)``."""

    sdr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray


def bss_eval_sources(references, estimates, backend: str = "fast") -> BssEvalResult:
    """SDR, SIR and SAR of each estimate against the reference of the same index.

    Args:
        references: the true sources (numpy array or torch tensor).
        estimates: the separated sources, in the order of ``references``.
        backend: ``"fast"`` (torch) or ``"mir_eval"`` (the reference implementation).

    Shape:
        - references, estimates: ``(..., n_src, time)``, the same shape. Leading
          dimensions are independent items.
        - each output: ``(..., n_src)``.

    Returns:
        :class:`BssEvalResult` of float64 numpy arrays in dB.

    Raises:
        ValueError: different shapes, NaN/inf samples, an unknown backend, or an all-zero
            reference or estimate (BSS-Eval is undefined for those, and mir_eval refuses
            them too).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown BSS-Eval backend {backend!r}; use one of {BACKENDS}")
    refs = as_float64(references, "references")
    ests = as_float64(estimates, "estimates")
    if refs.ndim < 2 or refs.shape != ests.shape:
        raise ValueError(f"references and estimates must both have shape (..., n_src, time), "
                         f"the same; got {tuple(refs.shape)} and {tuple(ests.shape)}")
    require_nonsilent(refs, "references", "BSS-Eval")
    require_nonsilent(ests, "estimates", "BSS-Eval")
    lead, (n_src, length) = refs.shape[:-2], refs.shape[-2:]
    score_one = _fast_item if backend == "fast" else _mir_eval_item
    # One item at a time: on CPU a batched 1024 x 1024 solve is no faster than a loop,
    # and the loop keeps memory at one item's Gram matrix.
    scores = [score_one(ref, est) for ref, est in zip(refs.reshape(-1, n_src, length),
                                                       ests.reshape(-1, n_src, length))]
    stacked = np.stack(scores).reshape(*lead, 3, n_src)
    return BssEvalResult(stacked[..., 0, :], stacked[..., 1, :], stacked[..., 2, :])


def _fast_item(ref: torch.Tensor, est: torch.Tensor) -> np.ndarray:
    """``(3, n_src)`` SDR/SIR/SAR of one item; ``ref``, ``est``: ``(n_src, time)``."""
    n_src, length = ref.shape
    taps = FILTER_LENGTH
    out_len = length + taps - 1  # a reference filtered by ``taps`` taps
    n_fft = 1 << (out_len - 1).bit_length()  # >= out_len: linear, not circular, products
    ref_f = torch.fft.rfft(ref, n=n_fft)
    est_f = torch.fft.rfft(est, n=n_fft)
    # corr[i, k, d] = sum_m ref_i[m] ref_k[m + d]; negative lags wrap to the end (mod n_fft).
    corr = torch.fft.irfft(ref_f.conj()[:, None] * ref_f[None], n=n_fft)
    # Gram matrix of the delayed references: <ref_i >> t1, ref_k >> t2> = corr[i, k, t1 - t2].
    lags = torch.arange(taps, device=ref.device)
    blocks = corr[..., (lags[:, None] - lags[None, :]) % n_fft]  # (n_src, n_src, taps, taps)
    gram = blocks.permute(0, 2, 1, 3).reshape(n_src * taps, n_src * taps)
    # <ref_i >> t, est_j> = sum_m ref_i[m] est_j[m + t], t = 0..taps-1.
    xcorr = torch.fft.irfft(ref_f.conj()[:, None] * est_f[None], n=n_fft)[..., :taps]
    filters_all = _solve(gram, xcorr.permute(0, 2, 1).reshape(n_src * taps, n_src))
    own = torch.arange(n_src, device=ref.device)
    filters_own = _solve(blocks[own, own], xcorr[own, own].unsqueeze(-1)).squeeze(-1)

    # The projections as time signals, so that each error term is summed directly (as in
    # mir_eval) instead of being a small difference of two large energies.
    filters_all_f = torch.fft.rfft(filters_all.reshape(n_src, taps, n_src), n=n_fft, dim=1)
    proj_all = torch.fft.irfft(torch.einsum("ifj,if->jf", filters_all_f, ref_f),
                               n=n_fft)[..., :out_len]
    s_filt = torch.fft.irfft(torch.fft.rfft(filters_own, n=n_fft) * ref_f,
                             n=n_fft)[..., :out_len]
    est_padded = torch.nn.functional.pad(est, (0, taps - 1))
    e_interf = proj_all - s_filt
    e_artif = est_padded - proj_all
    return np.stack([to_db(energy(s_filt), energy(e_interf + e_artif)),
                     to_db(energy(s_filt), energy(e_interf)),
                     to_db(energy(s_filt + e_interf), energy(e_artif))])


def _solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``matrix⁻¹ rhs`` by LU; the pseudo-inverse where ``matrix`` is singular.

    Identical references, or signals shorter than ``(n_src - 1) * 512 + 1`` samples, make
    the delayed references linearly dependent. The minimum-norm solution still gives the
    orthogonal projection, which is what mir_eval's ``lstsq`` fallback computes.
    """
    solution, info = torch.linalg.solve_ex(matrix, rhs)
    if bool((info != 0).any()):
        solution = torch.linalg.pinv(matrix, hermitian=True) @ rhs
    return solution


def _mir_eval_item(ref: torch.Tensor, est: torch.Tensor) -> np.ndarray:
    import mir_eval.separation

    with warnings.catch_warnings():
        # mir_eval 0.8 marks bss_eval_sources deprecated (removal planned for 0.9); it is
        # still the reference implementation. Its lstsq fallback warns about numpy's rcond.
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(
            ref.cpu().numpy(), est.cpu().numpy(), compute_permutation=False)
    return np.stack([sdr, sir, sar])
