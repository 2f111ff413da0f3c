"""Stage 1 of the corpus recipes (MUSIC, VGGSound, AudioCaps): a local copy of a dataset
(media files plus its metadata) into fixed-length WAVs, a skip report and manifests.

A dataset plugin subclasses :class:`CorpusDataset`: it lists its :class:`Source` entries
(one per clip or video of the metadata, with the file found on disk or ``None``) and turns
the extracted clips into manifest items; this module does the rest:

1. **Extraction**, in ``nj`` worker processes: decode (:mod:`bisep.data.media`), resample
   to ``sample_rate``, crop or zero-pad to ``duration``, and write 16-bit mono WAVs
   atomically under ``wav/<split>/``. A source either becomes one clip (a crop centred
   where the dataset says) or, with ``max_segments > 1``, up to that many non-silent
   consecutive segments spread over the file (long MUSIC videos).
2. **Skip report** ``skipped.tsv`` (``id, path, reason, detail``): every source that gave
   no clip, with the reason of :data:`bisep.data.media.REASONS`. A bad file never stops
   the run; the counts per reason are logged at the end (``bisep prepare`` prints them).
3. **Compositions** (:meth:`CorpusDataset.compose`): 2-source mixtures whose ``audio`` is
   exactly the sum of its two ``stems``, drawn from ``numpy.random.default_rng`` seeded by
   the dataset's seed over clips sorted by id, so two users with the same files write the
   same lists.
4. **Manifests** ``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` and ``meta.json``.

Re-runs are cheap: ``wav/extracted.jsonl`` records, per source, the settings and file
stamp it was extracted with and the clips it gave; a source whose record matches and
whose WAVs are complete is not decoded again, and files whose content would not change are
not rewritten, so a second run over the same data writes nothing. Sources that were
skipped are tried again (the file may have been added since).

Splits are drawn per source id from a hash of ``(seed, id)`` (:func:`hash_split`), not from
a shuffle of the list: a clip stays in its split whichever other clips a copy lacks, which
matters for YouTube-sourced datasets, where every copy is partial.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import logging
import multiprocessing
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

from bisep.atomic import atomic_path, write_text_atomic
from bisep.audio import resample_audio
from bisep.data.manifest import DataError, manifest_text
from bisep.data.media import (SILENCE_DB, MediaError, check_usable, decode, media_duration,
                              rms_db)
from bisep.data.prompts import join_words

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus",
                            ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".3gp"})
SPLITS = ("train", "valid", "test")
# Bump when extraction changes its output for the same settings: old WAVs are redone.
EXTRACT_VERSION = 1
PCM_MAX = 32767
PHRASE_TEMPLATE = "The sound of {}"
MIXTURE_TEMPLATE = "The sound mixture of {}"


# -- text -------------------------------------------------------------------------------
def slugify(text: str) -> str:
    """A label name for free text: lower case, runs of other characters than letters and
    digits become ``_`` (``"Male speech, man speaking"`` -> ``"male_speech_man_speaking"``).
    """
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def label_phrase(text: str) -> str:
    """The paper's single-source prompt: ``"The sound of violin"``."""
    return PHRASE_TEMPLATE.format(text)


def label_mixture_prompt(texts: Sequence[str]) -> str:
    """The paper's prompt of a synthetic mixture: ``"The sound mixture of cello and
    violin"``."""
    return MIXTURE_TEMPLATE.format(join_words(texts))


# -- sources and splits -----------------------------------------------------------------
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


# -- extraction -------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtractSettings:
    """What every extracted clip is: its rate, length, the least audio a source must have
    (samples at ``sample_rate``) and the silence level."""

    sample_rate: int
    num_samples: int
    min_samples: int
    silence_db: float


def _init_worker() -> None:
    # One thread per worker process: nj processes already use the cores. torch is imported
    # only by a worker that resamples, so set the limit for that import when it comes.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


