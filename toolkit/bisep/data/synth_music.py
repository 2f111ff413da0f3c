"""``synth_music``: a MUSIC-like dataset rendered offline from procedural melodies.

Ten of MUSIC's instruments (:data:`bisep.data.melody.INSTRUMENTS`) play seeded melodies
(a shared key, scale and tempo per clip; each instrument in its own register with its own
rhythms, articulation and dynamics; :mod:`bisep.data.melody`) rendered note by note with
``tinysoundfont`` from a General MIDI soundfont (pretty_midi's bundled ``TimGM6mb.sf2`` by
default; :mod:`bisep.data.soundfont`). Every stem is
rendered on its own, normalised in RMS and stored as 16-bit PCM; a clip's ``audio`` is
the integer sum of its stems, so it equals the sum of the stem files exactly.

Splits written by :meth:`SynthMusic.prepare` (manifest format in
:mod:`bisep.data.manifest`, file layout in ``docs/data.md``):

==============  ==========================================================  =======
manifest        clips                                                        stems
==============  ==========================================================  =======
clap_pool       single-instrument clips, then 2-instrument mixtures          no
                (again in each of ``clap_soundfonts``, when given)
clap_heldout    the same kinds, for evaluating the audio-text model          no
train           1..4 instruments (``train_num_instruments``)                 yes
valid, test     2 distinct instruments at equal RMS                          yes
==============  ==========================================================  =======

Every clip draws from its own random stream, keyed by (seed, group, index), so the
splits never share a melody, the output does not depend on rendering order, and a
re-run renders bit-identical files.
"""
from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bisep.atomic import write_text_atomic
from bisep.data.manifest import DataError, read_manifest, write_manifest
from bisep.data.melody import INSTRUMENTS, SCALES, make_melody
from bisep.data.pcm import write_pcm16
from bisep.data.soundfont import Renderer, default_soundfont, is_audible
from bisep.hashing import sha256_of

log = logging.getLogger(__name__)

SPLITS = ("clap_pool", "clap_heldout", "train", "valid", "test")
# Bump when the melody (bisep.data.melody) or rendering (bisep.data.soundfont) code
# changes, so old outputs are re-rendered.
GENERATOR_VERSION = 2
MAX_ATTEMPTS = 20
PCM_SCALE = 32768  # soundfile reads PCM_16 as int / 32768


