"""Which split a dataset's item falls in, decided per item from a hash (not a shuffle): a
clip stays in its split whichever other clips a partial copy lacks, which matters for
YouTube-sourced datasets, where every copy is partial."""
from __future__ import annotations

import hashlib
from typing import Sequence

SPLITS = ("train", "valid", "test")


def hash_split(key: str, seed: int, fractions: Sequence[tuple[str, float]],
               rest: str = "train") -> str:
    """Assign ``key`` to a split from a hash of ``(seed, key)``.

    Args:
        key: the item's id.
        seed: changes every assignment.
        fractions: ``[(split, fraction), ...]``: the key falls in the first split whose
            cumulative fraction exceeds its hash value in [0, 1).
        rest: the split of what no fraction covers.

    The assignment of one key does not depend on the others, so a partial copy of a
    dataset keeps each clip's split.
    """
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    value = int.from_bytes(digest[:8], "big") / 2 ** 64
    total = 0.0
    for split, fraction in fractions:
        total += fraction
        if value < total:
            return split
    return rest
