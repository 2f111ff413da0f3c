"""Batched symmetric block-Toeplitz systems: a Levinson solver and an FFT product.

BSS-Eval's projections solve the normal equations of a reference signal delayed by
0..511 samples: their Gram matrix is Toeplitz (one source) or block Toeplitz (one
``n_src x n_src`` block per delay difference, all sources). Levinson's recursion solves
such a system in ``O(p^2 m^3)`` operations for ``p`` delays and ``m`` sources instead
of the ``O((p m)^3)`` of a dense factorisation, and it runs on a whole batch of systems
at once (one Python-level step per delay, shared by every system of the batch).

The matrix is given by its first block column: ``blocks[:, d] = C(d)``, and
``T[n, j] = C(n - j)`` for ``n >= j``, ``C(j - n)ᵀ`` otherwise (symmetric, so only
``d >= 0`` is stored).

Levinson's recursion is not backward stable: on a nearly singular matrix its answer can
be far off where a pivoted LU would not be. Callers check the answer with
:func:`block_toeplitz_matmul` (``bisep.metrics.bss_eval`` falls back to a dense solve).
"""
from __future__ import annotations

import numpy as np

_ADJUGATE_SIGNS = np.array([[1.0, -1.0], [-1.0, 1.0]])


def solve_block_toeplitz(blocks: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``T x = rhs`` for a batch of symmetric block-Toeplitz matrices ``T``.

    Block Levinson recursion: after step ``n`` it holds the solution of the leading
    ``n x n`` blocks, and the first and last block columns of that section's inverse
    (``F``, ``B``), which extend the solution by one block at the next step.

    Shape:
        - blocks: ``(S, p, m, m)``, ``blocks[s, d] = C(d)`` of system ``s``.
        - rhs: ``(S, p, m, K)``.
        - output: ``(S, p, m, K)``.

    A singular leading section gives non-finite or meaningless values (no exception):
    check the result.
    """
    n_sys, p, m, _ = blocks.shape
    k = rhs.shape[-1]
    # Everything is stored transposed (taps along the last axis) so that the long
    # products of each step are short-and-wide matrix products, which numpy runs several
    # times faster than tall-and-narrow ones. Each step n needs the block column
    # [C(n)ᵀ; ...; C(1)ᵀ] (for x and F) and [C(1); ...; C(n)] (for B): slices of these.
    col_f = np.ascontiguousarray(blocks[:, ::-1].transpose(0, 1, 3, 2)).reshape(n_sys, -1, m)
    col_b = np.ascontiguousarray(blocks[:, 1:]).reshape(n_sys, -1, m)
    rhs_t = np.ascontiguousarray(rhs.transpose(0, 1, 3, 2))  # (S, p, K, m)
    # One buffer, rows [xᵀ; Fᵀ; Bᵀ]: block column j holds x_j and F_j, and B_{j-1} (B
    # shifted by one block), so that [x; 0], [F; 0] and [0; B] are the leading n+1 blocks.
    work = np.zeros((n_sys, k + 2 * m, (p + 1) * m))
    eye = np.eye(m)
    coef_t = np.empty((n_sys, 2 * m, 2 * m))
    with np.errstate(all="ignore"):
        inv0 = _inverse(blocks[:, 0])
        work[:, :k, :m] = (inv0 @ rhs[:, 0]).transpose(0, 2, 1)
        work[:, k:k + m, :m] = inv0.transpose(0, 2, 1)
        work[:, k + m:, m:2 * m] = inv0.transpose(0, 2, 1)
        for n in range(1, p):
            # The last block row of T_{n+1} applied to [x; 0] and [F; 0] (giving θ and
            # err_f), and its first block row applied to [0; B] (err_b).
            x_f = work[:, :k + m, :n * m] @ col_f[:, (p - 1 - n) * m:(p - 1) * m]
            err_f = x_f[:, k:].transpose(0, 2, 1)
            err_b = (work[:, k + m:, m:(n + 1) * m] @ col_b[:, :n * m]).transpose(0, 2, 1)
            # [F_{n+1} | B_{n+1}] = [[F; 0] | [0; B]] @ [[I, err_b], [err_f, I]]⁻¹, by
            # blocks with one m x m inverse: (I - err_f err_b)⁻¹ = I + err_f (I - err_b
            # err_f)⁻¹ err_b (Woodbury).
            scale = _inverse(eye - err_b @ err_f)
            lower = -err_f @ scale
            corner = eye - lower @ err_b
            coef_t[:, :m, :m] = scale.transpose(0, 2, 1)
            coef_t[:, :m, m:] = lower.transpose(0, 2, 1)
            coef_t[:, m:, m:] = corner.transpose(0, 2, 1)
            coef_t[:, m:, :m] = -(corner.transpose(0, 2, 1) @ err_b.transpose(0, 2, 1))
            new = coef_t @ work[:, k:, :(n + 1) * m]
            work[:, k:k + m, :(n + 1) * m] = new[:, :m]
            work[:, k + m:, m:(n + 2) * m] = new[:, m:]
            # x_{n+1} = [x; 0] + B_{n+1} (rhs_n - θ)
            work[:, :k, :(n + 1) * m] += (rhs_t[:, n] - x_f[:, :k]) @ new[:, m:]
    return work[:, :k, :p * m].reshape(n_sys, k, p, m).transpose(0, 2, 3, 1)


def solve_toeplitz(column: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``T x = rhs`` for a batch of symmetric Toeplitz matrices ``T``.

    :func:`solve_block_toeplitz` with 1 x 1 blocks, where symmetry makes the backward
    vector ``B`` the forward one reversed: about half the operations per step, which
    matters because BSS-Eval solves one such system per estimate.

    Shape:
        - column: ``(S, p)``, ``T[n, j] = column[s, |n - j|]``.
        - rhs: ``(S, p, K)``.
        - output: ``(S, p, K)``.

    A singular leading section gives non-finite or meaningless values (no exception).
    """
    n_sys, p = column.shape
    k = rhs.shape[-1]
    reversed_column = np.ascontiguousarray(column[:, ::-1])  # [r_{p-1}, ..., r_0]
    # Columns [F | x], F the first column of the leading section's inverse (B = F reversed).
    work = np.zeros((n_sys, p + 1, 1 + k))
    with np.errstate(all="ignore"):
        work[:, 0, 0] = 1 / column[:, 0]
        work[:, 0, 1:] = rhs[:, 0] / column[:, :1]
        for n in range(1, p):
            # [r_n, ..., r_1] applied to F and x: err (= err_f = err_b) and θ.
            err_x = (reversed_column[:, None, p - 1 - n:p - 1] @ work[:, :n])[:, 0]
            err = err_x[:, :1]
            forward = work[:, :n + 1, 0]  # [F; 0]
            new = (forward - err * forward[:, ::-1]) / (1 - err * err)
            forward[...] = new
            work[:, :n + 1, 1:] += new[:, ::-1, None] * (rhs[:, n] - err_x[:, 1:])[:, None]
    return work[:, :p, 1:]


def block_toeplitz_matmul(blocks: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``T x`` by FFT (``T`` embedded in a circulant matrix of ``2p`` blocks).

    Shape:
        - blocks: ``(S, p, m, m)`` as for :func:`solve_block_toeplitz`.
        - x: ``(S, p, m, K)``.
        - output: ``(S, p, m, K)``.
    """
    n_sys, p, m, _ = blocks.shape
    circulant = np.zeros((n_sys, 2 * p, m, m))
    circulant[:, :p] = blocks
    circulant[:, p + 1:] = blocks[:, :0:-1].transpose(0, 1, 3, 2)
    product = np.fft.rfft(circulant, axis=1) @ np.fft.rfft(x, n=2 * p, axis=1)
    return np.fft.irfft(product, n=2 * p, axis=1)[:, :p]


def _inverse(matrices: np.ndarray) -> np.ndarray:
    """Inverses of a stack of small matrices (meaningless where one is singular).

    Closed forms for 1 x 1 and 2 x 2: ``np.linalg.inv`` costs ~50 µs per call on tiny
    stacks, and the recursion calls this once per delay.
    """
    m = matrices.shape[-1]
    if m == 1:
        return 1.0 / matrices
    if m == 2:
        # adj([[a, b], [c, d]]) = [[d, -b], [-c, a]]
        adjugate = matrices[..., ::-1, ::-1].swapaxes(-1, -2) * _ADJUGATE_SIGNS
        det = matrices[..., 0, 0] * matrices[..., 1, 1] - matrices[..., 0, 1] * matrices[..., 1, 0]
        return adjugate / det[..., None, None]
    try:
        return np.linalg.inv(matrices)
    except np.linalg.LinAlgError:  # one singular matrix fails the stack; its caller checks
        return np.linalg.pinv(matrices)
