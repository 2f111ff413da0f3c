"""A scoring run over file items and its report (``bisep score``).

::

    from bisep.metrics.files import items_from_list
    from bisep.metrics.report import score_files

    report = score_files(items_from_list("exp/weak/separated/items.jsonl"))
    report.summary["metrics"]["sdri"]["mean"]
    report.write("exp/weak/scores")      # per_item.csv, summary.json

Items where a reference, estimate or mixture is silent (``sum |x| <= 1e-5``) are skipped, as
the paper does, and counted with their reasons. Items listed without references (a real
recording, ``"sources"`` left out) are not scored either, and counted apart
(``items.without_references``): ``bisep score --reference-free`` scores them.

``per_item.csv``: one row per (item, source): ``item, source, sdr, sir, sar, si_sdr, snr,
energy_ratio_db`` and, with mixtures, ``sdr_mix, si_sdr_mix, sdri, si_sdri``.
``summary.json``: mean / median / std / count of every metric over all rows and per source,
the counts of items listed, scored, skipped and without references, the skipped items with
their reasons, the trimmed items, the backend and the sample rate.
Non-finite statistics are written as the strings "inf", "-inf", "nan" (strict JSON).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bisep.atomic import write_text_atomic
from bisep.metrics.aggregate import summarize_rows
from bisep.metrics.batches import run_rate, score_items
from bisep.metrics.files import ScoreInputError, ScoreItem

log = logging.getLogger(__name__)


@dataclass
class ScoreReport:
    """The rows of a scoring run and its summary.

    Attributes:
        rows: one dict per (item, source): ``item``, ``source`` and every metric.
        columns: the metric names, in column order.
        summary: what ``summary.json`` holds (see the module docstring).
    """

    rows: list[dict]
    columns: list[str]
    summary: dict = field(default_factory=dict)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``per_item.csv`` and ``summary.json`` atomically; return their paths."""
        out = Path(out_dir)
        return [write_text_atomic(out / "per_item.csv", self.csv_text()),
                write_text_atomic(out / "summary.json", json_text(self.summary))]

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["item", "source", *self.columns])
        for row in self.rows:
            writer.writerow([row["item"], row["source"],
                             *(f"{row[c]:.4f}" for c in self.columns)])
        return buffer.getvalue()

    def table(self) -> str:
        """The summary as the text table ``bisep score`` prints."""
        summary = self.summary
        items = summary["items"]
        head = (f"scored {items['scored']} of {items['listed']} items ({summary['rows']} "
                f"sources), backend {summary['backend']}, {summary['sample_rate']} Hz")
        if items["skipped"]:
            reasons = ", ".join(f"{k}: {n}" for k, n in summary["skipped"]["by_reason"].items())
            head += f"; skipped {items['skipped']} ({reasons})"
        if items.get("without_references"):
            head += (f"; {items['without_references']} without references, not scored "
                     f"(--reference-free scores them)")
        if summary["trimmed"]["items"]:
            head += (f"; trimmed {summary['trimmed']['items']} items (at most "
                     f"{summary['trimmed']['max_samples']} samples)")
        return "\n".join([head, stats_table(summary["metrics"], self.columns)])


def stats_table(metrics: dict, columns: list[str]) -> str:
    """Rows of mean / median / std / count per metric."""
    lines = [f"{'metric':<16}{'mean':>10}{'median':>10}{'std':>10}{'count':>7}"]
    for name in columns:
        stats = metrics[name]
        lines.append(f"{name:<16}" + "".join(f"{stats[s]:>10.3f}"
                                              for s in ("mean", "median", "std"))
                     + f"{stats['count']:>7d}")
    return "\n".join(lines)


def score_files(items: list[ScoreItem], *, backend: str = "fast", mono: bool = False,
                trim: bool = False, nj: int = 1,
                progress: Callable[[int], None] | None = None) -> ScoreReport:
    """Score every item (BSS-Eval, SI-SDR, SNR, energy ratio; SDRi and SI-SDRi with
    mixtures).

    Args:
        items: from :func:`bisep.metrics.files.items_from_list` or ``items_from_dirs``.
        backend: BSS-Eval backend, ``"fast"`` or ``"mir_eval"``.
        mono, trim: as for :func:`bisep.metrics.files.load_item`.
        nj: worker processes (:mod:`bisep.metrics.batches`); the numbers do not depend on it.
        progress: optional callable, given the number of items just scored.

    Items without references are left out and counted (``items.without_references``).

    Raises:
        ScoreInputError, bisep.audio.AudioError: the first bad item, with the file and fix;
            no item, or none with references.
    """
    if not items:
        raise ScoreInputError("no items to score")
    listed, items = len(items), [item for item in items if item.has_references]
    if not items:
        raise ScoreInputError(f"none of the {listed} item(s) has references (\"sources\"), so "
                              f"SDR cannot be computed; score them with --reference-free "
                              f"--model EXP_DIR.")
    if len(items) < listed:
        log.warning("%d of %d item(s) have no references (\"sources\") and are not scored; "
                    "--reference-free scores them", listed - len(items), listed)
        if progress:  # done with them: a progress bar over every listed item fills up
            progress(listed - len(items))
    rate = run_rate(items[0], mono=mono, trim=trim)
    rows, skipped, trimmed = [], [], []
    for results in score_items(items, rate, mono=mono, trim=trim, backend=backend, nj=nj):
        for result in results:
            if result.trimmed:
                trimmed.append(result.trimmed)
            if result.skipped is not None:
                skipped.append({"id": result.id, "kind": result.skipped[0],
                                "reason": result.skipped[1]})
            rows += result.rows
        if progress:
            progress(len(results))
    columns = [name for name in rows[0] if name not in ("item", "source")] if rows else []
    summary = {
        "backend": backend,
        "sample_rate": rate[0],
        "items": {"listed": listed, "scored": len(items) - len(skipped),
                  "skipped": len(skipped), "without_references": listed - len(items)},
        "rows": len(rows),
        "metrics": summarize_rows(rows, columns),
        "by_source": summarize_rows(rows, columns, group_by="source"),
        "skipped": {"by_reason": dict(Counter(s["kind"] for s in skipped)),
                    "items": [{"id": s["id"], "reason": s["reason"]} for s in skipped]},
        "trimmed": {"items": len(trimmed), "max_samples": max(trimmed, default=0)},
    }
    return ScoreReport(rows, columns, summary)


def json_text(summary: dict) -> str:
    """``summary`` as strict JSON: non-finite numbers as strings rather than dropped."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {key: clean(v) for key, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(summary), indent=2, allow_nan=False) + "\n"
