"""A recipe's results in one page: ``RESULTS.md`` (tables) and ``RESULTS.png`` (figure).

Reads what recipe stages 4-6 leave in each experiment folder ``<exp_dir>/<tag>/``:

- ``scores/summary.json``: ``bisep score``'s statistics, overall and per source (required);
- ``config.yaml``: the training configuration, whose top-level ``mode`` (unsupervised,
  weak, supervised or semi) says which arm of the paper the run is; without it the mode is
  guessed from the tag (``unsup``, ``weak``, ``sup``, ``semi`` as a ``_``-separated word);
- ``separated/separation.json`` and ``separated/items.jsonl``: the test manifest that was
  separated and the files of each item (for the data description and the spectrograms);
- ``logs/metrics.csv``: training curves (``step``, ``train_loss``, ``val_loss``,
  ``train/<term>``..., and ``val_si_sdr`` on a second axis when logged);
- ``data.json`` (written by ``bisep train``): the data and plan folders it trained on and
  the share of training clips whose stems (single-source audio) it read.

Runs that differ only in their ``seed`` (same config otherwise, same data and plans) form
one *arm*; arms with two or more seeds get mean ± standard deviation tables and the paper's
ratios with their spread over seeds. When supervised or semi-supervised arms used
different shares of single-source data, a second figure plots SDR against that share.

The tables give, per experiment, the mean SDR, SIR, SAR, SDRi, SI-SDR, SNR and energy
ratio over all test sources and per instrument, the unprocessed mixture as a baseline,
and the paper's three headline SDR ratios beside ours. The figure shows log spectrograms
of a few test items (mixture, reference, each experiment's estimate) and the training
curves; a missing file is stated in the figure, not an error.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bisep.atomic import atomic_path, write_text_atomic
from bisep.errors import UserError

#: Canonical training modes, in the order the tables list them.
MODES = ("unsupervised", "weak", "supervised", "semi")
_MODE_WORDS = {"unsupervised": "unsupervised", "unsup": "unsupervised", "weak": "weak",
               "supervised": "supervised", "sup": "supervised", "semi": "semi"}

#: The paper's headline claims (docs/paper.md#headline-claims): SDR(numerator) /
#: SDR(denominator),
#: as the abstract states them.
PAPER_RATIOS = (("weak", "unsupervised", "1.71 (+71%)"), ("weak", "supervised", "0.975 (97.5%)"),
                ("semi", "supervised", "1.17 (+17%)"))

#: (summary.json metric, column title), in table order.
METRICS = (("sdr", "SDR"), ("sir", "SIR"), ("sar", "SAR"), ("sdri", "SDRi"),
           ("si_sdr", "SI-SDR"), ("snr", "SNR"), ("energy_ratio_db", "energy ratio"))


class ReportError(ValueError, UserError):
    """Results that cannot be reported; the message names the file and the stage to run."""


@dataclass
class Experiment:
    """One trained and scored model: ``<exp_dir>/<tag>``.

    Attributes:
        mode: a canonical mode, the config's own word if it is not one, or ``None``.
        mode_origin: ``"config.yaml"``, ``"tag"`` or ``"unknown"``.
        summary: the parsed ``scores/summary.json``.
        manifest: the test manifest that was separated, if recorded.
    """

    tag: str
    path: Path
    mode: str | None
    mode_origin: str
    summary: dict
    manifest: Path | None
    config: dict | None = None
    data: dict | None = None

    def stat(self, metric: str, source: str | None = None, key: str = "mean") -> float:
        """A statistic of ``summary.json`` (over all rows, or of one source); NaN if absent."""
        table = self.summary["metrics"] if source is None else self.summary["by_source"][source]
        value = table.get(metric, {}).get(key)
        return math.nan if value is None else float(value)  # "inf"/"nan" strings too

    @property
    def seed(self):
        return (self.config or {}).get("seed")

    @property
    def selection(self) -> str:
        """Which validation figure chose the exported checkpoint (``trainer.monitor``);
        ``val_si_sdr`` reads the validation stems, a protocol choice the tables show."""
        monitor = ((self.config or {}).get("trainer") or {}).get("monitor")
        if monitor is None:
            return "?"
        return f"{monitor} (stems)" if monitor.startswith("val_si_sdr") else monitor

    @property
    def stems_fraction(self) -> float | None:
        """Share of the training clips whose stems training read (``data.json``); 0 for
        the modes that read none, ``None`` when unrecorded."""
        if self.data is not None and "stems_fraction" in self.data:
            return float(self.data["stems_fraction"])
        return 0.0 if self.mode in ("unsupervised", "weak") else None

    @property
    def config_key(self) -> str:
        """The training config but its seed and resource keys
        (:func:`bisep.config.experiment_part`); the tag when there is no config."""
        if self.config is None:
            return f"tag:{self.tag}"
        from bisep.config import experiment_part

        return json.dumps(experiment_part(self.config, drop=("seed",)), sort_keys=True,
                          default=str)

    @property
    def arm_key(self) -> str:
        """What the runs of one arm share: :attr:`config_key`, the data and the plans."""
        data = {k: (self.data or {}).get(k) for k in ("data_dir", "dump_dir")}
        return json.dumps([self.config_key, data], sort_keys=True)

    @property
    def sources(self) -> list[str]:
        return sorted(self.summary.get("by_source", {}))

    @property
    def items_file(self) -> Path:
        return self.path / "separated" / "items.jsonl"

    @property
    def curves_file(self) -> Path:
        return self.path / "logs" / "metrics.csv"


def mode_from_tag(tag: str) -> str | None:
    """The mode a tag names as one of its ``_``/``-`` separated words, ``semi`` first."""
    words = {_MODE_WORDS.get(word) for word in re.split(r"[^a-z]+", tag.lower())}
    return next((mode for mode in ("semi", "unsupervised", "weak", "supervised")
                 if mode in words), None)


def _read_record(file: Path, what: str) -> dict | None:
    """A YAML (``.yaml``) or JSON file that an earlier stage wrote, or ``None`` without one."""
    if not file.is_file():
        return None
    import yaml

    from bisep.config import ConfigError, safe_load

    try:  # JSON is YAML, and both parsers' errors name the line
        data = safe_load(file.read_text(), str(file))
    except (yaml.YAMLError, ConfigError) as exc:
        raise ReportError(f"{file}: not valid {'YAML' if file.suffix == '.yaml' else 'JSON'} "
                          f"({exc}); {what}") from None
    return data if isinstance(data, dict) else None


def read_config(path: Path) -> dict | None:
    """The training config of experiment folder ``path``, or ``None`` without one."""
    return _read_record(path / "config.yaml", "re-run training (recipe stage 4) or fix the file.")


def read_data_record(path: Path) -> dict | None:
    """``data.json`` of experiment folder ``path`` (what it trained on), if written."""
    return _read_record(path / "data.json", "delete it and re-run training (recipe stage 4) "
                                            "to write it again.")


def read_mode(config: dict | None, tag: str) -> tuple[str | None, str]:
    """``(mode, origin)`` from a config's ``mode``, else from the tag."""
    mode = (config or {}).get("mode")
    if isinstance(mode, str) and mode.strip():
        word = mode.strip().lower()
        return _MODE_WORDS.get(word, word), "config.yaml"
    mode = mode_from_tag(tag)
    return mode, "tag" if mode else "unknown"


