"""Stage 2's torch Dataset: a plan of mixtures of mixtures (:mod:`bisep.data.mom_plan`)
and a manifest served as training items.

:class:`MoMDataset` turns a plan and a manifest into training items (shapes in its
docstring) and :func:`collate_mom` batches them. By default decoded clips stay in memory
(synth_music is small), so steps are not I/O bound; ``cache=False`` reads them from disk
each time, for corpora that do not fit in RAM. Stems are read only for ``sup`` lines of a
dataset built with ``load_sources=True``, and never opened otherwise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch

from bisep.data.manifest import DataError, item_caption, item_phrases, read_manifest
from bisep.data.mom_plan import read_plan
from bisep.data.prompts import phrase


def read_clip(path: str, sample_rate: int) -> np.ndarray:
    """Read a clip as a 1-D array: int16 when the file is 16-bit PCM (lossless and half
    the memory; scaled when used), float32 otherwise. Multi-channel files are averaged.

    Every audio read of :class:`MoMDataset` goes through this function.
    """
    try:
        with sf.SoundFile(path) as handle:
            if handle.samplerate != sample_rate:
                raise DataError(f"{path}: sample rate is {handle.samplerate} Hz, the dataset "
                                f"expects {sample_rate} Hz. Prepare the data at {sample_rate} "
                                f"Hz or set the dataset's sample_rate.")
            pcm16 = handle.subtype == "PCM_16" and handle.channels == 1
            data = handle.read(dtype="int16" if pcm16 else "float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DataError(f"{path}: cannot be read as audio ({exc}). Re-run the data "
                        f"preparation.") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: the file holds no samples. Re-run the data preparation.")
    if not pcm16 and not np.isfinite(data).all():
        raise DataError(f"{path}: {int((~np.isfinite(data)).sum())} samples are NaN or "
                        f"infinite. Re-run the data preparation, or drop the clip from the "
                        f"manifest.")
    return np.ascontiguousarray(data[:, 0] if data.shape[1] == 1 else data.mean(axis=1))


def _header_frames(path: str, sample_rate: int) -> int:
    """A clip's length from its header, with :func:`read_clip`'s checks of what the header
    tells (readable, the rate, not empty)."""
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DataError(f"{path}: cannot be read as audio ({exc}). Re-run the data "
                        f"preparation.") from None
    if info.samplerate != sample_rate:
        raise DataError(f"{path}: sample rate is {info.samplerate} Hz, the dataset expects "
                        f"{sample_rate} Hz. Prepare the data at {sample_rate} Hz.")
    if info.frames == 0:
        raise DataError(f"{path}: the file holds no samples. Re-run the data preparation.")
    return info.frames


def pad_phrases(labels: Sequence[str], num_phrases: int,
                texts: Sequence[str] | None = None) -> tuple[list[str], list[float], list[bool]]:
    """``num_phrases`` phrases for a clip's labels, padded by repeating them in turn.

    Args:
        labels: the clip's labels.
        num_phrases: K.
        texts: the query text of each label (a manifest's ``phrases``); ``None`` uses
            :func:`bisep.data.prompts.phrase` of each label.

    Returns:
        ``(phrases, weights, valid)``: each phrase's weight is 1 / (its number of copies),
        so every label weighs 1 in total; ``valid`` is True on a label's first copy.
    """
    if len(labels) > num_phrases:
        raise DataError(f"a clip has {len(labels)} labels ({', '.join(labels)}) but "
                        f"num_phrases is {num_phrases}; raise num_phrases.")
    texts = [phrase(label) for label in labels] if texts is None else list(texts)
    order = [k % len(labels) for k in range(num_phrases)]
    copies = [order.count(i) for i in range(len(labels))]
    return ([texts[i] for i in order], [1.0 / copies[i] for i in order],
            [k < len(labels) for k in range(num_phrases)])


class MoMDataset(torch.utils.data.Dataset):
    """Training items built from a MoM plan and the manifest its parts come from.

    Args:
        plan_path: ``dump/mom_train.jsonl`` (or ``mom_valid.jsonl``).
        manifest_path: the manifest the plan was drawn from (``data/train.jsonl``, or
            ``data/valid.jsonl`` for ``mom_valid.jsonl``).
        num_phrases: K, phrases per part (at least the largest number of labels of a clip).
        load_sources: read the stems of ``sup`` lines (supervised/semi-supervised modes).
            When False no stem file is opened, or even needs to exist.
        sup_only: with ``load_sources``, read stems of ``sup`` lines only (semi-supervised);
            False reads every line's stems (the fully supervised upper reference).
        sample_rate: the rate every clip must have.
        cache: keep every decoded clip and stem in memory (int16 for 16-bit files), so each
            file is read once. False reads the files for every item and keeps nothing: for
            data that does not fit in RAM, and for loader workers, which would each hold
            their own copy of the cache.

    Item (``L`` samples, ``N`` parts, ``K = num_phrases``, ``S = N * K``):
        - ``id``: the MoM id.
        - ``mom``: ``(L,)``, the sum of ``mixtures``.
        - ``mixtures``: ``(N, L)``, ``gain_n * x_n / N``.
        - ``mixture_prompts``: N str, each clip's ``caption``
          (:func:`bisep.data.manifest.item_caption`).
        - ``phrases``: N lists of K str, each clip's label phrases
          (:func:`bisep.data.manifest.item_phrases`); ``phrase_weights`` ``(N, K)`` float;
          ``phrase_valid`` ``(N, K)`` bool (see :func:`pad_phrases`).
        - only for a line whose stems are read (see ``sup_only``): ``sources`` ``(S, L)``,
          ``source_prompts`` S str, ``source_valid`` ``(S,)`` bool. Slots come in blocks
          of K per part, aligned with the phrases: ``sources.view(N, K, L)[n, k]`` is the
          stem (scaled by ``gain_n / N``) of ``phrases[n][k]``, and ``source_valid`` equals
          ``phrase_valid.flatten()`` (padded slots are zeros).
    """

    def __init__(self, plan_path: str | Path, manifest_path: str | Path, num_phrases: int = 4,
                 load_sources: bool = False, sample_rate: int = 16000,
                 sup_only: bool = True, cache: bool = True):
        # Stems are not checked here: weak and unsupervised modes must run without them.
        self.items = {item["id"]: item for item in read_manifest(manifest_path, check_files=False)}
        self.plan = read_plan(plan_path, self.items, manifest_path)
        self.num_phrases, self.load_sources = num_phrases, load_sources
        self.sup_only = sup_only
        self.sample_rate = sample_rate
        self.cache = cache
        self._cache: dict[str, np.ndarray] = {}
        for number, line in enumerate(self.plan):
            for part in line["parts"]:
                item = self.items[part]
                if len(item["labels"]) > num_phrases:
                    raise DataError(f"{manifest_path}: clip '{part}' has {len(item['labels'])} "
                                    f"labels but num_phrases is {num_phrases}; raise "
                                    f"num_phrases (data.num_phrases in the training config).")
                if self._with_sources(line) and "stems" not in item:
                    raise DataError(f"{plan_path}: MoM '{line['id']}' is marked sup but clip "
                                    f"'{part}' has no stems in {manifest_path}. Re-run "
                                    f"`bisep mix` with --supervised-fraction 0, or give the "
                                    f"clips stems.")
            labels = [lab for part in line["parts"] for lab in self.items[part]["labels"]]
            if len(set(labels)) != len(labels):
                raise DataError(f"{plan_path}: MoM '{line['id']}' (line {number + 1}) sums "
                                f"clips that share a label ({', '.join(sorted(labels))}); the "
                                f"parts of a MoM need disjoint labels. Re-run `bisep mix`.")

    def __len__(self) -> int:
        return len(self.plan)

    # Without the cache, clips are opened but only this many are read whole before training.
    CHECK_SAMPLE = 64

    def check_clips(self) -> int:
        """Open every clip (and stem) the plan reads, before training, so that a corrupt,
        empty, non-finite, wrong-rate or odd-length file fails now, by name, not at some
        step of the run. With the cache every file is read whole (filling the cache, which
        the first epoch would do anyway); without it every header is read, and
        :data:`CHECK_SAMPLE` files spread over the list are read whole.

        Returns:
            How many files were checked.

        Raises:
            DataError: the first bad file, named.
        """
        paths = []
        for line in self.plan:
            for part in line["parts"]:
                item = self.items[part]
                paths.append(item["audio"])
                if self._with_sources(line):
                    paths.extend(item["stems"][label] for label in item["labels"])
        paths = list(dict.fromkeys(paths))
        step = max(1, len(paths) // self.CHECK_SAMPLE)
        read_whole = set(paths if self.cache else paths[::step])
        first = None
        for path in paths:
            if path in read_whole:
                length = self._load(path).shape[0]
            else:
                length = _header_frames(path, self.sample_rate)
            first = first or (path, length)
            if length != first[1]:
                raise DataError(f"{path}: {length} samples, but {first[0]} has {first[1]}. "
                                f"All clips of a dataset must have the same length; re-run "
                                f"the data preparation.")
        return len(paths)

    def _with_sources(self, line: dict) -> bool:
        return self.load_sources and (line["sup"] or not self.sup_only)

    def _load(self, path: str) -> np.ndarray:
        audio = self._cache.get(path)
        if audio is None:
            audio = read_clip(path, self.sample_rate)
            if self.cache:
                self._cache[path] = audio
        return audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio

    def __getitem__(self, index: int) -> dict:
        # Built in numpy and wrapped at the end: on a busy 2-core machine each small torch
        # op can wait milliseconds for its intra-op thread pool; numpy runs inline.
        line = self.plan[index]
        parts = [self.items[part] for part in line["parts"]]
        clips = [self._load(item["audio"]) for item in parts]
        if len({clip.shape[0] for clip in clips}) > 1:
            sizes = ", ".join(f"{p}: {c.shape[0]}" for p, c in zip(line["parts"], clips))
            raise DataError(f"MoM '{line['id']}': its clips have different lengths ({sizes} "
                            f"samples). All clips of a dataset must have the same length.")
        scale = np.asarray(line["gains"], dtype=np.float32) / len(parts)
        mixtures = np.stack(clips) * scale[:, None]
        padded = [pad_phrases(item["labels"], self.num_phrases, item_phrases(item))
                  for item in parts]
        phrase_valid = np.array([p[2] for p in padded], dtype=bool)
        out = {"id": line["id"], "mom": torch.from_numpy(mixtures.sum(0)),
               "mixtures": torch.from_numpy(mixtures),
               "mixture_prompts": [item_caption(item) for item in parts],
               "phrases": [p[0] for p in padded],
               "phrase_weights": torch.from_numpy(np.array([p[1] for p in padded], np.float32)),
               "phrase_valid": torch.from_numpy(phrase_valid)}
        if self._with_sources(line):
            k_max = self.num_phrases
            sources = np.zeros((len(parts) * k_max, mixtures.shape[1]), np.float32)
            for n, item in enumerate(parts):
                for k, label in enumerate(item["labels"]):
                    stem = self._load(item["stems"][label])
                    if stem.shape[0] != mixtures.shape[1]:
                        raise DataError(f"{item['stems'][label]}: {stem.shape[0]} samples, but "
                                        f"its mixture '{item['id']}' has {mixtures.shape[1]}. "
                                        f"Re-run the data preparation.")
                    sources[n * k_max + k] = stem * scale[n]
            out["sources"] = torch.from_numpy(sources)
            out["source_prompts"] = [text for texts in out["phrases"] for text in texts]
            out["source_valid"] = torch.from_numpy(phrase_valid.flatten())
        return out


def collate_mom(batch: Sequence[dict]) -> dict:
    """Stack items of :class:`MoMDataset` on a new dim 0.

    Tensors become ``(B, ...)``; prompt lists nest as ``[B][N]``, ``[B][N][K]``,
    ``[B][S]``. ``source_valid`` ``(B, S)`` is always present (all False for items
    without sources); ``sources`` ``(B, S, L)`` (zeros where absent) and
    ``source_prompts`` only when some item has sources.
    """
    lengths = {item["mom"].shape[0] for item in batch}
    if len(lengths) > 1:
        raise DataError(f"cannot batch MoMs of different lengths ({sorted(lengths)} samples: "
                        f"{', '.join(item['id'] for item in batch)}). All clips of a dataset "
                        f"must have the same length.")
    def stack(tensors):  # numpy, for the same reason as in MoMDataset.__getitem__
        return torch.from_numpy(np.stack([t.numpy() for t in tensors]))

    out = {"id": [item["id"] for item in batch]}
    for key in ("mom", "mixtures", "phrase_weights", "phrase_valid"):
        out[key] = stack([item[key] for item in batch])
    for key in ("mixture_prompts", "phrases"):
        out[key] = [item[key] for item in batch]
    num_sources = out["phrase_valid"].shape[1] * out["phrase_valid"].shape[2]
    if any("sources" in item for item in batch):
        zeros = torch.zeros(num_sources, lengths.pop())
        out["sources"] = stack([item.get("sources", zeros) for item in batch])
        # Items without sources still get prompts (their own phrases): the slots are masked
        # out by source_valid, but the conditioner refuses empty text.
        out["source_prompts"] = [item.get("source_prompts",
                                          [t for texts in item["phrases"] for t in texts])
                                 for item in batch]
        out["source_valid"] = stack([item.get("source_valid",
                                              torch.zeros(num_sources, dtype=torch.bool))
                                     for item in batch])
    else:
        out["source_valid"] = torch.zeros(len(batch), num_sources, dtype=torch.bool)
    return out
