"""What a corpus dataset lists before extraction: its :class:`Source` entries (one per clip
or video of the metadata), the :class:`Clip` each gives, and the :class:`MediaIndex` that
finds their media files under the dataset's root."""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

MEDIA_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus",
                            ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".3gp"})


@dataclass
class Source:
    """One clip or video of a dataset's metadata.

    Attributes:
        id: unique within the dataset; names the WAV files (a file-name-safe string).
        path: the media file, ``None`` when it was not found.
        split: ``train``, ``valid``, ``test``, or another group the plugin uses.
        labels: label names (file-name safe, unique).
        phrases: one query text per label.
        caption: the mixture-level prompt of the clip.
        center: seconds into the file where the crop is centred; ``None`` = the middle.
        max_segments: ``1`` takes one crop; more cuts up to that many segments.
        looked_for: what was searched, for the skip report when ``path`` is ``None``.
        extra: more manifest keys (kept as they are), e.g. ``captions``.
    """

    id: str
    path: str | None
    split: str
    labels: list[str]
    phrases: list[str]
    caption: str
    center: float | None = None
    max_segments: int = 1
    looked_for: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Clip:
    """An extracted clip: a WAV of exactly the recipe's length, from ``source``."""

    id: str
    audio: str
    source: Source



class MediaIndex:
    """The media files under a folder, by file name without extension (built once)."""

    def __init__(self, root: Path):
        self.root = root
        self.by_stem: dict[str, list[Path]] = {}
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in MEDIA_SUFFIXES and path.is_file():
                self.by_stem.setdefault(path.stem, []).append(path)
        self.stems = sorted(self.by_stem)  # for prefix searches by bisection

    def find(self, stems: Sequence[str], prefer: Path | None = None) -> Path | None:
        """The first file whose name (without extension) is one of ``stems``, in that
        order; among several, one inside ``prefer``, then the first by path."""
        for stem in stems:
            found = self.by_stem.get(stem)
            if found:
                if prefer is not None:
                    inside = [p for p in found if prefer in p.parents]
                    found = inside or found
                return found[0]
        return None

    def find_prefix(self, prefix: str) -> Path | None:
        """The first file (by name) whose name starts with ``prefix``."""
        index = bisect.bisect_left(self.stems, prefix)
        if index < len(self.stems) and self.stems[index].startswith(prefix):
            return self.by_stem[self.stems[index]][0]
        return None