def load_experiment(path: Path) -> Experiment:
    """Read one experiment folder; its ``scores/summary.json`` must exist."""
    summary_file = path / "scores" / "summary.json"
    if not summary_file.is_file():
        raise ReportError(
            f"{summary_file}: no such file, so experiment '{path.name}' has no scores. Run "
            f"recipe stage 6 (`bisep score --list {path}/separated/items.jsonl --out-dir "
            f"{path}/scores`), or leave the tag out of --tags.")
    try:
        summary = json.loads(summary_file.read_text())
    except json.JSONDecodeError as exc:
        raise ReportError(f"{summary_file}: not valid JSON ({exc.msg}, line {exc.lineno}); "
                          f"re-run recipe stage 6 to write it again.") from None
    if not isinstance(summary, dict) or "metrics" not in summary:
        raise ReportError(f"{summary_file}: not a `bisep score` summary (no \"metrics\"); "
                          f"re-run recipe stage 6 to write it again.")
    manifest = None
    record = path / "separated" / "separation.json"
    if record.is_file():
        try:
            manifest = Path(json.loads(record.read_text())["manifest"])
        except (json.JSONDecodeError, KeyError, TypeError):
            manifest = None  # only used to describe the data; the scores stand without it
    config = read_config(path)
    mode, origin = read_mode(config, path.name)
    return Experiment(path.name, path, mode, origin, summary, manifest, config,
                      read_data_record(path))


