"""The files a scoring run compares: naming convention, discovery, loading and checks.

Two ways to name them (``docs/scoring.md`` has examples):

1. Folders, paired by name (``bisep score --ref-dir R --est-dir E [--mix-dir M]``)::

       R/<item>/<source>.wav    the reference of each source of each item
       E/<item>/<source>.wav    its estimate: same item folder, same source name
       M/<item>.wav             the item's mixture (optional; adds SDRi and SI-SDRi)

   ``.wav`` or ``.flac`` (R and E may differ); hidden files are ignored. Every reference
   needs an estimate and every estimate a reference, or the run stops and lists them.
   M may hold more mixtures than R has items (it is usually the separator's input set).

2. A JSON-lines list (``--list items.jsonl``), one item per line::

       {"id": "a", "mixture": "mix/a.wav",
        "sources": {"violin": "ref/a_violin.wav", "guitar": "ref/a_guitar.wav"},
        "estimates": {"violin": "est/a_violin.wav", "guitar": "est/a_guitar.wav"}}

   Relative paths are relative to the list's folder. ``"mixture"`` is optional, but
   given on every line or on none, so that every row has the same columns. An optional
   ``"queries"`` (``{source name: text}``, written by ``bisep separate --list``) gives each
   estimate's query for ``bisep score --reference-free``. ``"sources"`` may be left out
   for an item without references (a real recording): SDR skips and counts it, the
   reference-free score scores it.

Loading (:func:`load_item`) refuses, with the file and the fix in the message: unreadable
or non-finite audio (:class:`bisep.audio.AudioError`), a second sample rate in one run,
multi-channel files unless ``mono=True``, and files of one item that differ in length
unless ``trim=True``, which cuts every signal of the item to the shortest one from the
end and reports how many samples went.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bisep.audio import read
from bisep.errors import UserError
from bisep.metrics.item import SILENCE_THRESHOLD

AUDIO_SUFFIXES = (".wav", ".flac")
LIST_KEYS = ("id", "sources", "estimates", "mixture", "queries")
_LIST_EXAMPLE = ('{"id": "a", "mixture": "a.wav", "sources": {"violin": "ref/a/violin.wav"}, '
                 '"estimates": {"violin": "est/a/violin.wav"}}')


class ScoreInputError(ValueError, UserError):
    """Files that cannot be scored as given; the message names them and the fix."""


@dataclass(frozen=True)
class ScoreItem:
    """The files of one item: ``{source name: path}`` for references and estimates (the
    same names, in the same order; every reference is ``None`` for an item listed without
    ``"sources"``), an optional mixture, and optionally each source's query text (for the
    reference-free score)."""

    id: str
    references: dict[str, Path | None]
    estimates: dict[str, Path]
    mixture: Path | None = None
    queries: dict[str, str] | None = None

    @property
    def has_references(self) -> bool:
        """Whether every source has a reference, so that SDR can be computed."""
        return all(path is not None for path in self.references.values())


@dataclass
class LoadedItem:
    """The signals of one item, checked and ready for :func:`bisep.metrics.score_item`.

    Shape:
        - references, estimates: ``(n_src, time)`` float32, sources in ``sources`` order.
        - mixture: ``(time,)`` or ``None``.
    """

    id: str
    sources: list[str]
    references: np.ndarray
    estimates: np.ndarray
    mixture: np.ndarray | None
    sample_rate: int
    rate_origin: Path  # the first file read, which set ``sample_rate``
    trimmed: int  # samples cut from the longest signal (0 unless ``trim=True``)

    def silence(self, threshold: float = SILENCE_THRESHOLD) -> tuple[str, str] | None:
        """``(kind, detail)`` if the paper's rule skips this item, else ``None``.

        A reference, estimate or mixture with ``sum |x| <= threshold`` skips the item;
        ``kind`` is ``"silent reference"``, ``"silent estimate"`` or ``"silent mixture"``.
        """
        groups = [("reference", self.references), ("estimate", self.estimates)]
        if self.mixture is not None:
            groups.append(("mixture", self.mixture[None]))
        for role, signals in groups:
            for name, signal in zip(self.sources, signals):
                total = float(np.abs(signal, dtype=np.float64).sum())
                if total <= threshold:
                    label = "" if role == "mixture" else f" '{name}'"
                    return (f"silent {role}",
                            f"silent {role}{label}: sum|x| = {total:.3g} <= {threshold:g}")
        return None


def items_from_dirs(ref_dir: str | Path, est_dir: str | Path,
                    mix_dir: str | Path | None = None) -> list[ScoreItem]:
    """Pair ``ref_dir/<item>/<source>.wav`` with ``est_dir/<item>/<source>.wav`` (and
    ``mix_dir/<item>.wav``), items sorted by name, sources sorted within an item.

    Raises:
        ScoreInputError: a missing folder, files outside the layout, a reference without
            an estimate or the reverse (all listed), or an item without a mixture.
    """
    ref_dir = _folder(ref_dir, "--ref-dir")
    est_dir = _folder(est_dir, "--est-dir")
    stray = _audio_files(ref_dir)
    if stray:
        raise ScoreInputError(
            f"{ref_dir} holds audio files directly (e.g. {next(iter(stray.values())).name}), "
            f"but references must be laid out as {ref_dir}/<item>/<source>.wav: one folder "
            f"per item, one file per source. Move the files, or use --list items.jsonl.")
    names = sorted(p.name for p in ref_dir.iterdir() if p.is_dir() and not _hidden(p))
    if not names:
        raise ScoreInputError(f"{ref_dir} has no item folders; expected "
                              f"{ref_dir}/<item>/<source>.wav.")
    mixtures = _audio_files(_folder(mix_dir, "--mix-dir")) if mix_dir is not None else {}
    items, no_estimate, no_mixture = [], [], []
    no_reference = list(_audio_files(est_dir).values())
    for name in names:
        refs = _audio_files(ref_dir / name)
        if not refs:
            raise ScoreInputError(f"{ref_dir / name} holds no {'/'.join(AUDIO_SUFFIXES)} "
                                  f"files; add the item's references or remove the folder.")
        ests = _audio_files(est_dir / name) if (est_dir / name).is_dir() else {}
        no_estimate += [est_dir / name / path.name for src, path in refs.items()
                        if src not in ests]
        no_reference += [path for src, path in ests.items() if src not in refs]
        if mix_dir is not None and name not in mixtures:
            no_mixture.append(Path(mix_dir) / f"{name}.wav")
        items.append(ScoreItem(name, refs, {src: ests[src] for src in refs if src in ests},
                               mixtures.get(name)))
    for folder in sorted(p for p in est_dir.iterdir() if p.is_dir() and not _hidden(p)):
        if folder.name not in names:
            no_reference += list(_audio_files(folder).values())
    if no_estimate:
        raise ScoreInputError(
            f"{_count(no_estimate, 'reference')} no estimate; missing: {_listing(no_estimate)}. "
            f"Each {ref_dir}/<item>/<source>.wav needs {est_dir}/<item>/<source>.wav (or "
            f".flac). Check the separator's output names, or remove the references you do "
            f"not want scored.")
    if no_reference:
        raise ScoreInputError(
            f"{_count(no_reference, 'estimate')} no reference: {_listing(no_reference)}. "
            f"Each estimate must be {est_dir}/<item>/<source>.wav with a matching "
            f"{ref_dir}/<item>/<source>.wav; fix the names or move the extra files away.")
    if no_mixture:
        raise ScoreInputError(
            f"{_count(no_mixture, 'item')} no mixture; missing: {_listing(no_mixture)}. Add "
            f"<item>.wav for each item, or drop --mix-dir to score without SDRi/SI-SDRi.")
    return items


def items_from_list(path: str | Path) -> list[ScoreItem]:
    """Read a JSON-lines list of items (see the module docstring for the format).

    Args:
        path: the list. A line without ``"sources"`` gives an item whose references are
            ``None`` (:attr:`ScoreItem.has_references` is false).

    Raises:
        ScoreInputError: a missing list, a malformed line (named ``file:line``), duplicate
            ids, different source names for references and estimates, a mixture on some
            lines only, or listed files that do not exist (all listed).
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreInputError(f"{path}: no such list file. Check the --list path.")
    items: list[ScoreItem] = []
    lines: dict[str, int] = {}  # id -> line number, for duplicate messages
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            item = _parse_line(line, f"{path}:{number}", path.parent)
            if item.id in lines:
                raise ScoreInputError(f"{path}:{number}: id '{item.id}' was already used on "
                                      f"line {lines[item.id]}; ids must be unique.")
            lines[item.id] = number
            items.append(item)
    if not items:
        raise ScoreInputError(f"{path} lists no items; write one JSON object per line, "
                              f"e.g. {_LIST_EXAMPLE}")
    with_mix = [item.id for item in items if item.mixture is not None]
    if with_mix and len(with_mix) != len(items):
        without = next(item.id for item in items if item.mixture is None)
        raise ScoreInputError(f"{path}: item '{with_mix[0]}' has a mixture but item "
                              f"'{without}' has none; give \"mixture\" on every line or on "
                              f"none.")
    missing = [p for item in items
               for p in [*item.references.values(), *item.estimates.values(), item.mixture]
               if p is not None and not p.exists()]
    if missing:
        raise ScoreInputError(f"{path}: {len(missing)} listed file(s) do not exist: "
                              f"{_listing(missing)}. Relative paths are taken from "
                              f"{path.parent}; fix the paths or create the files.")
    return items


