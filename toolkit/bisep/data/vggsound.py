"""``vggsound``: the VGGSound dataset (labelled 10 s YouTube clips) from a local copy.

Expected on disk (``docs/datasets.md``)::

    <root>/vggsound.csv                       (or metadata=PATH)
    <root>/**/<id>_<start:06d>.mp4            one 10 s clip per csv row, any media type;
                                              also <id>_<start>_<end>.* and <id>.*

``vggsound.csv`` is the dataset's own: no header, rows ``youtube_id,start_seconds,label,split``
with split ``train`` or ``test``. A file named ``<id>.*`` is taken as the 10 s clip itself
unless ``whole_videos`` is true, in which case it is the whole YouTube video and the row's
start time locates the clip in it.

Protocol (``docs/paper.md#data-and-evaluation``, ``docs/paper.md#p8-splits``):

- ``split: random`` (default, the paper's): clips are split by a hash of ``(seed, clip id)``,
  ``test_fraction`` (10%) to test; ``official`` keeps the csv's test rows as test. Either
  way ``valid_fraction`` of the other clips goes to valid.
- Each clip gives one crop of ``duration`` centred at 4.5 s into the clip (the paper's).
- Manifests hold 2-source compositions of two classes (test: each clip paired twice, as
  the paper). Prompts are the paper's: "The sound of playing violin", "The sound mixture
  of dog barking and playing violin".
"""
from __future__ import annotations

import csv

from bisep.data.corpus import LabelledCorpus
from bisep.data.manifest import DataError
from bisep.data.prompts import slugify, text_phrase
from bisep.data.sources import MediaIndex, Source
from bisep.data.splits import hash_split

CLIP_SECONDS = 10.0
CROP_CENTER = 4.5  # seconds into the clip (the paper's crop)
METADATA_HINT = ("Give metadata=PATH (through the recipe: --local_data_opts '--metadata PATH') "
                 "to vggsound.csv from https://www.robots.ox.ac.uk/~vgg/data/vggsound/ "
                 "(rows: youtube_id, "
                 "start_seconds, label, train|test), or put it in the root folder.")


class VGGSound(LabelledCorpus):
    """The ``vggsound`` dataset plugin: ``VGGSound(**conf).prepare(data_dir)``.

    Args:
        root: the folder of the local copy.
        metadata: ``vggsound.csv``; ``None`` = ``<root>/vggsound.csv``.
        split: ``"random"`` (the paper's hashed 90/10) or ``"official"`` (the csv's).
        whole_videos: files named ``<youtube id>.*`` are whole videos, not 10 s clips.
        sample_rate, duration, min_duration: output rate, clip length (the paper's
            131,070 samples at 16 kHz), and the least audio a clip must have.
        test_fraction, valid_fraction: clip shares of test (``split: random``) and of
            valid among the other clips.
        train_repeats, valid_repeats, test_repeats: passes over each split's clips when
            pairing them into 2-source compositions.
        nj: parallel extraction processes.
        seed: splits and pairings.
        silence_db: crops under this RMS level are skipped.
    """

    name = "vggsound"

    def __init__(self, root: str | None = None, metadata: str | None = None,
                 split: str = "random", whole_videos: bool = False, sample_rate: int = 16000,
                 duration: float = 8.191875, min_duration: float = 5.0,
                 test_fraction: float = 0.1, valid_fraction: float = 0.02,
                 train_repeats: int = 1, valid_repeats: int = 1, test_repeats: int = 2,
                 nj: int = 4, seed: int = 1234, silence_db: float = -60.0):
        super().__init__(root, sample_rate, duration, min_duration, nj, seed, silence_db,
                         {"train": train_repeats, "valid": valid_repeats, "test": test_repeats})
        if split not in ("random", "official"):
            raise DataError(f"{self.name}: split must be 'random' (the paper's) or 'official', "
                            f"got {split!r}.")
        self.check_fraction("test_fraction", test_fraction)
        self.check_fraction("valid_fraction", valid_fraction)
        self.metadata = self.find_file(metadata or "vggsound.csv", METADATA_HINT)
        self.split, self.whole_videos = split, bool(whole_videos)
        self.test_fraction, self.valid_fraction = test_fraction, valid_fraction
        self.texts: dict[str, str] = {}

    def config(self) -> dict:
        return {**super().config(), "metadata": str(self.metadata), "split": self.split,
                "whole_videos": self.whole_videos, "test_fraction": self.test_fraction,
                "valid_fraction": self.valid_fraction}

    def read_metadata(self) -> list[tuple[str, int, str, str]]:
        """``[(youtube id, start seconds, label, official split)]``, duplicates dropped."""
        rows, seen = [], set()
        with open(self.metadata, newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), 1):
                if not row or (number == 1 and row[0].strip().lower() in ("youtube_id", "# ytid",
                                                                          "ytid")):
                    continue  # blank line, or a header some copies add
                try:
                    video, start, label, split = (cell.strip() for cell in row)
                    start = int(float(start))
                except ValueError:
                    raise DataError(f"{self.metadata}:{number}: expected youtube_id,"
                                    f"start_seconds,label,split, got {row!r}. "
                                    f"{METADATA_HINT}") from None
                if not video or not slugify(label) or split not in ("train", "test"):
                    raise DataError(f"{self.metadata}:{number}: bad row {row!r}: the id and "
                                    f"label must be non-empty and the split train or test.")
                if (video, start) not in seen:
                    seen.add((video, start))
                    rows.append((video, start, label, split))
        if not rows:
            raise DataError(f"{self.metadata}: no rows. {METADATA_HINT}")
        return rows

    def sources(self) -> list[Source]:
        index = MediaIndex(self.root)
        sources = []
        for video, start, label_text, official in self.read_metadata():
            clip_id = f"{video}_{start:06d}"
            label = slugify(label_text)
            self.texts.setdefault(label, label_text)
            if self.split == "official" and official == "test":
                split = "test"
            else:
                fractions = [("valid", self.valid_fraction)]
                if self.split == "random":
                    fractions = [("test", self.test_fraction),
                                 ("valid", self.valid_fraction * (1 - self.test_fraction))]
                split = hash_split(clip_id, self.seed, fractions)
            path = index.find([clip_id, f"{video}_{start}_{start + int(CLIP_SECONDS)}",
                               f"{video}_{start}"]) or index.find_prefix(f"{video}_{start}_")
            center = CROP_CENTER
            if path is None:
                path = index.find([video])
                if path is not None and self.whole_videos:
                    center = start + CROP_CENTER
            sources.append(Source(
                id=clip_id, path=None if path is None else str(path), split=split,
                labels=[label], phrases=[text_phrase(label_text)],
                caption=text_phrase(label_text), center=center,
                looked_for=f"{self.root}/**/{clip_id}.* (or {video}_{start}_*.*, {video}.*)"))
        return sources
