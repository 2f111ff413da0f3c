"""``music``: the MUSIC dataset (solo instrument videos from YouTube) from a local copy.

Expected on disk (``docs/datasets.md``)::

    <root>/MUSIC21_solo_videos.json        (or MUSIC_solo_videos.json, or metadata=PATH)
    <root>/<instrument>/<youtube id>.mp4   (.mkv, .webm, .wav, .m4a, ... found by id)

The metadata is the dataset's own ``{"videos": {"accordion": ["<id>", ...], ...}}``. A file
named after the id elsewhere under the root is accepted too (one inside the instrument's
folder wins).

Protocol (``docs/paper.md#data-and-evaluation``, ``docs/paper.md#p8-splits``):

- Videos are split by a hash of ``(seed, youtube id)``: ``test_fraction`` to test, then
  ``valid_fraction`` of the rest to valid (the paper: a random 90/10 split of clips longer
  than 6 s, unseeded, no validation split).
- A training video gives up to ``max_segments`` non-silent ``duration``-long segments
  spread over it (the paper draws a random crop each time); a valid or test video gives
  its middle crop (the paper's test crop). Videos with less than ``min_duration`` (6 s)
  of audio are skipped; shorter than ``duration`` is zero-padded.
- Every manifest holds 2-source compositions of two classes: each clip paired with a
  random clip of another class, ``*_repeats`` times over the list (test: 10, as the
  paper's ``test_sep_2.csv``). Prompts are the paper's: phrases "The sound of violin",
  mixture "The sound mixture of cello and violin".
"""
from __future__ import annotations

import json
from pathlib import Path

from bisep.data.corpus import LabelledCorpus
from bisep.data.manifest import DataError
from bisep.data.prompts import slugify, text_phrase
from bisep.data.sources import MediaIndex, Source
from bisep.data.splits import hash_split

METADATA_NAMES = ("MUSIC21_solo_videos.json", "MUSIC_solo_videos.json")
METADATA_HINT = ("Give metadata=PATH (through the recipe: --local_data_opts '--metadata PATH') "
                 "to MUSIC21_solo_videos.json or MUSIC_solo_videos.json from the MUSIC "
                 "repository (github.com/roudimit/MUSIC_dataset), or put it in the root folder.")


class Music(LabelledCorpus):
    """The ``music`` dataset plugin: ``Music(**conf).prepare(data_dir)``.

    Args:
        root: the folder of the local copy.
        metadata: the solo-videos JSON; ``None`` = the first of :data:`METADATA_NAMES`
            in ``root``.
        sample_rate, duration, min_duration: output rate, clip length (the paper's
            131,070 samples at 16 kHz), and the least audio a video must have.
        max_segments: segments per training video.
        test_fraction, valid_fraction: video shares of test, and of valid among the rest.
        train_repeats, valid_repeats, test_repeats: passes over each split's clips when
            pairing them into 2-source compositions.
        nj: parallel extraction processes.
        seed: splits and pairings.
        silence_db: segments under this RMS level are skipped.
    """

    name = "music"

    def __init__(self, root: str | None = None, metadata: str | None = None,
                 sample_rate: int = 16000, duration: float = 8.191875,
                 min_duration: float = 6.0, max_segments: int = 10,
                 test_fraction: float = 0.1, valid_fraction: float = 0.1,
                 train_repeats: int = 2, valid_repeats: int = 2, test_repeats: int = 10,
                 nj: int = 4, seed: int = 1234, silence_db: float = -60.0):
        super().__init__(root, sample_rate, duration, min_duration, nj, seed, silence_db,
                         {"train": train_repeats, "valid": valid_repeats, "test": test_repeats})
        self.check_int("max_segments", max_segments, 1)
        self.check_fraction("test_fraction", test_fraction)
        self.check_fraction("valid_fraction", valid_fraction)
        self.metadata = self._find_metadata(metadata)
        self.max_segments = max_segments
        self.fractions = [("test", test_fraction), ("valid", valid_fraction * (1 - test_fraction))]
        self.texts: dict[str, str] = {}

    def _find_metadata(self, metadata: str | None) -> Path:
        if metadata:
            return self.find_file(metadata, METADATA_HINT)
        for name in METADATA_NAMES:
            if (self.root / name).is_file():
                return self.root / name
        raise DataError(f"{self.name}: no {' or '.join(METADATA_NAMES)} in {self.root}. "
                        f"{METADATA_HINT}")

    def config(self) -> dict:
        return {**super().config(), "metadata": str(self.metadata),
                "max_segments": self.max_segments, "fractions": dict(self.fractions)}

    def read_metadata(self) -> dict[str, list[str]]:
        """``instrument -> [youtube id, ...]`` of the JSON (duplicates dropped)."""
        try:
            videos = json.loads(self.metadata.read_text(encoding="utf-8"))["videos"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{self.metadata}: not a MUSIC solo-videos file ({type(exc).__name__}:"
                            f" {exc}); expected {{\"videos\": {{\"accordion\": [\"<id>\", ...], "
                            f"...}}}}. {METADATA_HINT}") from None
        if not isinstance(videos, dict) or not all(
                isinstance(ids, list) and all(isinstance(i, str) and i for i in ids)
                for ids in videos.values()):
            raise DataError(f"{self.metadata}: 'videos' must map each instrument to a list of "
                            f"YouTube ids. {METADATA_HINT}")
        return {name: list(dict.fromkeys(ids)) for name, ids in sorted(videos.items())}

    def sources(self) -> list[Source]:
        index = MediaIndex(self.root)
        sources = []
        for instrument, ids in self.read_metadata().items():
            label = slugify(instrument)
            if not label:
                raise DataError(f"{self.metadata}: instrument name {instrument!r} has no "
                                f"letters or digits.")
            self.texts[label] = instrument.replace("_", " ")
            for video in ids:
                split = hash_split(video, self.seed, self.fractions)
                path = index.find([video], prefer=self.root / instrument)
                sources.append(Source(
                    id=f"{label}_{video}", path=None if path is None else str(path),
                    split=split, labels=[label], phrases=[text_phrase(self.texts[label])],
                    caption=text_phrase(self.texts[label]),
                    max_segments=self.max_segments if split == "train" else 1,
                    looked_for=f"{self.root}/{instrument}/{video}.*"))
        return sources
