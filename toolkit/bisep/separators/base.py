"""The interface of every mask-based, query-conditioned separator.

Weak training runs N·K queries per mixture of mixtures, so the separator is split in two:

1. :meth:`BaseSeparator.encode`: the query-independent work, run **once per mixture**;
2. :meth:`BaseSeparator.predict_masks`: the per-query work, run for every query.

A separator that puts as much as it can into (1) makes extra queries cheap;
``docs/separators.md`` says what each built-in separator shares.

The data flow (``bisep/dsp`` does the signal processing)::

    wav ─ analyze ─► spec, mag ─ encode ─► features ─ predict_masks(query) ─► masks
    masks, spec ─ synthesize ─► one waveform per query (mixture phase, inverse STFT)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from bisep.dsp import Stft, StftConfig, apply_mask


@dataclass
class Conditioning:
    """What a separator is conditioned on, per query.

    Attributes:
        embedding: joint-space query embeddings (from a conditioner).
        tokens: per-token text states for cross-attention, when the conditioner has them.
        token_mask: ``True`` for real tokens, ``False`` for padding.

    Shape:
        - embedding: ``(B, Q, D)``.
        - tokens: ``(B, Q, L, token_dim)``.
        - token_mask: ``(B, Q, L)``.
    """

    embedding: torch.Tensor
    tokens: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None

    @property
    def num_queries(self) -> int:
        return self.embedding.shape[1]


class BaseSeparator(torch.nn.Module):
    """Base class of the ``separator`` component: the network that turns a mixture's
    magnitude and query embeddings into one mask per query, between STFT analysis and
    mixture-phase synthesis.

    This is what the ``separator:`` config key and plugin kind name (``cond_unet``,
    ``film_masknet``); it takes embeddings, not text, and knows no files or chunks. The
    object users call to separate files, :class:`bisep.Separator`
    (:class:`bisep.inference.Separator`), wraps one with its query encoder and chunking
    (``docs/architecture.md#glossary``).

    Args:
        sample_rate: the rate the model works at.
        n_fft, hop_length: STFT parameters.
        query_dim: size of the query embedding ``D``.
        mask_backend: how masks are applied (``bisep.dsp.masking``): ``"torch"``, or an
            accelerated kernel where available.

    Subclasses implement :meth:`encode`, :meth:`predict_masks` and
    :meth:`get_model_args` (the keyword arguments that rebuild the model), and set
    :attr:`uses_tokens` when :meth:`predict_masks` reads the per-token text states: callers
    build ``Conditioning.tokens`` only then, since they cost a padded copy per query.
    """

    uses_tokens: bool = False

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1022, hop_length: int = 256,
                 query_dim: int = 512, mask_backend: str = "torch"):
        super().__init__()
        self.sample_rate = sample_rate
        self.query_dim = query_dim
        self.mask_backend = mask_backend
        self.stft = Stft(StftConfig(n_fft=n_fft, hop_length=hop_length))

    # -- the two halves subclasses implement --------------------------------------------
    def encode(self, mag: torch.Tensor) -> Any:
        """Query-independent features of a mixture magnitude ``(B, F, T)``."""
        raise NotImplementedError

    def predict_masks(self, features: Any, query: Conditioning) -> torch.Tensor:
        """Masks in ``[0, 1]`` of shape ``(B, Q, F, T)`` for ``query``."""
        raise NotImplementedError

    def get_model_args(self) -> dict:
        raise NotImplementedError

    @property
    def independent_queries(self) -> bool:
        """Whether a query's mask depends only on its own item and query, not on the other
        queries of the call. A trainer may then run a query repeated within an item once
        (``bisep.train.inputs``). A separator that normalises over the batch of queries
        (BatchNorm in training mode after the queries are folded in) returns ``False``."""
        return True

    def select_items(self, features: Any, index: torch.Tensor) -> Any:
        """The :meth:`encode` output of the items ``index``, in that order.

        The default indexes dim 0 of every tensor in ``features`` (a tensor, or lists,
        tuples, dicts and dataclasses of them); other values are kept.

        Shape:
            index: ``(M,)`` int64 -> features of ``M`` items.
        """
        return _select_items(features, index)

    # -- shared plumbing ------------------------------------------------------------------
    def analyze(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Complex STFT and magnitude of a mixture.

        Shape:
            - wav: ``(B, L)``.
            - output: ``(B, F, T)`` complex and ``(B, F, T)`` real.
        """
        if wav.dim() != 2:
            raise TypeError(f"wav must be (batch, samples), got {tuple(wav.shape)}")
        spec = self.stft(wav)
        return spec, spec.abs()

    def synthesize(self, spec: torch.Tensor, masks: torch.Tensor, length: int) -> torch.Tensor:
        """Waveforms of the masked mixture, with the mixture phase.

        Shape:
            - spec: ``(B, F, T)`` complex; masks: ``(B, Q, F, T)``.
            - output: ``(B, Q, length)``.
        """
        return self.stft.inverse(apply_mask(spec, masks, backend=self.mask_backend), length)

    def forward(self, wav: torch.Tensor, query: Conditioning) -> torch.Tensor:
        """Separate one waveform per query.

        Shape:
            - wav: ``(B, L)``.
            - query: embedding ``(B, Q, D)`` (see :class:`Conditioning`).
            - output: ``(B, Q, L)``.
        """
        spec, mag = self.analyze(wav)
        masks = self.predict_masks(self.encode(mag), query)
        return self.synthesize(spec, masks, wav.shape[-1])

    def check_query(self, query: Conditioning, batch: int) -> None:
        emb = query.embedding
        if emb.dim() != 3 or emb.shape[0] != batch or emb.shape[2] != self.query_dim:
            raise TypeError(f"query embedding must be (B, Q, D) = ({batch}, Q, "
                            f"{self.query_dim}), got {tuple(emb.shape)}; was the model "
                            f"trained with another conditioner?")


def _select_items(obj: Any, index: torch.Tensor) -> Any:
    if torch.is_tensor(obj):
        return obj.index_select(0, index)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_select_items(item, index) for item in obj)
    if isinstance(obj, dict):
        return {key: _select_items(item, index) for key, item in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _select_items(getattr(obj, f.name), index)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj
