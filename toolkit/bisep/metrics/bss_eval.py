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

- ``"fast"`` (default): the same least-squares problems in numpy float64, several items
  per call (:data:`BATCH`). All auto- and cross-correlations come from one FFT of each
  signal; the projection systems are Toeplitz (own reference) and block Toeplitz (all
  references, one ``n_src x n_src`` block per delay), and :mod:`bisep.metrics.toeplitz`
  solves each kind for all items of a batch with one Levinson recursion,
  ``O(512² n_src³)`` instead of a dense ``O((512 n_src)³)``
  solve per estimate. The energies then follow from the normal equations
  (:func:`_energies`), without forming the projections as signals. Two checks send an
  item to :func:`_exact_item` (dense solves, the error terms formed as time signals and
  summed, as mir_eval does; the pseudo-inverse where mir_eval falls back to ``lstsq``):
  filters that do not satisfy the normal equations consistently (the recursion is not
  backward stable, and breaks down on nearly singular systems, e.g. references with no
  energy in part of the band or identical references), and an error term more than
  :data:`FLOOR_DB` below its signal (a perfect estimate, the mixture scored as an
  estimate), where a difference of energies would be rounding noise. Agreement with
  mir_eval is tested to 0.01 dB (measured: about 1e-11 dB on realistic signals).
  Torch tensors are accepted and copied to the CPU; numpy rather than torch because
  torch's per-call overhead and its threads on shared cores made the recursion slower.
- ``"mir_eval"``: ``mir_eval.separation.bss_eval_sources`` itself, one item at a time.

Why not ``fast_bss_eval``: bisep needs mir_eval's v3 numbers exactly (the 512-tap
distortion filter, no permutation: estimate ``j`` against reference ``j``, float64, an
exact solve). ``fast_bss_eval`` 0.1.4 defaults to ``compute_permutation=True``, reports
``inf`` where an error term is rounding noise, approximates with conjugate gradients when
asked for speed, and would be one more dependency.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
# scipy.fft (scipy comes with mir_eval) runs these long real FFTs 1.3-2x faster than numpy's.
from scipy import fft as sp_fft

from bisep.metrics._common import as_float64, energy, require_nonsilent, to_db
from bisep.metrics.toeplitz import (block_toeplitz_matmul, solve_block_toeplitz,
                                    solve_toeplitz)

