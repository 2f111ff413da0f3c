"""What the demo page hands over, checked before any work: the mixture file, the query
texts, the negative and the audio example.

Every refusal is an :class:`UploadError` whose message names the file by the name the user
gave it (not the server's temporary path) and says what to do, so the page can show it as
it is.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from bisep import audio as audio_io
from bisep.conditioners.query import Query
from bisep.errors import UserError

# What libsndfile (soundfile) decodes; the message of an unreadable file lists them.
READABLE = "WAV, FLAC, OGG or MP3"


class UploadError(ValueError, UserError):
    """An upload or a query the page cannot use; the message says why and what to do."""


def read_upload(path: str | Path | None, max_seconds: float | None,
                what: str = "mixture") -> tuple[np.ndarray, int]:
    """Read an uploaded audio file, refusing what cannot be separated.

    The length is read from the header first, so a file over ``max_seconds`` is refused
    before it is decoded.

    Args:
        path: the file Gradio stored the upload in (``None``: nothing was given).
        max_seconds: the longest input accepted (``None``: no limit).
        what: how the message names the file ("mixture", "audio example").

    Returns:
        ``(audio, rate)``, audio as float32.

    Raises:
        UploadError: nothing given; an empty, unreadable or too long file.

    Shape:
        audio: ``(channels, time)``.
    """
    if not path:
        raise UploadError(f"no {what} given: upload an audio file, record one or pick an "
                          f"example.")
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise UploadError(f"the {what} {name} did not reach the server; upload it again.")
    if path.stat().st_size == 0:
        raise UploadError(f"the {what} {name} is an empty file (0 bytes); upload a "
                          f"recording.")
    try:
        info = audio_io.info(path)
    except audio_io.AudioError:
        raise UploadError(f"the {what} {name} is not an audio file this demo can read; "
                          f"upload {READABLE}.") from None
    if info.frames == 0 or info.samplerate <= 0:
        raise UploadError(f"the {what} {name} holds no samples; upload a recording.")
    seconds = info.frames / info.samplerate
    if max_seconds is not None and seconds > max_seconds:
        raise UploadError(f"the {what} {name} is {seconds:.1f} s long, over this demo's "
                          f"limit of {max_seconds:g} s (bisep demo --max-seconds); upload "
                          f"a shorter excerpt, or restart the demo with a higher limit.")
    try:
        return audio_io.read(path)
    except audio_io.AudioError as exc:
        # The message names the server's temporary path; the user knows the file's name.
        reason = str(exc).split(": ", 1)[-1]
        raise UploadError(f"the {what} {name} cannot be used: {reason}") from None


def split_queries(text: str | None) -> list[str]:
    """The text queries of the query field: separated by commas, semicolons or lines,
    each once.

    ``"violin, the sound of a flute"`` -> ``["violin", "the sound of a flute"]``.
    """
    parts = [part.strip() for part in re.split(r"[,;\n]", text or "") if part.strip()]
    return list(dict.fromkeys(parts))  # a repeated query would write one file twice


def build_queries(text: str | None, negative: str | None = None,
                  negative_weight: float = 0.5,
                  example: tuple[np.ndarray, int] | None = None) -> tuple[list[Query], list[str]]:
    """The queries of the page's fields and the name of each.

    Each text is one query; an audio example is one more (as ``bisep separate
    --audio-query``); the negative applies to every query.

    Returns:
        ``(queries, names)``; an example is named "audio example".

    Raises:
        UploadError: no text and no example, or a negative weight outside (0, 1].
    """
    texts = split_queries(text)
    if not texts and example is None:
        raise UploadError("no query given: type what to extract (e.g. \"the sound of a "
                          "violin\"; several separated by commas) or give an audio example.")
    negative = (negative or "").strip() or None
    if not 0.0 < negative_weight <= 1.0:
        raise UploadError(f"the negative weight must be in (0, 1], got {negative_weight}.")
    queries = [Query(text=t, negative=negative, negative_weight=negative_weight)
               for t in texts]
    names = list(texts)
    if example is not None:
        wav, rate = example
        queries.append(Query(audio=torch.from_numpy(wav), audio_rate=rate, negative=negative,
                             negative_weight=negative_weight))
        names.append("audio example")
    return queries, names
