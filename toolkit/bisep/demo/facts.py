"""What the demo page says about its model: what it separates, how it was trained, how
it scored on its recipe's test set.

From a ``model.pth`` (or a training run's folder holding it), the facts come from the
checkpoint's recorded config and the run's folder as the recipe leaves it:
``scores/summary.json`` (stage 6) for the test scores and ``separated/separation.json``
(stage 5) for the test manifest it separated. From a model folder (``bisep export-model``)
they come from ``config.json`` and the model card's header.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# The recipe's metrics the page shows (mean over the scored sources), in this order.
METRICS = {"sdr": "SDR", "sdri": "SDRi", "si_sdr": "SI-SDR", "si_sdri": "SI-SDRi"}


@dataclass
class ModelFacts:
    """What is known about a trained model; a field is ``None``/empty when not recorded.

    Attributes:
        source: the path the model was loaded from.
        separator, conditioner: their plugin names.
        sample_rate: the model's rate in Hz.
        mode: the training mode (``weak``, ``supervised``, ...).
        step: the training step of the exported weights.
        labels: what it was trained or scored to separate.
        dataset: the training data set's name, where recorded (model folders).
        test_manifest: the manifest of the test set the recipe separated with it.
        scores: ``{metric: mean dB}`` on that test set.
        scored_sources: how many separated sources those means average.
        export_speed: the seconds one 10 s separation took on CPU at export (model folders).
    """

    source: Path
    separator: str
    conditioner: str | None = None
    sample_rate: int | None = None
    mode: str | None = None
    step: int | None = None
    labels: list[str] = field(default_factory=list)
    dataset: str | None = None
    test_manifest: Path | None = None
    scores: dict[str, float] = field(default_factory=dict)
    scored_sources: int | None = None
    export_speed: float | None = None

    def markdown(self) -> str:
        """The facts as the page's Markdown."""
        lines = [f"**Model** `{self.source}`: separator `{self.separator}`"
                 + (f", query encoder `{self.conditioner}`" if self.conditioner else "")
                 + (f", {self.sample_rate} Hz" if self.sample_rate else "") + "."]
        trained = []
        if self.mode:
            trained.append(f"in `{self.mode}` mode")
        if self.step is not None:
            trained.append(f"(weights of step {self.step})")
        if self.dataset:
            trained.append(f"on `{self.dataset}`")
        if trained:
            lines.append("**Trained** " + " ".join(trained) + ".")
        if self.labels:
            lines.append("**Separates** " + ", ".join(self.labels) + ".")
        if self.scores:
            where = f" of `{self.test_manifest}`" if self.test_manifest else ""
            count = f", {self.scored_sources} sources" if self.scored_sources else ""
            lines.append(f"**Test scores** (the recipe's test set{where}{count}): "
                         + ", ".join(f"{name} {self.scores[k]:.2f} dB"
                                     for k, name in METRICS.items() if k in self.scores)
                         + ".")
        else:
            lines.append("**Test scores**: not recorded with this model (run the recipe's "
                         "stages 5-6 on it).")
        if self.export_speed is not None:
            lines.append(f"**Speed at export**: {self.export_speed:.2f} s for a 10 s clip on "
                         f"CPU.")
        return "\n\n".join(lines)


def model_facts(path: str | Path, sample_rate: int | None = None) -> ModelFacts:
    """The facts of the model at ``path`` (a ``model.pth``, a folder holding one, or a
    model folder). Records that are missing or unreadable leave their fields empty; the
    model itself was checked when it was loaded.

    Args:
        sample_rate: the loaded model's rate, where the record does not hold it.
    """
    from bisep.export.model_folder import is_model_folder

    path = Path(path)
    facts = _folder_facts(path) if is_model_folder(path) else _checkpoint_facts(path)
    facts.sample_rate = facts.sample_rate or sample_rate
    return facts


def _checkpoint_facts(path: Path) -> ModelFacts:
    from bisep import checkpoint

    package = checkpoint.load(path)
    infos = package.get("infos") or {}
    config = infos.get("config") or {}
    training = infos.get("training") or {}
    run_dir = checkpoint.resolve(path).parent
    facts = ModelFacts(source=path, separator=package["model_name"],
                       conditioner=config.get("conditioner"),
                       sample_rate=package["model_args"].get("sample_rate"),
                       mode=training.get("mode") or config.get("mode"),
                       step=training.get("step"))
    summary = _read_json(run_dir / "scores" / "summary.json")
    if summary:
        means = summary.get("metrics") or {}
        facts.scores = {k: float(means[k]["mean"]) for k in METRICS
                        if (means.get(k) or {}).get("mean") is not None}
        facts.scored_sources = (means.get("sdr") or {}).get("count")
        facts.labels = sorted(summary.get("by_source") or {})
    facts.test_manifest = recorded_test_manifest(run_dir)
    return facts


def recorded_test_manifest(run_dir: str | Path) -> Path | None:
    """The test manifest the recipe's stage 5 separated with the model in ``run_dir``
    (``separated/separation.json``), if it is still there."""
    record = _read_json(Path(run_dir) / "separated" / "separation.json") or {}
    manifest = record.get("manifest")
    return Path(manifest) if manifest and Path(manifest).is_file() else None


def _folder_facts(folder: Path) -> ModelFacts:
    import yaml

    from bisep.export.model_folder import CARD, read_config

    config = read_config(folder)
    training = config.get("training_config") or {}
    facts = ModelFacts(source=folder, separator=config["separator"]["name"],
                       conditioner=config["conditioner"]["name"],
                       sample_rate=config["inference"].get("sample_rate"),
                       mode=training.get("mode"), labels=list(config.get("labels") or []),
                       export_speed=(config.get("measured") or {}).get("separation_seconds"))
    card = (folder / CARD).read_text(encoding="utf-8")
    try:
        header = yaml.safe_load(card.split("---")[1]) if card.startswith("---") else {}
    except yaml.YAMLError:
        header = {}
    facts.dataset = ", ".join(header.get("datasets") or []) or None
    for entry in header.get("model-index") or []:
        for result in entry.get("results") or []:
            for metric in result.get("metrics") or []:
                if metric.get("type") in METRICS:
                    facts.scores[metric["type"]] = float(metric["value"])
    return facts


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: not readable JSON (%s); the page leaves its facts out", path, exc)
        return None
    return data if isinstance(data, dict) else None