FILTER_LENGTH = 512
BACKENDS = ("fast", "mir_eval")
BATCH = 16  # items per batch of the fast backend
# The fast backend's error energies are differences of energies ~|e|²; above this ratio
# (an error term below signal / 10**6) an item is recomputed with time signals.
FLOOR_DB = 60.0
MISMATCH = 1e-6  # largest accepted inconsistency of the energies (see _energies)


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
        backend: ``"fast"`` or ``"mir_eval"`` (the reference implementation).

    Shape:
        - references, estimates: ``(..., n_src, time)``, the same shape. Leading
          dimensions are independent items; the fast backend is fastest with several per
          call (they share its recursion's steps).
        - each output: ``(..., n_src)``.

    Returns:
        :class:`BssEvalResult` of float64 numpy arrays in dB.

    Raises:
        ValueError: different shapes, NaN/inf samples, an unknown backend, or an all-zero
            reference or estimate (BSS-Eval is undefined for those, and mir_eval refuses
            them too).
    """
    scores = _score(references, estimates, backend, sdr_only=False)
    return BssEvalResult(scores[..., 0, :], scores[..., 1, :], scores[..., 2, :])


def bss_eval_sdr(references, estimates, backend: str = "fast") -> np.ndarray:
    """The SDR of :func:`bss_eval_sources` alone.

    The fast backend then solves only the 512-tap projections on each estimate's own
    reference, not the all-source system that SIR and SAR need: well under half the work
    (used for the mixture in :func:`bisep.metrics.score_item`). The ``mir_eval`` backend
    computes everything and returns the SDR.

    Shape:
        - references, estimates: ``(..., n_src, time)``, the same shape.
        - output: ``(..., n_src)``.
    """
    return _score(references, estimates, backend, sdr_only=True)[..., 0, :]


def bss_eval_with_sdr(references, estimates, mixtures, backend: str = "fast"
                      ) -> tuple[BssEvalResult, np.ndarray]:
    """:func:`bss_eval_sources` of ``estimates`` and :func:`bss_eval_sdr` of ``mixtures``
    against the same references, in one pass.

    For the improvement metrics (:func:`bisep.metrics.score_item` scores the mixture as
    the estimate of every source): the fast backend computes the references' spectra and
    correlations once, and solves the own-reference systems once for both right-hand
    sides. The ``mir_eval`` backend scores them one after the other.

    Shape:
        - references, estimates, mixtures: ``(..., n_src, time)``, the same shape.
        - outputs: :class:`BssEvalResult` and the SDR of ``mixtures``, each ``(..., n_src)``.
    """
    scores = _score(references, estimates, backend, sdr_only=False, mixtures=mixtures)
    return BssEvalResult(scores[..., 0, :], scores[..., 1, :], scores[..., 2, :]), \
        scores[..., 3, :]


def _score(references, estimates, backend: str, sdr_only: bool, mixtures=None) -> np.ndarray:
    """``(..., 3, n_src)`` SDR/SIR/SAR (``(..., 1, n_src)`` SDR with ``sdr_only``), then
    the SDR of ``mixtures`` as one more row when given."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown BSS-Eval backend {backend!r}; use one of {BACKENDS}")
    refs = as_float64(references, "references")
    ests = as_float64(estimates, "estimates")
    if refs.ndim < 2 or refs.shape != ests.shape:
        raise ValueError(f"references and estimates must both have shape (..., n_src, time), "
                         f"the same; got {refs.shape} and {ests.shape}")
    require_nonsilent(refs, "references", "BSS-Eval")
    require_nonsilent(ests, "estimates", "BSS-Eval")
    lead, (n_src, length) = refs.shape[:-2], refs.shape[-2:]
    rows = 1 if sdr_only else 3
    refs = refs.reshape(-1, n_src, length)
    ests = ests.reshape(-1, n_src, length)
    if mixtures is not None:
        mixtures = as_float64(mixtures, "mixtures")
        if mixtures.shape != lead + (n_src, length):
            raise ValueError(f"mixtures must have the shape of the estimates, "
                             f"{lead + (n_src, length)}; got {mixtures.shape}")
        require_nonsilent(mixtures, "mixtures", "BSS-Eval")
        mixtures = mixtures.reshape(-1, n_src, length)
        rows += 1
    if backend == "mir_eval":
        scores = np.stack([_mir_eval_item(ref, est)[:3 if mixtures is not None else rows]
                           for ref, est in zip(refs, ests)])
        if mixtures is not None:
            mix_sdr = np.stack([_mir_eval_item(ref, mix)[:1] for ref, mix in zip(refs, mixtures)])
            scores = np.concatenate([scores, mix_sdr], axis=1)
    else:
        # Items in chunks: the recursion's Python-level steps are shared by a chunk, and
        # memory stays at a few chunk-sized spectra.
        scores = np.concatenate([
            _fast_batch(refs[i:i + BATCH], ests[i:i + BATCH], sdr_only,
                        None if mixtures is None else mixtures[i:i + BATCH])
            for i in range(0, len(refs), BATCH)])
    return scores.reshape(*lead, rows, n_src)


