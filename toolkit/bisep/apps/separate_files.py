"""Separate audio files and folders of them (``bisep separate IN... -o OUT``).

::

    from bisep import Separator
    from bisep.apps.separate_files import separate_files

    sep = Separator.from_pretrained("exp/weak")
    run = separate_files(sep, ["song.wav", "more/"], ["violin"], "out/", residual=True)

Each input gets, per query, its target (and residual) at the input's rate and channel count,
named by the template of :mod:`bisep.naming`. A folder is searched for ``.wav``/``.flac``
files (not hidden ones, which include bisep's temporary files), and a file in a subfolder is
written to the same subfolder of the output folder.

Before any work the run is refused when two outputs would have one path, when an output
would replace an input or exists (without ``overwrite``), when the output folder lies inside
an input folder, is not writable or lacks the space the outputs need, or when an audio query
cannot be embedded (reported as itself, not as the first input's fault). The output folder is
locked while the run writes it (:mod:`bisep.outdir`); one bad input never stops the run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from bisep import audio
from bisep.apps.separate_manifest import failure_reason, output_bytes
from bisep.conditioners.query import Query, embed_queries
from bisep.errors import UserError
from bisep.inference import label_of
from bisep.naming import (DEFAULT_TEMPLATE, NamingError, check_outputs, check_template, render,
                          unique_labels)
from bisep.outdir import prepare

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")


class QueryExampleError(ValueError, UserError):
    """An audio query the query encoder cannot embed; the message names its file."""


@dataclass
class FilesRun:
    """What :func:`separate_files` did.

    Attributes:
        out_dir: the output folder.
        inputs: the audio files found, in order.
        outputs_each: files written per input (queries, times two with the residual).
        failed: ``(file, reason)`` of each input that could not be separated.
    """

    out_dir: Path
    inputs: list[Path]
    outputs_each: int
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def separated(self) -> int:
        return len(self.inputs) - len(self.failed)


def collect_inputs(inputs: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """``(file, output subfolder)`` pairs: files as given (written to the output folder
    itself), folders expanded to their audio files, sorted, each written to its subfolder's
    place (so ``in/a/x.wav`` and ``in/b/x.wav`` do not write the same output).

    Raises:
        NamingError: a folder without audio files.
    """
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                           and not p.name.startswith("."))  # not bisep's temporary files
            if not found:
                raise NamingError(f"{item}: folder holds no .wav or .flac files")
            files.extend((p, p.parent.relative_to(item)) for p in found)
        else:
            files.append((item, Path()))  # a missing file is reported when it is read
    return files


def plan_outputs(files: list[tuple[Path, Path]], labels: list[str], out_dir: Path,
                 inputs: Sequence[str | Path], template: str = DEFAULT_TEMPLATE,
                 residual: bool = False, overwrite: bool = False,
                 also_read: Sequence[Path] = ()) -> list[list[list[Path]]]:
    """Per input file, per query: ``[target]`` or ``[target, residual]`` paths.

    Raises:
        NamingError: ``out_dir`` lies inside an input folder, two outputs would have one
            path, an output would replace an input (or ``also_read``, e.g. an audio query),
            or an output exists and ``overwrite`` is false.
    """
    check_template(template)
    resolved_out = out_dir.resolve()
    for item in map(Path, inputs):
        if item.is_dir() and resolved_out.is_relative_to(item.resolve()):
            raise NamingError(f"-o {out_dir} lies inside the input folder {item}: the outputs "
                              f"would mix with the inputs, and a re-run would separate them "
                              f"again. Choose an output folder outside it.")
    kinds = ("target", "residual") if residual else ("target",)
    owner: dict[Path, Path] = {}
    plan = []
    for path, sub in files:
        outputs = [[out_dir / sub / render(template, path.stem, label, kind) for kind in kinds]
                   for label in labels]
        for out in (p for per_query in outputs for p in per_query):
            first = owner.setdefault(out.resolve(), path)
            if first != path:
                raise NamingError(f"the inputs {first} and {path} have the same name: both "
                                  f"would be written to {out}. Rename one, separate them "
                                  f"into different output folders, or use a --filename "
                                  f"with {{track}}.")
        plan.append(outputs)
    check_outputs([p for per_file in plan for per_query in per_file for p in per_query],
                  template, inputs=[*(f for f, _ in files), *map(Path, also_read)],
                  overwrite=overwrite)
    return plan


def check_audio_queries(separator, queries: Sequence[Query], paths: Sequence[Path]) -> None:
    """Embed each audio query once, before any input is read, so that an example the query
    encoder cannot take (too short, ...) is reported as itself.

    Raises:
        QueryExampleError: naming the example file.
    """
    examples = [q for q in queries if q.audio is not None]
    for path, query in zip(paths, examples):
        try:
            with torch.no_grad():
                embed_queries(separator.conditioner, [query])
        except (ValueError, RuntimeError) as exc:
            raise QueryExampleError(f"--audio-query {path}: the query encoder cannot embed "
                                    f"it ({exc}). Use a longer example (a second or "
                                    f"more).") from None


def separate_files(separator, inputs: Sequence[str | Path], queries: Sequence[str | Query],
                   out_dir: str | Path, *, labels: Sequence[str] | None = None,
                   audio_query_files: Sequence[Path] = (), filename: str = DEFAULT_TEMPLATE,
                   residual: bool = False, overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> FilesRun:
    """Separate every audio file of ``inputs`` (see the module docstring).

    Args:
        separator: a :class:`bisep.inference.Separator`.
        inputs: audio files or folders of them.
        queries: texts or :class:`bisep.conditioners.query.Query` objects.
        out_dir: the output folder.
        labels: each query's file-name label (:func:`bisep.naming.query_label`); by default
            from its text. Two equal labels get numeric suffixes.
        audio_query_files: the files of the audio queries, in order (checked up front, and
            never overwritten).
        filename: the output path template (:mod:`bisep.naming`).
        residual: also write ``mixture - target`` per query.
        overwrite: replace outputs that exist.
        progress: optional callable ``(done_files, total_files)``.

    Raises:
        bisep.naming.NamingError, bisep.outdir.OutputError, QueryExampleError: before any
            input is separated.
    """
    queries = [q if isinstance(q, Query) else Query(text=q) for q in queries]
    names = unique_labels(list(labels) if labels is not None else [label_of(q) for q in queries])
    files = collect_inputs(inputs)
    out_dir = Path(out_dir)
    plan = plan_outputs(files, names, out_dir, inputs, filename, residual, overwrite,
                        audio_query_files)
    check_audio_queries(separator, queries, audio_query_files)
    outputs_each = len(names) * (2 if residual else 1)
    run = FilesRun(out_dir, [f for f, _ in files], outputs_each)
    with prepare(out_dir, output_bytes(run.inputs, outputs_each), option="-o"):
        for index, ((path, _), outputs) in enumerate(zip(files, plan)):
            try:
                wav, rate = audio.read(path)
                results = separator.separate(wav, queries, rate, channels_first=True)
                for result, paths in zip(results, outputs):
                    for out, signal in zip(paths, (result.target, result.residual)):
                        audio.write(out, signal, rate)
            except Exception as exc:  # one bad file never stops the batch
                run.failed.append((path, failure_reason(exc)))
                log.warning("skipped %s: %s", path, run.failed[-1][1])
            if progress:
                progress(index + 1, len(files))
    return run
