"""Stage 2: mixtures of mixtures (MoMs) for training, and the torch Dataset that serves them.

A plan (``dump/mom_train.jsonl``) lists which clips are summed, one MoM per line::

    {"id": "mom_000000", "parts": ["train_000123", "train_000456"],
     "gains": [0.83, 1.21], "sup": false}

The parts of a MoM have disjoint label sets, so every phrase names exactly one part's
source. ``sup: true`` marks MoMs whose parts all belong to the supervised subset: only
those may have their stems loaded (supervised and semi-supervised modes).

:class:`MoMDataset` turns a plan and a manifest into training items (shapes in its
docstring) and :func:`collate_mom` batches them. By default decoded clips stay in memory
(synth_music is small), so steps are not I/O bound; ``cache=False`` reads them from disk
each time, for corpora that do not fit in RAM. Stems are read only for ``sup`` lines of a
dataset built with ``load_sources=True``, and never opened otherwise.
"""
from __future__ import annotations

import bisect
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch

from bisep.atomic import write_text_atomic
from bisep.data.manifest import (DataError, item_caption, item_phrases, iter_json_lines,
                                 read_manifest)
from bisep.data.prompts import phrase


def choose_supervised(items: Sequence[dict], fraction: float, seed: int = 0) -> list[str]:
    """A seeded subset of ``round(fraction * len(items))`` clip ids (at least one when
    ``fraction > 0``), in manifest order."""
    if not 0.0 <= fraction <= 1.0:
        raise DataError(f"supervised_fraction must be in [0, 1], got {fraction!r}.")
    if fraction == 0.0 or not items:
        return []
    count = max(1, round(fraction * len(items)))
    chosen = set(np.random.default_rng([seed, 1]).permutation(len(items))[:count].tolist())
    return [item["id"] for i, item in enumerate(items) if i in chosen]


