"""How far a reference-free proxy ranks outputs as a reference metric does: Spearman rank
correlations between the columns of two ``per_item.csv`` tables, paired by (item, source).

::

    from bisep.metrics.agreement import rank_agreement, read_per_item

    proxy = read_per_item("exp/weak/scores_reference_free/per_item.csv")
    sdr = read_per_item("exp/weak/scores/per_item.csv")
    found = rank_agreement(proxy, sdr, ["clap_gain"], ["sdr", "sdri"])
    found["clap_gain"]["sdri"].rho, found["clap_gain"]["sdri"].pairs

Several runs pool by keying their rows apart (``read_per_item(path, key=tag)``) and merging
the dicts. Pairs where either value is not finite (e.g. the SDR of a perfect estimate) are
left out and not counted.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Mapping, Sequence


@dataclass(frozen=True)
class Agreement:
    """Spearman's rho over ``pairs`` outputs (``nan`` with fewer than three)."""

    rho: float
    pairs: int


def read_per_item(path: str | Path, key: Hashable = None) -> dict[tuple, dict[str, float]]:
    """The rows of a ``per_item.csv`` as ``{(key, item, source): {column: value}}``; ``key``
    tells runs apart when rows of several are pooled."""
    with Path(path).open(newline="") as handle:
        return {(key, row.pop("item"), row.pop("source")):
                {name: float(value) for name, value in row.items()}
                for row in csv.DictReader(handle)}


def rank_agreement(proxy: Mapping[tuple, Mapping[str, float]],
                   reference: Mapping[tuple, Mapping[str, float]],
                   proxy_columns: Sequence[str], reference_columns: Sequence[str]
                   ) -> dict[str, dict[str, Agreement]]:
    """``{proxy column: {reference column: Agreement}}`` over the keys both tables hold.

    Raises:
        KeyError: a column that a paired row lacks.
    """
    from scipy.stats import spearmanr  # scipy comes with mir_eval

    shared = [k for k in proxy if k in reference]
    found: dict[str, dict[str, Agreement]] = {}
    for p in proxy_columns:
        found[p] = {}
        for r in reference_columns:
            pairs = [(proxy[k][p], reference[k][r]) for k in shared
                     if math.isfinite(proxy[k][p]) and math.isfinite(reference[k][r])]
            rho = float(spearmanr(*zip(*pairs))[0]) if len(pairs) > 2 else math.nan
            found[p][r] = Agreement(rho, len(pairs))
    return found
