"""Training and evaluation of the mini_clap audio tower (``bisep train-clap``, recipe stage 3).

The audio tower of :class:`~bisep.conditioners.mini_clap.MiniClapConditioner` learns to embed
a clip near the frozen MiniLM embedding of a caption that names what it holds. Data:
``clap_pool.jsonl`` (single-instrument clips and 2-instrument mixtures, disjoint from the
separator's data) for training, ``clap_heldout.jsonl`` for evaluation.

The batches (:mod:`bisep.train.clap_batches`) mix clean clips, mixtures and, for the
``energy`` objective, separator-like *masked outputs* whose leakage is known. Every item gets a
caption: a random template of :data:`bisep.data.prompts.TEMPLATES` or the separator's own
wording (:func:`~bisep.data.prompts.mixture_prompt`), filled with its labels in a random order.

Two objectives (``objective`` in the config):

- ``subset`` (the first mini_clap): the multi-positive InfoNCE of
  :func:`bisep.losses.contrastive.bimodal_contrastive_loss` over the batch in both directions
  (clip -> captions: a caption is a positive when every instrument it names is in the clip;
  caption -> clips: when the clip holds exactly those instruments), plus a multi-label term
  against the single-instrument captions (:func:`bisep.losses.audio_text.multi_label_loss`).
  A mixture counts as a match for each of its instruments' captions, which makes a leaky
  separator output nearly as good a match as a clean one: an easy judge.
- ``energy``: a cross-entropy against the single-instrument captions whose target is each
  instrument's share of the clip's energy (:func:`bisep.losses.audio_text.energy_share_loss`).
  The log-odds between two instruments then estimate their energy ratio in the clip, so the
  preference for the queried phrase falls steadily as another instrument leaks in, which is
  what the separator's weak loss needs to see.

The config is :mod:`bisep.train.clap_config`'s; the training state that lets a stopped run
continue, and the metrics log, are :mod:`bisep.train.clap_progress`'s.

Evaluation (``eval.json``, :mod:`bisep.train.clap_eval`) on the held-out clips: zero-shot
accuracy, top-2 recall on 2-instrument mixtures, the leakage curve and the rank correlation of
the judge's margin with the SIR and SDR of masked outputs.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from bisep.train.clap_config import MiniClapTrainConfig
from bisep.train.clap_eval import class_text, embed_speed, evaluate

log = logging.getLogger(__name__)

POOL_MANIFEST = "clap_pool.jsonl"
HELDOUT_MANIFEST = "clap_heldout.jsonl"
CHECKPOINT_NAME = "mini_clap.pth"


# ------------------------------------------------------------------------------ training
def _subset_step(conditioner, batch, batches, labels, template, conf) -> dict:
    """The ``subset`` objective's terms for one batch (module docstring)."""
    from bisep.losses.audio_text import multi_label_loss, same_labels, subset_positives
    from bisep.losses.contrastive import bimodal_contrastive_loss

    texts = [batches.caption(lab) for lab in batch.labels]
    text_emb = conditioner.embed_text(texts)
    audio_emb = conditioner.audio(batch.audio)
    scale = conditioner.log_logit_scale.exp()
    # The loss function contrasts its first argument's rows against the second's: called
    # twice, each direction gets its own positives.
    nce = 0.5 * (bimodal_contrastive_loss(audio_emb, text_emb, scale,
                                          positive_mask=subset_positives(batch.labels))
                 + bimodal_contrastive_loss(text_emb, audio_emb, scale,
                                            positive_mask=same_labels(batch.labels)))
    targets = torch.tensor([[lab in clip for lab in labels] for clip in batch.labels])
    multi = multi_label_loss(scale * audio_emb @ class_text(conditioner, labels, template).T,
                             targets)
    return {"batch InfoNCE": nce, "multi-label": conf["class_loss_weight"] * multi}


