"""What lets ``bisep train-clap`` stop and continue: the training state
``checkpoints/last.pth`` and the metrics log ``logs/metrics.csv`` of its output folder.

The state holds everything the next step depends on: the audio tower and logit scale, the
optimiser and scheduler, the batch sampler's two random streams and torch's global one,
the losses logged since the last row, and the config it was trained with. It is written
atomically (:func:`bisep.checkpoint.save`), so a run killed while saving keeps the
previous one, and read with ``weights_only=True`` (:func:`bisep.checkpoint.read_weights`).
A run continued from it gives the same weights as one that was never stopped.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from bisep.atomic import write_text_atomic
from bisep.checkpoint import read_weights, save
from bisep.config import ConfigError
from bisep.train.clap_config import RESOURCE_KEYS

STATE_FILE = Path("checkpoints") / "last.pth"
METRICS_FILE = Path("logs") / "metrics.csv"


def _experiment(conf: dict) -> dict:
    return {k: v for k, v in conf.items() if k not in RESOURCE_KEYS}


def save_state(path: Path, step: int, conditioner, optimizer, scheduler, batches,
               running: list[list[float]], seconds: float, conf: dict) -> Path:
    """Write the state after ``step`` optimiser steps to ``path``, atomically."""
    return save({"step": step, "model": conditioner.audio_state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "batch_generator": batches.generator.get_state(),
                 "batch_rng": batches.rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state(), "running": running,
                 "seconds": seconds, "config": conf}, path)


def restore_state(path: Path, conf: dict, conditioner, optimizer, scheduler,
                  batches) -> tuple[int, list[list[float]], float]:
    """Load ``path`` into the run's objects.

    Returns:
        ``(steps done, losses since the last logged row, training seconds so far)``.

    Raises:
        bisep.checkpoint.CheckpointError: the file is unreadable.
        ConfigError: it was trained with another config (resource keys aside).
    """
    state = read_weights(path, "train-clap training state",
                         f"Delete {path} to start the run again.")
    if _experiment(state["config"]) != _experiment(conf):
        changed = sorted(k for k in set(_experiment(conf)) | set(_experiment(state["config"]))
                         if state["config"].get(k) != conf.get(k))
        raise ConfigError(f"{path}: a run of another config (differs in {', '.join(changed)}); "
                          f"to keep it, train into another --out-dir; to restart, delete "
                          f"{path.parent}.")
    conditioner.audio_state_load(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    batches.generator.set_state(state["batch_generator"])
    batches.rng.bit_generator.state = state["batch_rng"]
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), list(state["running"]), float(state["seconds"])


class MetricsLog:
    """``logs/metrics.csv``: one row per logged step (``step``, ``train_loss``,
    ``train/<term>``..., ``logit_scale``, ``lr``, ``seconds``), the separator trainer's
    column names. A continued run drops the rows after the step it continues from."""

    def __init__(self, path: Path, keep_until: int):
        self.path = path
        self.rows: list[dict] = []
        if keep_until and path.is_file():
            with open(path, newline="") as handle:
                self.rows = [row for row in csv.DictReader(handle)
                             if float(row.get("step") or "inf") <= keep_until]

    def append(self, row: dict) -> None:
        """Add a row and rewrite the file atomically (a few hundred rows at most)."""
        self.rows.append(row)
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, text.getvalue())
