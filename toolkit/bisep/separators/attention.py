"""Attention blocks of :class:`~bisep.separators.cond_unet.CondUNet`: multi-head attention,
a pre-LN transformer block, and the SCA block (self-attention over a feature map's
positions, then cross-attention to a query's tokens)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention of ``x`` to ``context`` (itself for self-attention).

    Args:
        dim: channels of ``x`` (and of the output).
        context_dim: channels of ``context``.
        num_heads: attention heads; must divide ``dim``.

    Shape:
        - x: ``(N, S, dim)``; context: ``(N, L, context_dim)``.
        - key_mask: ``(N, L)`` bool, ``True`` for keys to attend to.
        - output: ``(N, S, dim)``.
    """

    def __init__(self, dim: int, context_dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"{dim} channels cannot be split into {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.q(x).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        k, v = self.kv(context).unflatten(-1, (2, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).flatten(2))


class TransformerBlock(nn.Module):
    """Pre-LN attention block then MLP (ratio ``mlp_ratio``, GELU), both residual.

    Self-attention when ``context_dim`` is ``None``, else cross-attention to a context
    (used as given: the text states come out of a normalised encoder already).

    Shape:
        - x: ``(N, S, dim)``; context: ``(N, L, context_dim)``; key_mask: ``(N, L)``.
        - output: ``(N, S, dim)``.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None,
                 mlp_ratio: float = 2.0):
        super().__init__()
        self.cross = context_dim is not None
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, context_dim if self.cross else dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, context if self.cross else h, key_mask)
        return x + self.mlp(self.norm2(x))


class SCABlock(nn.Module):
    """Self-attention over the H·W positions, then cross-attention to the query tokens.

    No positional encoding, as in the paper; unlike the paper's code, padded tokens are
    masked out (docs/paper.md#p6-attention-padding).

    Shape:
        - x: ``(N, dim, H, W)``; tokens: ``(N, L, token_dim)``; token_mask: ``(N, L)``.
        - output: ``(N, dim, H, W)``.
    """

    def __init__(self, dim: int, token_dim: int, num_heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.self_block = TransformerBlock(dim, num_heads, mlp_ratio=mlp_ratio)
        self.cross_block = TransformerBlock(dim, num_heads, token_dim, mlp_ratio)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor,
                token_mask: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        seq = x.flatten(2).transpose(1, 2)
        seq = self.cross_block(self.self_block(seq), tokens, token_mask)
        return seq.transpose(1, 2).reshape(n, c, h, w)
