"""The ``bisep train-clap`` config: every key :class:`MiniClapTrainConfig` names, read from
YAML with ``key=value`` overrides and checked with the file and line of a bad value (the
same rules as the separator's config, :mod:`bisep.config`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

OBJECTIVES = ("subset", "energy")
#: Keys that change how a run uses the machine or reports, not what it trains: a run may
#: continue (resume) with other values.
RESOURCE_KEYS = ("num_threads", "log_every", "checkpoint_every")


@dataclass(frozen=True)
class MiniClapTrainConfig:
    """Everything ``bisep train-clap`` can be told (the keys of ``conf/mini_clap.yaml``).

    Args:
        seed: seeds torch and the batch sampler.
        steps: optimiser steps.
        objective: ``subset`` or ``energy`` (see the module docstring).
        clean_per_batch: clean single-instrument clips per batch.
        pool_mixtures_per_batch: 2-instrument mixtures of the pool per batch.
        made_mixtures_per_batch: mixtures made from the batch's clean clips per batch.
        masked_per_batch: separator-like masked outputs per batch
            (:mod:`bisep.train.clap_batches`).
        three_fraction: share of the made mixtures and masked outputs with three instruments
            instead of two.
        added_level_db: range of the level of each added instrument against the first, in dB
            (from leakage to a balanced mixture).
        masked_level_db: the same for the mixtures behind the masked outputs.
        mask_sharpness: range of the exponent of the ratio mask (drawn log-uniformly).
        mask_max_blend: the masks blend in up to this share of smooth random mask.
        energy_power: exponent on the energies of the ``energy`` objective's targets.
        separator_models: trained separators (``model.pth`` files or experiment folders)
            whose outputs the judge also trains on
            (:func:`~bisep.train.clap_batches.separator_outputs`).
        separator_outputs: mixtures of the pool's clean clips each of them separates (two
            outputs each), made once before training.
        separator_per_batch: separator outputs per batch.
        artefact_targets: ``energy`` objective: a masked output's distortion of its first
            instrument (:func:`~bisep.train.clap_batches.target_artefacts`) counts as energy
            of no instrument (spread evenly over all), so a distorted output is judged less
            sure, as an SDR would judge it.
        gain_db: range of the random gain of every item, in dB.
        lr: AdamW learning rate (warm-up, then cosine decay to 2% of it).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        class_loss_weight: ``subset`` objective: weight of the multi-label term against the
            single-instrument captions (the batch InfoNCE has weight 1).
        max_logit_scale: the learned logit scale is clipped to this.
        clip_seconds: clips are cut or zero-padded to this length.
        num_threads: torch CPU threads (0 leaves torch's default).
        log_every: log the running loss (and a row of ``logs/metrics.csv``) every this many
            steps (0: never).
        checkpoint_every: write the training state ``checkpoints/last.pth`` every this many
            steps (0: only at the end); a re-run on the folder continues from it.
        audio_conf: :class:`~bisep.conditioners.audio_tower.AudioTower` keywords (its defaults
            filled in).
        text_model_dir: all-MiniLM-L6-v2 folder; ``None`` is the wheel's copy.
    """

    seed: int = 0
    steps: int = 400
    objective: str = "subset"
    clean_per_batch: int = 32
    pool_mixtures_per_batch: int = 16
    made_mixtures_per_batch: int = 16
    masked_per_batch: int = 0
    three_fraction: float = 0.25
    added_level_db: tuple = (-20.0, 0.0)
    masked_level_db: tuple = (-6.0, 6.0)
    mask_sharpness: tuple = (0.5, 4.0)
    mask_max_blend: float = 1.0
    energy_power: float = 1.0
    artefact_targets: bool = False
    separator_models: tuple = ()
    separator_outputs: int = 1000
    separator_per_batch: int = 16
    gain_db: tuple = (-12.0, 6.0)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    class_loss_weight: float = 1.0
    max_logit_scale: float = 100.0
    clip_seconds: float = 3.0
    num_threads: int = 2
    log_every: int = 50
    checkpoint_every: int = 100
    audio_conf: dict | None = None
    text_model_dir: str | None = None


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> dict:
    """Read a ``train-clap`` YAML (or none), apply ``key=value`` overrides, check every key
    against :class:`MiniClapTrainConfig` and fill in the defaults.

    Raises:
        bisep.config.ConfigError: naming the file, line and the fix.
    """
    from bisep.config import LineMap, apply_overrides, load_yaml

    cfg, lines = load_yaml(path) if path is not None else ({}, LineMap(None))
    return resolve_train_config(apply_overrides(cfg, list(overrides)), lines)


def resolve_train_config(cfg: dict, lines=None) -> dict:
    """Check every key of a ``train-clap`` config mapping against
    :class:`MiniClapTrainConfig` and fill in the defaults (:func:`load_train_config`
    without the file; ``lines`` locates a bad value in one).

    Raises:
        bisep.config.ConfigError: naming the key and the fix.
    """
    from bisep.config import LineMap, resolve_conf

    lines = lines or LineMap(None)
    resolved = resolve_conf(MiniClapTrainConfig, cfg, lines.where, "the train-clap config",
                            "bisep train-clap")
    from bisep.conditioners.audio_tower import AudioTower

    audio_conf = resolved["audio_conf"] or {}
    if not isinstance(audio_conf, dict):
        raise_config(lines.where("audio_conf"), "'audio_conf' must be a mapping of AudioTower "
                                                "keywords, e.g. {channels: [8, 16, 32, 128]}")
    # embed_dim is the text tower's (384), not the audio tower's choice.
    audio_conf = resolve_conf(AudioTower, audio_conf,
                              lambda *k: lines.where("audio_conf", *k), "audio_conf",
                              "the mini_clap audio tower", bound=("embed_dim",))
    resolved["audio_conf"] = {k: list(v) if isinstance(v, tuple) else v
                              for k, v in audio_conf.items()}
    for key in ("added_level_db", "masked_level_db", "gain_db", "mask_sharpness"):
        value = resolved[key]
        if len(value) != 2 or not value[0] <= value[1]:
            raise_config(lines.where(key), f"'{key}' must be a range [low, high] in dB, got "
                                           f"{value!r}")
        resolved[key] = [float(v) for v in value]
    if resolved["added_level_db"][1] > 0:
        raise_config(lines.where("added_level_db"), "added instruments must not be louder than "
                                                    "the first (added_level_db high <= 0)")
    if resolved["objective"] not in OBJECTIVES:
        raise_config(lines.where("objective"), f"objective must be one of "
                                               f"{', '.join(OBJECTIVES)}, got "
                                               f"{resolved['objective']!r}")
    if not resolved["mask_sharpness"][0] > 0:
        raise_config(lines.where("mask_sharpness"), "mask_sharpness must be a range of "
                                                    "positive exponents, e.g. [0.5, 4.0]")
    if not 0.0 <= resolved["mask_max_blend"] <= 1.0:
        raise_config(lines.where("mask_max_blend"), "mask_max_blend must be in [0, 1]")
    if not resolved["energy_power"] > 0:
        raise_config(lines.where("energy_power"), "energy_power must be > 0")
    counts = ("clean_per_batch", "pool_mixtures_per_batch", "made_mixtures_per_batch",
              "masked_per_batch", "separator_outputs", "separator_per_batch", "log_every",
              "checkpoint_every")
    resolved["separator_models"] = [str(p) for p in resolved["separator_models"] or []]
    if resolved["steps"] < 1 or resolved["clean_per_batch"] < 2 \
            or any(resolved[k] < 0 for k in counts):
        raise_config(lines.path, "need steps >= 1, clean_per_batch >= 2 and no negative "
                                 "batch counts")
    if not 0.0 <= resolved["three_fraction"] <= 1.0:
        raise_config(lines.where("three_fraction"), "three_fraction must be in [0, 1]")
    return resolved


def raise_config(where: str, message: str):
    from bisep.config import ConfigError

    raise ConfigError(f"{where}: {message}.")