def _fast_batch(refs: np.ndarray, ests: np.ndarray, sdr_only: bool,
                mixtures: np.ndarray | None = None) -> np.ndarray:
    """``(B, 3, n_src)`` SDR/SIR/SAR (``(B, 1, n_src)`` with ``sdr_only``) of a batch, and
    one more row, the SDR of ``mixtures``, when given.

    ``refs``, ``ests``, ``mixtures``: ``(B, n_src, time)``. An item whose systems the
    recursion does not solve precisely enough, or with an error term too small for the
    energy identities (:data:`FLOOR_DB`), is scored by :func:`_exact_item` instead.
    """
    n_items, n_src, length = refs.shape
    taps = FILTER_LENGTH
    # >= length + taps - 1: linear, not circular, correlations; a length with small prime
    # factors is about half a power of two's for 4 s clips.
    n_fft = sp_fft.next_fast_len(length + taps - 1, real=True)
    ref_f = sp_fft.rfft(refs, n=n_fft)
    est_f = sp_fft.rfft(ests, n=n_fft)
    own = np.arange(n_src)
    # autocorr[b, i, d] = <ref_i, ref_i delayed by d>; xcorr[b, i, j, t] = <ref_i delayed
    # by t, est_j> (only i = j for the SDR); d, t = 0..taps-1.
    autocorr = sp_fft.irfft(ref_f.real ** 2 + ref_f.imag ** 2, n=n_fft)[..., :taps]
    if sdr_only:
        own_xcorr = sp_fft.irfft(ref_f.conj() * est_f, n=n_fft)[..., :taps]
    else:
        xcorr = sp_fft.irfft(ref_f.conj()[:, :, None] * est_f[:, None], n=n_fft)[..., :taps]
        own_xcorr = xcorr[:, own, own]
    targets, own_xcorrs = [ests], [own_xcorr]
    if mixtures is not None:
        targets.append(mixtures)
        own_xcorrs.append(sp_fft.irfft(ref_f.conj() * sp_fft.rfft(mixtures, n=n_fft),
                                       n=n_fft)[..., :taps])

    # SDR: each estimate's own-reference system, scalar Toeplitz, one per (item, source),
    # with the estimate (and the mixture) as right-hand sides.
    columns = len(targets)
    own_blocks = autocorr.reshape(-1, taps, 1, 1)
    own_rhs = np.stack(own_xcorrs, axis=-1).reshape(-1, taps, 1, columns)
    own_filters = solve_toeplitz(autocorr.reshape(-1, taps), own_rhs[:, :, 0])[:, :, None]
    target_energy = np.stack([energy(target) for target in targets], axis=-1)
    own_energy, own_residual, own_ok = _energies(own_blocks, own_filters, own_rhs,
                                                 target_energy.reshape(-1, columns))
    own_energy = own_energy.reshape(n_items, n_src, columns)
    own_residual = own_residual.reshape(n_items, n_src, columns)
    own_ok = own_ok.reshape(n_items, n_src).all(-1)
    signal = own_energy[..., 0]
    exact = ~own_ok | _at_floor(signal, own_residual[..., 0])
    ratios = [(signal, own_residual[..., 0])]
    if not sdr_only:
        # SIR, SAR: all references, one block-Toeplitz system per item with the item's
        # estimates as right-hand sides; filters[b, t, i, j] is tap t on reference i
        # for estimate j.
        blocks = _cross_correlations(ref_f, autocorr, n_fft)
        rhs = xcorr.transpose(0, 3, 1, 2)
        filters = solve_block_toeplitz(blocks, rhs)
        all_energy, all_residual, all_ok = _energies(blocks, filters, rhs, target_energy[..., 0])
        # e_interf = (all-reference projection) - (own projection): its filters are the
        # all-reference ones less the own filter on the estimate's own reference.
        interf = filters.copy()
        own_taps = own_filters[..., 0].reshape(n_items, n_src, taps)
        interf[:, :, own, own] -= own_taps.transpose(0, 2, 1)
        interf_energy = np.einsum("btij,btij->bj", interf,
                                  block_toeplitz_matmul(blocks, interf))
        ratios += [(signal, interf_energy), (all_energy, all_residual)]
        exact |= ~all_ok | _at_floor(signal, interf_energy)
        exact |= _at_floor(all_energy, all_residual)
    if mixtures is not None:
        ratios.append((own_energy[..., 1], own_residual[..., 1]))
        exact_mixture = ~own_ok | _at_floor(own_energy[..., 1], own_residual[..., 1])
    with np.errstate(invalid="ignore"):  # a negative residual: rescored just below
        scores = np.stack([to_db(*pair) for pair in ratios], axis=1)
    rows = 1 if sdr_only else 3
    for b in np.flatnonzero(exact):
        scores[b, :rows] = _exact_item(refs[b], ests[b], sdr_only)
    if mixtures is not None:
        for b in np.flatnonzero(exact_mixture):
            scores[b, rows] = _exact_item(refs[b], mixtures[b], sdr_only=True)[0]
    return scores


