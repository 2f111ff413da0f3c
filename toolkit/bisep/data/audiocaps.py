"""``audiocaps``: the AudioCaps dataset (captioned 10 s AudioSet clips) from a local copy.

Expected on disk (``docs/datasets.md``)::

    <root>/train.csv, val.csv, test.csv     (or metadata_dir=PATH holding them)
    <root>/**/<youtube_id>.wav              one clip per YouTube id, any media type;
                                            also Y<youtube_id>.*, <audiocap_id>.*,
                                            <youtube_id>_<start>.*

The csv files are the dataset's own, with the header
``audiocap_id,youtube_id,start_time,caption``; val and test list several captions per
clip (one row each). Rows are grouped by ``youtube_id``: the first caption is the clip's
``caption``, and all of them are kept under ``captions`` when there are several.

Protocol (``docs/paper.md#data-and-evaluation``, ``docs/paper.md#p5-phrase-count``):

- **train** (the official train csv): natural clips, no stems. ``caption`` is the full
  caption (the mixture-level prompt); ``phrases`` are its source phrases
  (:func:`bisep.data.captions.parse_caption`), at most ``max_phrases`` (K = 3; a seeded
  choice keeping caption order when there are more) and ``labels`` their slugs.
- **test**: each official test clip plus a random clip of the *partner* share of the
  official val set, summed (MoM-style): ``labels`` are the two YouTube ids, ``stems`` the
  two whole natural clips, ``phrases`` their (first) full captions, ``captions`` every
  caption of each.
- **valid**: the other share of the val set (``valid_fraction``, by a hash of the id), each
  clip paired with another of the same share, so valid and test never share a clip.
- Each clip is centre-cropped to ``duration`` (the paper's).
"""
from __future__ import annotations

import csv
from pathlib import Path

from bisep.data.compose import draw_pairs
from bisep.data.corpus import CorpusDataset
from bisep.data.manifest import DataError
from bisep.data.prompts import slugify
from bisep.data.sources import Clip, MediaIndex, Source
from bisep.data.splits import hash_split

CSV_FILES = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
HEADER = ("audiocap_id", "youtube_id", "start_time", "caption")
METADATA_HINT = ("Give metadata_dir=PATH (through the recipe: --local_data_opts '--metadata "
                 "PATH') to the folder holding train.csv, val.csv and test.csv of "
                 "github.com/cdjkim/audiocaps "
                 "(dataset/), or put them in the root folder.")


def join_captions(captions: list[str]) -> str:
    """One prompt for a sum of captioned clips: ``"A dog barks and a man speaks"``."""
    parts = [text.strip().rstrip(".") for text in captions]
    return " and ".join([parts[0]] + [p[:1].lower() + p[1:] for p in parts[1:]])


