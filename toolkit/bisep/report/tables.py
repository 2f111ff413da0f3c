"""The markdown tables of a results page: mean metrics per experiment (with the unprocessed
mixture as a baseline), ratios of SDR beside a paper's claims, statistics over seeds, SDR
against the share of single-source data, and per-instrument means."""
from __future__ import annotations

import json
import math
from typing import Sequence

from bisep.report.claims import PAPER_CLAIMS, Claim
from bisep.report.experiments import Arm, Experiment, fraction_arms

#: (summary.json metric, column title), in table order.
METRICS = (("sdr", "SDR"), ("sir", "SIR"), ("sar", "SAR"), ("sdri", "SDRi"),
           ("si_sdr", "SI-SDR"), ("snr", "SNR"), ("energy_ratio_db", "energy ratio"))


def summary_table(experiments: list[Experiment]) -> list[str]:
    """Mean metrics per experiment, with the unprocessed mixture as baseline rows."""
    head = ["experiment", "mode", "selected on", "items", *(title for _, title in METRICS)]
    rows = []
    for label, exp in _baselines(experiments):
        values = {"sdr": exp.stat("sdr_mix"), "si_sdr": exp.stat("si_sdr_mix"), "sdri": 0.0}
        rows.append([label, "-", "-", _items_text(exp),
                     *(_db(values[m]) if m in values else "-" for m, _ in METRICS)])
    for exp in experiments:
        rows.append([exp.tag, mode_text(exp), exp.selection, _items_text(exp),
                     *(_db(exp.stat(m)) for m, _ in METRICS)])
    return _table(head, rows, text_columns=3)


#: (reference-free column, its title in rho(...)), each ranked against SDRi.
PROXY_COLUMNS = (("clap_score", "score"), ("clap_gain", "gain"), ("energy_split_db", "split"))


def reference_free_table(experiments: list[Experiment]) -> list[str]:
    """Per experiment with ``scores_reference_free/`` (recipe stage 6): SDRi beside the
    reference-free means and the Spearman rank correlation of each proxy with SDRi over
    (item, source) pairs (:mod:`bisep.metrics.agreement`); with two or more such
    experiments, a last row pools their pairs. No lines when none has them."""
    from bisep.metrics.agreement import rank_agreement, read_per_item

    proxies = [p for p, _ in PROXY_COLUMNS]
    rows, pooled_proxy, pooled_sdr = [], {}, {}
    for exp in experiments:
        folder = exp.path / "scores_reference_free"
        if not (folder / "summary.json").is_file():
            continue
        means = json.loads((folder / "summary.json").read_text())["metrics"]
        proxy = read_per_item(folder / "per_item.csv", key=exp.tag)
        sdr = read_per_item(exp.path / "scores" / "per_item.csv", key=exp.tag)
        pooled_proxy.update(proxy)
        pooled_sdr.update(sdr)
        found = rank_agreement(proxy, sdr, proxies, ["sdri"]) if "sdri" in exp.summary[
            "metrics"] else {}
        rows.append([exp.tag, _db(exp.stat("sdri")),
                     *(f"{float(means[m]['mean']):.3f}"  # "nan" is a string in JSON
                       for m in ("clap_score", "clap_score_mix", "clap_gain")),
                     _db(float(means["energy_split_db"]["mean"])),
                     *(_rho(found, p) for p in proxies)])
    if not rows:
        return []
    if len(rows) > 1:
        with_sdri = {k: v for k, v in pooled_sdr.items() if "sdri" in v}
        found = rank_agreement(pooled_proxy, with_sdri, proxies, ["sdri"])
        rows.append([f"all {len(rows)} (pooled)", *["-"] * 5, *(_rho(found, p) for p in proxies)])
    return _table(["experiment", "SDRi", "CLAP score", "CLAP score (mixture)", "CLAP gain",
                   "energy split", *(f"rho({title}, SDRi)" for _, title in PROXY_COLUMNS)],
                  rows)


def _rho(found: dict, proxy: str) -> str:
    return f"{found[proxy]['sdri'].rho:.2f}" if found else "-"


def ratio_table(experiments: list[Experiment],
                claims: Sequence[Claim] = PAPER_CLAIMS) -> list[str]:
    """The claimed SDR ratios beside ours, one row per pair of experiments in those modes."""
    rows = []
    for claim in claims:
        top, bottom, paper_text, name = (claim.numerator, claim.denominator, claim.paper,
                                         claim.name)
        pairs = [(a, b) for a in experiments if a.mode == top
                 for b in experiments if b.mode == bottom]
        if not pairs:
            rows.append([name, paper_text, "n/a",
                         f"needs experiments in modes {top} and {bottom}"])
        for a, b in pairs:
            num, den = a.stat("sdr"), b.stat("sdr")
            basis = f"{a.tag} {_db(num)} dB / {b.tag} {_db(den)} dB"
            if not (math.isfinite(num) and math.isfinite(den)) or den <= 0:
                rows.append([name, paper_text, "n/a",
                             f"{basis}: a ratio of dB values needs a positive, finite "
                             f"denominator"])
            else:
                rows.append([name, paper_text, f"{num / den:.3f}", basis])
    return _table(["ratio", "paper", "ours", "from"], rows, text_columns=1, text_last=True)