def extract_source(source: Source, wav_dir: str, settings: ExtractSettings) -> dict:
    """Decode one source and write its clip(s) (runs in a worker process).

    Returns:
        ``{"id", "clips": [[clip_id, wav path], ...]}`` or ``{"id", "reason", "detail"}``.
    """
    try:
        clips = _extract(source, Path(wav_dir), settings)
        return {"id": source.id, "clips": clips}
    except MediaError as exc:
        return {"id": source.id, "reason": exc.reason, "detail": exc.detail}
    except Exception as exc:  # noqa: BLE001  a decoder's odd failure must not stop the run
        return {"id": source.id, "reason": "unreadable",
                "detail": f"{type(exc).__name__}: {exc}"}


def _extract(source: Source, wav_dir: Path, s: ExtractSettings) -> list[list[str]]:
    rate, length = s.sample_rate, s.num_samples
    min_seconds = s.min_samples / rate
    if source.max_segments == 1 and source.center is not None:
        # Decode only the crop: the file may be a whole video.
        offset = max(0.0, source.center - length / rate / 2)
        total = media_duration(source.path)
        if total is not None:
            offset = max(0.0, min(offset, total - length / rate))
        audio, native = decode(source.path, offset, length / rate)
        if offset > 0 and len(audio) < min_seconds * native:
            audio, native = decode(source.path)  # the header's duration was wrong
    else:
        audio, native = decode(source.path)
    # Checked at the file's own rate first: a bad file is rejected before any resampling.
    check_usable(audio, native, source.path, min_seconds, s.silence_db)
    audio = resample_audio(audio, native, rate)
    if source.max_segments == 1 and source.center is not None:
        windows = [(0, audio)]
    else:
        windows = _windows(audio, source.max_segments, length, s.silence_db)
    if not windows:
        raise MediaError(source.path, "silent", f"every {length / rate:g} s segment is silent "
                                                f"(RMS below {s.silence_db:g} dBFS)")
    clips = []
    for index, piece in windows:
        piece = piece[:length]
        check_usable(piece, rate, source.path, min_seconds, s.silence_db)
        clip_id = source.id if source.max_segments == 1 else f"{source.id}_{index:03d}"
        path = wav_dir / source.split / f"{clip_id}.wav"
        write_pcm16(path, to_pcm16(np.pad(piece, (0, length - len(piece)))), rate)
        clips.append([clip_id, str(path)])
    return clips