class _PartSampler:
    """Draws ``num_parts`` clips with pairwise disjoint label sets, uniformly among the
    compatible clips at each step.

    Clips are grouped by label set. Each part is a group drawn with probability
    proportional to its size among the groups that share no label with the parts drawn so
    far, then one of its clips uniformly: together, a clip uniformly among the compatible
    ones. The random stream is used exactly as ``rng.choice(groups, p=free sizes / their
    sum)`` followed by ``rng.integers(group size)`` would use it, and the same group comes
    out, so a plan depends only on (items, arguments, seed), as it always has.

    A draw does not pass over all the groups (tens of thousands for caption-phrase labels):
    the groups that share a label with the parts already drawn come from an index label ->
    groups, and the drawn group is found by bisection in the integer prefix sums of the
    group sizes, skipping those. That is the group ``rng.choice`` picks unless the uniform
    draw lies within float rounding (:attr:`margin`) of a boundary of its cumulative
    distribution; then (a few draws in a million) the cumulative distribution is built the
    way ``rng.choice`` builds it, so the result is the same bit for bit.
    """

    def __init__(self, items: Sequence[dict], vocabulary: dict[str, int]):
        groups: dict[frozenset, list[str]] = {}
        for item in items:
            key = frozenset(vocabulary[label] for label in item["labels"])
            groups.setdefault(key, []).append(item["id"])
        self.members = list(groups.values())
        self.labels = [tuple(key) for key in groups]  # label indices of each group
        self.sizes = np.array([len(m) for m in self.members], dtype=np.int64)
        self.prefix = np.cumsum(self.sizes)  # clips in groups 0..g
        self.total = int(self.prefix[-1]) if len(self.prefix) else 0
        by_label: dict[int, list[int]] = {}
        for group, labels in enumerate(self.labels):
            for label in labels:
                by_label.setdefault(label, []).append(group)
        self.by_label = by_label  # ascending group indices
        self.by_label_array: dict[int, np.ndarray] = {}  # the same, made when needed
        # Up to 62 labels, the label sets as int64 bit masks find the blocked groups faster.
        self.masks = np.array([sum(1 << label for label in labels) for labels in self.labels],
                              dtype=np.int64) if len(vocabulary) < 63 else None
        self.size_list, self.prefix_list = self.sizes.tolist(), self.prefix.tolist()
        # rng.choice's float cdf is within (2 G + 3) * eps / 2 of the exact W / S (sequential
        # cumsum of G rounded quotients, then one division); twice that, to be safe.
        self.margin = (2 * len(self.sizes) + 8) * float(np.finfo(np.float64).eps)

    def draw(self, rng: np.random.Generator, num_parts: int, tries: int = 100) -> list[str] | None:
        for _ in range(tries):
            used: list[int] = []
            parts = []
            for _ in range(num_parts):
                group = self._group(rng, used)
                if group is None:
                    break
                members = self.members[group]
                parts.append(members[int(rng.integers(len(members)))])
                used.extend(self.labels[group])
            if len(parts) == num_parts:
                return parts
        return None

    def _group(self, rng: np.random.Generator, used: list[int]) -> int | None:
        """A group free of the ``used`` labels, drawn as ``rng.choice`` weighted by size
        would; ``None`` (and no draw) when there is none."""
        lists = [self.by_label[label] for label in used]
        if sum(map(len, lists)) > _FEW:
            return self._group_many(rng, used)
        blocked = sorted(set().union(*lists)) if len(lists) > 1 else lists[0] if lists else []
        sizes = self.size_list
        free_total = self.total - sum(sizes[g] for g in blocked)
        if free_total == 0:
            return None
        u = rng.random()
        target = u * free_total
        # Between two blocked groups, the free clips up to group g number prefix[g] - cut,
        # cut = the clips of the blocked groups before g: find the stretch holding target.
        cut, low, high = 0, -1, len(sizes)
        for g in blocked:
            if self.prefix_list[g] - sizes[g] - cut > target:
                high = g
                break
            cut += sizes[g]
            low = g
        return self._check(u, bisect.bisect_right(self.prefix_list, target + cut), low, high,
                           cut, free_total, blocked)

    def _group_many(self, rng: np.random.Generator, used: list[int]) -> int | None:
        """:meth:`_group` in numpy, for labels shared by many groups."""
        if self.masks is not None:
            blocked = np.flatnonzero(self.masks & sum(1 << label for label in used))
        else:
            for label in used:
                if label not in self.by_label_array:
                    self.by_label_array[label] = np.array(self.by_label[label], dtype=np.int64)
            blocked = self.by_label_array[used[0]]
            if len(used) > 1:  # merge the sorted runs (timsort) and drop repeats
                blocked = np.concatenate([self.by_label_array[label] for label in used])
                blocked.sort(kind="stable")
                blocked = blocked[np.concatenate(([True], blocked[1:] != blocked[:-1]))]
        cut = np.concatenate(([0], np.cumsum(self.sizes[blocked])))  # before each stretch
        free_total = self.total - int(cut[-1])
        if free_total == 0:
            return None
        u = rng.random()
        target = u * free_total
        # ends[j]: free clips up to the end of stretch j (between blocked j-1 and j).
        ends = np.append(self.prefix[blocked] - self.sizes[blocked] - cut[:-1], free_total)
        j = min(int(ends.searchsorted(target, side="right")), len(blocked))
        low = int(blocked[j - 1]) if j > 0 else -1
        high = int(blocked[j]) if j < len(blocked) else len(self.sizes)
        return self._check(u, int(self.prefix.searchsorted(target + cut[j], side="right")),
                           low, high, int(cut[j]), free_total, blocked)

    def _check(self, u: float, group: int, low: int, high: int, cut: int, free_total: int,
               blocked) -> int:
        """``group`` when it is, beyond float rounding, the one ``rng.choice`` picks for
        ``u`` (it lies strictly between the blocked groups ``low`` and ``high`` and ``u``
        is inside its share, by more than :attr:`margin`); else :meth:`_choice_group`."""
        if low < group < high:
            above = self.prefix_list[group] - cut  # free clips up to this group
            below = above - self.size_list[group]
            if below / free_total + self.margin < u < above / free_total - self.margin:
                return group
        return self._choice_group(u, blocked)

    def _choice_group(self, u: float, blocked: np.ndarray) -> int:
        """The group ``rng.choice(len(groups), p=weights / weights.sum())`` picks for the
        uniform draw ``u``: its float cumulative distribution, built the same way."""
        free = np.ones(len(self.sizes), dtype=bool)
        free[np.asarray(blocked, dtype=np.int64)] = False
        weights = self.sizes.astype(np.float64) * free
        cdf = (weights / weights.sum()).cumsum()
        cdf /= cdf[-1]
        return int(cdf.searchsorted(u, side="right"))


# Above this many (label, group) pairs to skip, a draw uses numpy rather than a loop.
_FEW = 64