def seed_table(arms: list[Arm]) -> list[str]:
    """Mean ± sample standard deviation over seeds, one row per arm with 2+ seeds."""
    head = ["arm", "mode", "share of stems", "seeds", *(title for _, title in METRICS)]
    rows = [[arm.name, arm.mode or "-", _share(arm.stems_fraction),
             ", ".join(str(e.seed) for e in arm.runs),
             *(_mean_sd(*arm.mean_sd(m)) for m, _ in METRICS)]
            for arm in arms if len(arm.runs) > 1]
    return _table(head, rows, text_columns=4)


def seed_ratio_table(arms: list[Arm], claims: Sequence[Claim] = PAPER_CLAIMS) -> list[str]:
    """The claimed ratios between arms with 2+ seeds: the ratio of the mean SDRs, and the
    range of the per-seed ratios (runs paired by seed)."""
    rows = []
    multi = [arm for arm in arms if len(arm.runs) > 1]
    for claim in claims:
        top, bottom, paper_text = claim.numerator, claim.denominator, claim.paper
        for a in (arm for arm in multi if arm.mode == top):
            for b in (arm for arm in multi if arm.mode == bottom):
                num, den = a.mean_sd("sdr")[0], b.mean_sd("sdr")[0]
                by_seed = {e.seed: e.stat("sdr") for e in b.runs}
                paired = [e.stat("sdr") / by_seed[e.seed] for e in a.runs
                          if by_seed.get(e.seed, 0) > 0]
                ours = f"{num / den:.3f}" if den > 0 else "n/a"
                spread = f"{min(paired):.3f} .. {max(paired):.3f}" if paired else "-"
                rows.append([f"{top} / {bottom}", paper_text, ours, spread,
                             f"{a.name} / {b.name} ({_share(b.stems_fraction)} of stems)"])
    return _table(["ratio", "paper", "ours (ratio of means)", "per seed", "arms"], rows,
                  text_columns=1, text_last=True)



def fraction_table(arms: list[Arm]) -> list[str]:
    """SDR against the share of training clips whose stems were used."""
    points = sorted(fraction_arms(arms), key=lambda a: (a.mode, a.stems_fraction))
    rows = [[arm.mode, arm.name, _share(arm.stems_fraction), str(len(arm.runs)),
             _mean_sd(*arm.mean_sd("sdr")), _mean_sd(*arm.mean_sd("snr"))] for arm in points]
    return _table(["mode", "arm", "share of stems", "seeds", "SDR", "SNR"], rows,
                  text_columns=2)


def _share(fraction: float | None) -> str:
    return "?" if fraction is None else f"{100 * fraction:.0f}%"


def _mean_sd(mean: float, sd: float) -> str:
    return _db(mean) if math.isnan(sd) else f"{_db(mean)} ± {sd:.2f}"


def instrument_table(exp: Experiment) -> list[str]:
    """Per-source means of one experiment, the mixture's SDR, and the overall mean."""
    head = ["instrument", "n", *(title for _, title in METRICS), "mixture SDR"]
    rows = [[source, str(exp.summary["by_source"][source].get("sdr", {}).get("count", "?")),
             *(_db(exp.stat(m, source)) for m, _ in METRICS),
             _db(exp.stat("sdr_mix", source))] for source in exp.sources]
    rows.append(["**mean**", str(exp.summary.get("rows", "")),
                 *(_db(exp.stat(m)) for m, _ in METRICS), _db(exp.stat("sdr_mix"))])
    return _table(head, rows)


def _baselines(experiments: list[Experiment]) -> list[tuple[str, Experiment]]:
    """One mixture row per distinct test set (experiments scored with mixtures only)."""
    groups: dict[tuple, Experiment] = {}
    for exp in experiments:
        if "sdr_mix" in exp.summary["metrics"]:
            key = (str(exp.manifest), exp.summary.get("items", {}).get("scored"))
            groups.setdefault(key, exp)
    if len(groups) == 1:
        return [("mixture (no separation)", next(iter(groups.values())))]
    return [(f"mixture (test set of {exp.tag})", exp) for exp in groups.values()]


def mode_text(exp: Experiment) -> str:
    """The mode column: the mode, where it was read from, and audio queries."""
    if exp.mode is None:
        return "mode unknown"
    text = exp.mode if exp.mode_origin == "config.yaml" else f"{exp.mode} (from tag)"
    if ((exp.config or {}).get("data") or {}).get("query_source") == "audio":
        text += ", audio queries"
    return text


def _items_text(exp: Experiment) -> str:
    return str(exp.summary.get("items", {}).get("scored", "?"))


def _db(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.2f}" if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _table(head: list[str], rows: list[list[str]], text_columns: int = 1,
           text_last: bool = False) -> list[str]:
    """A markdown table: numbers right-aligned, the first ``text_columns`` columns (and the
    last with ``text_last``) left-aligned."""
    align = [":---" if c < text_columns or (text_last and c == len(head) - 1) else "---:"
             for c in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


