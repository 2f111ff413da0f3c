"""2-source compositions of extracted clips: random pairs of clips with different labels,
and mixtures that are exactly the integer sum of their two stems. The pairs are drawn from
a seeded ``numpy.random.Generator`` over clips sorted by id, so two users with the same
files write the same lists."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

from bisep.data.manifest import DataError
from bisep.data.pcm import PCM_MAX, write_pcm16_if_changed
from bisep.data.sources import Clip


def draw_pairs(clips: Sequence[Clip], repeats: int, rng: np.random.Generator,
               partners: Sequence[Clip] | None = None,
               compatible: Callable[[Clip, Clip], bool] | None = None,
               ) -> list[tuple[Clip, Clip]]:
    """Pair every clip, ``repeats`` times over the list, with a random partner.

    Args:
        clips: the first part of each pair, in order.
        repeats: passes over ``clips``.
        rng: the random stream (the pairs are a function of it and the inputs).
        partners: where partners come from; ``None`` = ``clips``. A clip is never its
            own partner.
        compatible: which partners are allowed; the default requires disjoint label sets
            (two different classes).

    Returns:
        ``[(clip, partner), ...]``; a clip without any compatible partner is left out.
    """
    partners = list(clips if partners is None else partners)
    compatible = compatible or (lambda a, b: not set(a.source.labels) & set(b.source.labels))
    pairs = []
    for _ in range(repeats):
        for clip in clips:
            partner = _draw_partner(clip, partners, rng, compatible)
            if partner is not None:
                pairs.append((clip, partner))
    return pairs


def _draw_partner(clip, partners, rng, compatible, tries: int = 64):
    # Rejection from the whole pool is uniform over the compatible partners and cheap
    # when most are compatible (hundreds of classes); the exhaustive draw covers the rest.
    if not partners:
        return None
    for _ in range(tries):
        other = partners[int(rng.integers(len(partners)))]
        if other.id != clip.id and compatible(clip, other):
            return other
    allowed = [p for p in partners if p.id != clip.id and compatible(clip, p)]
    return allowed[int(rng.integers(len(allowed)))] if allowed else None



def compose_pairs(pairs: Sequence[tuple[Clip, Clip]], folder: Path, prefix: str,
                  describe: Callable[[Clip], tuple[str, str, str]],
                  caption: Callable[[list[str]], str], sample_rate: int,
                  name: str = "corpus") -> list[dict]:
    """Write 2-source compositions and return their manifest items.

    Each item: ``{"id", "audio", "labels": [a, b], "phrases": [.., ..], "caption",
    "stems": {a: wav, b: wav}, "duration", "clips": [clip ids]}``. The mixture WAV is
    the integer sum of the two stems at their recorded levels, and the stems are the
    extracted clips themselves; only when the sum would clip are both stems scaled by
    one gain (their ratio kept) and written beside the mixture.

    Args:
        pairs: from :func:`draw_pairs`.
        folder: where the mixtures go (``data/wav/<name>_mix``).
        prefix: item ids are ``<prefix>_000000``, ...
        describe: ``clip -> (label, phrase, text)`` of each part: its label in the
            item, its query, and what the mixture prompt says of it.
        caption: ``[text, text] -> mixture prompt``.
        sample_rate: Hz of the clips (and of the written mixtures).
        name: the dataset, for error messages.
    """
    items = []
    for index, parts in enumerate(pairs):
        item_id = f"{prefix}_{index:06d}"
        described = [describe(clip) for clip in parts]
        labels = [label for label, _, _ in described]
        if len(set(labels)) != len(labels):
            raise DataError(f"{name}: composition {item_id} would have the label "
                            f"'{labels[0]}' twice; its parts must differ.")
        stems = [sf.read(clip.audio, dtype="int16")[0].astype(np.int32) for clip in parts]
        total = np.sum(stems, axis=0)
        peak = max(int(np.max(np.abs(total))), *(int(np.max(np.abs(x))) for x in stems))
        stem_paths = [clip.audio for clip in parts]
        if peak > PCM_MAX:
            gain = PCM_MAX / peak
            stems = [np.round(x * gain).astype(np.int32) for x in stems]
            total = np.sum(stems, axis=0)
            stem_paths = [str((folder / item_id / f"{label}.wav").resolve())
                          for label in labels]
            for path, stem in zip(stem_paths, stems):
                write_pcm16_if_changed(Path(path), stem.astype(np.int16), sample_rate)
        audio = (folder / f"{item_id}.wav").resolve()
        write_pcm16_if_changed(audio, np.clip(total, -32768, PCM_MAX).astype(np.int16),
                               sample_rate)
        items.append({"id": item_id, "audio": str(audio), "labels": labels,
                      "phrases": [query for _, query, _ in described],
                      "caption": caption([text for _, _, text in described]),
                      "stems": dict(zip(labels, stem_paths)),
                      "duration": len(total) / sample_rate,
                      "clips": [clip.id for clip in parts]})
    return items
