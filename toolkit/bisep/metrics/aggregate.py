"""Per-source score rows -> summary statistics (mean, median, std, count).

The paper averages the two sources of a mixture, then the mixtures; with the same number
of sources in every item that equals the mean over all (item, source) rows given here.
The standard deviation is the population one (``ddof=0``, numpy's default). Non-finite
values are kept, not dropped: one perfect estimate (``SDR = +inf``) makes the mean
``inf``, which is the honest summary of such a run.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

STATS = ("mean", "median", "std", "count")


def summarize(values: Iterable[float]) -> dict[str, float | int | None]:
    """Mean, median, std and count of ``values``.

    Args:
        values: numbers (a list, or an array of any shape, flattened).

    Returns:
        ``{"mean", "median", "std", "count"}``; the three statistics are ``None`` when
        there are no values.
    """
    if not isinstance(values, np.ndarray):
        values = list(values)  # generators too
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        return {"mean": None, "median": None, "std": None, "count": 0}
    with np.errstate(invalid="ignore"):  # inf - inf inside std gives nan, on purpose
        return {"mean": float(array.mean()), "median": float(np.median(array)),
                "std": float(array.std()), "count": int(array.size)}


def summarize_rows(rows: Sequence[Mapping[str, object]], metrics: Sequence[str],
                   group_by: str | None = None) -> dict:
    """Summary statistics of each metric column over score rows.

    Args:
        rows: one mapping per (item, source), e.g. ``{"item": "a", "source": "violin",
            "sdr": 7.1, ...}``.
        metrics: the columns to summarise.
        group_by: a column to group rows by first (e.g. ``"source"``), or ``None``.

    Returns:
        ``{metric: stats}``, or ``{group: {metric: stats}}`` with ``group_by``, groups in
        order of first appearance; ``stats`` as :func:`summarize`.
    """
    if group_by is None:
        return {metric: summarize(row[metric] for row in rows) for metric in metrics}
    groups: dict[object, list] = {}
    for row in rows:
        groups.setdefault(row[group_by], []).append(row)
    return {group: summarize_rows(members, metrics) for group, members in groups.items()}
