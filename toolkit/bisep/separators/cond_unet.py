"""The paper's conditional U-Net over the STFT magnitude, with an inner-product mask head.

Layout (``num_downs = n`` levels, the deepest ``num_cond_levels = c`` of them conditioned)::

    log1p|X| ─ BN ─ down_0 ─ ... ─ down_{n-c-1} ─ down_{n-c} ─┬─ SCA ─ down ─ SCA ... (c)
                  └──────── query-independent: encode() ───────┘   │
                                                                    up path ─ 32 maps ─ head
                                                                    (per query)

A down level is conv4x4/2 → BN → LeakyReLU(0.2) → :class:`ResBlock`; an SCA block is a
self-attention transformer block over the H·W positions followed by a cross-attention
block on the query's text tokens. An up level is bilinear x2 → :class:`ResBlock` →
conv3x3 → BN → ReLU on ``[skip, deeper]`` (the outermost one ends in a plain conv3x3 to
``num_channels`` maps). The head turns the maps into one mask per query::

    q = sigmoid(W e),   mask = sigmoid(Σ_c α_c q_c F_c + β)

Per-query cost: every level above the first conditioned one, and that level's strided
conv, runs once per mixture in :meth:`CondUNet.encode`. Everything downstream of the
first SCA block depends on the query, which is the whole up path; there, the shared skip
connections are not copied per query: with several queries per item, the half of each up
level's first convolution that reads the skip is computed once per mixture (see
:meth:`ResBlock.forward_split`); with one, a single convolution over ``[skip, x]`` is
faster. With ``num_cond_levels=0`` the whole U-Net is shared and only the head runs per
query.

Inference speed: where no gradient is wanted, the 3x3 convolutions (nearly all the
multiply-adds) run NNPACK's Winograd algorithm (:mod:`bisep.separators.conv3x3`).

This module holds the levels and the model; the SCA block is in
:mod:`bisep.separators.attention`, the head in :mod:`bisep.separators.inner_product_head`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bisep.separators.attention import SCABlock
from bisep.separators.base import BaseSeparator, Conditioning
from bisep.separators.conv3x3 import Conv3x3, conv3x3
from bisep.separators.inner_product_head import InnerProductHead
from bisep.separators.presets import resolve_preset

PRESETS = {
    # The paper's configuration (512 x 512 bins for 131,070 samples).
    "paper": dict(n_fft=1022, hop_length=256, ngf=64, num_downs=7, num_cond_levels=3,
                  num_heads=8, num_channels=32),
    # Trains on 2 CPU cores. No SCA level: the whole U-Net is shared by the queries and
    # only the head is per query. One SCA level makes the whole up path per query, which
    # measured 6-9x the training-step time (docs/separators.md); num_heads is for that.
    "small": dict(n_fft=510, hop_length=256, ngf=16, num_downs=5, num_cond_levels=0,
                  num_heads=4, num_channels=32),
}


def _check_tokens(query: Conditioning, token_dim: int) -> None:
    tokens, mask = query.tokens, query.token_mask
    batch, queries = query.embedding.shape[:2]
    if tokens.dim() != 4 or tokens.shape[:2] != (batch, queries) or tokens.shape[3] != token_dim:
        raise TypeError(f"query tokens must be (B, Q, L, token_dim) = ({batch}, {queries}, L, "
                        f"{token_dim}), got {tuple(tokens.shape)}; set separator_conf.token_dim "
                        f"to the conditioner's token size")
    if mask is not None:
        if mask.shape != tokens.shape[:3]:
            raise TypeError(f"token_mask must be (B, Q, L) = {tuple(tokens.shape[:3])}, got "
                            f"{tuple(mask.shape)}")
        # A query made only of padding has nothing to attend to (softmax over no keys is NaN).
        if not mask.any(dim=-1).all():
            raise ValueError("a query has no real token (token_mask is all False)")


class ResBlock(nn.Module):
    """conv3x3 → BN, plus the input, then LeakyReLU(0.2).

    Args:
        channels: input and output channels.

    Shape:
        ``(N, channels, H, W)`` -> ``(N, channels, H, W)``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = Conv3x3(channels, channels)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)) + x)

    def lead_partial(self, lead: torch.Tensor) -> torch.Tensor:
        """The convolution's contribution from the leading ``lead.shape[1]`` input channels.

        Shape:
            ``(B, C_lead, H, W)`` -> ``(B, channels, H, W)`` (no bias).
        """
        return conv3x3(lead, self.conv.weight[:, :lead.shape[1]])

    def forward_split(self, lead: torch.Tensor, partial: torch.Tensor,
                      x: torch.Tensor) -> torch.Tensor:
        """``forward(cat([lead, x]))`` where ``lead`` is shared by the ``Q`` queries of an item.

        A convolution over concatenated channels is the sum of convolutions over each part,
        so the ``lead`` half (``partial``, from :meth:`lead_partial`) is computed once per
        mixture and neither it nor ``lead`` is copied per query.

        Shape:
            - lead: ``(B, C_lead, H, W)``; partial: ``(B, channels, H, W)``.
            - x: ``(B·Q, channels - C_lead, H, W)``, queries of an item adjacent.
            - output: ``(B·Q, channels, H, W)``.
        """
        batch, c_lead = lead.shape[:2]
        y = conv3x3(x, self.conv.weight[:, c_lead:].contiguous(), self.conv.bias)
        y = (y.unflatten(0, (batch, -1)) + partial.unsqueeze(1)).flatten(0, 1)
        y = self.norm(y)
        y_lead = (y[:, :c_lead].unflatten(0, (batch, -1)) + lead.unsqueeze(1)).flatten(0, 1)
        return self.act(torch.cat([y_lead, y[:, c_lead:] + x], dim=1))


