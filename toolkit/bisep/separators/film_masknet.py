"""A FiLM-conditioned temporal convolutional mask network over STFT magnitude frames.

The frequency bins of ``log1p(|X|)`` are the channels of a 1-D sequence over frames; a
stack of dilated depthwise-separable residual blocks (Conv-TasNet style) runs along time::

    log1p|X| ─ BN ─ 1x1 ─ block ... block ─ body ─┬─ FiLM ─ 1x1 ─ FiLM blocks ─ 1x1 ─ sigmoid
    └──────────── encode(): once per mixture ─────┘  └──── predict_masks(): per query ───┘

Only the last ``num_film_blocks`` blocks see the query: inside each, the hidden channels
are scaled and shifted per channel by ``γ(e), β(e)``, linear maps of the query embedding
(FiLM). The blocks before them, and the part of the first FiLM block before its FiLM (its
``body``), are shared by all queries of a mixture. The network has no resampling, so any
number of frames works as is.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bisep.separators.base import BaseSeparator, Conditioning
from bisep.separators.presets import resolve_preset

PRESETS = {
    "default": dict(n_fft=1022, hop_length=256, bn_chan=256, hid_chan=512, n_blocks=8,
                    n_repeats=3, num_film_blocks=2),
    # The STFT of cond_unet's "small", so `separator_conf: {preset: small}` fits both.
    "small": dict(n_fft=510, hop_length=256, bn_chan=128, hid_chan=256, n_blocks=6,
                  n_repeats=2, num_film_blocks=2),
}


class FiLM(nn.Module):
    """Per-channel scale and shift from a query embedding, identity at initialisation.

    Zero-initialised so that training starts from a query-independent network and the
    query's influence grows from there.

    Args:
        query_dim: size of the query embedding.
        channels: channels modulated.

    Shape:
        - x: ``(..., channels, T)``; embedding: ``(..., query_dim)``, the leading dims
          broadcast against each other (``x (B, 1, C, T)`` with ``(B, Q, D)`` modulates each
          item's ``x`` by each of its ``Q`` queries).
        - output: the broadcast leading dims, then ``(channels, T)``.
    """

    def __init__(self, query_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(query_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(embedding).unsqueeze(-1).chunk(2, dim=-2)
        return (1 + scale) * x + shift


class DilatedBlock(nn.Module):
    """1x1 → PReLU → gLN → dilated depthwise conv → PReLU → gLN [→ FiLM] → 1x1, residual.

    gLN (one group per item) rather than BatchNorm keeps each query's output independent
    of which other queries share the batch.

    Args:
        bn_chan: channels of the residual stream.
        hid_chan: channels inside the block.
        kernel_size: depthwise kernel size (odd, so that "same" padding is symmetric).
        dilation: depthwise dilation.
        query_dim: size of the query embedding when the block is FiLM-conditioned, else
            ``None``.

    Shape:
        - x: ``(N, bn_chan, T)``; embedding: ``(N, query_dim)`` for a FiLM block.
        - output: ``(N, bn_chan, T)``.
    """

    def __init__(self, bn_chan: int, hid_chan: int, kernel_size: int, dilation: int,
                 query_dim: int | None = None):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(bn_chan, hid_chan, 1), nn.PReLU(), nn.GroupNorm(1, hid_chan),
            nn.Conv1d(hid_chan, hid_chan, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                      dilation=dilation, groups=hid_chan),
            nn.PReLU(), nn.GroupNorm(1, hid_chan))
        self.film = FiLM(query_dim, hid_chan) if query_dim is not None else None
        self.out = nn.Conv1d(hid_chan, bn_chan, 1)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x)
        if self.film is not None:
            h = self.film(h, embedding)
        return x + self.out(h)

    def forward_queries(self, x: torch.Tensor, hidden: torch.Tensor,
                        embedding: torch.Tensor) -> torch.Tensor:
        """The FiLM block for ``Q`` queries per item, from ``hidden = body(x)`` computed once
        per item: the same values as :meth:`forward` on ``Q`` copies of each item, without
        running the query-independent ``body`` on the copies.

        Shape:
            - x: ``(B, bn_chan, T)``; hidden: ``(B, hid_chan, T)``;
              embedding: ``(B, Q, query_dim)``.
            - output: ``(B·Q, bn_chan, T)``, item-major as ``repeat_interleave``.
        """
        h = self.film(hidden.unsqueeze(1), embedding).flatten(0, 1)
        return (x.unsqueeze(1) + self.out(h).unflatten(0, embedding.shape[:2])).flatten(0, 1)


@dataclass
class FiLMMaskNetFeatures:
    """The query-independent work of :class:`FiLMMaskNet`, done once per mixture.

    Attributes:
        residual: the residual stream after the shared blocks: the first FiLM block's input.
        hidden: the first FiLM block's ``body`` of it, the part of the block before its FiLM.

    Shape:
        - residual: ``(B, bn_chan, T)``.
        - hidden: ``(B, hid_chan, T)``.
    """

    residual: torch.Tensor
    hidden: torch.Tensor


class FiLMMaskNet(BaseSeparator):
    """Dilated convolutions over STFT frames, query applied by FiLM in the last blocks.

    Keywords left at ``None`` take the preset's value; explicit ones override it.

    Presets (parameter counts for ``query_dim=512``):

    - ``None`` or ``"default"``: n_fft 1022, hop 256, bn_chan 256, hid_chan 512,
      n_blocks 8, n_repeats 3, num_film_blocks 2: 7,722,801 parameters.
    - ``"small"``: n_fft 510, hop 256, bn_chan 128, hid_chan 256, n_blocks 6,
      n_repeats 2, num_film_blocks 2: 1,407,385 parameters.

    Args:
        sample_rate: the rate the model works at.
        n_fft, hop_length: STFT parameters (``n_fft // 2 + 1`` bins = input channels).
        bn_chan: channels of the residual stream between blocks.
        hid_chan: channels inside a block.
        n_blocks: blocks per repeat, with dilations ``1, 2, ..., 2**(n_blocks - 1)``.
        n_repeats: repeats of the dilation cycle.
        num_film_blocks: the last blocks that are FiLM-conditioned (at least 1).
        kernel_size: depthwise kernel size (odd).
        query_dim: size of the query embedding ``D``.
        mask_backend: see :class:`~bisep.separators.base.BaseSeparator`.
        preset: ``"default"`` or ``"small"``; ``None`` is ``"default"``.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int | None = None,
                 hop_length: int | None = None, bn_chan: int | None = None,
                 hid_chan: int | None = None, n_blocks: int | None = None,
                 n_repeats: int | None = None, num_film_blocks: int | None = None,
                 kernel_size: int = 3, query_dim: int = 512, mask_backend: str = "torch",
                 preset: str | None = None):
        conf = resolve_preset(PRESETS, preset, "default", dict(
            n_fft=n_fft, hop_length=hop_length, bn_chan=bn_chan, hid_chan=hid_chan,
            n_blocks=n_blocks, n_repeats=n_repeats, num_film_blocks=num_film_blocks))
        super().__init__(sample_rate, conf["n_fft"], conf["hop_length"], query_dim, mask_backend)
        total = conf["n_blocks"] * conf["n_repeats"]
        if not 1 <= conf["num_film_blocks"] <= total:
            raise ValueError(f"num_film_blocks must be in 1..{total} (n_blocks * n_repeats): "
                             f"with none, the masks would not depend on the query; got "
                             f"{conf['num_film_blocks']}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.conf = conf
        self.kernel_size = kernel_size
        n_freq = self.stft.config.n_freq
        bn, hid = conf["bn_chan"], conf["hid_chan"]
        first_film = total - conf["num_film_blocks"]

        self.input_norm = nn.BatchNorm1d(n_freq)
        self.bottleneck = nn.Conv1d(n_freq, bn, 1)
        blocks = [DilatedBlock(bn, hid, kernel_size, 2 ** (i % conf["n_blocks"]),
                               query_dim if i >= first_film else None) for i in range(total)]
        self.shared_blocks = nn.Sequential(*blocks[:first_film])
        self.film_blocks = nn.ModuleList(blocks[first_film:])
        self.mask_out = nn.Sequential(nn.PReLU(), nn.Conv1d(bn, n_freq, 1), nn.Sigmoid())

    def get_model_args(self) -> dict:
        return {"sample_rate": self.sample_rate, **self.conf, "kernel_size": self.kernel_size,
                "query_dim": self.query_dim, "mask_backend": self.mask_backend}

    def encode(self, mag: torch.Tensor) -> FiLMMaskNetFeatures:
        """Everything before the first FiLM: the shared blocks, then the first FiLM block's
        ``body``.

        Shape:
            - mag: ``(B, F, T)`` mixture magnitude, ``F = n_fft // 2 + 1``.
            - output: :class:`FiLMMaskNetFeatures` of ``B`` items.
        """
        n_freq = self.stft.config.n_freq
        if mag.dim() != 3 or mag.shape[1] != n_freq:
            raise TypeError(f"mag must be (batch, {n_freq}, frames), got {tuple(mag.shape)}")
        x = self.shared_blocks(self.bottleneck(self.input_norm(torch.log1p(mag))))
        return FiLMMaskNetFeatures(x, self.film_blocks[0].body(x))

    def predict_masks(self, features: FiLMMaskNetFeatures, query: Conditioning) -> torch.Tensor:
        """The FiLM blocks and the mask layer with the ``Q`` queries folded into the batch
        (``B·Q``); the first block starts from the shared ``features.hidden``.

        Shape:
            - features: from :meth:`encode` of a ``(B, F, T)`` magnitude.
            - query: embedding ``(B, Q, query_dim)`` (token states are not used).
            - output: ``(B, Q, F, T)`` in ``[0, 1]``.
        """
        batch = features.residual.shape[0]
        self.check_query(query, batch)
        first, *rest = self.film_blocks
        x = first.forward_queries(features.residual, features.hidden, query.embedding)
        embedding = query.embedding.flatten(0, 1)
        for block in rest:
            x = block(x, embedding)
        return self.mask_out(x).unflatten(0, (batch, -1))