def _windows(audio: np.ndarray, max_segments: int, length: int, silence_db: float):
    """``[(index, samples)]``: the centred crop (``max_segments == 1``), or up to
    ``max_segments`` non-silent consecutive segments, evenly spread over the file."""
    if max_segments == 1 or len(audio) <= length:
        start = max(0, (len(audio) - length) // 2)
        return [(0, audio[start:start + length])]
    pieces = [(k, audio[k * length:(k + 1) * length]) for k in range(len(audio) // length)]
    pieces = [(k, x) for k, x in pieces if rms_db(x) >= silence_db]
    if len(pieces) > max_segments:
        picks = np.unique(np.round(np.linspace(0, len(pieces) - 1, max_segments)).astype(int))
        pieces = [pieces[i] for i in picks]
    return pieces


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16 (values beyond full scale are clipped)."""
    return np.clip(np.round(audio * 32768.0), -32768, PCM_MAX).astype(np.int16)


def write_pcm16(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write int16 samples as a 16-bit PCM WAV, atomically."""
    with atomic_path(path) as tmp:
        sf.write(tmp, samples, sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)


def write_pcm16_if_changed(path: Path, samples: np.ndarray, sample_rate: int) -> bool:
    """:func:`write_pcm16` unless the file already holds exactly these samples; True when
    it wrote."""
    if path.is_file():
        try:
            with sf.SoundFile(str(path)) as handle:
                same = (handle.samplerate == sample_rate and handle.subtype == "PCM_16"
                        and handle.frames == len(samples)
                        and np.array_equal(handle.read(dtype="int16"), samples))
            if same:
                return False
        except (sf.LibsndfileError, RuntimeError):
            pass
    write_pcm16(path, samples, sample_rate)
    return True


def is_complete_wav(path: str | Path, settings: ExtractSettings) -> bool:
    """A readable 16-bit mono WAV of the recipe's rate and length."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return False
    return (info.samplerate == settings.sample_rate and info.frames == settings.num_samples
            and info.channels == 1 and info.subtype == "PCM_16")


def _stamp(source: Source, settings: ExtractSettings) -> str:
    """What a source's clips depend on: its file (size, mtime) and the settings."""
    stat = os.stat(source.path)
    key = [EXTRACT_VERSION, source.path, stat.st_size, stat.st_mtime_ns, source.split,
           source.center, source.max_segments, settings.sample_rate, settings.num_samples,
           settings.min_samples, settings.silence_db]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


# -- compositions -----------------------------------------------------------------------
def draw_pairs(clips: Sequence[Clip], repeats: int, rng: np.random.Generator,
               partners: Sequence[Clip] | None = None,
               compatible: Callable[[Clip, Clip], bool] | None = None,
               ) -> list[tuple[Clip, Clip]]:
    """Pair every clip, ``repeats`` times over the list, with a random partner.

    Args:
        clips: the first part of each pair, in order.
        repeats: passes over ``clips``.
        rng: the random stream (the pairs are a function of it and the inputs).
        partners: where partners come from; ``None`` = ``clips``. A clip is never its
            own partner.
        compatible: which partners are allowed; the default requires disjoint label sets
            (two different classes).

    Returns:
        ``[(clip, partner), ...]``; a clip without any compatible partner is left out.
    """
    partners = list(clips if partners is None else partners)
    compatible = compatible or (lambda a, b: not set(a.source.labels) & set(b.source.labels))
    pairs = []
    for _ in range(repeats):
        for clip in clips:
            partner = _draw_partner(clip, partners, rng, compatible)
            if partner is not None:
                pairs.append((clip, partner))
    return pairs


def _draw_partner(clip, partners, rng, compatible, tries: int = 64):
    # Rejection from the whole pool is uniform over the compatible partners and cheap
    # when most are compatible (hundreds of classes); the exhaustive draw covers the rest.
    if not partners:
        return None
    for _ in range(tries):
        other = partners[int(rng.integers(len(partners)))]
        if other.id != clip.id and compatible(clip, other):
            return other
    allowed = [p for p in partners if p.id != clip.id and compatible(clip, p)]
    return allowed[int(rng.integers(len(allowed)))] if allowed else None


# -- the dataset base class -------------------------------------------------------------
class CorpusDataset:
    """Base of the dataset plugins that convert a local copy (``bisep prepare NAME DIR``).

    Subclasses set :attr:`name` and implement :meth:`sources` and :meth:`build`.

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

    def build(self, clips: dict[str, list[Clip]], data_dir: Path) -> dict[str, list[dict]]:
        """Manifest items per manifest name (``train``, ``valid``, ``test``) from the
        extracted clips of each split (sorted by id)."""
        raise NotImplementedError

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
        unsafe = [i for i in ids if not i or i.startswith(".") or "/" in i or "\\" in i]
        if unsafe:  # ids name the WAV files
            raise DataError(f"{self.name}: ids that cannot name a file (empty, hidden or with "
                            f"a path separator): {', '.join(map(repr, unsafe[:5]))}. Fix them "
                            f"in the metadata.")
        log.info("%s: %d sources listed, %d found under %s", self.name, len(sources),
                 sum(s.path is not None for s in sources), self.root)
        results, reused = self._extract_all(sources, data_dir)
        skipped = [(s, results[s.id]) for s in sources if "clips" not in results[s.id]]
        self._write_skips(data_dir / "skipped.tsv", skipped)
        clips: dict[str, list[Clip]] = {}
        for source in sources:
            for clip_id, wav in results[source.id].get("clips", []):
                clips.setdefault(source.split, []).append(Clip(clip_id, wav, source))
        for group in clips.values():
            group.sort(key=lambda c: c.id)
        manifests = self.build(clips, data_dir)
        for split in SPLITS:
            if not manifests.get(split):
                raise DataError(f"{self.name}: the {split} manifest would be empty: no usable "
                                f"clip (or pair of clips) for it. See {data_dir / 'skipped.tsv'} "
                                f"and the layout in docs/datasets.md.")
        written = sum(_write_if_changed(data_dir / f"{name}.jsonl", manifest_text(
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
        written += _write_if_changed(data_dir / "meta.json", json.dumps(meta, indent=2) + "\n")
        seconds = time.perf_counter() - start
        log.info("%s: %d of %d sources used (%d already extracted), %d skipped%s (list: %s)",
                 self.name, len(sources) - len(skipped), len(sources), reused, len(skipped),
                 ": " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
                 if reasons else "", data_dir / "skipped.tsv")
        log.info("%s: %s items; %d of the manifests and meta.json rewritten in %s (%.1f s)",
                 self.name, ", ".join(f"{name} {len(items)}" for name, items in manifests.items()),
                 written, data_dir, seconds)
        return meta

    def _extract_all(self, sources: list[Source], data_dir: Path) -> tuple[dict, int]:
        wav_dir = data_dir / "wav"
        journal_path = wav_dir / "extracted.jsonl"
        done = _read_journal(journal_path)
        results, todo, stamps = {}, [], {}
        for source in sources:
            if source.path is None:
                results[source.id] = {"id": source.id, "reason": "missing",
                                      "detail": "listed in the metadata, no file found"}
                continue
            stamps[source.id] = _stamp(source, self.settings)
            record = done.get(source.id)
            if record and record.get("stamp") == stamps[source.id] and all(
                    is_complete_wav(data_dir / wav, self.settings) for _, wav in record["clips"]):
                results[source.id] = {"id": source.id, "clips": [
                    [clip_id, str((data_dir / wav).resolve())] for clip_id, wav in record["clips"]]}
            else:
                todo.append(source)
        reused = len(stamps) - len(todo)
        wav_dir.mkdir(parents=True, exist_ok=True)
        with open(journal_path, "a", encoding="utf-8") as journal:
            for result in self._run_jobs(todo, wav_dir):
                results[result["id"]] = result
                if "clips" in result:
                    clips = [[c, os.path.relpath(w, data_dir)] for c, w in result["clips"]]
                    journal.write(json.dumps({"id": result["id"], "stamp": stamps[result["id"]],
                                              "clips": clips}) + "\n")
                    journal.flush()  # a killed run keeps what it finished
        # Rewrite the journal with one line per current source (drops stale lines).
        lines = [json.dumps({"id": s.id, "stamp": stamps[s.id], "clips": [
            [c, os.path.relpath(w, data_dir)] for c, w in results[s.id]["clips"]]}) + "\n"
            for s in sources if "clips" in results[s.id]]
        _write_if_changed(journal_path, "".join(lines))
        return results, reused

    def _run_jobs(self, todo: list[Source], wav_dir: Path):
        """Yield extraction results as they finish (in worker processes when nj > 1)."""
        if not todo:
            return
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"{self.name} extract", unit="file",
                   disable=not sys.stderr.isatty())
        if self.nj == 1:
            for source in todo:
                yield extract_source(source, str(wav_dir), self.settings)
                bar.update()
        else:
            # fork: workers start at once; the parent has run no torch op yet.
            context = multiprocessing.get_context(
                "fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            with ProcessPoolExecutor(self.nj, mp_context=context,
                                     initializer=_init_worker) as pool:
                futures = [pool.submit(extract_source, s, str(wav_dir), self.settings)
                           for s in todo]
                for future in as_completed(futures):
                    yield future.result()
                    bar.update()
        bar.close()

    def _write_skips(self, path: Path, skipped: list[tuple[Source, dict]]) -> None:
        def cell(text) -> str:
            return str(text).replace("\t", " ").replace("\n", " ")

        rows = ["id\tpath\treason\tdetail\n"] + [
            f"{cell(s.id)}\t{cell(s.path or s.looked_for)}\t{r['reason']}\t{cell(r['detail'])}\n"
            for s, r in skipped]
        _write_if_changed(path, "".join(rows))

    # -- compositions ---------------------------------------------------------------------
    def rng(self, purpose: str) -> np.random.Generator:
        """A random stream per purpose (``"train"``, ``"test"``, ...), from the seed."""
        code = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:4], "big")
        return np.random.default_rng([self.seed, code])

    def compose(self, pairs: Sequence[tuple[Clip, Clip]], folder: Path, prefix: str,
                describe: Callable[[Clip], tuple[str, str, str]],
                caption: Callable[[list[str]], str]) -> list[dict]:
        """Write 2-source compositions and return their manifest items.

        Each item: ``{"id", "audio", "labels": [a, b], "phrases": [.., ..], "caption",
        "stems": {a: wav, b: wav}, "duration", "clips": [clip ids]}``. The mixture WAV is
        the integer sum of the two stems at their recorded levels, and the stems are the
        extracted clips themselves; only when the sum would clip are both stems scaled by
        one gain (their ratio kept) and written beside the mixture.

        Args:
            pairs: from :func:`draw_pairs`.
            folder: where the mixtures go (``data/wav/<name>_mix``).
            prefix: item ids are ``<prefix>_000000``, ...
            describe: ``clip -> (label, phrase, text)`` of each part: its label in the
                item, its query, and what the mixture prompt says of it.
            caption: ``[text, text] -> mixture prompt``.
        """
        items = []
        for index, parts in enumerate(pairs):
            item_id = f"{prefix}_{index:06d}"
            described = [describe(clip) for clip in parts]
            labels = [label for label, _, _ in described]
            if len(set(labels)) != len(labels):
                raise DataError(f"{self.name}: composition {item_id} would have the label "
                                f"'{labels[0]}' twice; its parts must differ.")
            stems = [sf.read(clip.audio, dtype="int16")[0].astype(np.int32) for clip in parts]
            total = np.sum(stems, axis=0)
            peak = max(int(np.max(np.abs(total))), *(int(np.max(np.abs(x))) for x in stems))
            stem_paths = [clip.audio for clip in parts]
            if peak > PCM_MAX:
                gain = PCM_MAX / peak
                stems = [np.round(x * gain).astype(np.int32) for x in stems]
                total = np.sum(stems, axis=0)
                stem_paths = [str((folder / item_id / f"{label}.wav").resolve())
                              for label in labels]
                for path, stem in zip(stem_paths, stems):
                    write_pcm16_if_changed(Path(path), stem.astype(np.int16), self.sample_rate)
            audio = (folder / f"{item_id}.wav").resolve()
            write_pcm16_if_changed(audio, np.clip(total, -32768, PCM_MAX).astype(np.int16),
                                   self.sample_rate)
            items.append({"id": item_id, "audio": str(audio), "labels": labels,
                          "phrases": [query for _, query, _ in described],
                          "caption": caption([text for _, _, text in described]),
                          "stems": dict(zip(labels, stem_paths)),
                          "duration": len(total) / self.sample_rate,
                          "clips": [clip.id for clip in parts]})
        return items

    def clip_item(self, clip: Clip, **keys) -> dict:
        """The manifest item of one extracted clip (no stems), with its prompts."""
        source = clip.source
        return {"id": clip.id, "audio": clip.audio, "labels": list(source.labels),
                "phrases": list(source.phrases), "caption": source.caption,
                "duration": self.settings.num_samples / self.sample_rate,
                **source.extra, **keys}


def _read_journal(path: Path) -> dict[str, dict]:
    """``id -> record`` of ``wav/extracted.jsonl``; unreadable lines (a run killed while
    appending) are ignored."""
    records = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                records[record["id"]] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return records


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds it; True when it wrote."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text_atomic(path, text)
    return True


class LabelledCorpus(CorpusDataset):
    """A corpus of single-label clips (MUSIC, VGGSound): every split's manifest holds
    2-source compositions of clips with different labels, prompted by the labels' texts.

    Subclasses fill :attr:`texts` (label -> its text) in :meth:`sources` and give
    ``repeats`` for the three splits.
    """

    texts: dict[str, str]

    def build(self, clips: dict[str, list[Clip]], data_dir: Path) -> dict[str, list[dict]]:
        def describe(clip: Clip) -> tuple[str, str, str]:
            label = clip.source.labels[0]
            return label, clip.source.phrases[0], self.texts[label]

        return {split: self.compose(
                    draw_pairs(clips.get(split, []), self.repeats[split], self.rng(split)),
                    data_dir / "wav" / f"{split}_mix", split, describe, label_mixture_prompt)
                for split in ("train", "valid", "test")}
