"""One separation as the demo page shows it: the target (what the queries describe), the
residual (the mixture minus the target), their spectrograms and the time it took.

::

    from bisep import Separator
    from bisep.demo.separation import separate_for_page
    from bisep.demo.uploads import build_queries, read_upload

    sep = Separator.from_pretrained("exp/weak/model.pth")
    mixture = read_upload("song.wav", max_seconds=600)
    queries, names = build_queries("violin, flute")
    result = separate_for_page(sep, mixture, queries, names, "out/", stem="song")
    result.target, result.residual, result.seconds
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from bisep import audio as audio_io
from bisep.conditioners.query import Query, embed_queries
from bisep.demo.spectrogram import log_spectrogram, save_spectrogram
from bisep.demo.uploads import UploadError
from bisep.inference import Separator
from bisep.naming import query_label, render, unique_labels

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    """The files of one separation and what it cost.

    Attributes:
        target: the sum of the queries' estimates (WAV, the mixture's rate and channels).
        residual: mixture minus target.
        stems: one WAV per query when there are several (empty for one query).
        spectrograms: PNGs keyed ``"mixture"``, ``"target"``, ``"residual"``.
        seconds: the separation's wall time (queries embedded, every chunk separated).
        audio_seconds: the mixture's length.
        chunks: how many chunk runs the separation took (two per chunk for a model with
            GroupNorm layers: :class:`bisep.inference.Separator`'s ``norm_stats``).
    """

    target: Path
    residual: Path
    stems: list[Path] = field(default_factory=list)
    spectrograms: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    audio_seconds: float = 0.0
    chunks: int = 1

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.audio_seconds if self.audio_seconds else float("nan")


def check_audio_examples(separator: Separator, queries: Sequence[Query]) -> None:
    """Embed each audio-example query alone first, so an example the query encoder cannot
    take (too short, ...) is reported as the example's fault, not the mixture's."""
    for query in queries:
        if query.audio is None:
            continue
        try:
            with torch.no_grad():
                embed_queries(separator.conditioner, [query])
        except (ValueError, RuntimeError) as exc:
            raise UploadError(f"the audio example cannot be used as a query ({exc}); give a "
                              f"longer example (a second or more).") from None


def separate_for_page(separator: Separator, mixture: tuple[np.ndarray, int],
                      queries: Sequence[Query], names: Sequence[str], out_dir: str | Path,
                      stem: str = "mixture",
                      progress: Callable[[int, int], None] | None = None) -> DemoResult:
    """Separate ``mixture`` and write the page's files into ``out_dir``.

    Long mixtures go through :meth:`bisep.inference.Separator.separate` in its chunks,
    reporting ``progress(done, total)`` after each.

    Args:
        mixture: ``(audio, rate)`` as :func:`bisep.demo.uploads.read_upload` gives it.
        queries, names: as :func:`bisep.demo.uploads.build_queries` gives them.
        stem: the start of the output file names (the upload's name).

    Raises:
        UploadError: an audio example the query encoder cannot embed, or a query the
            model refuses (e.g. a negative that cancels its positive).

    Shape:
        mixture audio: ``(channels, time)``; the outputs have the same shape.
    """
    wav, rate = mixture
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_audio_examples(separator, queries)
    chunks = [1]

    def count(done: int, total: int) -> None:
        chunks[0] = total
        if progress:
            progress(done, total)

    start = time.perf_counter()
    try:
        estimates = separator.separate_array(wav, list(queries), rate, progress=count)
    except ValueError as exc:  # a query that cancels out, a signal the model refuses
        raise UploadError(f"the model cannot separate this request: {exc}") from None
    seconds = time.perf_counter() - start
    target = estimates.sum(axis=0)
    residual = wav - target
    result = DemoResult(
        target=audio_io.write(out_dir / _name(stem, "target"), target, rate),
        residual=audio_io.write(out_dir / _name(stem, "residual"), residual, rate),
        seconds=seconds, audio_seconds=wav.shape[-1] / rate, chunks=chunks[0])
    if len(queries) > 1:
        labels = unique_labels([query_label(text=name) for name in names])
        result.stems = [audio_io.write(out_dir / _name(stem, label), est, rate)
                        for label, est in zip(labels, estimates)]
    top_db = float(log_spectrogram(wav, rate)[0].max())
    titles = {"mixture": "mixture", "target": f"target ({', '.join(names)})",
              "residual": "residual (mixture - target)"}
    for key, signal in (("mixture", wav), ("target", target), ("residual", residual)):
        result.spectrograms[key] = save_spectrogram(signal, rate, out_dir / f"{key}.png",
                                                    titles[key], top_db=top_db)
    log.info("separated %.1f s of audio with %d quer%s in %.2f s (%d chunk run(s))",
             result.audio_seconds, len(queries), "y" if len(queries) == 1 else "ies", seconds,
             result.chunks)
    return result


def _name(track: str, part: str) -> str:
    """``<track>_<part>.wav``, the track's name shortened if the file name would be too long."""
    return render("{track}_{query}.{ext}", track, part)
