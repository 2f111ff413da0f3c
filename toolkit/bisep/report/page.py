"""A recipe's results in one page: ``RESULTS.md`` (tables) and ``RESULTS.png`` (figure),
from the experiment folders of ``<exp_dir>`` (:mod:`bisep.report.experiments` says which
files it reads)."""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Sequence

from bisep.atomic import write_text_atomic
from bisep.report.claims import PAPER_CLAIMS, Claim
from bisep.report.experiments import Experiment, find_experiments, fraction_arms, group_arms
from bisep.report.figures import plot, plot_fraction
from bisep.report.tables import (fraction_table, instrument_table, mode_text, ratio_table,
                                 reference_free_table, seed_ratio_table, seed_table,
                                 summary_table)


def render_markdown(experiments: list[Experiment], figure: str | None = None,
                    where: Path | None = None, fraction_figure: str | None = None,
                    claims: Sequence[Claim] = PAPER_CLAIMS) -> str:
    """The text of ``RESULTS.md``.

    Args:
        experiments: what to report, in table order.
        figure: the figure's file name to embed, or ``None``.
        fraction_figure: the SDR-against-share-of-stems figure to embed, or ``None``.
        where: the folder of ``RESULTS.md`` (paths are shown relative to it).
        claims: the ratios to put beside ours.
    """
    lines = ["# Results", "",
             f"Written by `bisep report` on {datetime.now():%Y-%m-%d %H:%M}. Values are means "
             f"over all (test item, source) pairs, in dB; higher is better except the energy "
             f"ratio, which should be near 0 (see docs/scoring.md).", ""]
    lines += ["## Test data", "", *_data_lines(experiments, where), ""]
    lines += ["## Summary", "", *summary_table(experiments), ""]
    lines += ["## Paper headline ratios (mean SDR)", "", *ratio_table(experiments, claims), ""]
    proxy = reference_free_table(experiments)
    if proxy:
        lines += ["## Reference-free score beside SDR", "",
                  "`bisep score --reference-free`: the query encoder's cosine similarity of "
                  "each estimate with its query (and of the mixture: the gain is the "
                  "difference), and the estimate/residual energy split. A proxy for real "
                  "mixtures, not a replacement for SDR; rho is the Spearman rank "
                  "correlation of each proxy with SDRi over (item, source) pairs.", "",
                  *proxy, ""]
    arms = group_arms(experiments)
    if any(len(arm.runs) > 1 for arm in arms):
        lines += ["## Over seeds (mean ± standard deviation)", "",
                  "Runs that differ only in their seed; the share of stems is the share of "
                  "training clips whose single-source audio training read.", "",
                  *seed_table(arms), "", *seed_ratio_table(arms, claims), ""]
    if fraction_arms(arms):
        lines += ["## SDR against the share of single-source data", "", *fraction_table(arms),
                  ""]
        if fraction_figure:
            lines += [f"![SDR against the share of stems]({fraction_figure})", ""]
    for exp in experiments:
        lines += [f"## Per instrument: {exp.tag}, mode {mode_text(exp)}", "",
                  *instrument_table(exp), ""]
    if figure:
        lines += ["## Figure", "",
                  "Log spectrograms of test items (mixture, reference, each experiment's "
                  "estimate) and the training curves.", "", f"![results]({figure})", ""]
    return "\n".join(lines)


def _data_lines(experiments: list[Experiment], where: Path | None) -> list[str]:
    lines = []
    by_manifest: dict[str, list[Experiment]] = {}
    for exp in experiments:
        by_manifest.setdefault(str(exp.manifest) if exp.manifest else "", []).append(exp)
    for manifest, members in by_manifest.items():
        exp = members[0]
        items = exp.summary.get("items", {})
        name = f"`{_shown(Path(manifest), where)}`" if manifest else "an unrecorded test set"
        text = (f"- {name}: {items.get('scored', '?')} of {items.get('listed', '?')} items "
                f"scored ({exp.summary.get('rows', '?')} item-source pairs, "
                f"{len(exp.sources)} instruments), {exp.summary.get('sample_rate', '?')} Hz, "
                f"BSS-Eval backend `{exp.summary.get('backend', '?')}`")
        if items.get("skipped"):
            reasons = exp.summary.get("skipped", {}).get("by_reason", {})
            text += "; skipped: " + ", ".join(f"{n} {kind}" for kind, n in reasons.items())
        if len(by_manifest) > 1:
            text += f" (experiments: {', '.join(e.tag for e in members)})"
        lines.append(text + ".")
        if manifest:
            lines += _meta_lines(Path(manifest).parent / "meta.json", where)
    return lines


def _meta_lines(meta_file: Path, where: Path | None) -> list[str]:
    """A sub-list describing the data set from the ``meta.json`` next to the manifest."""
    if not meta_file.is_file():
        return []
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError:
        return [f"  - `{_shown(meta_file, where)}` is not valid JSON."]
    if not isinstance(meta, dict):
        return []
    lines = [f"  - from `{_shown(meta_file, where)}`:"]
    for key, value in meta.items():
        if isinstance(value, (str, int, float, bool)):
            lines.append(f"    - {key}: {value}")
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            lines.append(f"    - {key}: {', '.join(map(str, value))}")
        elif isinstance(value, dict) and all(isinstance(v, (str, int, float))
                                             for v in value.values()):
            lines.append(f"    - {key}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
    return lines


def _shown(path: Path, where: Path | None) -> str:
    if where is None:
        return str(path)
    return os.path.relpath(path.resolve(), where.resolve())


def write_report(exp_dir: str | Path, out: str | Path, tags: list[str] | None = None,
                 figure: str | Path | None = None, n_items: int = 2,
                 claims: Sequence[Claim] = PAPER_CLAIMS) -> tuple[str, list[Path]]:
    """Write ``RESULTS.md`` (and the figure unless ``figure`` is ``None``), comparing the
    experiments' SDR ratios with ``claims`` (:func:`bisep.report.claims.read_claims`).

    Returns:
        ``(headline markdown: summary and ratio tables, written paths)``.
    """

    experiments = find_experiments(exp_dir, tags)
    arms = group_arms(experiments)
    out = Path(out)
    written, fraction_figure = [], None
    if figure is not None:
        written.append(plot(experiments, figure, n_items))
        if fraction_arms(arms):
            fraction_figure = Path(figure).with_name(Path(figure).stem + "_fraction.png")
            written.append(plot_fraction(arms, fraction_figure))
    text = render_markdown(experiments, _shown(Path(figure), out.parent) if figure else None,
                           where=out.parent, fraction_figure=_shown(fraction_figure, out.parent)
                           if fraction_figure else None, claims=claims)
    written.insert(0, write_text_atomic(out, text + "\n"))
    headline = [*summary_table(experiments), "", *ratio_table(experiments, claims)]
    if any(len(arm.runs) > 1 for arm in arms):
        headline += ["", *seed_table(arms), "", *seed_ratio_table(arms, claims)]
    return "\n".join(headline), written