def make_mom_plan(items: Sequence[dict], num_moms: int, num_parts: int = 2,
                  supervised_fraction: float = 0.0, sup_mom_fraction: float | None = None,
                  gain_range: tuple[float, float] = (0.5, 1.5), seed: int = 0,
                  prefix: str = "mom") -> tuple[list[dict], list[str]]:
    """Draw a plan of mixtures of mixtures.

    Args:
        items: manifest items (``id`` and ``labels`` are used).
        num_moms: lines to draw.
        num_parts: clips per MoM (N; the paper uses 2), with pairwise disjoint labels.
        supervised_fraction: share of the clips in the supervised subset (whose stems
            supervised/semi-supervised training may read); 0 for weak/unsupervised.
        sup_mom_fraction: share of the MoMs drawn only from the supervised subset;
            ``None`` = ``supervised_fraction``. The other MoMs are drawn from all clips.
        gain_range: each part's gain is drawn uniformly from it (paper: 0.5..1.5).
        seed: the plan is a function of (items, arguments, seed).
        prefix: MoM ids are ``<prefix>_000000``, ...

    Returns:
        ``(lines, supervised_ids)``: plan lines ``{"id", "parts", "gains", "sup"}``, where
        ``sup`` is true exactly when every part is in the supervised subset, and that
        subset's ids.

    Raises:
        DataError: bad arguments, or no ``num_parts`` clips with disjoint labels exist.
    """
    if not isinstance(num_moms, int) or num_moms < 1:
        raise DataError(f"num_moms must be a positive integer, got {num_moms!r}.")
    if not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed must be an integer >= 0, got {seed!r}.")
    if not isinstance(num_parts, int) or num_parts < 2:
        raise DataError(f"num_parts must be an integer >= 2, got {num_parts!r}.")
    low, high = gain_range
    if not 0 < low <= high:
        raise DataError(f"gain_range must be (low, high) with 0 < low <= high, got {gain_range!r}.")
    sup_mom_fraction = supervised_fraction if sup_mom_fraction is None else sup_mom_fraction
    if not 0.0 <= sup_mom_fraction <= 1.0:
        raise DataError(f"sup_mom_fraction must be in [0, 1], got {sup_mom_fraction!r}.")
    supervised = choose_supervised(items, supervised_fraction, seed)
    vocabulary = {label: i for i, label in
                  enumerate(sorted({lab for item in items for lab in item["labels"]}))}
    everything = _PartSampler(items, vocabulary)
    subset = set(supervised)
    sup_sampler = _PartSampler([it for it in items if it["id"] in subset], vocabulary)
    rng = np.random.default_rng([seed, 2])
    num_sup = round(sup_mom_fraction * num_moms) if supervised else 0
    from_subset = np.zeros(num_moms, dtype=bool)
    from_subset[rng.permutation(num_moms)[:num_sup]] = True
    lines = []
    for index in range(num_moms):
        sampler = sup_sampler if from_subset[index] else everything
        parts = sampler.draw(rng, num_parts)
        if parts is None:
            where = "the supervised subset" if from_subset[index] else "the clips"
            raise DataError(f"cannot draw {num_parts} clips with disjoint labels from {where} "
                            f"({len(subset) if from_subset[index] else len(items)} clips). "
                            f"Lower num_parts, raise supervised_fraction, or use clips with "
                            f"fewer labels each.")
        gains = [round(float(g), 4) for g in rng.uniform(low, high, num_parts)]
        lines.append({"id": f"{prefix}_{index:06d}", "parts": parts, "gains": gains,
                      "sup": all(part in subset for part in parts)})
    return lines, supervised


def write_plan(path: str | Path, lines: Sequence[dict]) -> Path:
    """Write plan lines as JSON lines, atomically."""
    return write_text_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))


def read_plan(path: str | Path, manifest: dict[str, dict] | None = None,
              manifest_path: str | Path | None = None) -> list[dict]:
    """Read and check a plan; with ``manifest`` (id -> item), every part must be in it.

    Raises:
        DataError: naming ``file:line``, what is wrong, and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such plan. Write it with `bisep mix --data-dir DATA "
                        f"--dump-dir DUMP` (recipe stage 2).")
    lines, seen = [], {}
    for number, where, line in iter_json_lines(
            path, 'an object like {"id", "parts", "gains", "sup"}'):
        _check_line(line, where)
        if line["id"] in seen:
            raise DataError(f"{where}: duplicate MoM id '{line['id']}' (first on line "
                            f"{seen[line['id']]}).")
        seen[line["id"]] = number
        if manifest is not None:
            for part in line["parts"]:
                if part not in manifest:
                    raise DataError(
                        f"{where}: part '{part}' is not in the manifest {manifest_path}. "
                        f"The plan was made from other data: re-run `bisep mix` with "
                        f"--data-dir pointing at this data, or pass the manifest the plan "
                        f"was drawn from (train.jsonl for mom_train, valid.jsonl for "
                        f"mom_valid).")
        lines.append(line)
    if not lines:
        raise DataError(f"{path}: the plan is empty. Re-run `bisep mix`.")
    return lines


def _check_line(line, where: str) -> None:
    if not isinstance(line, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(line).__name__}.")
    for key in ("id", "parts", "gains", "sup"):
        if key not in line:
            raise DataError(f"{where}: missing key '{key}'. Plan lines are "
                            f"{{\"id\", \"parts\", \"gains\", \"sup\"}}; re-run `bisep mix`.")
    parts, gains = line["parts"], line["gains"]
    if not (isinstance(parts, list) and parts and all(isinstance(p, str) for p in parts)):
        raise DataError(f"{where}: 'parts' must be a non-empty list of clip ids, got {parts!r}.")
    if not (isinstance(gains, list) and len(gains) == len(parts) and all(
            isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g)
            and g > 0 for g in gains)):
        raise DataError(f"{where}: 'gains' must be {len(parts)} positive numbers (one per "
                        f"part), got {gains!r}.")
    if not isinstance(line["sup"], bool):
        raise DataError(f"{where}: 'sup' must be true or false, got {line['sup']!r}.")


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