class SynthMusic:
    """The ``synth_music`` dataset plugin: ``SynthMusic(**conf).prepare(data_dir)``.

    Args:
        seed: master seed; every clip's random stream derives from it.
        sample_rate: Hz.
        duration: clip length in seconds.
        soundfont: a General MIDI ``.sf2``; ``None`` = pretty_midi's TimGM6mb. A second
            soundfont (e.g. ``/usr/share/sounds/sf2/FluidR3_GM.sf2``) gives an
            out-of-domain test set.
        clap_soundfonts: more General MIDI ``.sf2`` files; ``clap_pool`` gets its singles
            and mixtures again in each of them (new melodies), so that the audio-text model
            learns instruments rather than one soundfont's samples. The other splits use
            ``soundfont`` alone.
        num_clap_singles, num_clap_mixtures: ``clap_pool`` clips with one instrument
            (classes balanced) and with two (pairs balanced).
        num_heldout_singles, num_heldout_mixtures: the same for ``clap_heldout``.
        num_train: ``train`` clips.
        train_num_instruments: ``{number of instruments: probability}`` of train clips
            (numbers 1..4, probabilities summing to 1).
        num_valid, num_test: 2-instrument compositions at equal RMS (pairs balanced).
        stem_rms: RMS of every stem.
        level_jitter_db: stems of train and clap mixtures get a level drawn uniformly
            within +-this many dB of ``stem_rms`` (valid/test stems stay equal).
    """

    def __init__(self, seed: int = 0, sample_rate: int = 16000, duration: float = 3.0,
                 soundfont: str | None = None, num_clap_singles: int = 1600,
                 num_clap_mixtures: int = 1600, num_heldout_singles: int = 300,
                 num_heldout_mixtures: int = 300, num_train: int = 2000,
                 train_num_instruments: dict = {2: 0.4, 3: 0.3, 4: 0.3},  # noqa: B006 (copied)
                 num_valid: int = 100, num_test: int = 300, stem_rms: float = 0.05,
                 level_jitter_db: float = 3.0, clap_soundfonts: list | None = None):
        counts = dict(num_clap_singles=num_clap_singles, num_clap_mixtures=num_clap_mixtures,
                      num_heldout_singles=num_heldout_singles,
                      num_heldout_mixtures=num_heldout_mixtures, num_train=num_train,
                      num_valid=num_valid, num_test=num_test)
        for name, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise DataError(f"synth_music: {name} must be an integer >= 0, got {value!r}.")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise DataError(f"synth_music: seed must be an integer >= 0, got {seed!r}.")
        if not (isinstance(sample_rate, int) and sample_rate >= 8000):
            raise DataError(f"synth_music: sample_rate must be an integer >= 8000, "
                            f"got {sample_rate!r}.")
        if not duration > 0.2:
            raise DataError(f"synth_music: duration must be above 0.2 s, got {duration!r}.")
        if not 0 < stem_rms <= 0.2:
            raise DataError(f"synth_music: stem_rms must be in (0, 0.2] (4 stems must sum "
                            f"without clipping), got {stem_rms!r}.")
        if not 0 <= level_jitter_db <= 12:
            raise DataError(f"synth_music: level_jitter_db must be in [0, 12], "
                            f"got {level_jitter_db!r}.")
        self.train_num_instruments = self._check_distribution(train_num_instruments)
        self.soundfont = (self._soundfont_path(soundfont, "soundfont") if soundfont
                          else default_soundfont())
        self.clap_soundfonts = [self._soundfont_path(path, "clap_soundfonts")
                                for path in (clap_soundfonts or [])]
        self.seed, self.sample_rate, self.duration = seed, sample_rate, float(duration)
        self.stem_rms, self.level_jitter_db = float(stem_rms), float(level_jitter_db)
        self.counts = counts

    @staticmethod
    def _soundfont_path(path, key: str) -> Path:
        if not isinstance(path, (str, Path)):
            raise DataError(f"synth_music: {key} must name .sf2 files, got {path!r}.")
        found = Path(path).expanduser().resolve()
        if not found.is_file():
            raise DataError(f"synth_music: {key}: soundfont {found} does not exist. Install it "
                            f"(Debian: `apt-get install csound-soundfont` gives "
                            f"/usr/share/sounds/sf2/sf_GMbank.sf2, `fluid-soundfont-gm` gives "
                            f"FluidR3_GM.sf2; tools/install.sh installs both) or change {key}.")
        return found

    @staticmethod
    def _check_distribution(dist) -> dict[int, float]:
        fix = "e.g. {2: 0.4, 3: 0.3, 4: 0.3}"
        if not isinstance(dist, dict) or not dist:
            raise DataError(f"synth_music: train_num_instruments must be a mapping "
                            f"{{number: probability}}, {fix}; got {dist!r}.")
        out = {}
        for key, prob in dist.items():
            try:
                number = int(key)
            except (TypeError, ValueError):
                number = None
            if number not in (1, 2, 3, 4) or isinstance(prob, bool) or not (
                    isinstance(prob, (int, float)) and prob >= 0):
                raise DataError(f"synth_music: train_num_instruments: {key!r}: {prob!r} is "
                                f"invalid; numbers are 1..4 and probabilities >= 0, {fix}.")
            out[number] = float(prob)
        if abs(sum(out.values()) - 1.0) > 1e-6:
            raise DataError(f"synth_music: train_num_instruments probabilities sum to "
                            f"{sum(out.values()):g}, not 1: {dist!r}.")
        return dict(sorted(out.items()))

    # -- the plan of clips ---------------------------------------------------------------
    def groups(self) -> list[tuple[str, str, int, Path]]:
        """``(split, kind, count, soundfont)`` in writing order; kind is single, pair or
        natural. The ``clap_soundfonts`` groups come last, so adding one leaves every other
        clip (its random stream is keyed by the group's position) unchanged."""
        c, main = self.counts, self.soundfont
        groups = [("clap_pool", "single", c["num_clap_singles"], main),
                  ("clap_pool", "pair", c["num_clap_mixtures"], main),
                  ("clap_heldout", "single", c["num_heldout_singles"], main),
                  ("clap_heldout", "pair", c["num_heldout_mixtures"], main),
                  ("train", "natural", c["num_train"], main),
                  ("valid", "pair", c["num_valid"], main),
                  ("test", "pair", c["num_test"], main)]
        for extra in self.clap_soundfonts:
            groups += [("clap_pool", "single", c["num_clap_singles"], extra),
                       ("clap_pool", "pair", c["num_clap_mixtures"], extra)]
        return groups

    def clip_labels(self, group: int, kind: str, count: int) -> list[list[str]]:
        """The instruments of each clip of a group: classes (singles) and pairs cycled
        through a seeded shuffle so they are balanced; natural clips drawn at random."""
        names = list(INSTRUMENTS)
        rng = self.rng("labels", group)
        if kind == "single":
            order = rng.permutation(len(names))
            return [[names[order[i % len(names)]]] for i in range(count)]
        if kind == "pair":
            pairs = list(itertools.combinations(names, 2))
            order = rng.permutation(len(pairs))
            return [list(pairs[order[i % len(pairs)]]) for i in range(count)]
        sizes = rng.choice(list(self.train_num_instruments), size=count,
                           p=list(self.train_num_instruments.values()))
        return [sorted(rng.choice(names, size=int(k), replace=False).tolist()) for k in sizes]

    def rng(self, purpose: str, group: int, index: int = 0, slot: int = 0,
            attempt: int = 0) -> np.random.Generator:
        """The random stream of one decision. Keys have a fixed length: numpy's seeding
        treats ``[a, b]`` and ``[a, b, 0]`` alike, so a shorter key would repeat a stream."""
        code = ("labels", "song", "stem").index(purpose) + 1
        return np.random.default_rng([self.seed, code, group, index, slot, attempt])

    # -- rendering -----------------------------------------------------------------------
    def render_clip(self, renderer: Renderer, group: int, index: int, labels: list[str],
                    equal_rms: bool) -> dict[str, np.ndarray]:
        """Render one clip's stems as int16 arrays (``label -> (L,)``) whose integer sum
        does not clip."""
        num_samples = round(self.duration * self.sample_rate)
        song = self.rng("song", group, index)
        tempo, tonic = song.uniform(80, 140), int(song.integers(12))
        scale = str(song.choice(list(SCALES)))
        stems = {}
        for slot, label in enumerate(labels):
            instrument = INSTRUMENTS[label]
            for attempt in range(MAX_ATTEMPTS):
                rng = self.rng("stem", group, index, slot, attempt)
                program = int(rng.choice(instrument.programs))
                notes = make_melody(instrument, rng, self.duration, tempo, tonic, scale)
                audio = renderer.render(program, notes, num_samples)
                if is_audible(audio, self.sample_rate):
                    break
            else:
                raise DataError(f"synth_music: {MAX_ATTEMPTS} renders of {label} (program "
                                f"{program}) from {renderer.soundfont} were near-silent. "
                                f"The soundfont may lack that instrument's samples; try "
                                f"another soundfont.")
            jitter = 0.0 if equal_rms else rng.uniform(-self.level_jitter_db, self.level_jitter_db)
            level = self.stem_rms * 10 ** (jitter / 20)
            stems[label] = audio.astype(np.float64) * (level / np.sqrt(np.mean(audio ** 2.0)))
        # Scale the whole clip down (all stems alike) in the rare case a stem or the sum
        # would clip (a stem can peak above the sum where the stems cancel).
        peak = max(np.max(np.abs(sum(stems.values()))),
                   *(np.max(np.abs(x)) for x in stems.values()))
        gain = min(1.0, 0.98 / peak) * PCM_SCALE
        return {label: np.round(x * gain).astype(np.int16) for label, x in stems.items()}

    # -- preparing a folder --------------------------------------------------------------
    def fingerprint(self) -> dict:
        """What decides the output: the config, the soundfont's content, the generator."""
        found = {"config": self.config(), "soundfont_sha256": sha256_of(self.soundfont),
                 "generator_version": GENERATOR_VERSION}
        if self.clap_soundfonts:
            found["clap_soundfonts_sha256"] = [sha256_of(path) for path in self.clap_soundfonts]
        return found

    def config(self) -> dict:
        """The knobs as JSON-able values (recorded in meta.json)."""
        return {"seed": self.seed, "sample_rate": self.sample_rate, "duration": self.duration,
                "soundfont": str(self.soundfont), **self.counts,
                "train_num_instruments": {str(k): v for k, v in self.train_num_instruments.items()},
                "stem_rms": self.stem_rms, "level_jitter_db": self.level_jitter_db,
                **({"clap_soundfonts": [str(p) for p in self.clap_soundfonts]}
                   if self.clap_soundfonts else {})}

    def is_prepared(self, data_dir: str | Path) -> bool:
        """True when ``data_dir`` holds a complete output of this exact config."""
        data_dir = Path(data_dir)
        try:
            meta = json.loads((data_dir / "meta.json").read_text())
            expected = self.fingerprint()
            if {k: meta.get(k) for k in expected} != expected:
                return False
            return all(len(read_manifest(data_dir / f"{split}.jsonl")) == meta["counts"][split]
                       for split in SPLITS)
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def prepare(self, data_dir: str | Path) -> dict:
        """Render every split into ``data_dir`` (see the module doc); a no-op when it
        already holds this config's complete output.

        Files: ``wav/<split>/<id>.wav``, ``wav/<split>/<id>/<label>.wav`` (train, valid,
        test), ``<split>.jsonl`` and ``meta.json``. WAVs are written atomically, the
        manifests after all WAVs and ``meta.json`` last, so an interrupted run is never
        taken for a complete one and the next run renders again.

        Returns:
            The content of ``meta.json``.
        """
        data_dir = Path(data_dir)
        if self.is_prepared(data_dir):
            log.info("synth_music: %s is up to date (meta.json matches this config); "
                     "nothing to do.", data_dir)
            return json.loads((data_dir / "meta.json").read_text())
        (data_dir / "meta.json").unlink(missing_ok=True)
        from tqdm import tqdm

        start = time.perf_counter()
        renderers = {path: Renderer(path, self.sample_rate)
                     for path in [self.soundfont, *self.clap_soundfonts]}
        manifests = {split: [] for split in SPLITS}
        groups = self.groups()
        bar = tqdm(total=sum(count for _, _, count, _ in groups), desc="synth_music",
                   unit="clip", disable=not sys.stderr.isatty())
        num_stems = 0
        for group, (split, kind, count, soundfont) in enumerate(groups, 1):
            for labels in self.clip_labels(group, kind, count):
                clip_id = f"{split}_{len(manifests[split]):06d}"
                stems = self.render_clip(renderers[soundfont], group, len(manifests[split]),
                                         labels, equal_rms=split in ("valid", "test"))
                manifests[split].append(self._write_clip(data_dir, split, clip_id, stems,
                                                         with_stems=not split.startswith("clap")))
                num_stems += len(stems)
                bar.update()
        bar.close()
        for split, items in manifests.items():
            write_manifest(data_dir / f"{split}.jsonl", items)
        seconds = time.perf_counter() - start
        meta = {"dataset": "synth_music", "sample_rate": self.sample_rate,
                "duration": self.duration, "soundfont": str(self.soundfont),
                **self.fingerprint(), "seed": self.seed,
                "instruments": {name: {"programs": list(inst.programs),
                                       "pitch_range": [inst.low, inst.high]}
                                for name, inst in INSTRUMENTS.items()},
                "counts": {split: len(items) for split, items in manifests.items()},
                "stems_rendered": num_stems, "prepare_seconds": round(seconds, 2)}
        write_text_atomic(data_dir / "meta.json", json.dumps(meta, indent=2) + "\n")
        log.info("synth_music: wrote %d clips (%d stems) to %s in %.1f s.",
                 sum(meta["counts"].values()), num_stems, data_dir, seconds)
        return meta

    def _write_clip(self, data_dir: Path, split: str, clip_id: str,
                    stems: dict[str, np.ndarray], with_stems: bool) -> dict:
        folder = data_dir / "wav" / split
        mixture = np.sum([x.astype(np.int32) for x in stems.values()], axis=0).astype(np.int16)
        item = {"id": clip_id, "audio": str((folder / f"{clip_id}.wav").resolve()),
                "labels": sorted(stems), "duration": len(mixture) / self.sample_rate}
        write_pcm16(item["audio"], mixture, self.sample_rate)
        if with_stems:
            item["stems"] = {}
            for label in item["labels"]:
                path = (folder / clip_id / f"{label}.wav").resolve()
                write_pcm16(path, stems[label], self.sample_rate)
                item["stems"][label] = str(path)
        return item
