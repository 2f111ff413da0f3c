"""Output file names that cannot collide: query labels and the ``--filename`` template.

A query's label is a file-name-safe slug: its text in lower case with runs of other
characters as ``_`` (``"Acoustic guitar!"`` -> ``acoustic_guitar``); an audio query is
named after its example file (``audio-cello`` for ``cello.wav``), and a negative is added
(``violin-not-piano``). Labels are at most :data:`MAX_LABEL` characters (a longer one keeps
its head and a hash of the whole), and two queries that still get one label are told apart
by a numeric suffix (``violin``, ``violin-2``).

An output's path is a template in Demucs' spirit, relative to the output folder, with the
fields of :data:`FIELDS`; the default, ``{track}_{stem}.{ext}``, writes ``song_violin.wav``
for the target and ``song_no-violin.wav`` for the residual. A template may hold folders
(``{track}/{stem}.{ext}``) but no absolute path and no ``..``. :func:`plan_paths` and
:func:`check_outputs` check a whole plan of outputs before any work: distinct paths, no
input among them, none that exists unless overwriting.

This module imports the standard library only.
"""
from __future__ import annotations

import hashlib
import re
import string
from pathlib import Path, PurePosixPath
from typing import Sequence

from bisep.errors import UserError

FIELDS = {
    "track": "the input file's name without its extension",
    "query": "the query's label (e.g. violin, audio-cello, violin-not-piano)",
    "stem": "the output's name: the query's label for the target, no-<label> for the "
            "residual",
    "kind": "target or residual",
    "ext": "the audio format's extension (wav)",
}
DEFAULT_TEMPLATE = "{track}_{stem}.{ext}"
# Query labels are bounded, and a file name may hold at most 255 bytes on common file
# systems: a long query or input name must not fail a run with "File name too long".
MAX_LABEL = 64
MAX_NAME = 255


class NamingError(ValueError, UserError):
    """Output names that cannot be used; the message names the template or path and the fix."""


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits ``limit`` characters, else its head and a hash of the whole (so
    two long texts that share their head still get different names)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return f"{text[:max(0, limit - 9)]}_{digest}"


def slug(text: str) -> str:
    """``"Acoustic guitar!"`` -> ``acoustic_guitar`` (``""`` for text with no letter or
    digit)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text.strip()).strip("_").lower()


def query_label(text: str | None = None, audio_name: str | None = None,
                negative: str | None = None) -> str:
    """The label of a text query, or of an audio query named after its example file, with
    its negative if any (see the module docstring).

    Raises:
        NamingError: no text and no audio name, or a text that is empty after stripping.
    """
    for name, value in (("text", text), ("negative", negative)):
        if value is not None and not value.strip():
            raise NamingError(f"query {name} {value!r} is empty: give a text such as 'violin'")
    if text is not None:
        label = slug(text) or "query"
    elif audio_name is not None:
        label = f"audio-{slug(audio_name) or 'query'}"
    else:
        raise NamingError("a query needs a text or an audio example to be named")
    if negative is not None:
        label = f"{label}-not-{slug(negative) or 'query'}"
    return shorten(label, MAX_LABEL)


def unique_labels(labels: list[str]) -> list[str]:
    """``labels`` with a numeric suffix on the second, third, ... use of a label
    (``["violin", "violin"]`` -> ``["violin", "violin-2"]``)."""
    taken, out = set(labels), []
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
        if counts[label] == 1:
            out.append(label)
            continue
        n = counts[label]
        while f"{label}-{n}" in taken:
            n += 1
        taken.add(f"{label}-{n}")
        out.append(f"{label}-{n}")
    return out


def check_template(template: str) -> str:
    """Refuse a template with an unknown or unnamed field, a format spec, an absolute path
    or a ``..``; return it.

    Raises:
        NamingError: naming the field or part and the allowed fields.
    """
    allowed = ", ".join("{%s}" % name for name in FIELDS)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise NamingError(f"--filename {template!r}: {exc} (write a literal brace as {{{{ "
                          f"or }}}}; fields: {allowed})") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in FIELDS:
            raise NamingError(f"--filename {template!r}: unknown field {{{field}}}; the "
                              f"fields are {allowed}")
        if spec or conversion:
            raise NamingError(f"--filename {template!r}: the field {{{field}}} takes no "
                              f"format or conversion; the fields are {allowed}")
    if not any(field for _, field, _, _ in parsed):
        raise NamingError(f"--filename {template!r} names no field, so every output would "
                          f"get one name; use fields such as {allowed}")
    path = PurePosixPath(template)
    if path.is_absolute() or ".." in path.parts or "\\" in template:
        raise NamingError(f"--filename {template!r} must be a relative path below the "
                          f"output folder, without '..' or backslashes")
    return template


def render(template: str, track: str, query: str, kind: str = "target",
           ext: str = "wav") -> str:
    """The relative output path of one query's target or residual for the input ``track``;
    ``track`` is shortened when a file name would exceed :data:`MAX_NAME` bytes.

    Raises:
        NamingError: the path is empty or hidden in a part (e.g. ``{track}`` of ``.x``).
    """
    stem = query if kind == "target" else f"no-{query}"

    def fill(track_part: str) -> str:
        return template.format(track=track_part, query=query, stem=stem, kind=kind, ext=ext)

    keep = len(track)
    name = fill(track)
    while any(len(part.encode("utf-8")) > MAX_NAME for part in PurePosixPath(name).parts) \
            and keep > 9:
        keep -= 1  # by characters until the bytes fit (a multi-byte character counts more)
        name = fill(shorten(track, keep))
    parts = PurePosixPath(name).parts
    if not parts or any(part in (".", "..") for part in parts):
        raise NamingError(f"--filename {template!r} gives the unusable path {name!r} for "
                          f"{track!r}; put {{track}} or {{stem}} in each part")
    return name


def plan_paths(in_path: Path, labels: list[str], out_dir: Path, template: str,
               residual: bool, overwrite: bool) -> list[list[Path]]:
    """Each query's output paths, ``[target]`` or ``[target, residual]``, checked before any
    work: distinct, not the input, and new unless ``overwrite``.

    Raises:
        bisep.naming.NamingError: naming the template, the paths and the fix.
    """
    check_template(template)
    kinds = ("target", "residual") if residual else ("target",)
    plan = [[out_dir / render(template, in_path.stem, label, kind) for kind in kinds]
            for label in labels]
    check_outputs([path for outputs in plan for path in outputs], template,
                  inputs=[in_path], overwrite=overwrite)
    return plan


def check_outputs(paths: list[Path], template: str, inputs: Sequence[Path] = (),
                  overwrite: bool = False) -> None:
    """Refuse a plan in which two outputs share a path, an output is an input, or an output
    exists (unless ``overwrite``).

    Raises:
        bisep.naming.NamingError: naming the paths and the fix.
    """
    read = {Path(p).resolve(): p for p in inputs}
    seen: dict[Path, Path] = {}
    for path in paths:
        key = path.resolve()
        if key in read:
            raise NamingError(f"the output {path} would overwrite the input {read[key]} "
                              f"before it is read. Choose another output folder.")
        if key in seen:
            raise NamingError(f"two outputs would be written to {path} (--filename "
                              f"{template!r}): put {{stem}} in the template for --residual, "
                              f"{{track}} for several inputs and {{query}} or {{stem}} for "
                              f"several queries.")
        seen[key] = path
    if not overwrite:
        existing = [p for p in paths if p.exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise NamingError(f"the output {existing[0]}{more} exists; pass --overwrite "
                              f"(overwrite=True) to replace it, or choose another output "
                              f"folder or --filename.")
