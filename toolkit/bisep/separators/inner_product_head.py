"""The paper's mask head: one mask per query from shared feature maps and the query
embedding."""
from __future__ import annotations

import torch
from torch import nn


class InnerProductHead(nn.Module):
    """``mask = sigmoid(Σ_c α_c q_c F_c + β)`` with ``q = sigmoid(W e)``.

    Args:
        query_dim: size of the query embedding ``e``.
        num_channels: number of feature maps ``F_c``.

    Shape:
        - maps: ``(B, Q, C, F, T)``, or ``(B, 1, C, F, T)`` shared by the queries.
        - embedding: ``(B, Q, query_dim)``.
        - output: ``(B, Q, F, T)`` in ``[0, 1]``.
    """

    def __init__(self, query_dim: int, num_channels: int):
        super().__init__()
        self.proj = nn.Linear(query_dim, num_channels)
        # The paper's init: q starts near 0.5 for every query and channel.
        nn.init.normal_(self.proj.weight, std=1e-4)
        self.scale = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, maps: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        q = torch.sigmoid(self.proj(embedding)) * self.scale
        if maps.shape[1] == 1:
            logits = torch.einsum("bqc,bcft->bqft", q, maps[:, 0])
        else:
            logits = torch.einsum("bqc,bqcft->bqft", q, maps)
        return torch.sigmoid(logits + self.bias)
