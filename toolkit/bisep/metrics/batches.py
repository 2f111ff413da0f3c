"""Score the file items of a run in fixed batches, in this process or a process pool.

``bisep score`` hands its items here. They are cut into batches of :data:`BATCH_ITEMS`
consecutive items whatever the number of workers, each batch is loaded and scored by one
call of :func:`score_batch`, and the results come back in item order: so ``nj`` changes
the wall time, not a single number. Within a batch, consecutive items of the same shape
are scored by one :func:`bisep.metrics.score_item` call, which lets the fast BSS-Eval
backend share its recursion across them.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from bisep.metrics.files import LoadedItem, ScoreItem, load_item
from bisep.metrics.item import score_item

BATCH_ITEMS = 8


@dataclass
class ItemResult:
    """What one item contributes to a run: its rows, or why it was skipped."""

    id: str
    trimmed: int  # samples cut by ``trim=True`` (0 otherwise)
    skipped: tuple[str, str] | None = None  # (kind, reason), see LoadedItem.silence
    rows: list[dict] = field(default_factory=list)  # one per source: item, source, metrics


def run_rate(item: ScoreItem, mono: bool = False, trim: bool = False) -> tuple[int, Path]:
    """``(sample rate, file that set it)`` of a run: the first item's first file, which
    every file must match. The item is loaded and checked as by ``load_item``."""
    first = load_item(item, mono=mono, trim=trim)
    return first.sample_rate, first.rate_origin


def score_items(items: list[ScoreItem], rate: tuple[int, Path], mono: bool = False,
                trim: bool = False, backend: str = "fast", nj: int = 1
                ) -> Iterator[list[ItemResult]]:
    """Score ``items`` batch by batch; yield each batch's results, in item order.

    Args:
        items: the files of the run.
        rate: from :func:`run_rate`.
        mono, trim: as for :func:`bisep.metrics.files.load_item`.
        backend: BSS-Eval backend.
        nj: worker processes (1: this process).

    Raises:
        bisep.audio.AudioError, ScoreInputError: as :func:`bisep.metrics.files.load_item`,
            for the first bad item in item order (whatever ``nj``).
    """
    batches = [items[i:i + BATCH_ITEMS] for i in range(0, len(items), BATCH_ITEMS)]
    args = (rate, mono, trim, backend)
    if nj == 1 or len(batches) == 1:
        for batch in batches:
            yield score_batch(batch, *args)
        return
    # fork: the workers start at once and inherit the imported modules.
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(min(nj, len(batches)), mp_context=context) as pool:
        futures = [pool.submit(score_batch, batch, *args) for batch in batches]
        for future in futures:  # in order: the first error raised is the first bad item's
            yield future.result()


def score_batch(items: list[ScoreItem], rate: tuple[int, Path], mono: bool, trim: bool,
                backend: str) -> list[ItemResult]:
    """Load, check and score ``items`` (runs in a worker process when ``nj > 1``)."""
    loaded = [load_item(item, mono=mono, trim=trim, rate=rate) for item in items]
    results = [ItemResult(item.id, item.trimmed) for item in loaded]
    scorable = []
    for item, result in zip(loaded, results):
        result.skipped = item.silence()
        if result.skipped is None:
            scorable.append((item, result))
    start = 0
    while start < len(scorable):  # runs of items of one shape, one score_item call each
        end = start + 1
        while end < len(scorable) and _shape(scorable[end][0]) == _shape(scorable[start][0]):
            end += 1
        run = [item for item, _ in scorable[start:end]]
        mixtures = None if run[0].mixture is None else np.stack([i.mixture for i in run])
        scores = score_item(np.stack([i.references for i in run]),
                            np.stack([i.estimates for i in run]), mixtures, backend=backend)
        for b, (item, result) in enumerate(scorable[start:end]):
            result.rows = [{"item": item.id, "source": source,
                            **{name: float(values[b, k]) for name, values in scores.items()}}
                           for k, source in enumerate(item.sources)]
        start = end
    return results


def _shape(item: LoadedItem) -> tuple:
    return item.references.shape, item.mixture is None