class AudioCaps(CorpusDataset):
    """The ``audiocaps`` dataset plugin: ``AudioCaps(**conf).prepare(data_dir)``.

    Args:
        root: the folder of the local copy.
        metadata_dir: the folder of ``train.csv``, ``val.csv``, ``test.csv``; ``None`` =
            ``root``.
        sample_rate, duration, min_duration: output rate, clip length (the paper's
            131,070 samples at 16 kHz), and the least audio a clip must have.
        max_phrases: most source phrases per training clip (the paper's K = 3).
        valid_fraction: share of the val clips used for validation; the rest are the test
            clips' partners.
        valid_repeats, test_repeats: passes over the valid and test clips when pairing.
        nj: parallel extraction processes.
        seed: val shares, pairings and phrase choice.
        silence_db: clips under this RMS level are skipped.
    """

    name = "audiocaps"

    def __init__(self, root: str | None = None, metadata_dir: str | None = None,
                 sample_rate: int = 16000, duration: float = 8.191875,
                 min_duration: float = 5.0, max_phrases: int = 3,
                 valid_fraction: float = 0.5, valid_repeats: int = 1, test_repeats: int = 1,
                 nj: int = 4, seed: int = 1234, silence_db: float = -60.0):
        super().__init__(root, sample_rate, duration, min_duration, nj, seed, silence_db,
                         {"valid": valid_repeats, "test": test_repeats})
        self.check_int("max_phrases", max_phrases, 1)
        self.check_fraction("valid_fraction", valid_fraction)
        folder = Path(str(metadata_dir)).expanduser().resolve() if metadata_dir else self.root
        self.files = {}
        for group, name in CSV_FILES.items():
            if not (folder / name).is_file():
                raise DataError(f"{self.name}: {folder / name} not found. {METADATA_HINT}")
            self.files[group] = folder / name
        self.max_phrases, self.valid_fraction = max_phrases, valid_fraction

    def config(self) -> dict:
        return {**super().config(), "metadata": {g: str(p) for g, p in self.files.items()},
                "max_phrases": self.max_phrases, "valid_fraction": self.valid_fraction}

    def read_csv(self, group: str) -> dict[str, dict]:
        """``youtube_id -> {"audiocap_ids", "captions"}`` of one csv, in file order."""
        path, clips = self.files[group], {}
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = tuple(cell.strip() for cell in next(reader, []))
            if header[:4] != HEADER:
                raise DataError(f"{path}:1: expected the header {','.join(HEADER)}, got "
                                f"{','.join(header) or 'an empty file'}. {METADATA_HINT}")
            for number, row in enumerate(reader, 2):
                if not row:
                    continue
                if len(row) < 4 or not row[1].strip() or not row[3].strip():
                    raise DataError(f"{path}:{number}: expected audiocap_id,youtube_id,"
                                    f"start_time,caption with an id and a caption, got {row!r}.")
                clip = clips.setdefault(row[1].strip(), {"audiocap_ids": [], "captions": []})
                clip["audiocap_ids"].append(row[0].strip())
                clip["captions"].append(row[3].strip())
        return clips

    def phrases(self, video: str, caption: str) -> list[str]:
        """The caption's source phrases, unique by slug, at most ``max_phrases`` (a seeded
        choice per clip, in caption order)."""
        from bisep.data.captions import parse_caption

        unique: dict[str, str] = {}
        for text in parse_caption(caption):
            unique.setdefault(slugify(text), text)
        unique.pop("", None)
        found = list(unique.values()) or [caption]
        if len(found) > self.max_phrases:
            rng = self.rng(f"phrases {video}")
            keep = sorted(rng.choice(len(found), self.max_phrases, replace=False).tolist())
            found = [found[i] for i in keep]
        return found

    def sources(self) -> list[Source]:
        index = MediaIndex(self.root)
        sources, taken = [], set()
        # The test clips first: a clip listed twice stays in test, then in val.
        for group in ("test", "val", "train"):
            for video, clip in self.read_csv(group).items():
                if video in taken:
                    continue
                taken.add(video)
                caption = clip["captions"][0]
                phrases = self.phrases(video, caption) if group == "train" else [caption]
                split = group if group != "val" else hash_split(
                    video, self.seed, [("valid", self.valid_fraction)], rest="partner")
                path = index.find([video, f"Y{video}", *clip["audiocap_ids"]]) \
                    or index.find_prefix(f"{video}_")
                extra = {"captions": clip["captions"]} if len(clip["captions"]) > 1 else {}
                sources.append(Source(
                    id=video, path=None if path is None else str(path), split=split,
                    labels=[slugify(text) for text in phrases], phrases=phrases,
                    caption=caption, looked_for=f"{self.root}/**/{video}.* (or Y{video}.*, "
                                                f"<audiocap_id>.*)", extra=extra))
        return sources

    def manifest_items(self, clips: dict[str, list[Clip]],
                       data_dir: Path) -> dict[str, list[dict]]:
        def describe(clip: Clip) -> tuple[str, str, str]:
            return clip.id, clip.source.caption, clip.source.caption

        def different(a: Clip, b: Clip) -> bool:
            return a.id != b.id

        def composed(split: str, pairs) -> list[dict]:
            items = self.compose(pairs, data_dir / "wav" / f"{split}_mix", split, describe,
                                 join_captions)
            for item, parts in zip(items, pairs):  # every caption of each part, by label
                item["captions"] = {clip.id: clip.source.extra.get("captions",
                                                                   [clip.source.caption])
                                    for clip in parts}
            return items

        test_pairs = draw_pairs(clips.get("test", []), self.repeats["test"], self.rng("test"),
                                partners=clips.get("partner", []), compatible=different)
        valid_pairs = draw_pairs(clips.get("valid", []), self.repeats["valid"],
                                 self.rng("valid"), compatible=different)
        return {"train": [self.clip_item(clip) for clip in clips.get("train", [])],
                "valid": composed("valid", valid_pairs), "test": composed("test", test_pairs)}