class DownLevel(nn.Sequential):
    """conv4x4/2 → BN → LeakyReLU(0.2) → :class:`ResBlock`: halves F and T.

    Shape:
        ``(N, in_ch, H, W)`` -> ``(N, out_ch, H/2, W/2)``.
    """

    def __init__(self, in_ch: int, out_ch: int):
        # No conv bias: the BatchNorm right after it has its own shift.
        super().__init__(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2), ResBlock(out_ch))


@dataclass
class SharedSkip:
    """What an up level precomputes from a query-independent skip connection.

    Attributes:
        up: the upsampled skip ``(B, C_skip, 2H, 2W)``.
        partial: :meth:`ResBlock.lead_partial` of ``up``, computed by the first call with
            several queries per item and kept for the next ones (``None`` until then).
    """

    up: torch.Tensor
    partial: torch.Tensor | None = None


class UpLevel(nn.Module):
    """Bilinear x2 → :class:`ResBlock` → conv3x3 → BN → ReLU over ``[skip, deeper]``.

    Args:
        skip_ch: channels of the skip connection (0 at the innermost level).
        in_ch: channels coming from the deeper level.
        out_ch: output channels.
        outermost: end in a plain conv3x3 (with bias, no norm, no activation).

    Shape:
        ``(N, in_ch, H, W)`` and skip ``(N, skip_ch, H, W)`` -> ``(N, out_ch, 2H, 2W)``.
    """

    def __init__(self, skip_ch: int, in_ch: int, out_ch: int, outermost: bool = False):
        super().__init__()
        self.res = ResBlock(skip_ch + in_ch)
        if outermost:
            self.out = Conv3x3(skip_ch + in_ch, out_ch)
        else:
            self.out = nn.Sequential(Conv3x3(skip_ch + in_ch, out_ch, bias=False),
                                     nn.BatchNorm2d(out_ch), nn.ReLU())

    @staticmethod
    def upsample(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = torch.cat([skip, x], dim=1)
        return self.out(self.res(self.upsample(x)))

    def share(self, skip: torch.Tensor) -> SharedSkip:
        """Precompute the query-independent part of this level for ``skip``.

        Bilinear upsampling acts per channel, so ``up(cat([skip, x]))`` is
        ``cat([up(skip), up(x)])`` and ``up(skip)`` is computed once.
        """
        return SharedSkip(self.upsample(skip))

    def forward_shared(self, x: torch.Tensor, shared: SharedSkip) -> torch.Tensor:
        """:meth:`forward` with a skip shared by the ``Q`` queries of each item.

        With one query per item nothing is shared, and one convolution over all the
        channels runs faster than the two halves of :meth:`ResBlock.forward_split` (same
        arithmetic, fewer passes over the feature map): the skip's half is computed only
        when an item has several queries.

        Shape:
            ``(B·Q, in_ch, H, W)`` -> ``(B·Q, out_ch, 2H, 2W)``.
        """
        x = self.upsample(x)
        if x.shape[0] == shared.up.shape[0]:
            return self.out(self.res(torch.cat([shared.up, x], dim=1)))
        if shared.partial is None:
            shared.partial = self.res.lead_partial(shared.up)
        return self.out(self.res.forward_split(shared.up, shared.partial, x))


@dataclass
class CondUNetFeatures:
    """The query-independent part of a mixture, from :meth:`CondUNet.encode`.

    Attributes:
        size: ``(F, T)`` of the mixture before padding.
        deep: output of the first conditioned level's strided conv, before its SCA block
            ``(B, C, H, W)``; with ``num_cond_levels=0``, the U-Net output maps
            ``(B, num_channels, F_pad, T_pad)``.
        skips: the precomputed shared skip connections, outermost first.
    """

    size: tuple[int, int]
    deep: torch.Tensor
    skips: list[SharedSkip]


class CondUNet(BaseSeparator):
    """Conditional U-Net with SCA (self + cross attention) blocks and inner-product head.

    ``log1p(|X|)`` → BatchNorm2d(1) → U-Net (module docstring) → ``num_channels`` maps →
    one sigmoid mask per query. F and T are zero-padded (silence, as the paper's chunked
    inference pads the waveform) to a multiple of ``2**num_downs`` and the masks cropped
    back, so any length works.

    Keywords left at ``None`` take the preset's value; explicit ones override it.

    Presets (parameter counts with the head, for ``query_dim=512, token_dim=768``):

    - ``None`` or ``"paper"``: n_fft 1022, hop 256, ngf 64, num_downs 7,
      num_cond_levels 3, num_heads 8, num_channels 32: 88,088,611 parameters
      (87,694,627 without ``embedding_token``).
    - ``"small"``: n_fft 510 (256 bins), hop 256, ngf 16, num_downs 5,
      num_cond_levels 0, num_heads 4, num_channels 32: 2,079,379 parameters. The whole
      U-Net is shared by the queries, so it trains on 2 CPU cores; adding one SCA level
      (``num_cond_levels=1``: 2,902,163 parameters) makes the up path per query and
      measured 6-9x the training-step time (``benchmarks/separator_rtf.py``).

    Args:
        sample_rate: the rate the model works at.
        n_fft, hop_length: STFT parameters (``n_fft // 2 + 1`` bins).
        ngf: channels of the outermost level; level ``i`` has ``ngf * min(2**i, 8)``.
        num_downs: number of down (and up) levels.
        num_cond_levels: the deepest levels that get an SCA block (0 to ``num_downs``).
        num_heads: attention heads.
        num_channels: feature maps the head combines.
        token_dim: size of the query token states the cross-attention reads.
        query_dim: size of the query embedding ``D``.
        mask_backend: see :class:`~bisep.separators.base.BaseSeparator`.
        preset: ``"paper"`` or ``"small"``; ``None`` is ``"paper"``.

    When the conditioner gives no token states (``query.tokens is None``), the
    cross-attention attends to the query embedding alone, as a one-token sequence through
    ``Linear(query_dim → token_dim)`` (``embedding_token``). That layer gets no gradient
    when tokens are given, so DDP training with tokens needs
    ``find_unused_parameters=True``.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int | None = None,
                 hop_length: int | None = None, ngf: int | None = None,
                 num_downs: int | None = None, num_cond_levels: int | None = None,
                 num_heads: int | None = None, num_channels: int | None = None,
                 token_dim: int = 768, query_dim: int = 512, mask_backend: str = "torch",
                 preset: str | None = None):
        conf = resolve_preset(PRESETS, preset, "paper", dict(
            n_fft=n_fft, hop_length=hop_length, ngf=ngf, num_downs=num_downs,
            num_cond_levels=num_cond_levels, num_heads=num_heads, num_channels=num_channels))
        super().__init__(sample_rate, conf["n_fft"], conf["hop_length"], query_dim, mask_backend)
        self.conf = conf
        self.token_dim = token_dim
        n, c = conf["num_downs"], conf["num_cond_levels"]
        if n < 1 or not 0 <= c <= n:
            raise ValueError(f"need num_downs >= 1 and 0 <= num_cond_levels <= num_downs, got "
                             f"num_downs={n}, num_cond_levels={c}")
        self.first_cond = n - c
        chans = [conf["ngf"] * min(2 ** i, 8) for i in range(n)]

        self.input_norm = nn.BatchNorm2d(1)
        self.downs = nn.ModuleList(DownLevel(cin, cout) for cin, cout in zip([1] + chans, chans))
        self.sca = nn.ModuleList(SCABlock(chans[i], token_dim, conf["num_heads"])
                                 for i in range(self.first_cond, n))
        # ups[i] goes from level i's resolution to level i-1's; the innermost one has no
        # skip, the others read [skip_i, output of ups[i+1]] (both chans[i] channels).
        self.ups = nn.ModuleList(
            UpLevel(0 if i == n - 1 else chans[i], chans[i],
                    chans[i - 1] if i else conf["num_channels"], outermost=i == 0)
            for i in range(n))
        self.embedding_token = nn.Linear(query_dim, token_dim) if c else None
        self.head = InnerProductHead(query_dim, conf["num_channels"])

    @property
    def uses_tokens(self) -> bool:
        """Only the SCA blocks' cross-attention reads token states."""
        return len(self.sca) > 0

    @property
    def independent_queries(self) -> bool:
        """In training mode the BatchNorms after the first SCA level normalise over the
        ``B·Q`` folded queries, so a mask depends on the other queries of the call."""
        return not (self.training and len(self.sca) > 0)

    def get_model_args(self) -> dict:
        return {"sample_rate": self.sample_rate, **self.conf, "token_dim": self.token_dim,
                "query_dim": self.query_dim, "mask_backend": self.mask_backend}

    def _pad(self, mag: torch.Tensor) -> torch.Tensor:
        multiple = 2 ** self.conf["num_downs"]
        pad_f, pad_t = -mag.shape[-2] % multiple, -mag.shape[-1] % multiple
        return F.pad(mag, (0, pad_t, 0, pad_f))

    def encode(self, mag: torch.Tensor) -> CondUNetFeatures:
        """Run the query-independent part of the U-Net once per mixture.

        Shape:
            - mag: ``(B, F, T)`` mixture magnitude.
            - output: :class:`CondUNetFeatures`.
        """
        if mag.dim() != 3:
            raise TypeError(f"mag must be (batch, freq, frames), got {tuple(mag.shape)}")
        x = self.input_norm(torch.log1p(self._pad(mag)).unsqueeze(1))
        skips = []
        for down in self.downs[:self.first_cond]:
            x = down(x)
            skips.append(x)
        if self.first_cond == len(self.downs):
            return CondUNetFeatures(tuple(mag.shape[-2:]), self._decode(skips[:-1], x), [])
        shared = [self.ups[i].share(skip) for i, skip in enumerate(skips)]
        return CondUNetFeatures(tuple(mag.shape[-2:]), self.downs[self.first_cond](x), shared)

    def _decode(self, skips: list, x: torch.Tensor) -> torch.Tensor:
        """Up path from the innermost output ``x``; ``skips[i]`` feeds ``ups[i]``.

        A skip is a tensor (concatenated) or a :class:`SharedSkip` (shared by the queries).
        """
        x = self.ups[-1](x)
        for i in range(len(self.ups) - 2, -1, -1):
            skip = skips[i]
            x = (self.ups[i].forward_shared(x, skip) if isinstance(skip, SharedSkip)
                 else self.ups[i](x, skip))
        return x

    def _context(self, query: Conditioning) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cross-attention context ``(B·Q, L, token_dim)`` and key mask ``(B·Q, L)``."""
        if query.tokens is None:
            return self.embedding_token(query.embedding.flatten(0, 1)).unsqueeze(1), None
        _check_tokens(query, self.token_dim)
        mask = None if query.token_mask is None else query.token_mask.flatten(0, 1).bool()
        return query.tokens.flatten(0, 1), mask

    def predict_masks(self, features: CondUNetFeatures, query: Conditioning) -> torch.Tensor:
        """One mask per query from the shared features.

        The ``Q`` queries are folded into the batch (``B·Q``) for the conditioned levels
        and the up path. Token states are read only when ``num_cond_levels > 0``.

        Shape:
            - features: from :meth:`encode` of a ``(B, F, T)`` magnitude.
            - query: embedding ``(B, Q, query_dim)``; tokens ``(B, Q, L, token_dim)`` and
              token_mask ``(B, Q, L)`` or ``None``.
            - output: ``(B, Q, F, T)`` in ``[0, 1]``.
        """
        batch = features.deep.shape[0]
        self.check_query(query, batch)
        n_freq, n_frames = features.size
        if not self.sca:
            maps = features.deep[..., :n_freq, :n_frames].unsqueeze(1)
            return self.head(maps, query.embedding)
        context, key_mask = self._context(query)
        x = features.deep.repeat_interleave(query.num_queries, dim=0)
        skips = list(features.skips)
        for j, block in enumerate(self.sca):
            if j:
                x = self.downs[self.first_cond + j](x)
            x = block(x, context, key_mask)
            skips.append(x)
        maps = self._decode(skips, skips.pop())[..., :n_freq, :n_frames]
        return self.head(maps.unflatten(0, (batch, -1)), query.embedding)
