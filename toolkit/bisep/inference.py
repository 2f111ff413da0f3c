"""Separating audio with a trained model: :class:`Separator`.

::

    from bisep import Separator
    sep = Separator.from_pretrained("exp/weak/model.pth")
    stems = sep.separate(wav, queries=["violin", "flute"], sample_rate=44100)
    sep.separate_file("song.wav", ["violin"], "out/")   # writes out/song_violin.wav

A checkpoint written by training records its conditioner (name and configuration) in
``infos.config``, so the query encoder is rebuilt with the separator. Long inputs are
processed in chunks whose overlaps are cross-faded with complementary raised-cosine
ramps (they sum to exactly one), so memory is bounded by the chunk, not the file. An input
shorter than one STFT frame (``n_fft`` samples at the model's rate) is zero-padded to it and
cut back, so a clip of any length gives an output of its own length.
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from bisep import audio as audio_io
from bisep.conditioners.base import Conditioner
from bisep.conditioners.query import Query as QuerySpec
from bisep.conditioners.query import embed_queries
from bisep.separators.base import BaseSeparator, Conditioning


class Separator:
    """A separator plus its query encoder, with chunked long-audio processing.

    Args:
        separator: the trained mask separator.
        conditioner: the query encoder it was trained with.
        chunk_seconds: chunk length; ``None`` processes a file in one pass.
        overlap: fraction of a chunk shared with the next one (cross-faded).
        device: where to run.
    """

    def __init__(self, separator: BaseSeparator, conditioner: Conditioner,
                 chunk_seconds: float | None = 8.0, overlap: float = 0.25,
                 device: str | torch.device = "cpu"):
        if chunk_seconds is not None and chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        self.min_samples = separator.stft.config.n_fft
        if chunk_seconds is not None and chunk_seconds * separator.sample_rate < self.min_samples:
            raise ValueError(
                f"chunk_seconds (bisep separate --chunk-seconds) {chunk_seconds} is "
                f"{int(chunk_seconds * separator.sample_rate)} "
                f"samples at the model's {separator.sample_rate} Hz; a chunk must hold at least "
                f"one STFT frame ({self.min_samples} samples, "
                f"{self.min_samples / separator.sample_rate:.3f} s). Use a longer chunk, e.g. 8 s.")
        self.device = torch.device(device)
        self.separator = separator.to(self.device).eval()
        self.conditioner = conditioner.to(self.device).eval()
        self.chunk_seconds = chunk_seconds
        self.overlap = overlap

    @property
    def sample_rate(self) -> int:
        return self.separator.sample_rate

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", registry=None,
                        conditioner: Conditioner | None = None, **kwargs) -> "Separator":
        """Load a checkpoint (file or model directory) and rebuild its conditioner, or a
        model folder written by ``bisep export-model`` (its hashes verified first)."""
        from bisep import checkpoint
        from bisep.export.model_folder import is_model_folder, load_model_folder
        from bisep.registry import get_registry

        registry = registry or get_registry()
        if is_model_folder(path):
            model, encoder, settings = load_model_folder(path, registry=registry)
            return cls(model, conditioner or encoder, device=device, **{**settings, **kwargs})
        package = checkpoint.load(path)
        model = checkpoint.from_pretrained(package, registry=registry)
        if not isinstance(package.get("infos"), dict):
            raise checkpoint.CheckpointError(f"{path}: infos must be a mapping; the file was "
                                             f"not written by bisep.")
        if conditioner is None:
            config = package["infos"].get("config") or {}
            name = config.get("conditioner")
            if not name:
                raise checkpoint.CheckpointError(
                    f"{path}: the checkpoint does not record its conditioner (infos.config."
                    f"conditioner); pass conditioner=... to Separator.from_pretrained")
            conditioner = registry.build("conditioner", name, **(config.get("conditioner_conf") or {}))
        width = getattr(conditioner, "embed_dim", None)
        if width != model.query_dim:
            raise checkpoint.CheckpointError(
                f"{path}: the separator takes {model.query_dim}-d queries but its query encoder "
                f"'{type(conditioner).__name__}' gives {width}-d embeddings; the checkpoint's "
                f"infos.config names another conditioner than it was trained with.")
        return cls(model, conditioner, device=device, **kwargs)

    # -- queries -------------------------------------------------------------------------
    def condition(self, queries: Sequence[str | QuerySpec], batch: int = 1) -> Conditioning:
        """Embed the queries once; the result is reused for every chunk and channel.

        Shape:
            output embedding: ``(batch, Q, D)``.
        """
        specs = [q if isinstance(q, QuerySpec) else QuerySpec(text=q) for q in _as_list(queries)]
        with torch.no_grad():
            emb = embed_queries(self.conditioner, specs).to(self.device)
            tokens = token_mask = None
            plain_text = all(s.audio is None and s.negative is None for s in specs)
            if (plain_text and self.separator.uses_tokens
                    and self.conditioner.token_dim is not None):
                tokens, token_mask = self.conditioner.embed_text_tokens([s.text for s in specs])
                tokens = tokens.unsqueeze(0).expand(batch, *tokens.shape)
                token_mask = token_mask.unsqueeze(0).expand(batch, *token_mask.shape)
        return Conditioning(emb.unsqueeze(0).expand(batch, *emb.shape), tokens, token_mask)

    # -- separation ----------------------------------------------------------------------
    def separate(self, wav, queries: Sequence[str | QuerySpec], sample_rate: int,
                 progress=None) -> np.ndarray:
        """One waveform per query, at the input's rate and channel count.

        Args:
            wav: ``(time,)`` or ``(channels, time)`` array or tensor.
            queries: texts or :class:`bisep.conditioners.query.Query` objects.
            sample_rate: the rate of ``wav`` (resampled to the model's and back).
            progress: optional callable ``(done_chunks, total_chunks)``.

        Shape:
            output: ``(Q, channels, time)``.
        """
        data = np.asarray(wav.detach().cpu() if torch.is_tensor(wav) else wav, dtype=np.float32)
        if data.ndim == 1:
            data = data[None]
        if data.ndim != 2 or data.shape[1] == 0:
            raise ValueError(f"wav must be a non-empty (time,) or (channels, time) signal, "
                             f"got shape {data.shape}")
        if not np.isfinite(data).all():
            raise ValueError("wav contains NaN or infinite samples")
        length = data.shape[1]
        x = torch.from_numpy(audio_io.resample_audio(data, sample_rate, self.sample_rate))
        query = self.condition(queries, batch=x.shape[0])
        with torch.no_grad():
            out = self._chunked(x.to(self.device), query, progress).cpu().numpy()
        out = audio_io.resample_audio(out, self.sample_rate, sample_rate)
        return _fit_length(out, length)

    def _chunked(self, x: torch.Tensor, query: Conditioning, progress) -> torch.Tensor:
        channels, length = x.shape
        size = length if self.chunk_seconds is None else int(self.chunk_seconds * self.sample_rate)
        if length <= size:
            # Zero-pad a clip shorter than one STFT frame (the STFT's reflect padding needs
            # more samples than half a frame), then cut the output back to its length.
            padded = torch.nn.functional.pad(x, (0, max(0, self.min_samples - length)))
            result = self.separator(padded, query).transpose(0, 1)[..., :length]  # (Q, C, L)
            if progress:
                progress(1, 1)
            return result
        fade = int(size * self.overlap)
        hop = size - fade
        starts = list(range(0, length - fade, hop)) if fade else list(range(0, length, hop))
        ramp = torch.sin(0.5 * math.pi * (torch.arange(fade, device=x.device) + 0.5) / fade) ** 2
        out = x.new_zeros(query.num_queries, channels, length)
        for i, start in enumerate(starts):
            chunk = x[:, start:start + size]
            valid = chunk.shape[1]
            if valid < size:  # the last chunk: zero-pad to the model's chunk length
                chunk = torch.nn.functional.pad(chunk, (0, size - valid))
            est = self.separator(chunk, query).transpose(0, 1)[..., :valid]
            weight = torch.ones(valid, device=x.device)
            if fade and i > 0:
                weight[:fade] = ramp[:valid]
            if fade and i < len(starts) - 1:
                weight[-fade:] = 1 - ramp  # sin² + cos² = 1 across every overlap
            out[..., start:start + valid] += est * weight
            if progress:
                progress(i + 1, len(starts))
        return out

    def separate_file(self, in_path: str | Path, queries: Sequence[str | QuerySpec],
                      out_dir: str | Path, progress=None) -> list[Path]:
        """Separate a file and write ``<out_dir>/<stem>_<query>.wav`` per query (atomically;
        :func:`output_name`)."""
        wav, rate = audio_io.read(in_path)
        stems = self.separate(wav, queries, rate, progress)
        names = [query_slug(q) for q in _as_list(queries)]
        return [audio_io.write(Path(out_dir) / output_name(Path(in_path).stem, name), stem, rate)
                for name, stem in zip(names, stems)]


# Query-derived names are bounded: a file name may hold at most 255 bytes on common file
# systems, and a long query must not fail a run with "File name too long".
MAX_SLUG = 64
MAX_NAME = 255


def _shorten(text: str, limit: int) -> str:
    """``text`` if it fits ``limit`` characters, else its head and a hash of the whole (so
    two long texts that share their head still get different names)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return f"{text[:limit - 9]}_{digest}"


def query_slug(query: str | QuerySpec) -> str:
    """A file-name-safe label of a query (``"acoustic guitar"`` -> ``acoustic_guitar``), at
    most :data:`MAX_SLUG` characters."""
    if isinstance(query, QuerySpec):
        label = query.text or "audio_query"
    else:
        label = query
    slug = re.sub(r"[^A-Za-z0-9]+", "_", label.strip()).strip("_").lower()
    return _shorten(slug, MAX_SLUG) or "query"


def output_name(stem: str, slug: str, suffix: str = ".wav") -> str:
    """``<stem>_<slug><suffix>``, the input's stem shortened when the name would exceed
    :data:`MAX_NAME` bytes."""
    name = f"{stem}_{slug}{suffix}"
    excess = len(name.encode("utf-8")) - MAX_NAME
    if excess > 0:
        # Cut by characters until the bytes fit (a multi-byte character counts more).
        keep = len(stem) - excess
        while len(f"{_shorten(stem, keep)}_{slug}{suffix}".encode("utf-8")) > MAX_NAME:
            keep -= 1
        name = f"{_shorten(stem, keep)}_{slug}{suffix}"
    return name


def _as_list(queries) -> list:
    if isinstance(queries, (str, QuerySpec)):
        queries = [queries]
    queries = list(queries)
    if not queries:
        raise ValueError("no query given: pass at least one, e.g. queries=['violin']")
    return queries


def _fit_length(x: np.ndarray, length: int) -> np.ndarray:
    if x.shape[-1] >= length:
        return np.ascontiguousarray(x[..., :length])
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])
