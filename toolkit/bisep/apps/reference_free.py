"""A reference-free score of separated audio, for real mixtures that have no stems
(``bisep score --reference-free``).

Each estimate is scored by the query encoder, CLAPScore-style: the cosine similarity of the
estimate's audio embedding with its query's text embedding (``clap_score``), the same for the
unprocessed mixture (``clap_score_mix``) and their difference (``clap_gain``, how much closer
to the query the separation moved the audio), beside the split of the mixture's energy
between the estimate and the residual, ``mixture - estimate`` (``energy_split_db``, 0 dB when
the estimate holds half the energy).

It is a proxy: a query encoder can rate a wrong-sounding estimate highly (docs/scoring.md
measures how far it agrees with SDR on the recipe's test set). It never replaces SDR where
references exist.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from bisep import audio
from bisep.data.prompts import phrase
from bisep.metrics.aggregate import summarize_rows
from bisep.metrics.files import ScoreInputError, ScoreItem
from bisep.metrics.report import ScoreReport

COLUMNS = ("clap_score", "clap_score_mix", "clap_gain", "energy_split_db")


def query_texts(item: ScoreItem) -> dict[str, str]:
    """Each estimate's query: the item's ``queries``, else the phrase of its source name
    (what ``bisep separate --list`` asks for a label without a phrase)."""
    return dict(item.queries) if item.queries else {name: phrase(name)
                                                    for name in item.estimates}


def _energy(x: np.ndarray) -> float:
    return float(np.sum(x.astype(np.float64) ** 2))


def score_reference_free(conditioner, items: list[ScoreItem], *,
                         progress: Callable[[int], None] | None = None) -> ScoreReport:
    """Score each estimate of ``items`` by ``conditioner`` (see the module docstring).

    Args:
        conditioner: a :class:`bisep.conditioners.base.Conditioner`, e.g.
            ``Separator.from_pretrained(model).conditioner``.
        items: with a mixture each (references are not read).
        progress: optional callable, given the number of items just scored.

    Raises:
        ScoreInputError: an item without a mixture.
        bisep.audio.AudioError: an unreadable file.
    """
    rows = []
    texts_seen: dict[str, torch.Tensor] = {}
    rate = conditioner.sample_rate
    for item in items:
        if item.mixture is None:
            raise ScoreInputError(f"item '{item.id}' has no mixture: the reference-free score "
                                  f"compares each estimate with its mixture; add \"mixture\".")
        mixture = audio.read(item.mixture, sample_rate=rate, mono=True, resample=True)[0][0]
        texts = query_texts(item)
        estimates = [audio.read(path, sample_rate=rate, mono=True, resample=True)[0][0]
                     for path in item.estimates.values()]
        length = min(len(mixture), *(len(e) for e in estimates))
        clips = np.stack([mixture[:length], *(e[:length] for e in estimates)])
        for text in set(texts.values()) - set(texts_seen):
            with torch.no_grad():
                texts_seen[text] = conditioner.embed_text([text])[0]
        with torch.no_grad():
            emb = conditioner.embed_audio(torch.from_numpy(clips))
        emb = torch.nn.functional.normalize(emb.float(), dim=-1)
        for k, name in enumerate(item.estimates):
            query = torch.nn.functional.normalize(texts_seen[texts[name]].float(), dim=-1)
            score, score_mix = float(emb[k + 1] @ query), float(emb[0] @ query)
            residual = clips[0] - clips[k + 1]
            split = 10 * np.log10(max(_energy(clips[k + 1]), 1e-12)
                                  / max(_energy(residual), 1e-12))
            rows.append({"item": item.id, "source": name, "clap_score": score,
                         "clap_score_mix": score_mix, "clap_gain": score - score_mix,
                         "energy_split_db": float(split)})
        if progress:
            progress(1)
    columns = list(COLUMNS)
    summary = {"kind": "reference-free (a proxy, not SDR)",
               "query_encoder": type(conditioner).__name__, "sample_rate": rate,
               "items": {"listed": len(items), "scored": len(items), "skipped": 0,
                         "without_references": 0},
               "rows": len(rows), "backend": "query encoder",
               "metrics": summarize_rows(rows, columns),
               "by_source": summarize_rows(rows, columns, group_by="source"),
               "skipped": {"by_reason": {}, "items": []},
               "trimmed": {"items": 0, "max_samples": 0}}
    return ScoreReport(rows, columns, summary)
