"""JSON-lines data manifests: one clip per line, paths relative to the manifest's folder.

::

    {"id": "train_000123", "audio": "wav/train/train_000123.wav",
     "labels": ["flute", "violin"], "duration": 3.0,
     "stems": {"flute": "wav/train/train_000123/flute.wav", "violin": "..."}}

``labels`` are the instruments in the clip; ``stems`` (optional) maps each label to its
single-source recording, and ``audio`` is their sum. Two optional keys carry the clip's
text when the labels alone do not say it (captioned data, the paper's prompt templates):

- ``caption``: the clip's mixture-level prompt (default
  :func:`bisep.data.prompts.mixture_prompt` of the labels);
- ``phrases``: one query text per label, in the order of ``labels`` (default
  :func:`bisep.data.prompts.phrase` of each label).

:func:`item_caption` and :func:`item_phrases` give an item's text either way. Keys beyond
these are kept as they are. :func:`read_manifest` returns absolute paths and checks every
line; :func:`write_manifest` writes atomically with paths relative to the manifest.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from bisep.atomic import write_text_atomic
from bisep.data.prompts import mixture_prompt, phrase
from bisep.errors import UserError

REQUIRED = {"id": str, "audio": str, "labels": list, "duration": (int, float)}


class DataError(ValueError, UserError):
    """Data that cannot be used as written; the message names the file, line and fix."""


def is_plain_name(name) -> bool:
    """Whether ``name`` (an item id or a label) can name a file: a non-empty, non-hidden
    string without path separators, short enough for a file name with ``.wav`` added (255
    bytes)."""
    return (isinstance(name, str) and bool(name) and not name.startswith(".")
            and "/" not in name and "\\" not in name and len(name.encode("utf-8")) <= 251)


def read_manifest(path: str | Path, check_files: bool = True) -> list[dict]:
    """Read a manifest, resolving ``audio`` and ``stems`` paths to absolute ones.

    Args:
        path: the ``.jsonl`` file.
        check_files: also check that every ``audio`` and stem file exists (a ``stat``,
            the files are not opened).

    Returns:
        One dict per non-empty line, in file order.

    Raises:
        DataError: a missing file, malformed JSON, a missing or mistyped key, stems that
            do not match the labels, a duplicate id, a missing audio file; the message
            says ``file:line``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such manifest. Prepare the data first "
                        f"(`bisep prepare synth_music DATA_DIR`) or check the path.")
    root = path.parent.resolve()
    items, seen = [], {}
    for number, where, item in iter_json_lines(path, "one JSON object"):
        _check_item(item, where)
        if item["id"] in seen:
            raise DataError(f"{where}: duplicate id '{item['id']}' (first on line "
                            f"{seen[item['id']]}). Ids must be unique within a manifest.")
        seen[item["id"]] = number
        item["audio"] = str(root / item["audio"])
        if "stems" in item:
            item["stems"] = {label: str(root / stem) for label, stem in item["stems"].items()}
        if check_files:
            for kind, file in [("audio", item["audio"]),
                               *((f"stem '{k}'", v) for k, v in item.get("stems", {}).items())]:
                if not os.path.isfile(file):
                    raise DataError(f"{where}: {kind} file {file} of '{item['id']}' does not "
                                    f"exist. Re-run the data preparation, or fix the path "
                                    f"(paths are relative to {root}).")
        items.append(item)
    return items


def _check_item(item, where: str) -> None:
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected a JSON object like {{\"id\": ..., \"audio\": ..., "
                        f"\"labels\": [...], \"duration\": ...}}, got {type(item).__name__}.")
    for key, types in REQUIRED.items():
        if key not in item:
            raise DataError(f"{where}: missing key '{key}'. Each line needs "
                            f"{', '.join(REQUIRED)} (and optionally stems, caption, "
                            f"phrases).")
        if isinstance(item[key], bool) or not isinstance(item[key], types):
            raise DataError(f"{where}: '{key}' has the wrong type ({item[key]!r}); see "
                            f"docs/data.md for the format.")
    labels = item["labels"]
    if not labels or not all(isinstance(lab, str) and lab for lab in labels):
        raise DataError(f"{where}: 'labels' must be a non-empty list of names, got {labels!r}.")
    if len(set(labels)) != len(labels):
        raise DataError(f"{where}: 'labels' repeats a name: {labels!r}.")
    stems = item.get("stems")
    if stems is not None:
        if not isinstance(stems, dict) or not all(isinstance(v, str) for v in stems.values()):
            raise DataError(f"{where}: 'stems' must map each label to a file path, "
                            f"got {stems!r}.")
        if set(stems) != set(labels):
            raise DataError(f"{where}: 'stems' names {sorted(stems)} but 'labels' are "
                            f"{sorted(labels)}; give one stem per label.")
    caption = item.get("caption")
    if caption is not None and not (isinstance(caption, str) and caption.strip()):
        raise DataError(f"{where}: 'caption' must be a non-empty string (the clip's prompt), "
                        f"got {caption!r}; drop the key to use the labels' mixture prompt.")
    phrases = item.get("phrases")
    if phrases is not None:
        if not (isinstance(phrases, list)
                and all(isinstance(text, str) and text.strip() for text in phrases)):
            raise DataError(f"{where}: 'phrases' must be a list of non-empty strings (one "
                            f"query per label), got {phrases!r}.")
        if len(phrases) != len(labels):
            raise DataError(f"{where}: 'phrases' has {len(phrases)} entries but 'labels' has "
                            f"{len(labels)}; give one phrase per label, in the same order.")


def item_phrases(item: dict) -> list[str]:
    """The query text of each label of a manifest item: its ``phrases``, or
    :func:`bisep.data.prompts.phrase` of each label."""
    return list(item["phrases"]) if item.get("phrases") is not None \
        else [phrase(label) for label in item["labels"]]


def item_caption(item: dict) -> str:
    """The mixture-level prompt of a manifest item: its ``caption``, or
    :func:`bisep.data.prompts.mixture_prompt` of its labels."""
    return item["caption"] if item.get("caption") is not None else mixture_prompt(item["labels"])


def write_manifest(path: str | Path, items: Iterable[dict]) -> Path:
    """Write ``items`` as a manifest, atomically (temporary file, then rename).

    Absolute ``audio``/``stems`` paths are written relative to the manifest's folder;
    relative ones are taken as already relative to it and written unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, manifest_text(path, items))
    return path


def manifest_text(path: str | Path, items: Iterable[dict]) -> str:
    """The text :func:`write_manifest` writes to ``path`` (paths made relative to its
    folder), for writers that compare it with the file first."""
    root = Path(path).parent.resolve()

    def rel(file: str) -> str:
        return os.path.relpath(file, root) if os.path.isabs(file) else file

    lines = []
    for item in items:
        out = dict(item)
        out["audio"] = rel(item["audio"])
        if "stems" in item:
            out["stems"] = {label: rel(stem) for label, stem in item["stems"].items()}
        lines.append(json.dumps(out))
    return "".join(line + "\n" for line in lines)


def iter_json_lines(path: Path, expected: str):
    """``(line number, "file:line", object)`` for each non-blank line of a JSON-lines file.

    Raises:
        DataError: a line is not valid JSON (``expected`` says what each line must be).
    """
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, 1):
            if not text.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}). "
                                f"Each line must be {expected}.") from None
            yield number, where, obj
