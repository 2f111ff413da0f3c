"""Queries made of text, audio, or both, with an optional negative ("not this") text.

Works with any :class:`~bisep.conditioners.base.Conditioner`, since text and audio embeddings
share one space. As in CLAPSep, a text and an audio query are blended by a weighted sum in the
joint space, renormalised: ``normalize(w * text + (1 - w) * audio)``.

CLAPSep feeds its separator a positive and a negative embedding side by side. bisep's separators
are conditioned on *one* embedding, so a negative is expressed by moving that embedding away from
the negative's direction: ``normalize(positive - negative_weight * negative)``. The result has a
lower cosine with the negative than the positive had, and stays close to the positive as long as
the weight is moderate; a weight near 1 with a negative close to the positive leaves mostly the
difference between the two, which is why the weight is bounded and a near-zero result is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from bisep.audio import resample_tensor
from bisep.conditioners.base import Conditioner, QueryError


@dataclass(frozen=True)
class Query:
    """One query: a text, an audio example, or both, and an optional negative text.

    Args:
        text (str, optional): what to extract, e.g. ``"violin"``.
        audio (torch.Tensor, optional): an example of it, mono ``(time,)`` or
            ``(channels, time)`` (channels are averaged).
        audio_rate (int, optional): sample rate of ``audio``; required with ``audio``. The clip
            is resampled to the conditioner's rate.
        negative (str, optional): what to keep out, e.g. ``"piano"``.
        text_weight (float): ``w`` in ``normalize(w * text + (1 - w) * audio)``, in [0, 1]; used
            only when both ``text`` and ``audio`` are given.
        negative_weight (float): how far to move away from ``negative``, in (0, 1].
    """

    text: str | None = None
    audio: torch.Tensor | None = None
    audio_rate: int | None = None
    negative: str | None = None
    text_weight: float = 0.5
    negative_weight: float = 0.5

    def __post_init__(self):
        if self.text is None and self.audio is None:
            raise QueryError("a query needs a text, an audio example, or both "
                             "(a negative alone says what to avoid, not what to extract)")
        for name in ("text", "negative"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise QueryError(f"query {name} {value!r} is empty: give a text such as 'violin'")
        if self.audio is not None:
            if not torch.is_tensor(self.audio) or self.audio.dim() not in (1, 2) \
                    or self.audio.shape[-1] == 0:
                shape = tuple(self.audio.shape) if torch.is_tensor(self.audio) else self.audio
                raise QueryError(f"query audio must be a non-empty (time,) or (channels, time) "
                                 f"tensor, got {shape}")
            if self.audio_rate is None:
                raise QueryError("query audio was given without audio_rate: pass the sample rate "
                                 "of the clip, e.g. Query(audio=wav, audio_rate=16000)")
            if self.audio_rate <= 0:
                raise QueryError(f"audio_rate must be positive, got {self.audio_rate}")
        if not 0.0 <= self.text_weight <= 1.0:
            raise QueryError(f"text_weight must be in [0, 1], got {self.text_weight}")
        if not 0.0 < self.negative_weight <= 1.0:
            raise QueryError(f"negative_weight must be in (0, 1], got {self.negative_weight}")


def _device(conditioner: Conditioner) -> torch.device:
    param = next(conditioner.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _embed_example(conditioner: Conditioner, query: Query) -> torch.Tensor:
    audio = query.audio.to(_device(conditioner), torch.float32)
    if audio.dim() == 2:
        audio = audio.mean(dim=0)
    if query.audio_rate != conditioner.sample_rate:
        audio = resample_tensor(audio, query.audio_rate, conditioner.sample_rate)
    return conditioner.embed_audio(audio[None])[0]


def embed_queries(conditioner: Conditioner, queries: Sequence[Query | str]) -> torch.Tensor:
    """One unit-norm conditioning embedding per query.

    All texts (positives and negatives) go through the text tower in one batch; audio examples,
    which may differ in length and rate, one at a time.

    Args:
        conditioner (Conditioner): the embedding model.
        queries (sequence of Query or str): a plain string is a text query.

    Returns:
        torch.Tensor: ``normalize(w * text + (1 - w) * audio)``, then, with a negative,
        ``normalize(that - negative_weight * embed_text(negative))``.

    Shape:
        output: ``(len(queries), conditioner.embed_dim)``.
    """
    if isinstance(queries, (str, Query)):
        queries = [queries]
    queries = [Query(text=q) if isinstance(q, str) else q for q in queries]
    if not queries:
        raise QueryError("no query given: pass at least one Query or text")
    for i, query in enumerate(queries):
        if not isinstance(query, Query):
            raise TypeError(f"query {i} is a {type(query).__name__}; pass a Query or a str")

    texts = [q.text for q in queries if q.text is not None]
    texts += [q.negative for q in queries if q.negative is not None]
    text_embeds = iter(conditioner.embed_text(texts) if texts else ())
    text_of = {i: next(text_embeds) for i, q in enumerate(queries) if q.text is not None}
    negative_of = {i: next(text_embeds) for i, q in enumerate(queries) if q.negative is not None}

    rows = []
    for i, query in enumerate(queries):
        if query.audio is None:
            embed = text_of[i]
        elif query.text is None:
            embed = _embed_example(conditioner, query)
        else:
            w = query.text_weight
            embed = _unit(w * text_of[i] + (1 - w) * _embed_example(conditioner, query),
                          f"query {i}: its text and audio embeddings point in opposite "
                          f"directions and cancel out; change text_weight")
        if query.negative is not None:
            embed = _unit(embed - query.negative_weight * negative_of[i],
                          f"query {i}: the negative {query.negative!r} cancels the positive "
                          f"(they embed to the same direction); lower negative_weight or choose "
                          f"a different negative")
        rows.append(embed)
    return torch.stack(rows)


def _unit(vector: torch.Tensor, why: str) -> torch.Tensor:
    """``vector`` normalised, or a :class:`QueryError` when it is too short to have a
    direction."""
    if vector.norm() < 1e-4:
        raise QueryError(why)
    return F.normalize(vector, dim=-1)