def _energy_step(conditioner, batch, batches, labels, template, conf) -> dict:
    """The ``energy`` objective's term for one batch (module docstring)."""
    from bisep.losses.audio_text import energy_share_loss

    from bisep.train.clap_batches import ARTEFACT

    audio_emb = conditioner.audio(batch.audio)
    scale = conditioner.log_logit_scale.exp()
    # Artefact energy belongs to no instrument: spread evenly, it only makes the target less
    # sure.
    energies = torch.tensor([[item.get(lab, 0.0) + item.get(ARTEFACT, 0.0) / len(labels)
                              for lab in labels] for item in batch.energies])
    logits = scale * audio_emb @ class_text(conditioner, labels, template).T
    return {"energy share": energy_share_loss(logits, energies, conf["energy_power"])}


def start_training(conditioner, conf: dict) -> tuple:
    """Ready a ``frozen=False`` mini_clap for :func:`train_step`: train mode and
    ``(optimizer, scheduler)``: AdamW with a linear warm-up over ``warmup_steps``, then a
    cosine decay to 2% of ``lr`` at ``steps``.
    """
    conditioner.train()
    # No weight decay on the logit scale: it would pull the temperature towards 1.
    optimizer = torch.optim.AdamW(
        [{"params": list(conditioner.audio.parameters())},
         {"params": [conditioner.log_logit_scale], "weight_decay": 0.0}],
        lr=conf["lr"], weight_decay=conf["weight_decay"])

    def lr_factor(step):
        if step < conf["warmup_steps"]:
            return (step + 1) / conf["warmup_steps"]
        progress = (step - conf["warmup_steps"]) / max(1, conf["steps"] - conf["warmup_steps"])
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


def train_step(conditioner, batches, template, labels: list[str], conf: dict, optimizer,
               scheduler) -> dict[str, float]:
    """One optimiser step of the audio tower on the next batch of ``batches``.

    Args:
        conditioner, optimizer, scheduler: as :func:`start_training` left them.
        batches: a :class:`~bisep.train.clap_batches.BatchMaker`.
        template: the class captions' template this step (``None``: the separator's phrase).
        labels: every instrument, sorted (the classes of the class captions).

    Returns:
        Each loss term's value (the loss is their sum).
    """
    loss_fn = _energy_step if conf["objective"] == "energy" else _subset_step
    parts = loss_fn(conditioner, batches(), batches, labels, template, conf)
    optimizer.zero_grad(set_to_none=True)
    sum(parts.values()).backward()
    optimizer.step()
    scheduler.step()
    with torch.no_grad():
        conditioner.log_logit_scale.clamp_(max=math.log(conf["max_logit_scale"]))
    return {name: value.item() for name, value in parts.items()}


def separator_files(conf: dict) -> list[Path]:
    """The ``model.pth`` of each ``separator_models`` entry (a file or an experiment folder).

    Raises:
        FileNotFoundError: naming the entry that has none.
    """
    from bisep.checkpoint import folder_checkpoint

    files = []
    for entry in conf["separator_models"]:
        path = Path(entry)
        model_file = (folder_checkpoint(path) or path / "model.pth") if path.is_dir() else path
        if not model_file.is_file():
            raise FileNotFoundError(f"separator_models: {model_file} does not exist; give "
                                    f"model.pth files or experiment folders of `bisep train`")
        files.append(model_file)
    return files


def _separator_bank(conf: dict, conditioner, singles) -> tuple:
    """Every ``separator_models`` entry's outputs (see
    :func:`~bisep.train.clap_batches.separator_outputs`), concatenated."""
    from bisep.checkpoint import from_pretrained
    from bisep.config import ConfigError
    from bisep.train.clap_batches import separator_outputs

    parts = []
    for number, model_file in enumerate(separator_files(conf)):
        separator = from_pretrained(model_file).eval()
        if separator.sample_rate != conditioner.sample_rate:
            raise ConfigError(f"separator_models: {model_file} runs at {separator.sample_rate} "
                              f"Hz, the query encoder at {conditioner.sample_rate} Hz")
        start = time.perf_counter()
        parts.append(separator_outputs(separator, conditioner, singles,
                                       conf["separator_outputs"], conf["seed"] + number))
        log.info("train-clap: %d outputs of %s in %.0f s", len(parts[-1][1]), model_file,
                 time.perf_counter() - start)
    audio, labels, energies, splits = zip(*parts)
    return (torch.cat(audio), [x for part in labels for x in part],
            [x for part in energies for x in part], [x for part in splits for x in part])