def find_experiments(exp_dir: str | Path, tags: list[str] | None = None) -> list[Experiment]:
    """The experiments of ``exp_dir``: the given tags in order, or every sub-folder with
    ``scores/summary.json`` (sorted by mode, then tag)."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise ReportError(f"{exp_dir}: no such folder; give the recipe's exp folder "
                          f"(--exp-dir), where stages 4-6 write <exp>/<tag>/.")
    if tags:
        return [load_experiment(exp_dir / tag) for tag in tags]
    found = [load_experiment(p) for p in sorted(exp_dir.iterdir())
             if (p / "scores" / "summary.json").is_file()]
    if not found:
        raise ReportError(f"{exp_dir}: no experiment has scores (<exp>/<tag>/scores/"
                          f"summary.json); run recipe stages 4-6 first.")
    order = {mode: i for i, mode in enumerate(MODES)}
    return sorted(found, key=lambda e: (order.get(e.mode, len(MODES)), e.tag))


# -- markdown -----------------------------------------------------------------------------
def render_markdown(experiments: list[Experiment], figure: str | None = None,
                    where: Path | None = None, fraction_figure: str | None = None) -> str:
    """The text of ``RESULTS.md``.

    Args:
        experiments: what to report, in table order.
        figure: the figure's file name to embed, or ``None``.
        fraction_figure: the SDR-against-share-of-stems figure to embed, or ``None``.
        where: the folder of ``RESULTS.md`` (paths are shown relative to it).
    """
    lines = ["# Results", "",
             f"Written by `bisep report` on {datetime.now():%Y-%m-%d %H:%M}. Values are means "
             f"over all (test item, source) pairs, in dB; higher is better except the energy "
             f"ratio, which should be near 0 (see docs/scoring.md).", ""]
    lines += ["## Test data", "", *_data_lines(experiments, where), ""]
    lines += ["## Summary", "", *summary_table(experiments), ""]
    lines += ["## Paper headline ratios (mean SDR)", "", *ratio_table(experiments), ""]
    proxy = reference_free_table(experiments)
    if proxy:
        lines += ["## Reference-free score beside SDR", "",
                  "`bisep score --reference-free`: the query encoder's cosine similarity of "
                  "each estimate with its query (and of the mixture: the gain is the "
                  "difference), and the estimate/residual energy split. A proxy for real "
                  "mixtures, not a replacement for SDR; rho is the rank correlation of the "
                  "gain with SDRi over (item, source) pairs.", "", *proxy, ""]
    arms = group_arms(experiments)
    if any(len(arm.runs) > 1 for arm in arms):
        lines += ["## Over seeds (mean ± standard deviation)", "",
                  "Runs that differ only in their seed; the share of stems is the share of "
                  "training clips whose single-source audio training read.", "",
                  *seed_table(arms), "", *seed_ratio_table(arms), ""]
    if fraction_arms(arms):
        lines += ["## SDR against the share of single-source data", "", *fraction_table(arms),
                  ""]
        if fraction_figure:
            lines += [f"![SDR against the share of stems]({fraction_figure})", ""]
    for exp in experiments:
        lines += [f"## Per instrument: {exp.tag}, mode {_mode_text(exp)}", "",
                  *instrument_table(exp), ""]
    if figure:
        lines += ["## Figure", "",
                  "Log spectrograms of test items (mixture, reference, each experiment's "
                  "estimate) and the training curves.", "", f"![results]({figure})", ""]
    return "\n".join(lines)


def summary_table(experiments: list[Experiment]) -> list[str]:
    """Mean metrics per experiment, with the unprocessed mixture as baseline rows."""
    head = ["experiment", "mode", "selected on", "items", *(title for _, title in METRICS)]
    rows = []
    for label, exp in _baselines(experiments):
        values = {"sdr": exp.stat("sdr_mix"), "si_sdr": exp.stat("si_sdr_mix"), "sdri": 0.0}
        rows.append([label, "-", "-", _items_text(exp),
                     *(_db(values[m]) if m in values else "-" for m, _ in METRICS)])
    for exp in experiments:
        rows.append([exp.tag, _mode_text(exp), exp.selection, _items_text(exp),
                     *(_db(exp.stat(m)) for m, _ in METRICS)])
    return _table(head, rows, text_columns=3)


def reference_free_table(experiments: list[Experiment]) -> list[str]:
    """Per experiment with ``scores_reference_free/`` (recipe stage 6): SDRi beside the
    reference-free means and their rank agreement; no lines when none has them."""
    from scipy.stats import spearmanr

    rows = []
    for exp in experiments:
        folder = exp.path / "scores_reference_free"
        if not (folder / "summary.json").is_file():
            continue
        means = json.loads((folder / "summary.json").read_text())["metrics"]
        gain = {(r["item"], r["source"]): float(r["clap_gain"])
                for r in csv.DictReader((folder / "per_item.csv").open())}
        sdri = {(r["item"], r["source"]): float(r["sdri"])
                for r in csv.DictReader((exp.path / "scores" / "per_item.csv").open())
                if "sdri" in r}
        pairs = [(gain[k], sdri[k]) for k in gain if k in sdri]
        rho = spearmanr(*zip(*pairs))[0] if len(pairs) > 2 else float("nan")
        rows.append([exp.tag, _db(exp.stat("sdri")),
                     *(f"{float(means[m]['mean']):.3f}"  # "nan" is a string in JSON
                       for m in ("clap_score", "clap_score_mix", "clap_gain")),
                     _db(float(means["energy_split_db"]["mean"])), f"{rho:.2f}"])
    if not rows:
        return []
    return _table(["experiment", "SDRi", "CLAP score", "CLAP score (mixture)", "CLAP gain",
                   "energy split", "rho(gain, SDRi)"], rows)


def ratio_table(experiments: list[Experiment]) -> list[str]:
    """The paper's SDR ratios beside ours, one row per pair of experiments in those modes."""
    rows = []
    for top, bottom, paper_text in PAPER_RATIOS:
        name = f"{top} / {bottom}"
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


