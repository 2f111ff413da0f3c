"""Stage 2: plans of mixtures of mixtures (MoMs) for training.

A plan (``dump/mom_train.jsonl``) lists which clips are summed, one MoM per line::

    {"id": "mom_000000", "parts": ["train_000123", "train_000456"],
     "gains": [0.83, 1.21], "sup": false}

The parts of a MoM have disjoint label sets, so every phrase names exactly one part's
source. ``sup: true`` marks MoMs whose parts all belong to the supervised subset: only
those may have their stems loaded (supervised and semi-supervised modes).
:class:`bisep.data.mom.MoMDataset` serves a plan as training items.

:func:`write_plans` is recipe stage 2 (``bisep mix``): ``mom_train.jsonl`` from the data's
``train.jsonl``, ``mom_valid.jsonl`` from its ``valid.jsonl`` (validation never touches
train or test clips) and, when a supervised subset is drawn, ``sup_ids.txt`` (one id a
line).
"""
from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bisep.atomic import write_text_atomic
from bisep.data.manifest import DataError, iter_json_lines, read_manifest


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


TRAIN_PLAN, VALID_PLAN, SUP_IDS = "mom_train.jsonl", "mom_valid.jsonl", "sup_ids.txt"


@dataclass
class WrittenPlans:
    """What :func:`write_plans` wrote: the plan lines, the supervised subset, the files."""

    train: list[dict]
    valid: list[dict]
    supervised: list[str]
    train_clips: int
    valid_clips: int
    files: list[Path]

    def summary(self) -> str:
        return (f"{len(self.train)} training MoMs of {self.train_clips} clips "
                f"({sum(line['sup'] for line in self.train)} sup, {len(self.supervised)} "
                f"supervised clips), {len(self.valid)} validation MoMs of {self.valid_clips} "
                f"clips.")


def write_plans(data_dir: str | Path, dump_dir: str | Path, num_train_mom: int = 10000,
                num_valid_mom: int = 100, num_parts: int = 2,
                supervised_fraction: float = 0.0, sup_mom_fraction: float | None = None,
                seed: int = 0) -> WrittenPlans:
    """Draw and write the training and validation plans of ``data_dir`` into ``dump_dir``.

    Validation clips all have references, so the validation rule is all or nothing: with
    a supervised fraction every validation MoM is ``sup``, otherwise none is. Without a
    supervised subset a ``sup_ids.txt`` of an earlier run is removed (it would mislead).
    Arguments: :func:`make_mom_plan`.

    Raises:
        DataError: a manifest is missing or bad, or the plans cannot be drawn.
    """
    data, dump = Path(data_dir), Path(dump_dir)
    train = read_manifest(data / "train.jsonl", check_files=False)
    valid = read_manifest(data / "valid.jsonl", check_files=False)
    lines, supervised = make_mom_plan(train, num_train_mom, num_parts, supervised_fraction,
                                      sup_mom_fraction, seed=seed, prefix="mom")
    valid_lines, _ = make_mom_plan(valid, num_valid_mom, num_parts,
                                   1.0 if supervised_fraction > 0 else 0.0, seed=seed + 1,
                                   prefix="mom_valid")
    files = [write_plan(dump / TRAIN_PLAN, lines), write_plan(dump / VALID_PLAN, valid_lines)]
    if supervised:
        files.append(write_text_atomic(dump / SUP_IDS, "".join(f"{i}\n" for i in supervised)))
    else:
        (dump / SUP_IDS).unlink(missing_ok=True)
    return WrittenPlans(lines, valid_lines, supervised, len(train), len(valid), files)
