"""``checksums.sha256`` of a model folder: written at export, verified before loading.

The format is ``sha256sum``'s (``<hex>  <name>`` per line), so ``sha256sum -c
checksums.sha256`` checks a folder without bisep. Names are plain file names inside the
folder: a listed path that leaves it (``../x``, ``/abs``) is refused, so a folder can only
vouch for its own files.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from bisep.checkpoint import CheckpointError
from bisep.hashing import sha256_of

CHECKSUMS = "checksums.sha256"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *]([^/\\]+)$")


class ModelFolderError(CheckpointError):
    """A model folder that is incomplete, tampered with, or not a bisep model folder."""


def checksum_text(folder: Path, names: Iterable[str]) -> str:
    """The ``checksums.sha256`` content for ``names`` (files in ``folder``), sorted."""
    return "".join(f"{sha256_of(folder / name)}  {name}\n" for name in sorted(names))


def verify(folder: str | Path, required: Iterable[str]) -> dict[str, str]:
    """Check every file listed in ``checksums.sha256`` against its hash.

    Args:
        folder: the model folder.
        required: names that must be listed (a file missing from the list would be
            loaded unchecked).

    Returns:
        ``{name: sha256}`` of the listed files.

    Raises:
        ModelFolderError: the list is missing or malformed, a required name is not listed,
            or a listed file is missing or has another hash; the message names the file.
    """
    folder = Path(folder)
    listing = folder / CHECKSUMS
    if not listing.is_file():
        raise ModelFolderError(f"{folder}: {CHECKSUMS} is missing, so the folder's files "
                               f"cannot be verified. Re-export it with `bisep export-model`.")
    hashes = {}
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        match = _LINE.match(line.strip())
        if not match or match.group(2) in (".", ".."):
            raise ModelFolderError(f"{listing}:{number}: expected '<sha256>  <file name>', got "
                                   f"{line[:80]!r}. Re-export the folder with "
                                   f"`bisep export-model`.")
        hashes[match.group(2)] = match.group(1)
    unlisted = [name for name in required if name not in hashes]
    if unlisted:
        raise ModelFolderError(f"{listing} does not list {', '.join(unlisted)}: the folder "
                               f"was edited or not written by `bisep export-model`.")
    for name, expected in hashes.items():
        path = folder / name
        if not path.is_file():
            raise ModelFolderError(f"{path} is missing (listed in {CHECKSUMS}). Copy the whole "
                                   f"folder, or re-export it with `bisep export-model`.")
        found = sha256_of(path)
        if found != expected:
            raise ModelFolderError(f"{path} has been modified: sha256 {found}, but {CHECKSUMS} "
                                   f"records {expected}. Restore the original file or "
                                   f"re-export the folder with `bisep export-model`.")
    return hashes