@dataclass
class Arm:
    """Runs that differ only in their seed; ``name`` is the shortest of their tags."""

    runs: list[Experiment]

    @property
    def name(self) -> str:
        return min((e.tag for e in self.runs), key=lambda t: (len(t), t))

    @property
    def mode(self) -> str | None:
        return self.runs[0].mode

    @property
    def stems_fraction(self) -> float | None:
        return self.runs[0].stems_fraction

    def values(self, metric: str) -> list[float]:
        return [e.stat(metric) for e in self.runs]

    def mean_sd(self, metric: str) -> tuple[float, float]:
        """Mean and sample standard deviation over seeds (NaN sd for one seed)."""
        values = self.values(metric)
        mean = sum(values) / len(values)
        if len(values) < 2:
            return mean, math.nan
        return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def group_arms(experiments: list[Experiment]) -> list[Arm]:
    """The experiments grouped into arms (see :attr:`Experiment.arm_key`), in first-seen order."""
    arms: dict[str, Arm] = {}
    for exp in experiments:
        arms.setdefault(exp.arm_key, Arm([])).runs.append(exp)
    return list(arms.values())


def seed_table(arms: list[Arm]) -> list[str]:
    """Mean ± sample standard deviation over seeds, one row per arm with 2+ seeds."""
    head = ["arm", "mode", "share of stems", "seeds", *(title for _, title in METRICS)]
    rows = [[arm.name, arm.mode or "-", _share(arm.stems_fraction),
             ", ".join(str(e.seed) for e in arm.runs),
             *(_mean_sd(*arm.mean_sd(m)) for m, _ in METRICS)]
            for arm in arms if len(arm.runs) > 1]
    return _table(head, rows, text_columns=4)


def seed_ratio_table(arms: list[Arm]) -> list[str]:
    """The paper's ratios between arms with 2+ seeds: the ratio of the mean SDRs, and the
    range of the per-seed ratios (runs paired by seed)."""
    rows = []
    multi = [arm for arm in arms if len(arm.runs) > 1]
    for top, bottom, paper_text in PAPER_RATIOS:
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


def fraction_arms(arms: list[Arm]) -> list[Arm]:
    """Supervised and semi arms with a recorded share of stems, when the shares differ."""
    chosen = [arm for arm in arms if arm.mode in ("supervised", "semi")
              and arm.stems_fraction is not None]
    return chosen if len({round(a.stems_fraction, 3) for a in chosen}) > 1 else []


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


