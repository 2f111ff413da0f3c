"""Train a separator from a config: Lightning Trainer, atomic checkpoints, resume, export.

An experiment folder holds::

    config.yaml             the resolved config (a re-run must match it to resume)
    data.json               the data and plans it trains on, and its share of stems
    checkpoints/last.ckpt   the latest Lightning checkpoint (every N steps and at the end)
    checkpoints/step*.ckpt  the best ``save_top_k`` by ``trainer.monitor``
    logs/run<i>/metrics.csv each run's metrics (CSVLogger; a resumed run is a new run)
    logs/metrics.csv        all runs merged by step (later runs win where steps overlap)
    model.pth               the best separator, in bisep's checkpoint format (inference)

Re-running on a folder that has ``last.ckpt`` continues from its step (optimizer, scheduler
and loop state included); every checkpoint is written to a temporary file and renamed, so
a killed run leaves the previous one intact. Lightning checkpoints are read with
:func:`bisep.checkpoint.read_weights` (``weights_only=True``); the ``last.ckpt`` to resume
from is read before the model and data are built, so a bad file fails first.

Several processes (``trainer.devices``, ``trainer.num_nodes``: Lightning's DDP) run this same
code; only global rank 0 writes the files above (docs/training.md, "Several GPUs and nodes").
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch

from bisep import checkpoint as ckpt_io
from bisep.config import ConfigError, dump, experiment_part, monitor_mode, safe_load
from bisep.atomic import write_text_atomic
from bisep.train.allocator import keep_freed_memory
from bisep.train.inputs import PHRASE_INPUTS, SOURCE_INPUTS, term_inputs

log = logging.getLogger(__name__)


def check_mode(config: dict, registry=None) -> str:
    """The config's training mode, inferred from its loss terms when not given.

    Raises:
        ConfigError: no loss term, or a mode without single-source data whose terms ask for
            single-source targets (or the reverse).
    """
    from bisep.registry import get_registry

    registry = registry or get_registry()
    if not config["criterions"]:
        raise ConfigError("the config has no criterions: list the loss terms to train with, "
                          "e.g. [{name: clap_contrastive, weight: 0.5}, ...] (docs/training.md)")
    needs_sources = needs_phrases = False
    for item in config["criterions"]:
        term = registry.build("loss", item["name"], **item["conf"])
        required, _ = term_inputs(term, item["name"])
        needs_sources |= bool(SOURCE_INPUTS.intersection(required))
        needs_phrases |= bool(PHRASE_INPUTS.intersection(required))
    inferred = ("semi" if needs_phrases else "supervised") if needs_sources else \
               ("weak" if needs_phrases else "unsupervised")
    mode = config.get("mode") or inferred
    if mode in ("unsupervised", "weak") and needs_sources:
        raise ConfigError(f"mode '{mode}' trains without single-source audio, but a criterion "
                          f"needs single-source targets: drop it or set mode: semi")
    if mode in ("supervised", "semi") and not needs_sources:
        raise ConfigError(f"mode '{mode}' needs a criterion with single-source targets "
                          f"(e.g. {{name: supervised}}); the config has none")
    return mode


class _AtomicCheckpointIO:
    """Lightning CheckpointIO writing through :func:`bisep.checkpoint.save`."""

    @staticmethod
    def build():
        from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

        class AtomicCheckpointIO(TorchCheckpointIO):
            def save_checkpoint(self, checkpoint, path, storage_options=None):
                ckpt_io.save(checkpoint, path)

            def load_checkpoint(self, path, map_location=None, weights_only=None):
                return read_lightning_checkpoint(path)

        return AtomicCheckpointIO()


def resume_point(exp_dir: Path, config: dict) -> Path | None:
    """``last.ckpt`` when ``exp_dir`` holds a run of this config to continue, else None.

    Reads only, so every process of a multi-process run may call it. A run continues with
    other resource settings (:data:`bisep.config.RESOURCE_KEYS`, e.g.
    ``trainer.num_threads``), never with another experiment.
    """
    conf_path, last = exp_dir / "config.yaml", exp_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return None
    if conf_path.exists() and experiment_part(safe_load(conf_path.read_text(),
                                                        str(conf_path))) != \
            experiment_part(config):
        raise ConfigError(f"{exp_dir} holds a run of another config ({conf_path}); to keep "
                          f"it, train into another --exp-dir; to restart, delete {exp_dir}")
    return last


def fit(config: dict, data_dir: str | Path, dump_dir: str | Path, exp_dir: str | Path,
        registry=None) -> Path | None:
    """Train (or continue training) and export the best model.

    In a multi-process run (``trainer.devices``, ``trainer.num_nodes``) every process calls
    this; only global rank 0 writes ``config.yaml``, ``data.json``, the metrics and
    ``model.pth`` (checkpoints: Lightning writes them from rank 0).

    Returns:
        ``model.pth`` on global rank 0, None on the other ranks.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    from bisep.train.datamodule import MoMDataModule
    from bisep.train.guards import FiniteGuard
    from bisep.train.module import SeparationModule

    _quiet_lightning()
    exp_dir = Path(exp_dir)
    config = dict(config, mode=check_mode(config, registry))
    trainer_conf = config["trainer"]
    if trainer_conf["num_threads"]:
        torch.set_num_threads(trainer_conf["num_threads"])
    if trainer_conf["keep_freed_memory"]:
        keep_freed_memory()
    resume_from = resume_point(exp_dir, config)
    if resume_from is not None:  # a bad file fails before the model and data are built
        step = read_lightning_checkpoint(resume_from)["global_step"]
    # A resumed run's weights come from last.ckpt; init_from only starts a new run.
    start_weights = initial_weights(config) if resume_from is None else None
    pl.seed_everything(config["seed"], workers=True, verbose=False)

    callbacks = [FiniteGuard()]
    if config["judge_update"]["every"]:  # refused settings fail here, before any work
        from bisep.train.judge_update import online_judge

        callbacks.append(online_judge(config, data_dir, registry))
    monitor = trainer_conf["monitor"]
    ckpt_dir = exp_dir / "checkpoints"
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", monitor=monitor,
                           mode=monitor_mode(monitor),
                           save_top_k=trainer_conf["save_top_k"], auto_insert_metric_name=False)
    periodic = ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0, save_last=True,
                               every_n_train_steps=trainer_conf["checkpoint_every_n_steps"])
    # Built before anything is written: the Trainer knows this process's global rank (from
    # Lightning's launcher, torchrun or SLURM), and only global rank 0 writes to exp_dir.
    trainer = _trainer(
        pl, default_root_dir=exp_dir, max_steps=trainer_conf["max_steps"], max_epochs=-1,
        val_check_interval=trainer_conf["val_check_interval"], check_val_every_n_epoch=None,
        num_sanity_val_steps=0, log_every_n_steps=trainer_conf["log_every_n_steps"],
        accelerator=trainer_conf["accelerator"], devices=trainer_conf["devices"],
        strategy=trainer_conf["strategy"], num_nodes=trainer_conf["num_nodes"],
        precision=trainer_conf["precision"], gradient_clip_val=trainer_conf["gradient_clip_val"],
        callbacks=[*callbacks, best, periodic], plugins=[_AtomicCheckpointIO.build()],
        logger=CSVLogger(exp_dir / "logs", name="", version=f"run{_next_run(exp_dir)}"),
        enable_progress_bar=trainer_conf["progress_bar"], enable_model_summary=False)
    chief = trainer.is_global_zero
    if chief:
        exp_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(exp_dir / "config.yaml", dump(config))  # this run's resources

    module = SeparationModule(config, registry)
    if start_weights is not None:
        load_initial_weights(module.separator, start_weights, config["init_from"])
    data = MoMDataModule(data_dir, dump_dir, config["data"],
                         sources={"supervised": "all", "semi": "sup"}.get(config["mode"], "none"),
                         sample_rate=module.separator.sample_rate, seed=config["seed"])
    if chief:
        write_text_atomic(exp_dir / "data.json", json.dumps(data.stem_usage(), indent=1) + "\n")
        log.info("bisep train: %s", global_batch(config["data"]["batch_size"], trainer))
    if resume_from is not None:
        log.info("bisep train: resuming from step %d (%s)", step, resume_from)
    trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
    # The periodic checkpoint fires every N steps; the final step may fall between two.
    # Every rank calls it (it waits for all of them); global rank 0 writes the file.
    trainer.save_checkpoint(ckpt_dir / "last.ckpt", weights_only=False)
    # Validation metrics are averaged over the ranks (sync_dist), so every rank ranks the
    # checkpoints alike; each says what it chose, for logs that show that they agree.
    log.info("bisep train: rank %d chose %s (%s %s)", trainer.global_rank,
             best.best_model_path or "last.ckpt", monitor,
             None if best.best_model_score is None else f"{float(best.best_model_score):.6f}")
    if not chief:
        return None
    merge_metrics(exp_dir / "logs")
    model = export_best(module, best.best_model_path or str(ckpt_dir / "last.ckpt"), exp_dir,
                        config)
    log.info("bisep train: rank %d wrote %s", trainer.global_rank, model)
    return model


