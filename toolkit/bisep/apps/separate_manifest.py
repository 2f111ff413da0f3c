"""Separate every mixture of a data manifest, resumably (``bisep separate --list``).

::

    from bisep import Separator
    from bisep.apps.separate_manifest import separate_manifest

    sep = Separator.from_pretrained("exp/weak")
    run = separate_manifest(sep, "data/test.jsonl", "exp/weak/separated")
    run.items_path   # exp/weak/separated/items.jsonl, for bisep score --list

Each line's mixture ``audio`` is separated with one query per label (the line's ``phrases``,
else :func:`bisep.data.prompts.phrase`, e.g. "the sound of a violin") and written to
``<out>/<id>/<label>.wav``. ``<out>/items.jsonl`` lists every item: its mixture and
estimates, the manifest's ``stems`` as references where it has them (``"sources"``; left out
for an item without stems, which ``bisep score`` then skips and counts) and each label's
query text for the reference-free score, which scores every item. Paths are relative to
``<out>``, so the folder moves with the data it points to. It is written only when no item
failed, so scoring never sees a partial set by accident.

``<out>/separation.json`` records what the outputs depend on: the model's sha256, the
manifest's path and sha256 and the settings. A re-run skips the items whose outputs all
exist (writes are atomic: a file that exists is complete); if any recorded value changed,
the old outputs of the listed items are deleted first and every item is separated again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bisep import audio
from bisep.atomic import write_text_atomic
from bisep.conditioners.query import Query
from bisep.data.manifest import DataError, is_plain_name, item_phrases, read_manifest
from bisep.errors import UserError
from bisep.hashing import sha256_of
from bisep.outdir import check_space, prepare

log = logging.getLogger(__name__)

ITEMS_NAME = "items.jsonl"
RECORD_NAME = "separation.json"


@dataclass
class ManifestRun:
    """What :func:`separate_manifest` did.

    Attributes:
        out_dir: the output folder.
        listed: items in the manifest.
        resumed: items whose outputs existed from an earlier run.
        failed: ``(id, reason)`` of each item that could not be separated.
        without_stems: items without stems: listed in ``items_path`` without references.
        items_path: ``items.jsonl``, or ``None`` when an item failed (then not written).
        scorable: items of ``items_path`` with references (what SDR scores).
    """

    out_dir: Path
    listed: int
    resumed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    without_stems: int = 0
    items_path: Path | None = None
    scorable: int = 0

    @property
    def separated(self) -> int:
        """Items whose outputs all exist now (separated in this run or before)."""
        return self.listed - len(self.failed)


def separate_manifest(separator, manifest: str | Path, out_dir: str | Path, *,
                      negative: str | None = None, negative_weight: float = 0.5,
                      progress: Callable[[int, int], None] | None = None) -> ManifestRun:
    """Separate each item of ``manifest`` into ``out_dir`` (see the module docstring).

    Args:
        separator: a :class:`bisep.inference.Separator`.
        manifest: a data manifest (``bisep.data.manifest``), e.g. ``data/test.jsonl``.
        out_dir: where to write; locked while the run writes it (:func:`bisep.outdir.prepare`).
        negative, negative_weight: what to keep out of every query
            (:class:`bisep.conditioners.query.Query`).
        progress: optional callable ``(done_items, total_items)``.

    Raises:
        bisep.data.manifest.DataError: the manifest cannot be read or lists no item.
        bisep.outdir.OutputError: ``out_dir`` is not writable, too full or in use.

    One bad item never stops the run: it is logged and counted in ``failed``.
    """
    entries = read_manifest(manifest)
    if not entries:
        raise DataError(f"{manifest}: the manifest lists no items.")
    out_dir = Path(out_dir)
    run = ManifestRun(out_dir, len(entries))
    with prepare(out_dir, 0, option="-o"):
        _start_or_resume(out_dir, _fingerprint(separator, manifest, negative, negative_weight),
                         entries, getattr(separator, "source", None))
        # The space check counts only what is left to separate, so a resumed run fits.
        todo = [e for e in entries if not _done(out_dir, e)]
        check_space(out_dir, sum(output_bytes([e["audio"]], len(e["labels"])) for e in todo),
                    option="-o")
        records = []
        for index, entry in enumerate(entries):
            try:
                labels = estimate_names(entry)
                targets = {label: _target(out_dir, entry, label) for label in labels}
                if _done(out_dir, entry):
                    run.resumed += 1
                else:
                    wav, rate = audio.read(entry["audio"])
                    queries = [Query(text=text, negative=negative,
                                     negative_weight=negative_weight)
                               for text in item_phrases(entry)]
                    results = separator.separate(wav, queries, rate, channels_first=True)
                    for label, result in zip(labels, results):
                        audio.write(targets[label], result.target, rate)
                records.append(_score_record(entry, targets, out_dir))
                if not entry.get("stems"):
                    run.without_stems += 1
            except Exception as exc:  # one bad item never stops the batch
                run.failed.append((entry["id"], failure_reason(exc)))
                log.warning("skipped item '%s' of %s: %s", entry["id"], manifest,
                            run.failed[-1][1])
            if progress:
                progress(index + 1, len(entries))
        items_path = out_dir / ITEMS_NAME
        if run.failed:
            items_path.unlink(missing_ok=True)
            return run
        write_text_atomic(items_path, "".join(json.dumps(r) + "\n" for r in records))
        run.items_path, run.scorable = items_path, len(records) - run.without_stems
    return run


def failure_reason(exc: BaseException) -> str:
    """A per-file failure as the user sees it: a user error's own message; anything else
    (a bug, or a case no check caught) with its type, so that it can be reported."""
    if isinstance(exc, (ValueError, OSError, UserError)):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def output_bytes(paths, outputs_each: int) -> int:
    """About how many bytes the float32 outputs of these audio files take (unreadable files
    count nothing: they are reported when they are read)."""
    total = 0
    for path in paths:
        try:
            found = audio.info(path)
        except (ValueError, OSError):
            continue
        total += outputs_each * (found.frames * found.channels * 4 + 4096)
    return total


def estimate_names(entry: dict) -> list[str]:
    """The labels of a manifest entry (checked by ``read_manifest``), which name its
    queries and output files.

    Raises:
        ValueError: an id or label that is not a plain file name.
    """
    for name in (entry["id"], *entry["labels"]):
        if not is_plain_name(name):
            raise ValueError(f"{name!r} cannot name an output file or folder (empty, hidden, "
                             f"with a path separator or over 251 bytes); rename it in the "
                             f"manifest")
    return list(entry["labels"])


def _target(out_dir: Path, entry: dict, label: str) -> Path:
    return out_dir / entry["id"] / f"{label}.wav"


def _done(out_dir: Path, entry: dict) -> bool:
    """Whether every output of an item exists (atomic writes: a file that exists is
    complete)."""
    names = [entry["id"], *entry["labels"]]
    return all(map(is_plain_name, names)) and all(
        _target(out_dir, entry, label).exists() for label in entry["labels"])


def _score_record(entry: dict, targets: dict, out_dir: Path) -> dict:
    """One ``items.jsonl`` line (``bisep score --list``); ``"sources"`` only where the
    entry has stems."""
    def rel(path) -> str:
        return os.path.relpath(Path(path).resolve(), out_dir.resolve())

    record = {"id": entry["id"], "mixture": rel(entry["audio"])}
    if entry.get("stems"):
        record["sources"] = {label: rel(entry["stems"][label]) for label in targets}
    return {**record, "estimates": {label: rel(path) for label, path in targets.items()},
            "queries": dict(zip(targets, item_phrases(entry)))}


def model_sha256(separator) -> str:
    """The hash of the file the separator was loaded from (not its path: a moved experiment
    folder keeps its outputs); of its weights when it was built in Python."""
    source = getattr(separator, "source", None)
    if source is not None:
        return sha256_of(source)
    digest = hashlib.sha256()
    for module in (separator.separator, separator.conditioner):
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _fingerprint(separator, manifest, negative, negative_weight) -> dict:
    """What the outputs depend on: the model, the manifest's path and hash (its ids and
    labels name the outputs, and its audio paths are relative to it) and the settings."""
    return {"model_sha256": model_sha256(separator), "manifest": str(Path(manifest).resolve()),
            "manifest_sha256": sha256_of(Path(manifest)),
            "chunk_seconds": separator.chunk_seconds, "overlap": separator.overlap,
            "context_seconds": separator.context_seconds, "norm_stats": separator.norm_stats,
            "negative": negative, "negative_weight": negative_weight}


def _start_or_resume(out_dir: Path, stamp: dict, entries: list[dict],
                     source: Path | None) -> None:
    """Write ``separation.json``; if an earlier run used another model, manifest or
    settings, delete its outputs for the listed items first, so that a resumed run never
    mixes estimates of two models or reuses those of another manifest's items."""
    record = out_dir / RECORD_NAME
    if record.exists():
        try:
            previous = json.loads(record.read_text())
        except json.JSONDecodeError:
            previous = {}
        changed = sorted(k for k in stamp if previous.get(k) != stamp[k])
        if changed:
            log.warning("%s was separated with another %s; separating every item again",
                        out_dir, ", ".join(changed))
            (out_dir / ITEMS_NAME).unlink(missing_ok=True)
            for entry in entries:
                for label in entry["labels"]:
                    # Only names the loop could have written (see estimate_names).
                    if is_plain_name(entry["id"]) and is_plain_name(label):
                        _target(out_dir, entry, label).unlink(missing_ok=True)
    # Where the model was read from, for the reader; not compared (a moved folder holds
    # the same model).
    shown = {**stamp, "model": str(Path(source).resolve()) if source is not None else None}
    write_text_atomic(record, json.dumps(shown, indent=2) + "\n")
