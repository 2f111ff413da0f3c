"""Separating audio with a trained model: :class:`Separator` and :class:`SeparationResult`.

::

    from bisep import Separator
    sep = Separator.from_pretrained("exp/weak/model.pth")
    violin, flute = sep.separate(wav, queries=["violin", "flute"], sample_rate=44100)
    violin.target, violin.residual         # the violin, and everything but the violin
    sep.separate_file("song.wav", ["violin"], "out/")   # writes out/song_violin.wav

A checkpoint written by training records its conditioner (name and configuration) in
``infos.config``, so the query encoder is rebuilt with the separator. Long inputs are
processed in chunks whose overlaps are cross-faded with complementary raised-cosine
ramps (they sum to exactly one), so memory is bounded by the chunk, not the file; their
boundaries fall on STFT hops and each may run with extra context (:mod:`bisep.dsp.chunks`),
and GroupNorm layers normalise by the file's statistics, gathered in a first run over the
chunks (:mod:`bisep.separators.file_norm`), as they would in one pass. An input
shorter than one STFT frame (``n_fft`` samples at the model's rate) is zero-padded to it and
cut back, so a clip of any length gives an output of its own length.

A 2-D input is ``(channels, time)`` or ``(time, channels)``: the axis of length at most
:data:`MAX_CHANNELS` is the channel axis when the other one is longer; any other shape
(``(2, 2)``, or both axes longer) is refused unless ``channels_first`` says which it is.
Outputs have the input's shape, channels and sample rate.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from bisep import audio as audio_io
from bisep.conditioners.base import Conditioner
from bisep.conditioners.query import Query as QuerySpec
from bisep.conditioners.query import embed_queries
from bisep.dsp.chunks import ChunkPlan
from bisep.errors import UserError
from bisep.naming import DEFAULT_TEMPLATE, plan_paths, query_label, unique_labels
from bisep.separators.base import BaseSeparator, Conditioning
from bisep.separators.file_norm import FileGroupNorm

# The most channels an input may have for its layout to be told from its shape (7.1 audio).
MAX_CHANNELS = 8
# Where a chunked run takes its GroupNorm statistics from (Separator's norm_stats).
NORM_STATS = ("file", "chunk")


class InputError(ValueError, UserError):
    """Audio or queries that cannot be separated as given; the message says how to pass them."""


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare
class SeparationResult:
    """What one query extracted from a mixture.

    Attributes:
        query: the query as given (a text or a :class:`bisep.conditioners.query.Query`).
        target: what the query describes.
        residual: everything else, ``mixture - target``.
        sample_rate: the rate of both (the input's).

    Shape:
        target, residual: the input's shape: ``(time,)``, ``(channels, time)`` or
        ``(time, channels)``.
    """

    query: str | QuerySpec
    target: np.ndarray = field(repr=False)
    residual: np.ndarray = field(repr=False)
    sample_rate: int


def channels_first_view(wav, channels_first: bool | None = None) -> tuple[np.ndarray, str]:
    """``wav`` as float32 ``(channels, time)`` and the layout it came in (``"mono"``,
    ``"channels_first"`` or ``"time_first"``), by the rule of the module docstring.

    Raises:
        InputError: not 1-D or 2-D, empty, non-finite, or an ambiguous 2-D shape.
    """
    data = np.asarray(wav.detach().cpu() if torch.is_tensor(wav) else wav, dtype=np.float32)
    if data.ndim == 1:
        data, layout = data[None], "mono"
    elif data.ndim == 2:
        rows, cols = data.shape
        if channels_first is None:
            if rows <= MAX_CHANNELS < cols:
                channels_first = True
            elif cols <= MAX_CHANNELS < rows:
                channels_first = False
            else:
                raise InputError(
                    f"wav has shape {data.shape}: cannot tell the channel axis (bisep takes "
                    f"the axis of length <= {MAX_CHANNELS} as channels when the other is "
                    f"longer). Pass channels_first=True for (channels, time) or "
                    f"channels_first=False for (time, channels).")
        layout = "channels_first" if channels_first else "time_first"
        if not channels_first:
            data = data.T
    else:
        raise InputError(f"wav must be a (time,) or 2-D (channels, time) / (time, channels) "
                         f"signal, got shape {data.shape}")
    if data.shape[1] == 0 or data.shape[0] == 0:
        raise InputError(f"wav is empty (shape {np.shape(wav)})")
    if not np.isfinite(data).all():
        raise InputError("wav contains NaN or infinite samples")
    return np.ascontiguousarray(data), layout


def _restore_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """Shape: ``(channels, time)`` -> the input's layout."""
    if layout == "mono":
        return x[0]
    return np.ascontiguousarray(x.T) if layout == "time_first" else x


class Separator:
    """The pipeline you call to separate audio: a trained separator network, the query
    encoder (conditioner) it was trained with, and chunked processing of long inputs.

    Not the ``separator`` component: that is the network alone
    (:class:`~bisep.separators.base.BaseSeparator`, named by the ``separator:`` config key
    and plugin kind), which turns a magnitude and query embeddings into masks and knows
    nothing of text, files or chunks. This class holds one as :attr:`separator`
    (``docs/architecture.md#glossary``).

    Args:
        separator: the trained mask separator.
        conditioner: the query encoder it was trained with.
        chunk_seconds: chunk length; ``None`` processes a file in one pass.
        overlap: fraction of a chunk shared with the next one (cross-faded).
        context_seconds: signal added on each side of a chunk while it is run, then
            dropped (:mod:`bisep.dsp.chunks`).
        norm_stats: ``"file"`` runs the chunks twice when the separator has GroupNorm
            layers, so that they normalise by the file's statistics as a one-pass run does
            (:mod:`bisep.separators.file_norm`); ``"chunk"`` runs them once, each chunk
            normalised by its own.
        device: where to run.
    """

    def __init__(self, separator: BaseSeparator, conditioner: Conditioner,
                 chunk_seconds: float | None = 8.0, overlap: float = 0.25,
                 context_seconds: float = 0.0, norm_stats: str = "file",
                 device: str | torch.device = "cpu"):
        if chunk_seconds is not None and chunk_seconds <= 0:
            raise InputError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        if not 0.0 <= overlap < 1.0:
            raise InputError(f"overlap must be in [0, 1), got {overlap}")
        if context_seconds < 0:
            raise InputError(f"context_seconds (bisep separate --context-seconds) must be "
                             f">= 0, got {context_seconds}")
        if norm_stats not in NORM_STATS:
            raise InputError(f"norm_stats must be one of {', '.join(NORM_STATS)}, got "
                             f"{norm_stats!r}")
        self.min_samples = separator.stft.config.n_fft
        if chunk_seconds is not None and chunk_seconds * separator.sample_rate < self.min_samples:
            raise InputError(
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
        self.context_seconds = context_seconds
        self.norm_stats = norm_stats
        # The file the weights came from (set by from_pretrained): a run that records what
        # its outputs depend on hashes it (bisep.apps.separate_manifest).
        self.source: Path | None = None

    @property
    def sample_rate(self) -> int:
        return self.separator.sample_rate

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", registry=None,
                        conditioner: Conditioner | None = None, **kwargs) -> "Separator":
        """Load a checkpoint (file or model directory) and rebuild its conditioner, or a
        model folder written by ``bisep export-model`` (its hashes verified first)."""
        from bisep import checkpoint
        from bisep.export.checksums import CHECKSUMS
        from bisep.export.model_folder import is_model_folder, load_model_folder
        from bisep.registry import get_registry

        registry = registry or get_registry()
        if is_model_folder(path):
            model, encoder, settings = load_model_folder(path, registry=registry)
            loaded = cls(model, conditioner or encoder, device=device, **{**settings, **kwargs})
            loaded.source = Path(path) / CHECKSUMS  # its hashes cover every file
            return loaded
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
        loaded = cls(model, conditioner, device=device, **kwargs)
        loaded.source = checkpoint.resolve(path)
        return loaded

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
                 progress=None, channels_first: bool | None = None
                 ) -> list[SeparationResult]:
        """One :class:`SeparationResult` per query, at the input's rate, channels and layout.

        Args:
            wav: a numpy array or tensor, ``(time,)``, ``(channels, time)`` or
                ``(time, channels)`` (see the module docstring for how the layout is told).
            queries: texts or :class:`bisep.conditioners.query.Query` objects.
            sample_rate: the rate of ``wav`` (resampled to the model's and back).
            progress: optional callable ``(done, total)`` over the chunk runs (two per
                chunk when GroupNorm statistics are gathered first, ``norm_stats``).
            channels_first: the layout of a 2-D ``wav``; ``None`` tells it from the shape.

        Raises:
            InputError: an ambiguous shape, an empty or non-finite signal, an empty query.
        """
        queries = _as_list(queries)
        data, layout = channels_first_view(wav, channels_first)
        targets = self.separate_array(data, queries, sample_rate, progress)
        return [SeparationResult(query, _restore_layout(target, layout),
                                 _restore_layout(data - target, layout), sample_rate)
                for query, target in zip(queries, targets)]

    def separate_array(self, wav: np.ndarray, queries: Sequence[str | QuerySpec],
                       sample_rate: int, progress=None) -> np.ndarray:
        """The targets of all queries as one array (what :meth:`separate` wraps).

        Shape:
            - wav: ``(channels, time)`` float32, finite.
            - output: ``(Q, channels, time)``.
        """
        length = wav.shape[1]
        x = torch.from_numpy(audio_io.resample_audio(wav, sample_rate, self.sample_rate))
        query = self.condition(queries, batch=x.shape[0])
        with torch.no_grad():
            out = self._chunked(x.to(self.device), query, progress).cpu().numpy()
        out = audio_io.resample_audio(out, self.sample_rate, sample_rate)
        return _fit_length(out, length)

    def _chunked(self, x: torch.Tensor, query: Conditioning, progress) -> torch.Tensor:
        """Shape: ``(channels, time)`` -> ``(Q, channels, time)``."""
        channels, length = x.shape
        plan = ChunkPlan.of(length, self.chunk_seconds, self.overlap, self.context_seconds,
                            self.sample_rate, self.separator.stft.config.hop_length)
        if plan is None:
            # Zero-pad a clip shorter than one STFT frame (the STFT's reflect padding needs
            # more samples than half a frame), then cut the output back to its length.
            padded = torch.nn.functional.pad(x, (0, max(0, self.min_samples - length)))
            result = self.separator(padded, query).transpose(0, 1)[..., :length]  # (Q, C, L)
            if progress:
                progress(1, 1)
            return result
        stats = FileGroupNorm(self.separator) if self.norm_stats == "file" else None
        runs = len(plan.starts) * (2 if stats else 1)
        if stats:  # first run: the file's normalisation statistics (bisep.separators.file_norm)
            for i in range(len(plan.starts)):
                window, owned, frames = self._window(x, plan, i)
                with stats.collecting(owned, frames):
                    _, mag = self.separator.analyze(window)
                    self.separator.predict_masks(self.separator.encode(mag), query)
                if progress:
                    progress(i + 1, runs)
            stats.freeze()
        out = x.new_zeros(query.num_queries, channels, length)
        with stats.applied() if stats else nullcontext():
            for i, start in enumerate(plan.starts):
                window, _, _ = self._window(x, plan, i)
                offset = start - plan.window_start(i)
                valid = min(plan.size, length - start)
                est = self.separator(window, query).transpose(0, 1)[..., offset:offset + valid]
                out[..., start:start + valid] += est * plan.weight(i, valid, x.device)
                if progress:
                    progress(runs - len(plan.starts) + i + 1, runs)
        return out

    def _window(self, x: torch.Tensor, plan: "ChunkPlan", i: int
                ) -> tuple[torch.Tensor, slice, int]:
        """Chunk ``i`` with its context, the STFT frames it owns (chunk coordinates) and its
        frame count. A window shorter than one STFT frame is zero-padded to it."""
        begin, end = plan.window_start(i), plan.window_end(i)
        window = x[:, begin:end]
        if window.shape[1] < self.min_samples:
            window = torch.nn.functional.pad(window, (0, self.min_samples - window.shape[1]))
        hop = plan.hop_length
        first = (plan.starts[i] - begin) // hop
        last = (first + plan.step // hop if i < len(plan.starts) - 1
                else (end - begin) // hop + 1)  # the last chunk owns the file's last frames
        return window, slice(first, last), self.separator.stft.frames(window.shape[1])

    def separate_file(self, in_path: str | Path, queries: Sequence[str | QuerySpec],
                      out_dir: str | Path, progress=None, residual: bool = False,
                      filename: str = DEFAULT_TEMPLATE, overwrite: bool = False,
                      labels: Sequence[str] | None = None) -> list[Path]:
        """Separate a file and write each query's target (and residual) atomically.

        Args:
            in_path: the audio file.
            queries: as for :meth:`separate`.
            out_dir: the output folder.
            progress: as for :meth:`separate`.
            residual: also write ``mixture - target`` per query.
            filename: the output path template (:mod:`bisep.naming`), e.g.
                ``"{track}/{stem}.{ext}"``; the default writes ``<stem>_<label>.wav``.
            overwrite: replace outputs that exist (refused otherwise, before any work).
            labels: the query labels (:func:`bisep.naming.query_label`); by default from
                each query's text, ``audio-query`` for an audio query.

        Returns:
            the written paths: per query its target, then its residual if asked for.

        Raises:
            bisep.naming.NamingError: a bad template, two outputs with one path, an output
                that exists (without ``overwrite``) or that is the input.
        """
        in_path = Path(in_path)
        queries = _as_list(queries)
        names = unique_labels(list(labels) if labels is not None
                              else [label_of(q) for q in queries])
        paths = plan_paths(in_path, names, Path(out_dir), filename, residual, overwrite)
        wav, rate = audio_io.read(in_path)
        results = self.separate(wav, queries, rate, progress, channels_first=True)
        written = []
        for result, outputs in zip(results, paths):
            written.append(audio_io.write(outputs[0], result.target, rate))
            if residual:
                written.append(audio_io.write(outputs[1], result.residual, rate))
        return written


def label_of(query: str | QuerySpec) -> str:
    """A query's file-name label (:func:`bisep.naming.query_label`); an audio query without
    a text is ``audio-query`` (the command line names it after its file instead)."""
    if isinstance(query, QuerySpec):
        return query_label(query.text, None if query.text else "query", query.negative)
    return query_label(query)


def _as_list(queries) -> list:
    if isinstance(queries, (str, QuerySpec)):
        queries = [queries]
    queries = list(queries)
    if not queries:
        raise InputError("no query given: pass at least one, e.g. queries=['violin']")
    for query in queries:
        if isinstance(query, str) and not query.strip():
            raise InputError(f"query text {query!r} is empty: give a text such as 'violin'")
    return queries


def _fit_length(x: np.ndarray, length: int) -> np.ndarray:
    if x.shape[-1] >= length:
        return np.ascontiguousarray(x[..., :length])
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])