def initial_weights(config: dict) -> dict | None:
    """The separator weights ``config["init_from"]`` names (None when unset), read before
    any model or data is built.

    Raises:
        CheckpointError: the file is missing or not a bisep model checkpoint.
        ConfigError: it holds another separator than ``config["separator"]``.
    """
    path = config.get("init_from")
    if path is None:
        return None
    package = ckpt_io.load(path)
    if package["model_name"] != config["separator"]:
        raise ConfigError(f"init_from: {path} holds a '{package['model_name']}' separator, but "
                          f"the config trains '{config['separator']}'; set separator: "
                          f"{package['model_name']} (with its separator_conf) or init_from "
                          f"another model")
    log.info("bisep train: separator weights from %s (step %s of its run)", path,
             package.get("infos", {}).get("training", {}).get("step", "?"))
    return package["state_dict"]


def load_initial_weights(separator: torch.nn.Module, state_dict: dict, path: str) -> None:
    """Load ``init_from``'s weights into the freshly built separator, all of them.

    Raises:
        ConfigError: their names or shapes differ from the separator's (another
            ``separator_conf``).
    """
    try:
        separator.load_state_dict(state_dict)
    except RuntimeError as exc:
        reason = str(exc).split("\n\t", 1)[-1].splitlines()[0]
        raise ConfigError(f"init_from: {path} does not fit the configured separator "
                          f"({reason}); give separator_conf the values of the run that wrote "
                          f"it (its config.yaml)") from None