def load_item(item: ScoreItem, mono: bool = False, trim: bool = False,
              rate: tuple[int, Path] | None = None) -> LoadedItem:
    """Read and check the files of ``item``.

    Args:
        item: the files.
        mono: average the channels of every file; without it a multi-channel file is an
            error (BSS-Eval ``sources`` scores single-channel signals).
        trim: cut all signals of the item to the shortest one (from the end) instead of
            refusing different lengths.
        rate: ``(sample_rate, file that set it)`` that every file must match; ``None``
            lets the item's first file set it.

    Returns:
        :class:`LoadedItem`.

    Raises:
        bisep.audio.AudioError: a missing, unreadable, empty or non-finite file.
        ScoreInputError: an item without references, another sample rate, a
            multi-channel file without ``mono``, or lengths that differ without ``trim``.
    """
    if not item.has_references:
        raise ScoreInputError(f"item '{item.id}' has no references (\"sources\"), so SDR "
                              f"cannot be computed; score it with --reference-free.")
    paths = [*item.references.values(), *item.estimates.values()]
    if item.mixture is not None:
        paths.append(item.mixture)
    signals = []
    for path in paths:
        audio, file_rate = read(path, mono=mono)
        if rate is None:
            rate = (file_rate, path)
        elif file_rate != rate[0]:
            raise ScoreInputError(
                f"{path}: sample rate is {file_rate} Hz but {rate[1]} is {rate[0]} Hz; all "
                f"files of a scoring run must share one rate (BSS-Eval's 512-tap filter "
                f"spans a different time at another rate). Resample, e.g. "
                f"`sox {path.name} -r {rate[0]} out.wav`.")
        if audio.shape[0] != 1:
            raise ScoreInputError(
                f"{path}: has {audio.shape[0]} channels, but scoring compares single-channel "
                f"signals. Pass --mono (mono=True) to average the channels of every file, "
                f"or list each channel as its own source.")
        signals.append(audio[0])
    lengths = [signal.shape[0] for signal in signals]
    shortest, longest = min(lengths), max(lengths)
    if shortest != longest and not trim:
        raise ScoreInputError(
            f"item '{item.id}': files differ in length: {paths[lengths.index(longest)]} has "
            f"{longest} samples, {paths[lengths.index(shortest)]} has {shortest}. Make the "
            f"separator write full-length outputs, or pass --trim (trim=True) to cut every "
            f"signal of an item to the shortest (reported in the summary).")
    signals = [signal[:shortest] for signal in signals]
    n_src = len(item.references)
    return LoadedItem(
        id=item.id, sources=list(item.references),
        references=np.stack(signals[:n_src]), estimates=np.stack(signals[n_src:2 * n_src]),
        mixture=signals[-1] if item.mixture is not None else None,
        sample_rate=rate[0], rate_origin=rate[1], trimmed=longest - shortest)