def _cross_correlations(ref_f: np.ndarray, autocorr: np.ndarray, n_fft: int) -> np.ndarray:
    """``corr[b, d, i, k] = <ref_i, ref_k delayed by d>``, ``d = 0..taps-1``.

    One inverse FFT per unordered pair: its negative lags are the pair's other order.

    Shape:
        - ref_f: ``(B, n_src, n_fft // 2 + 1)`` spectra; autocorr: ``(B, n_src, taps)``.
        - output: ``(B, taps, n_src, n_src)``.
    """
    n_items, n_src, taps = autocorr.shape
    corr = np.empty((n_items, taps, n_src, n_src))
    corr[:, :, np.arange(n_src), np.arange(n_src)] = autocorr.transpose(0, 2, 1)
    first, second = np.triu_indices(n_src, k=1)
    if first.size:
        pairs = sp_fft.irfft(ref_f[:, first].conj() * ref_f[:, second], n=n_fft)
        corr[:, :, first, second] = pairs[..., :taps].transpose(0, 2, 1)
        corr[:, :, second, first] = pairs[..., (-np.arange(taps)) % n_fft].transpose(0, 2, 1)
    return corr


def _energies(blocks: np.ndarray, filters: np.ndarray, rhs: np.ndarray,
              est_energy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projection and residual energies from the normal equations, and whether they
    are precise.

    For filters ``f`` on the delayed references ``A`` (Gram matrix ``T``, ``rhs = Aᵀe``),
    ``|Af|² = fᵀTf`` and ``|e - Af|² = |e|² - 2fᵀ rhs + fᵀTf``. The second form holds for
    any ``f``: an error ``δ`` in the filters adds ``δᵀTδ`` to the residual (second
    order), as when the residual is formed as a time signal.

    At the solution ``fᵀTf = fᵀ rhs`` as well. Where the two differ by more than
    :data:`MISMATCH` of the residual, the filters are not precise enough: Levinson's
    recursion is not backward stable, and on a nearly singular ``T`` it can return
    filters with huge components that ``T`` almost cancels, so that ``fᵀTf`` is rounding
    noise although ``Tf`` is close to ``rhs``.

    Shape:
        - blocks: ``(S, p, m, m)``; filters, rhs: ``(S, p, m, K)``; est_energy: ``(S, K)``.
        - outputs: ``(S, K)``, ``(S, K)`` and ``(S,)`` bool.
    """
    product = block_toeplitz_matmul(blocks, filters)
    projected = np.einsum("stik,stik->sk", filters, product)
    correlated = np.einsum("stik,stik->sk", filters, rhs)
    residual = est_energy - 2 * correlated + projected
    with np.errstate(invalid="ignore"):
        precise = np.abs(projected - correlated) <= MISMATCH * residual
    return projected, residual, precise.all(-1)


def _at_floor(signal: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Per item: whether an ``error`` term is below :data:`FLOOR_DB` under its
    ``signal`` (or not positive, or not finite), where the energy identities are too
    imprecise.

    Shape: ``(B, n_src)`` in, ``(B,)`` out.
    """
    with np.errstate(invalid="ignore"):
        return ~(error > signal * 10 ** (-FLOOR_DB / 10)).all(-1)


def _exact_item(ref: np.ndarray, est: np.ndarray, sdr_only: bool) -> np.ndarray:
    """``(3, n_src)`` SDR/SIR/SAR (``(1, n_src)`` SDR with ``sdr_only``) of one item by
    dense solves, with the error terms formed as time signals.

    ``ref``, ``est``: ``(n_src, time)``.
    """
    n_src, length = ref.shape
    taps = FILTER_LENGTH
    out_len = length + taps - 1  # a reference filtered by ``taps`` taps
    n_fft = sp_fft.next_fast_len(out_len, real=True)  # >= out_len: linear, not circular
    ref_f = sp_fft.rfft(ref, n=n_fft)
    est_f = sp_fft.rfft(est, n=n_fft)
    # corr[i, k, d] = sum_m ref_i[m] ref_k[m + d]; negative lags wrap to the end (mod n_fft).
    corr = sp_fft.irfft(ref_f.conj()[:, None] * ref_f[None], n=n_fft)
    # Gram matrix of the delayed references: <ref_i >> t1, ref_k >> t2> = corr[i, k, t1 - t2].
    lags = np.arange(taps)
    blocks = corr[..., (lags[:, None] - lags[None, :]) % n_fft]  # (n_src, n_src, taps, taps)
    # <ref_i >> t, est_j> = sum_m ref_i[m] est_j[m + t], t = 0..taps-1.
    xcorr = sp_fft.irfft(ref_f.conj()[:, None] * est_f[None], n=n_fft)[..., :taps]

    # The projections are formed as time signals so that each error term is summed
    # directly (as in mir_eval), not taken as a small difference of two large energies.
    own = np.arange(n_src)
    filters_own = _solve(blocks[own, own], xcorr[own, own][..., None])[..., 0]
    s_filt = sp_fft.irfft(sp_fft.rfft(filters_own, n=n_fft) * ref_f, n=n_fft)[..., :out_len]
    est_padded = np.pad(est, ((0, 0), (0, taps - 1)))
    sdr = to_db(energy(s_filt), energy(est_padded - s_filt))
    if sdr_only:
        return sdr[None]

    gram = blocks.transpose(0, 2, 1, 3).reshape(n_src * taps, n_src * taps)
    filters_all = _solve(gram, xcorr.transpose(0, 2, 1).reshape(n_src * taps, n_src))
    filters_all_f = sp_fft.rfft(filters_all.reshape(n_src, taps, n_src), n=n_fft, axis=1)
    proj_all = sp_fft.irfft(np.einsum("ifj,if->jf", filters_all_f, ref_f),
                            n=n_fft)[..., :out_len]
    e_interf = proj_all - s_filt
    e_artif = est_padded - proj_all
    return np.stack([sdr, to_db(energy(s_filt), energy(e_interf)),
                     to_db(energy(s_filt + e_interf), energy(e_artif))])


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``matrix⁻¹ rhs`` by LU; the pseudo-inverse where ``matrix`` is singular.

    Identical references, or signals shorter than ``(n_src - 1) * 512 + 1`` samples, make
    the delayed references linearly dependent. The minimum-norm solution still gives the
    orthogonal projection, which is what mir_eval's ``lstsq`` fallback computes.
    """
    try:
        return np.linalg.solve(matrix, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(matrix, hermitian=True) @ rhs


def _mir_eval_item(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    import mir_eval.separation

    with warnings.catch_warnings():
        # mir_eval 0.8 marks bss_eval_sources deprecated (removal planned for 0.9); it is
        # still the reference implementation. Its lstsq fallback warns about numpy's rcond.
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(
            ref, est, compute_permutation=False)
    return np.stack([sdr, sir, sar])