def _mode_text(exp: Experiment) -> str:
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


def _shown(path: Path, where: Path | None) -> str:
    import os

    if where is None:
        return str(path)
    return os.path.relpath(path.resolve(), where.resolve())


def _table(head: list[str], rows: list[list[str]], text_columns: int = 1,
           text_last: bool = False) -> list[str]:
    """A markdown table: numbers right-aligned, the first ``text_columns`` columns (and the
    last with ``text_last``) left-aligned."""
    align = [":---" if c < text_columns or (text_last and c == len(head) - 1) else "---:"
             for c in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# -- figure ------------------------------------------------------------------------------
def plot(experiments: list[Experiment], path: str | Path, n_items: int = 2) -> Path:
    """Write the figure: spectrograms of ``n_items`` test items shared by the experiments,
    then one panel of training curves per experiment. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _spectrogram_rows(experiments, n_items) if n_items else []
    n_cols = 2 + len(experiments)  # mixture, reference, one estimate per experiment
    n_rows = max(len(panels), 1 if n_items else 0) + 1
    fig = plt.figure(figsize=(2.6 * n_cols, 2.2 * n_rows), constrained_layout=True)
    grid = fig.add_gridspec(n_rows, n_cols)
    for r, (title, columns) in enumerate(panels):
        _draw_spectrograms(fig, grid, r, title, columns)
    if n_items and not panels:
        ax = fig.add_subplot(grid[0, :])
        _say(ax, "no separated test audio found (<exp>/<tag>/separated/items.jsonl): run "
                 "recipe stage 5 to see spectrograms here")
    for c, exp in enumerate(experiments):
        _draw_curves(fig.add_subplot(grid[n_rows - 1, c]), exp)
    return _save(fig, path)


def plot_fraction(arms: list[Arm], path: str | Path) -> Path:
    """Write the figure of mean SDR (± sd over seeds) against the share of training clips
    whose stems were used, one line per training config; weak and unsupervised arms (no
    stems) are horizontal lines. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    # One line per training config: the same config trained on different shares of stems.
    lines: dict[str, list[Arm]] = {}
    for arm in fraction_arms(arms):
        lines.setdefault(arm.runs[0].config_key, []).append(arm)
    for line in lines.values():
        line.sort(key=lambda a: a.stems_fraction)
        stats = [a.mean_sd("sdr") for a in line]
        name = min((a.name for a in line), key=lambda t: (len(t), t))
        ax.errorbar([100 * a.stems_fraction for a in line], [m for m, _ in stats],
                    yerr=[0 if math.isnan(sd) else sd for _, sd in stats], marker="o",
                    capsize=3, label=f"{name} ({line[0].mode})")
    for arm in arms:
        if arm.mode in ("weak", "unsupervised"):
            mean, _ = arm.mean_sd("sdr")
            ax.axhline(mean, linestyle="--", linewidth=1, color="grey" if arm.mode == "weak"
                       else "black", label=f"{arm.name} (no stems)")
    ax.set_xscale("log")
    ax.set_xlabel("training clips whose stems were used (%)")
    ax.set_ylabel("test SDR (dB)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically and release it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def _spectrogram_rows(experiments: list[Experiment], n_items: int) -> list:
    """``[(row title, [(panel title, audio path)])]``: for each chosen item and source,
    the mixture, the reference and each experiment's estimate."""
    listed = {}
    for exp in experiments:
        if exp.items_file.is_file():
            listed[exp.tag] = _read_items(exp.items_file)
    if not listed:
        return []
    first = next(iter(listed.values()))
    shared = [item_id for item_id in first if all(item_id in other for other in listed.values())]
    rows = []
    for item_id in shared[:n_items]:
        item = first[item_id]
        for source in sorted(item["sources"]):
            columns = [("mixture", item.get("mixture")), (f"reference {source}",
                                                         item["sources"][source])]
            columns += [(f"{tag} estimate", items[item_id]["estimates"].get(source))
                        for tag, items in listed.items()]
            rows.append((f"{item_id}: {source}", columns))
    return rows


def _read_items(path: Path) -> dict[str, dict]:
    """``{id: entry}`` of an ``items.jsonl`` with paths made absolute."""
    items = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            for key in ("sources", "estimates"):
                entry[key] = {k: path.parent / v for k, v in entry.get(key, {}).items()}
            if entry.get("mixture"):
                entry["mixture"] = path.parent / entry["mixture"]
            items[str(entry["id"])] = entry
    return items


def _draw_spectrograms(fig, grid, row: int, title: str, columns: list) -> None:
    from bisep.audio import AudioError, read

    specs = []
    for _, path in columns:
        try:
            wav, rate = read(path, mono=True) if path else (None, None)
        except AudioError:
            wav = None
        specs.append(_log_spectrogram(wav[0], rate) if wav is not None else None)
    top = max((s[0].max() for s in specs if s is not None), default=0.0)
    for c, ((name, path), spec) in enumerate(zip(columns, specs)):
        ax = fig.add_subplot(grid[row, c])
        if spec is None:
            _say(ax, f"{name}:\n{'no file' if path is None else Path(path).name + ' unreadable'}")
            continue
        db, seconds, hz = spec
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                  extent=(0, seconds, 0, hz / 1000))
        ax.set_title(f"{title}\n{name}" if c == 0 else name, fontsize=7)
        ax.tick_params(labelsize=6)
        if c == 0:
            ax.set_ylabel("kHz", fontsize=6)


def _log_spectrogram(wav, rate: int, n_fft: int = 512, hop: int = 128):
    """``(dB (freq, frames), seconds, Nyquist Hz)`` of a Hann-windowed STFT."""
    import numpy as np

    if wav.shape[0] < n_fft:
        wav = np.pad(wav, (0, n_fft - wav.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop]
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T
    return 20 * np.log10(magnitude + 1e-8), wav.shape[0] / rate, rate / 2


def _draw_curves(ax, exp: Experiment) -> None:
    curves = _read_curves(exp.curves_file)
    if isinstance(curves, str):
        _say(ax, f"{exp.tag}: no training curves\n{curves}")
        return
    steps, columns = curves
    for name, values in columns.items():
        points = [(s, v) for s, v in zip(steps, values) if v is not None]
        if not points:
            continue
        if name == "val_si_sdr":  # dB, not a loss: its own axis on the right
            right = ax.twinx()
            right.plot(*zip(*points), color="black", ls="--", marker="o", ms=2, lw=1.0)
            right.set_ylabel("val SI-SDR (dB, dashed)", fontsize=6)
            right.tick_params(labelsize=6)
            continue
        main = name in ("train_loss", "val_loss")
        ax.plot(*zip(*points), label=name, lw=1.2 if main else 0.6,
                alpha=1.0 if main else 0.6, marker="o" if name == "val_loss" else None, ms=2)
    ax.set_title(f"{exp.tag}: training", fontsize=7)
    ax.set_xlabel("step", fontsize=6)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=5)


def _read_curves(path: Path):
    """``(steps, {column: values or None})`` from ``metrics.csv``, or why not (a str)."""
    if not path.is_file():
        return f"{path.parent.parent.name}/logs/{path.name} not found"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "step" not in rows[0]:
        return f"{path.name} has no rows or no 'step' column"
    names = [n for n in rows[0] if n in ("train_loss", "val_loss", "val_si_sdr")
             or n.startswith("train/")]
    steps, columns = [], {name: [] for name in names}
    for row in rows:
        step = _number(row.get("step"))
        if step is None:
            continue
        steps.append(step)
        for name in names:
            columns[name].append(_number(row.get(name)))
    if not steps:
        return f"{path.name} has no numeric steps"
    return steps, columns


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _say(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, wrap=True,
            transform=ax.transAxes)
    ax.set_axis_off()


# -- entry point ---------------------------------------------------------------------------
def write_report(exp_dir: str | Path, out: str | Path, tags: list[str] | None = None,
                 figure: str | Path | None = None, n_items: int = 2) -> tuple[str, list[Path]]:
    """Write ``RESULTS.md`` (and the figure unless ``figure`` is ``None``).

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
                           if fraction_figure else None)
    written.insert(0, write_text_atomic(out, text + "\n"))
    headline = [*summary_table(experiments), "", *ratio_table(experiments)]
    if any(len(arm.runs) > 1 for arm in arms):
        headline += ["", *seed_table(arms), "", *seed_ratio_table(arms)]
    return "\n".join(headline), written
