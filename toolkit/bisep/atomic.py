"""Atomic file outputs: write to a temporary file in the same folder, then rename it.

A process killed while writing leaves the previous file (or none) under the final name,
never a truncated one; the temporary file is removed when the write fails. Every output
bisep writes (audio, checkpoints, manifests, scores, reports) goes through here.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; it replaces ``path`` when the
    block ends without an error.

    The temporary name is ``.<name>.<pid>.tmp`` beside ``path`` (the same file system, so
    the rename is atomic). It is created by the writer with ``open()``, so the file gets
    the umask's permissions rather than ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_text_if_changed(path: str | Path, text: str) -> bool:
    """:func:`write_text_atomic` unless the file already holds ``text``; True when it wrote
    (re-runs that would write the same content leave the file and its time alone)."""
    try:
        if Path(path).read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text_atomic(path, text)
    return True