def global_batch(batch_size: int, trainer) -> str:
    """How many MoMs one optimisation step averages over, in words: ``data.batch_size`` is
    per process, and there is one process per device on each node."""
    nodes, devices = trainer.num_nodes, trainer.num_devices
    processes = trainer.world_size
    return (f"{processes} training process(es) ({nodes} node(s) x {devices} device(s)); "
            f"global batch {batch_size * processes} MoMs per step ({batch_size} per process)")


def _trainer(pl, **kwargs):
    """``pl.Trainer(**kwargs)``; what it refuses (an accelerator, device count or strategy
    this machine lacks) is a ConfigError naming the trainer section, before step 1."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        return pl.Trainer(**kwargs)
    except (MisconfigurationException, ValueError, RuntimeError) as exc:
        raise ConfigError(f"the trainer section of the config cannot run here: {exc} "
                          f"(trainer.accelerator, devices, strategy, num_nodes, "
                          f"precision)") from None


def _quiet_lightning() -> None:
    """Drop Lightning messages that say nothing about this run."""
    # The frozen conditioner stays in eval mode on purpose (bisep.conditioners.base).
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
    # Raised inside Lightning's own pytree helper; nothing a user can change.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # An advert for a cloud logger, printed at every start.
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage())


def _next_run(exp_dir: Path) -> int:
    runs = [int(p.name[3:]) for p in (exp_dir / "logs").glob("run*") if p.name[3:].isdigit()]
    return max(runs, default=-1) + 1


def merge_metrics(logs_dir: Path) -> Path:
    """Merge ``run*/metrics.csv`` into ``metrics.csv``, ordered by step.

    Lightning's CSV writer cannot append to a file with other columns, so each run (a
    resume is a new run) logs on its own. A killed run logged steps past its last
    checkpoint; the resumed run repeats them, and its rows replace the killed run's.
    """
    import csv
    import io

    runs = sorted((p for p in logs_dir.glob("run*/metrics.csv")),
                  key=lambda p: int(p.parent.name[3:]))
    rows, columns = [], {"step": None}
    for path in runs:
        with open(path, newline="") as f:
            run_rows = list(csv.DictReader(f))
        if not run_rows:
            continue
        first = min(int(r["step"]) for r in run_rows)
        rows = [r for r in rows if int(r["step"]) < first] + run_rows
        columns.update(dict.fromkeys(run_rows[0]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: int(r["step"])))
    return write_text_atomic(logs_dir / "metrics.csv", buffer.getvalue())


def read_lightning_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint read by :func:`bisep.checkpoint.read_weights`, or a
    CheckpointError naming it."""
    state = ckpt_io.read_weights(path, "training checkpoint",
                                 fix="Delete it to restart the run from scratch, or restore "
                                     "the file.")
    if not isinstance(state, dict) or "global_step" not in state or "state_dict" not in state:
        raise ckpt_io.CheckpointError(f"{path}: not a Lightning training checkpoint (no "
                                      f"global_step and state_dict). Delete it to restart the "
                                      f"run from scratch, or restore the file.")
    return state


def export_best(module, checkpoint_path: str | Path, exp_dir: Path, config: dict) -> Path:
    """Write the separator of a Lightning checkpoint as ``exp_dir/model.pth``."""
    state = read_lightning_checkpoint(checkpoint_path)
    module.load_state_dict(state["state_dict"])
    package = ckpt_io.serialize(module.separator, config["separator"], config=config,
                                training={"checkpoint": str(checkpoint_path),
                                          "step": int(state["global_step"]),
                                          "mode": config["mode"]})
    return ckpt_io.save(package, exp_dir / "model.pth")