def _parse_line(line: str, where: str, base: Path) -> ScoreItem:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ScoreInputError(f"{where}: not valid JSON ({exc.msg}); each line must be one "
                              f"object such as {_LIST_EXAMPLE}") from None
    if not isinstance(entry, dict):
        raise ScoreInputError(f"{where}: expected a JSON object such as {_LIST_EXAMPLE}")
    unknown = sorted(set(entry) - set(LIST_KEYS))
    if unknown:
        raise ScoreInputError(f"{where}: unknown key(s) {unknown}; the keys are "
                              f"{list(LIST_KEYS)} (\"mixture\" and \"queries\" optional).")
    if not isinstance(entry.get("id"), (str, int)) or str(entry["id"]) == "":
        raise ScoreInputError(f"{where}: needs an \"id\" (a non-empty string).")
    estimates = _path_map(entry, "estimates", where, base)
    if "sources" not in entry:
        references = {name: None for name in estimates}
    else:
        references = _path_map(entry, "sources", where, base)
    if set(references) != set(estimates):
        raise ScoreInputError(
            f"{where}: \"sources\" names {sorted(references)} but \"estimates\" names "
            f"{sorted(estimates)}; every source needs exactly one estimate of the same name.")
    mixture = entry.get("mixture")
    if mixture is not None and not isinstance(mixture, str):
        raise ScoreInputError(f"{where}: \"mixture\" must be a path string.")
    queries = entry.get("queries")
    if queries is not None and (not isinstance(queries, dict) or set(queries) != set(references)
                                or not all(isinstance(q, str) for q in queries.values())):
        raise ScoreInputError(f"{where}: \"queries\" must map each source name "
                              f"{sorted(references)} to its query text.")
    return ScoreItem(str(entry["id"]), references,
                     {name: estimates[name] for name in references},
                     base / mixture if mixture is not None else None, queries)


def _path_map(entry: dict, key: str, where: str, base: Path) -> dict[str, Path]:
    value = entry.get(key)
    if (not isinstance(value, dict) or not value
            or not all(isinstance(p, str) for p in value.values())):
        raise ScoreInputError(f"{where}: \"{key}\" must be a non-empty object "
                              f"{{source name: path}}, e.g. {_LIST_EXAMPLE}")
    return {name: base / p for name, p in value.items()}


def _folder(path: str | Path, option: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ScoreInputError(f"{option} {path}: no such folder. Check the path.")
    return path


def _audio_files(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the audio files in ``folder``, sorted by stem."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES and not _hidden(path):
            if path.stem in found:
                raise ScoreInputError(f"{found[path.stem]} and {path.name} have the same "
                                      f"name; keep one of them.")
            found[path.stem] = path
    return dict(sorted(found.items()))


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _count(paths: list, noun: str) -> str:
    return f"1 {noun} has" if len(paths) == 1 else f"{len(paths)} {noun}s have"


def _listing(paths: list, limit: int = 5) -> str:
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"
