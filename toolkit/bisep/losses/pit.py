"""Permutation-invariant training: the best assignment of estimates to targets."""
from __future__ import annotations

from itertools import permutations
from typing import Callable

import torch

from bisep.losses._checks import check

# n! permutations are enumerated exactly; beyond this many sources that is too many.
MAX_SOURCES_EXHAUSTIVE = 8


def best_permutation(pairwise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum mean loss over assignments of estimates to targets.

    Args:
        pairwise: ``[b, i, j]`` = loss of estimate ``i`` against target ``j``.

    Shape:
        - pairwise: ``(B, n_src, n_src)``.
        - output: ``(B,)`` losses and ``(B, n_src)`` permutations, where ``perm[b, j]``
          is the estimate assigned to target ``j``.
    """
    check(pairwise, "pairwise", 3, "(B, n_src, n_src)")
    b, n, n2 = pairwise.shape
    if n != n2:
        raise TypeError(f"pairwise must be square (B, n_src, n_src), got {tuple(pairwise.shape)}")
    if n > MAX_SOURCES_EXHAUSTIVE:
        raise ValueError(f"{n} sources: exhaustive PIT over {n}! permutations is too slow; "
                         f"use at most {MAX_SOURCES_EXHAUSTIVE}")
    perms = torch.tensor(list(permutations(range(n))), device=pairwise.device)  # (P, n)
    targets = torch.arange(n, device=pairwise.device)
    # losses[b, p] = mean_j pairwise[b, perms[p, j], j]
    losses = pairwise[:, perms, targets].mean(dim=-1)
    best, index = losses.min(dim=1)
    return best, perms[index]


class PITLoss(torch.nn.Module):
    """Wrap a pairwise loss (``pairwise_neg_sisdr``, ...) into a permutation-invariant one.

    Args:
        pairwise_loss: ``(B, n_src, T) x (B, n_src, T) -> (B, n_src, n_src)``.

    Shape:
        - est_targets, targets: ``(B, n_src, T)``.
        - output: scalar (mean over the batch), and with ``return_est=True`` also the
          estimates reordered to match the targets.
    """

    def __init__(self, pairwise_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.pairwise_loss = pairwise_loss

    def forward(self, est_targets: torch.Tensor, targets: torch.Tensor,
                return_est: bool = False):
        best, perm = best_permutation(self.pairwise_loss(est_targets, targets))
        if not return_est:
            return best.mean()
        reordered = torch.gather(est_targets, 1,
                                 perm[..., None].expand(-1, -1, est_targets.shape[-1]))
        return best.mean(), reordered
