"""The experiments a results page reports: what one scored run left in ``<exp_dir>/<tag>/``,
and runs grouped into *arms* (the same config trained with different seeds).

Reads per experiment folder:

- ``scores/summary.json``: ``bisep score``'s statistics, overall and per source (required);
- ``config.yaml``: the training configuration, whose top-level ``mode`` (unsupervised,
  weak, supervised or semi) says which arm of the paper the run is; without it the mode is
  guessed from the tag (``unsup``, ``weak``, ``sup``, ``semi`` as a ``_``-separated word);
- ``separated/separation.json``: the test manifest that was separated;
- ``data.json`` (written by ``bisep train``): the data and plan folders it trained on and
  the share of training clips whose stems (single-source audio) it read.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bisep.config import MODES, ConfigError, experiment_part, safe_load
from bisep.errors import UserError

_MODE_WORDS = {"unsupervised": "unsupervised", "unsup": "unsupervised", "weak": "weak",
               "supervised": "supervised", "sup": "supervised", "semi": "semi"}


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


def fraction_arms(arms: list[Arm]) -> list[Arm]:
    """Supervised and semi arms with a recorded share of stems, when the shares differ."""
    chosen = [arm for arm in arms if arm.mode in ("supervised", "semi")
              and arm.stems_fraction is not None]
    return chosen if len({round(a.stems_fraction, 3) for a in chosen}) > 1 else []