def checkpoint_package(conditioner, conf: dict, labels: list[str], report: dict | None) -> dict:
    """The ``mini_clap.pth`` content: a :mod:`bisep.checkpoint` dict of the audio tower."""
    from bisep.checkpoint import software_versions
    from bisep.conditioners.mini_clap import MINILM_SHA256, MODEL_NAME

    infos = {"software_versions": software_versions(), "config": conf, "labels": labels,
             "text_model": {"name": "sentence-transformers/all-MiniLM-L6-v2",
                            "sha256": MINILM_SHA256}}
    if report is not None:
        infos["eval"] = report
    return {"model_name": MODEL_NAME, "model_args": conditioner.get_model_args(),
            "state_dict": conditioner.audio_state_dict(), "infos": infos}


def train(data_dir: str | Path, out_dir: str | Path, conf: dict) -> dict:
    """Train the audio tower, evaluate it, write ``mini_clap.pth`` and ``eval.json``.

    Every ``checkpoint_every`` steps and at the end of training the training state is
    written to ``<out_dir>/checkpoints/last.pth``; a run on a folder that holds one
    continues from its step (:mod:`bisep.train.clap_progress`). Progress goes to the
    ``bisep.train.mini_clap`` logger and to ``<out_dir>/logs/metrics.csv``.

    Args:
        data_dir: holds ``clap_pool.jsonl`` and ``clap_heldout.jsonl``.
        out_dir: where ``mini_clap.pth``, ``eval.json`` and ``config.yaml`` are written.
        conf: a config resolved by :func:`bisep.train.clap_config.load_train_config`.

    Returns:
        The evaluation report (the content of ``eval.json``).
    """
    import yaml

    from bisep.atomic import write_text_atomic
    from bisep.checkpoint import save
    from bisep.conditioners.mini_clap import MiniClapConditioner
    from bisep.data.manifest import DataError
    from bisep.data.prompts import TEMPLATES
    from bisep.train.clap_batches import BatchMaker, load_clips, split_by_count
    from bisep.train.clap_progress import (METRICS_FILE, STATE_FILE, MetricsLog,
                                           restore_state, save_state)

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    for name in (POOL_MANIFEST, HELDOUT_MANIFEST):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(f"{data_dir / name} does not exist: run data preparation "
                                    f"first (`bisep prepare synth_music {data_dir}`, recipe "
                                    f"stage 1)")
    separator_files(conf)  # before any work: a missing model is named now
    if conf["num_threads"]:
        torch.set_num_threads(conf["num_threads"])
    torch.manual_seed(conf["seed"])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "config.yaml", yaml.safe_dump(conf, sort_keys=False))

    conditioner = MiniClapConditioner(text_model_dir=conf["text_model_dir"], frozen=False,
                                      audio_conf=conf["audio_conf"])
    rate = conditioner.sample_rate
    pool = load_clips(data_dir / POOL_MANIFEST, rate, conf["clip_seconds"])
    heldout = load_clips(data_dir / HELDOUT_MANIFEST, rate, conf["clip_seconds"])
    singles, mixtures = split_by_count(pool)
    labels = sorted({lab for clip in pool.labels for lab in clip})
    if len(singles.ids) < 2 or len({lab for (lab,) in singles.labels}) < 2:
        raise DataError(f"{data_dir / POOL_MANIFEST} needs single-instrument clips of at "
                        f"least two instruments")
    log.info("train-clap: %d clean clips and %d mixtures of %d instruments; held out %d "
             "clips; objective %s", len(singles.ids), len(mixtures.ids), len(labels),
             len(heldout.ids), conf["objective"])

    captions = list(TEMPLATES) + [None]
    bank = _separator_bank(conf, conditioner, singles) if conf["separator_models"] else None
    batches = BatchMaker(singles, mixtures, conf, captions, bank)
    optimizer, scheduler = start_training(conditioner, conf)
    state_file, first_step, running, seconds = out_dir / STATE_FILE, 0, [], 0.0
    if state_file.is_file():
        first_step, running, seconds = restore_state(state_file, conf, conditioner, optimizer,
                                                     scheduler, batches)
        log.info("train-clap: continuing from step %d/%d (%s)", first_step, conf["steps"],
                 state_file)
    metrics = MetricsLog(out_dir / METRICS_FILE, keep_until=first_step)
    start = time.perf_counter() - seconds
    for step in range(first_step, conf["steps"]):
        parts = train_step(conditioner, batches, captions[step % len(captions)], labels, conf,
                           optimizer, scheduler)
        running.append(list(parts.values()))
        done = step + 1
        if conf["log_every"] and (done % conf["log_every"] == 0 or done == conf["steps"]):
            means = np.mean(running, axis=0)
            terms = ", ".join(f"{name} {value:.3f}" for name, value in zip(parts, means))
            elapsed = time.perf_counter() - start
            log.info("step %d/%d: %s, logit scale %.1f, %.0f s", done, conf["steps"], terms,
                     conditioner.logit_scale.item(), elapsed)
            metrics.append({"step": done, "train_loss": float(sum(means)),
                            **{f"train/{name}": float(v) for name, v in zip(parts, means)},
                            "logit_scale": conditioner.logit_scale.item(),
                            "lr": scheduler.get_last_lr()[0], "seconds": round(elapsed, 2)})
            running = []
        if done == conf["steps"] or (conf["checkpoint_every"]
                                     and done % conf["checkpoint_every"] == 0):
            save_state(state_file, done, conditioner, optimizer, scheduler, batches, running,
                       time.perf_counter() - start, conf)
    train_seconds = time.perf_counter() - start

    conditioner.freeze()
    report = evaluate(conditioner, heldout, labels, seed=conf["seed"])
    report["train"] = {"steps": conf["steps"], "continued_from": first_step,
                       "seconds": round(train_seconds, 1),
                       "clean_clips": len(singles.ids), "mixtures": len(mixtures.ids),
                       "logit_scale": float(conditioner.logit_scale)}
    report["embed_audio_ms_per_clip"] = round(embed_speed(conditioner, rate), 3)
    report["objective"] = conf["objective"]
    report["targets"] = {
        "zero_shot_clean>=0.95": min(report["clean"]["accuracy_train_templates_mean"],
                                     report["clean"]["accuracy_heldout_template"]) >= 0.95,
        "top2_recall_mixtures>=0.90": report.get("mixtures", {}).get(
            "top2_recall_phrase", 0.0) >= 0.90,
        "leakage_curve_monotone": bool(report["leakage_curve"].get("monotone", False)),
    }
    save(checkpoint_package(conditioner, conf, labels, report), out_dir / CHECKPOINT_NAME)
    write_text_atomic(out_dir / "eval.json", json.dumps(report, indent=2) + "\n")
    return report


