"""bisep.metrics.toeplitz against dense linear algebra."""
import numpy as np
import pytest

from bisep.metrics.toeplitz import block_toeplitz_matmul, solve_block_toeplitz, solve_toeplitz


def gram_blocks(rng, n_sys, taps, m, length=400):
    """Block columns ``C(d)[i, k] = <x_i, x_k delayed by d>`` of random signals (SPD),
    and the dense matrices they define."""
    signals = rng.standard_normal((n_sys, m, length))
    blocks = np.zeros((n_sys, taps, m, m))
    for d in range(taps):
        blocks[:, d] = np.einsum("sit,skt->sik", signals[:, :, :length - d], signals[:, :, d:])
    dense = np.zeros((n_sys, taps * m, taps * m))
    for n in range(taps):
        for j in range(taps):
            block = blocks[:, n - j] if n >= j else blocks[:, j - n].transpose(0, 2, 1)
            dense[:, n * m:(n + 1) * m, j * m:(j + 1) * m] = block
    return blocks, dense


@pytest.mark.parametrize("m", [1, 2, 3])
def test_solve_matches_a_dense_solve(m):
    rng = np.random.default_rng(m)
    blocks, dense = gram_blocks(rng, n_sys=3, taps=40, m=m)
    rhs = rng.standard_normal((3, 40, m, 2))
    expected = np.linalg.solve(dense, rhs.reshape(3, 40 * m, 2)).reshape(3, 40, m, 2)
    np.testing.assert_allclose(solve_block_toeplitz(blocks, rhs), expected,
                               rtol=1e-8, atol=1e-12 * np.abs(expected).max())


def test_symmetric_scalar_solve_matches_a_dense_solve():
    rng = np.random.default_rng(4)
    blocks, dense = gram_blocks(rng, n_sys=3, taps=50, m=1)
    rhs = rng.standard_normal((3, 50, 2))
    expected = np.linalg.solve(dense, rhs)
    np.testing.assert_allclose(solve_toeplitz(blocks[:, :, 0, 0], rhs), expected,
                               rtol=1e-8, atol=1e-12 * np.abs(expected).max())


def test_matmul_matches_a_dense_product():
    rng = np.random.default_rng(0)
    blocks, dense = gram_blocks(rng, n_sys=2, taps=30, m=2)
    x = rng.standard_normal((2, 30, 2, 3))
    expected = (dense @ x.reshape(2, 60, 3)).reshape(2, 30, 2, 3)
    np.testing.assert_allclose(block_toeplitz_matmul(blocks, x), expected, atol=1e-9)


def test_a_singular_system_gives_a_result_that_fails_the_check():
    # Two identical signals: every block is singular. No exception; the caller's check
    # (T x against rhs) finds the answer wrong.
    rng = np.random.default_rng(1)
    blocks, _ = gram_blocks(rng, n_sys=1, taps=20, m=1)
    blocks = np.tile(blocks, (1, 1, 2, 2))
    rhs = rng.standard_normal((1, 20, 2, 1))
    x = solve_block_toeplitz(blocks, rhs)
    mismatch = block_toeplitz_matmul(blocks, x) - rhs
    assert not (np.abs(mismatch) < 1e-6 * np.abs(rhs).max()).all()
