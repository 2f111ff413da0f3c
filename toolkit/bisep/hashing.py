"""The sha256 of a file, the one fingerprint bisep records and checks (model weights,
soundfonts, model folders' checksums)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in ``chunk``-byte blocks (any size fits in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
