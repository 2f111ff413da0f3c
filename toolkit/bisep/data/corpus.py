"""Stage 1 of the corpus recipes (MUSIC, VGGSound, AudioCaps): a local copy of a dataset
(media files plus its metadata) into fixed-length WAVs, a skip report and manifests.

A dataset plugin subclasses :class:`CorpusDataset`: it lists its
:class:`~bisep.data.sources.Source` entries (one per clip or video of the metadata, with
the file found on disk or ``None``) and turns the extracted clips into manifest items
(:meth:`CorpusDataset.manifest_items`); :meth:`CorpusDataset.prepare` does the rest:

1. **Extraction** and the **skip report** ``skipped.tsv`` (:mod:`bisep.data.extract`);
   the counts per reason are logged at the end.
2. **Compositions**: 2-source mixtures whose ``audio`` is exactly the sum of its two
   ``stems`` (:mod:`bisep.data.compose`).
3. **Manifests** ``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` and ``meta.json``; files
   whose content would not change are not rewritten, so a second run over the same data
   writes nothing.

Splits are drawn per source id (:func:`bisep.data.splits.hash_split`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bisep.atomic import write_text_if_changed
from bisep.data.compose import compose_pairs, draw_pairs
from bisep.data.extract import EXTRACT_VERSION, ExtractSettings, extract_all, write_skip_report
from bisep.data.manifest import DataError, is_plain_name, manifest_text
from bisep.data.media import SILENCE_DB
from bisep.data.prompts import text_mixture_prompt
from bisep.data.sources import Clip, Source
from bisep.data.splits import SPLITS

log = logging.getLogger(__name__)


class CorpusDataset:
    """Base of the dataset plugins that convert a local copy (``bisep prepare NAME DIR``).

    Subclasses set :attr:`name` and implement :meth:`sources` and :meth:`manifest_items`.

    Args:
        root: the folder of the dataset's local copy.
        sample_rate: Hz of the written clips.
        duration: seconds of every clip (crop or zero-pad).
        min_duration: sources with less audio are skipped (``too_short``).
        nj: parallel extraction processes.
        seed: splits and compositions.
        silence_db: clips (or segments) with a lower RMS level are ``silent``.
        repeats: split -> passes over its clips when pairing them into 2-source
            compositions (each at least 1).
    """

    name = "corpus"

    def __init__(self, root: str | None, sample_rate: int, duration: float,
                 min_duration: float, nj: int, seed: int, silence_db: float = SILENCE_DB,
                 repeats: dict[str, int] | None = None):
        if not root:
            raise DataError(f"{self.name}: no root given: set root=/path/to/your/copy (the "
                            f"recipe's ./run.sh --local_data_opts \"--root /path/to/your/copy\"); "
                            f"docs/datasets.md shows the layout.")
        self.root = Path(str(root)).expanduser().resolve()  # YAML may read a path as a number
        if not self.root.is_dir():
            raise DataError(f"{self.name}: root {self.root} is not a folder. Give the folder "
                            f"of your local copy (docs/datasets.md shows the layout).")
        self.check_int("sample_rate", sample_rate, 8000)
        self.check_int("nj", nj, 1)
        self.check_int("seed", seed, 0)
        if not duration > 0:
            raise DataError(f"{self.name}: duration must be > 0 seconds, got {duration!r}.")
        if not 0 <= min_duration <= duration:
            raise DataError(f"{self.name}: min_duration must be in [0, duration={duration}], "
                            f"got {min_duration!r}.")
        self.sample_rate, self.duration, self.min_duration = sample_rate, float(duration), \
            float(min_duration)
        self.nj, self.seed, self.silence_db = nj, seed, float(silence_db)
        for split, value in (repeats or {}).items():
            self.check_int(f"{split}_repeats", value, 1)
        self.repeats = dict(repeats or {})
        self.settings = ExtractSettings(sample_rate, round(duration * sample_rate),
                                        max(1, round(min_duration * sample_rate)),
                                        float(silence_db))

    # -- checks for subclasses ------------------------------------------------------------
    def check_int(self, key: str, value, minimum: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise DataError(f"{self.name}: {key} must be an integer >= {minimum}, "
                            f"got {value!r}.")

    def check_fraction(self, key: str, value, upper: float = 1.0) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value < upper:
            raise DataError(f"{self.name}: {key} must be a number in [0, {upper:g}), "
                            f"got {value!r}.")

    def find_file(self, name, hint: str) -> Path:
        """A metadata file: ``name`` as given (absolute, or relative to the working folder
        or to ``root``)."""
        name = str(name)  # YAML may read a file name as a number
        for path in (Path(name).expanduser(), self.root / name):
            if path.is_file():
                return path.resolve()
        raise DataError(f"{self.name}: metadata file {name} not found (looked in the working "
                        f"folder and in {self.root}). {hint}")

    # -- what subclasses provide ----------------------------------------------------------
    def sources(self) -> list[Source]:
        """Every clip or video the metadata lists, with its file or ``None``."""
        raise NotImplementedError

    def manifest_items(self, clips: dict[str, list[Clip]],
                       data_dir: Path) -> dict[str, list[dict]]:
        """Manifest items per manifest name (``train``, ``valid``, ``test``) from the
        extracted clips of each split (sorted by id)."""
        if type(self).build is not CorpusDataset.build:  # a plugin written before the rename
            warnings.warn(f"{type(self).__name__}.build() is deprecated: rename it "
                          f"manifest_items()", DeprecationWarning, stacklevel=2)
            return self.build(clips, data_dir)
        raise NotImplementedError

    def build(self, clips: dict[str, list[Clip]], data_dir: Path) -> dict[str, list[dict]]:
        """Deprecated name of :meth:`manifest_items` ("build" means making a component in
        the registry)."""
        return self.manifest_items(clips, data_dir)

    def config(self) -> dict:
        """The knobs, recorded in ``meta.json``."""
        return {"root": str(self.root), "sample_rate": self.sample_rate,
                "duration": self.duration, "min_duration": self.min_duration,
                "seed": self.seed, "silence_db": self.silence_db, "repeats": self.repeats}

    # -- the pipeline ---------------------------------------------------------------------
    def prepare(self, data_dir: str | Path) -> dict:
        """Extract, report skips, compose and write the manifests into ``data_dir``.

        Returns:
            The content of ``meta.json``.

        Raises:
            DataError: bad metadata, or a split left without any usable clip (after the
                skip report is written).
        """
        data_dir = Path(data_dir).resolve()  # items hold absolute paths until written
        start = time.perf_counter()
        sources = sorted(self.sources(), key=lambda s: s.id)
        ids = Counter(s.id for s in sources)
        clashes = [i for i, n in ids.items() if n > 1]
        if clashes:
            raise DataError(f"{self.name}: ids listed more than once: {', '.join(clashes[:5])}")
        unsafe = [i for i in ids if not is_plain_name(i)]
        if unsafe:  # ids name the WAV files
            raise DataError(f"{self.name}: ids that cannot name a file (empty, hidden, with "
                            f"a path separator or over 251 bytes): "
                            f"{', '.join(map(repr, unsafe[:5]))}. Fix them in the metadata.")
        log.info("%s: %d sources listed, %d found under %s", self.name, len(sources),
                 sum(s.path is not None for s in sources), self.root)
        results, reused = extract_all(sources, data_dir, self.settings, self.nj,
                                      self.name)
        skipped = [(s, results[s.id]) for s in sources if "clips" not in results[s.id]]
        write_skip_report(data_dir / "skipped.tsv", skipped)
        clips: dict[str, list[Clip]] = {}
        for source in sources:
            for clip_id, wav in results[source.id].get("clips", []):
                clips.setdefault(source.split, []).append(Clip(clip_id, wav, source))
        for group in clips.values():
            group.sort(key=lambda c: c.id)
        manifests = self.manifest_items(clips, data_dir)
        for split in SPLITS:
            if not manifests.get(split):
                raise DataError(f"{self.name}: the {split} manifest would be empty: no usable "
                                f"clip (or pair of clips) for it. See {data_dir / 'skipped.tsv'} "
                                f"and the layout in docs/datasets.md.")
        written = sum(write_text_if_changed(data_dir / f"{name}.jsonl", manifest_text(
            data_dir / f"{name}.jsonl", items)) for name, items in manifests.items())
        reasons = Counter(result["reason"] for _, result in skipped)
        meta = {"dataset": self.name, "config": self.config(),
                "extract_version": EXTRACT_VERSION,
                "sources": {"listed": len(sources),
                            "found": sum(s.path is not None for s in sources),
                            "used": len(sources) - len(skipped)},
                "clips": {split: len(group) for split, group in sorted(clips.items())},
                "counts": {name: len(items) for name, items in manifests.items()},
                "skipped": dict(sorted(reasons.items()))}
        written += write_text_if_changed(data_dir / "meta.json", json.dumps(meta, indent=2) + "\n")
        seconds = time.perf_counter() - start
        log.info("%s: %d of %d sources used (%d already extracted), %d skipped%s (list: %s)",
                 self.name, len(sources) - len(skipped), len(sources), reused, len(skipped),
                 ": " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
                 if reasons else "", data_dir / "skipped.tsv")
        log.info("%s: %s items; %d of the manifests and meta.json rewritten in %s (%.1f s)",
                 self.name, ", ".join(f"{name} {len(items)}" for name, items in manifests.items()),
                 written, data_dir, seconds)
        return meta

    # -- compositions ---------------------------------------------------------------------
    def rng(self, purpose: str) -> np.random.Generator:
        """A random stream per purpose (``"train"``, ``"test"``, ...), from the seed."""
        code = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:4], "big")
        return np.random.default_rng([self.seed, code])

    def compose(self, pairs: Sequence[tuple[Clip, Clip]], folder: Path, prefix: str,
                describe: Callable[[Clip], tuple[str, str, str]],
                caption: Callable[[list[str]], str]) -> list[dict]:
        """Write 2-source compositions of this dataset's clips and return their manifest
        items (:func:`bisep.data.compose.compose_pairs` at the dataset's rate)."""
        return compose_pairs(pairs, folder, prefix, describe, caption, self.sample_rate,
                             self.name)

    def clip_item(self, clip: Clip, **keys) -> dict:
        """The manifest item of one extracted clip (no stems), with its prompts."""
        source = clip.source
        return {"id": clip.id, "audio": clip.audio, "labels": list(source.labels),
                "phrases": list(source.phrases), "caption": source.caption,
                "duration": self.settings.num_samples / self.sample_rate,
                **source.extra, **keys}


class LabelledCorpus(CorpusDataset):
    """A corpus of single-label clips (MUSIC, VGGSound): every split's manifest holds
    2-source compositions of clips with different labels, prompted by the labels' texts.

    Subclasses fill :attr:`texts` (label -> its text) in :meth:`sources` and give
    ``repeats`` for the three splits.
    """

    texts: dict[str, str]

    def manifest_items(self, clips: dict[str, list[Clip]],
                       data_dir: Path) -> dict[str, list[dict]]:
        def describe(clip: Clip) -> tuple[str, str, str]:
            label = clip.source.labels[0]
            return label, clip.source.phrases[0], self.texts[label]

        return {split: self.compose(
                    draw_pairs(clips.get(split, []), self.repeats[split], self.rng(split)),
                    data_dir / "wav" / f"{split}_mix", split, describe, text_mixture_prompt)
                for split in ("train", "valid", "test")}