def evaluate_checkpoint(checkpoint: str | Path, data_dir: str | Path, seed: int = 0) -> dict:
    """The ``eval.json`` figures of a trained mini_clap on ``<data_dir>/clap_heldout.jsonl``:
    another soundfont's held-out clips, or an older encoder judged by the newer figures.

    Raises:
        FileNotFoundError: the held-out manifest is missing.
    """
    from bisep.checkpoint import load
    from bisep.conditioners.mini_clap import MiniClapConditioner
    from bisep.train.clap_batches import load_clips

    heldout_file = Path(data_dir) / HELDOUT_MANIFEST
    if not heldout_file.is_file():
        raise FileNotFoundError(f"{heldout_file} does not exist: run data preparation first "
                                f"(`bisep prepare synth_music {data_dir}`, recipe stage 1)")
    conditioner = MiniClapConditioner(checkpoint=str(checkpoint)).eval()
    package = load(checkpoint)  # its labels and training config (bisep's weights rule)
    infos = package.get("infos", {})
    labels = infos.get("labels")
    # Clips are cut or padded as in the encoder's training.
    seconds = infos.get("config", {}).get("clip_seconds", MiniClapTrainConfig.clip_seconds)
    heldout = load_clips(heldout_file, conditioner.sample_rate, seconds)
    labels = labels or sorted({lab for clip in heldout.labels for lab in clip})
    report = evaluate(conditioner, heldout, labels, seed=seed)
    report["checkpoint"] = str(checkpoint)
    report["heldout"] = str(heldout_file)
    return report
