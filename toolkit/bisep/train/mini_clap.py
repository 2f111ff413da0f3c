"""Training and evaluation of the mini_clap audio tower (``bisep train-clap``, recipe stage 3).

The audio tower of :class:`~bisep.conditioners.mini_clap.MiniClapConditioner` learns to embed
a clip near the frozen MiniLM embedding of a caption that names what it holds. Data:
``clap_pool.jsonl`` (single-instrument clips and 2-instrument mixtures, disjoint from the
separator's data) for training, ``clap_heldout.jsonl`` for evaluation.

Each step's batch mixes three kinds of items, because the separator's weak loss judges
separator outputs that still leak:

- clean single-instrument clips of the pool;
- 2-instrument mixtures of the pool;
- mixtures made on the fly from the batch's clean clips: 2 (sometimes 3) instruments, each
  added one at a level from ``added_level_db`` under or at the first one's, so the batch holds
  "X with a little leakage of Y" as well as balanced mixtures, all labelled with every
  instrument they contain.

Every item gets a random gain and a random circular time shift, and a caption: a random
template of :data:`bisep.data.prompts.TEMPLATES` or the separator's own wording
(:func:`~bisep.data.prompts.mixture_prompt`), filled with its labels in a random order.

Loss: the multi-positive InfoNCE of :func:`bisep.losses.contrastive.bimodal_contrastive_loss`
over the batch, in both directions with different positives:

- clip -> captions: caption ``j`` is a positive for clip ``i`` when every instrument it names is
  in clip ``i`` (every same-label item, and for a mixture also the captions of each of its
  instruments alone);
- caption -> clips: clip ``i`` is a positive for caption ``j`` when it holds exactly the
  instruments the caption names (every same-label item). "violin" therefore prefers a clean
  violin to a violin with leakage, and the cosine with the right phrase drops when another
  instrument leaks in, which is what the separator's weak loss needs to see;

plus a multi-label term against the captions of the single instruments: each instrument in a
clip has to score above every instrument that is not in it (the other positives left out). That
term is what ranks both instruments of a mixture first (top-2 recall); the batch InfoNCE alone
can be satisfied by the mixture caption.

Evaluation (``eval.json``) on the held-out clips: zero-shot accuracy on single-instrument clips
per training template, with the separator's phrase and with
:data:`~bisep.data.prompts.HELDOUT_TEMPLATE` (never seen in training); top-2 recall on
2-instrument mixtures; and how the embedding reacts to leakage (the cosine with the right phrase
should drop when another instrument is added at -12 dB).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

POOL_MANIFEST = "clap_pool.jsonl"
HELDOUT_MANIFEST = "clap_heldout.jsonl"
CHECKPOINT_NAME = "mini_clap.pth"
# The level a held-out clip's leakage is added at in the leakage check.
LEAK_DB = -12.0


@dataclass(frozen=True)
class MiniClapTrainConfig:
    """Everything ``bisep train-clap`` can be told (the keys of ``conf/mini_clap.yaml``).

    Args:
        seed: seeds torch and the batch sampler.
        steps: optimiser steps.
        clean_per_batch: clean single-instrument clips per batch.
        pool_mixtures_per_batch: 2-instrument mixtures of the pool per batch.
        made_mixtures_per_batch: mixtures made from the batch's clean clips per batch.
        three_fraction: share of the made mixtures with three instruments instead of two.
        added_level_db: range of the level of each added instrument against the first, in dB
            (from leakage to a balanced mixture).
        gain_db: range of the random gain of every item, in dB.
        lr: AdamW learning rate (warm-up, then cosine decay to 2% of it).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        class_loss_weight: weight of the multi-label term against the single-instrument
            captions (the batch InfoNCE has weight 1).
        max_logit_scale: the learned logit scale is clipped to this.
        clip_seconds: clips are cut or zero-padded to this length.
        num_threads: torch CPU threads (0 leaves torch's default).
        log_every: print the running loss every this many steps (0: never).
        audio_conf: :class:`~bisep.conditioners.mini_clap.AudioTower` keywords (its defaults
            filled in).
        text_model_dir: all-MiniLM-L6-v2 folder; ``None`` is the wheel's copy.
    """

    seed: int = 0
    steps: int = 400
    clean_per_batch: int = 32
    pool_mixtures_per_batch: int = 16
    made_mixtures_per_batch: int = 16
    three_fraction: float = 0.25
    added_level_db: tuple = (-20.0, 0.0)
    gain_db: tuple = (-12.0, 6.0)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    class_loss_weight: float = 1.0
    max_logit_scale: float = 100.0
    clip_seconds: float = 3.0
    num_threads: int = 2
    log_every: int = 50
    audio_conf: dict | None = None
    text_model_dir: str | None = None


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> dict:
    """Read a ``train-clap`` YAML (or none), apply ``key=value`` overrides, check every key
    against :class:`MiniClapTrainConfig` and fill in the defaults.

    Raises:
        bisep.config.ConfigError: naming the file, line and the fix.
    """
    from bisep.config import LineMap, apply_overrides, load_yaml, resolve_conf

    cfg, lines = load_yaml(path) if path is not None else ({}, LineMap(None))
    cfg = apply_overrides(cfg, list(overrides))
    resolved = resolve_conf(MiniClapTrainConfig, cfg, lines.where, "the train-clap config",
                            "bisep train-clap")
    from bisep.conditioners.mini_clap import AudioTower

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
    for key in ("added_level_db", "gain_db"):
        value = resolved[key]
        if len(value) != 2 or not value[0] <= value[1]:
            raise_config(lines.where(key), f"'{key}' must be a range [low, high] in dB, got "
                                           f"{value!r}")
        resolved[key] = [float(v) for v in value]
    if resolved["added_level_db"][1] > 0:
        raise_config(lines.where("added_level_db"), "added instruments must not be louder than "
                                                    "the first (added_level_db high <= 0)")
    counts = ("clean_per_batch", "pool_mixtures_per_batch", "made_mixtures_per_batch")
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


# ------------------------------------------------------------------------------ data
@dataclass
class ClipSet:
    """Clips of one manifest held in memory: ``audio`` ``(n, samples)``, ``labels`` per clip
    (instrument names), ``ids``."""

    audio: torch.Tensor
    labels: list[tuple[str, ...]]
    ids: list[str]

    def subset(self, keep) -> "ClipSet":
        keep = list(keep)
        return ClipSet(self.audio[keep], [self.labels[i] for i in keep],
                       [self.ids[i] for i in keep])


def load_clips(manifest: str | Path, sample_rate: int, clip_seconds: float) -> ClipSet:
    """Read every clip of a manifest at ``sample_rate`` (mono), cut or zero-padded to
    ``clip_seconds``."""
    from bisep.audio import read
    from bisep.data.manifest import read_manifest

    items = read_manifest(manifest)
    if not items:
        raise ValueError(f"{manifest} lists no clips; re-run data preparation (recipe stage 1)")
    length = int(round(clip_seconds * sample_rate))
    audio = torch.zeros(len(items), length)
    for i, item in enumerate(items):
        wav, _ = read(item["audio"], sample_rate=sample_rate, mono=True)
        wav = torch.from_numpy(wav[0, :length])
        audio[i, :wav.shape[0]] = wav
    return ClipSet(audio, [tuple(sorted(item["labels"])) for item in items],
                   [item["id"] for item in items])


def split_by_count(clips: ClipSet) -> tuple[ClipSet, ClipSet]:
    """(single-instrument clips, clips with two or more)."""
    single = [i for i, lab in enumerate(clips.labels) if len(lab) == 1]
    multi = [i for i, lab in enumerate(clips.labels) if len(lab) > 1]
    return clips.subset(single), clips.subset(multi)


def unit_rms(audio: torch.Tensor) -> torch.Tensor:
    """Each row scaled to RMS 1 (silent rows stay 0)."""
    rms = audio.square().mean(dim=-1, keepdim=True).sqrt()
    return audio / rms.clamp_min(1e-8)


def db(value: torch.Tensor) -> torch.Tensor:
    return 10.0 ** (value / 20.0)


class BatchMaker:
    """Draws the training batches described in the module docstring (seeded).

    Args:
        singles, mixtures: the pool's single-instrument clips and its mixtures.
        conf: the resolved train config.
        captions: the templates a caption is drawn from (a template with ``{}``, or
            ``None`` for the separator's :func:`~bisep.data.prompts.mixture_prompt`).
    """

    def __init__(self, singles: ClipSet, mixtures: ClipSet, conf: dict, captions: list):
        self.singles, self.mixtures = singles, mixtures
        self.single_audio = unit_rms(singles.audio)
        self.mixture_audio = unit_rms(mixtures.audio)
        self.conf = conf
        self.captions = captions
        self.generator = torch.Generator().manual_seed(conf["seed"])
        self.rng = np.random.default_rng(conf["seed"])
        self.by_label: dict[str, list[int]] = {}
        for i, (label,) in enumerate(singles.labels):
            self.by_label.setdefault(label, []).append(i)
        self.label_names = sorted(self.by_label)

    def _uniform(self, low_high, n: int) -> torch.Tensor:
        low, high = low_high
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def _made_mixture(self) -> tuple[torch.Tensor, tuple[str, ...]]:
        count = 3 if self.rng.random() < self.conf["three_fraction"] else 2
        count = min(count, len(self.label_names))
        labels = self.rng.choice(self.label_names, size=count, replace=False)
        idx = [int(self.rng.choice(self.by_label[lab])) for lab in labels]
        levels = torch.cat([torch.zeros(1), self._uniform(self.conf["added_level_db"],
                                                          count - 1)])
        audio = (db(levels)[:, None] * self.single_audio[idx]).sum(dim=0)
        return audio, tuple(sorted(str(lab) for lab in labels))

    def caption(self, labels: Sequence[str]) -> str:
        from bisep.data.prompts import fill, mixture_prompt

        labels = list(self.rng.permutation(list(labels)))
        template = self.captions[int(self.rng.integers(len(self.captions)))]
        return mixture_prompt(labels) if template is None else fill(template, labels)

    def __call__(self) -> tuple[torch.Tensor, list[tuple[str, ...]]]:
        """One batch: ``(audio (M, samples), labels per item)``."""
        conf = self.conf
        n_clean = conf["clean_per_batch"]
        n_pool = conf["pool_mixtures_per_batch"] if len(self.mixtures.ids) else 0
        clean = torch.randint(len(self.singles.ids), (n_clean,), generator=self.generator)
        parts = [self.single_audio[clean]]
        labels = [self.singles.labels[i] for i in clean.tolist()]
        if n_pool:
            pool = torch.randint(len(self.mixtures.ids), (n_pool,), generator=self.generator)
            parts.append(self.mixture_audio[pool])
            labels += [self.mixtures.labels[i] for i in pool.tolist()]
        if len(self.label_names) > 1:
            made = [self._made_mixture() for _ in range(conf["made_mixtures_per_batch"])]
            if made:
                parts.append(torch.stack([audio for audio, _ in made]))
                labels += [lab for _, lab in made]
        audio = unit_rms(torch.cat(parts))
        # RMS 0.05 (the renders' level) times a random gain; the tower normalises the level
        # itself, so the gain only moves the clip against the log floor and float rounding.
        audio = 0.05 * db(self._uniform(conf["gain_db"], audio.shape[0]))[:, None] * audio
        shifts = torch.randint(audio.shape[1], (audio.shape[0],), generator=self.generator)
        audio = torch.stack([torch.roll(a, int(s)) for a, s in zip(audio, shifts)])
        return audio, labels


# ------------------------------------------------------------------------------ losses
def subset_positives(labels: list[tuple[str, ...]]) -> torch.Tensor:
    """``(M, M)`` bool: caption ``j`` is a positive for clip ``i`` when every instrument it
    names is in clip ``i`` (identical label sets included)."""
    sets = [set(lab) for lab in labels]
    return torch.tensor([[sj <= si for sj in sets] for si in sets])


def same_labels(labels: list[tuple[str, ...]]) -> torch.Tensor:
    """``(M, M)`` bool: items ``i`` and ``j`` hold the same instruments."""
    return torch.tensor([[a == b for b in labels] for a in labels])


def multi_label_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each positive class against every negative one (the other positives left out).

    For clip ``i`` and each of its instruments ``c``:
    ``-log(exp(l_ic) / (exp(l_ic) + Σ_{n not in i} exp(l_in)))``, averaged over all pairs. A
    clip of one instrument gets the usual cross-entropy.

    Shape:
        - logits: ``(M, C)`` scaled cosines with the single-instrument captions.
        - targets: ``(M, C)`` bool, ``True`` for the instruments in the clip.
    """
    neg_inf = torch.finfo(logits.dtype).min
    negatives = torch.logsumexp(logits.masked_fill(targets, neg_inf), dim=-1, keepdim=True)
    per_pair = torch.logaddexp(logits, negatives) - logits
    return per_pair[targets].mean()


# ------------------------------------------------------------------------------ evaluation
def class_text(conditioner, labels: list[str], template: str | None) -> torch.Tensor:
    """``(C, D)`` embeddings of one caption per label: ``template`` filled, or the
    separator's :func:`~bisep.data.prompts.phrase` for ``None``."""
    from bisep.data.prompts import fill, phrase

    prompts = [phrase(lab) if template is None else fill(template, lab) for lab in labels]
    return conditioner.embed_text(prompts)


@torch.no_grad()
def embed_clips(conditioner, audio: torch.Tensor, batch: int = 128) -> torch.Tensor:
    return torch.cat([conditioner.embed_audio(audio[i:i + batch])
                      for i in range(0, audio.shape[0], batch)])


@torch.no_grad()
def evaluate(conditioner, heldout: ClipSet, labels: list[str]) -> dict:
    """The figures of ``eval.json`` (see the module docstring).

    Args:
        conditioner: a :class:`~bisep.conditioners.mini_clap.MiniClapConditioner` (eval mode).
        heldout: the held-out clips.
        labels: the instrument names (class order).
    """
    from bisep.data.prompts import HELDOUT_TEMPLATE, TEMPLATES

    singles, mixtures = split_by_count(heldout)
    single_emb = embed_clips(conditioner, unit_rms(singles.audio) * 0.05)
    truth = torch.tensor([labels.index(lab[0]) for lab in singles.labels])

    def accuracy(template):
        scores = single_emb @ class_text(conditioner, labels, template).T
        return float((scores.argmax(dim=1) == truth).float().mean())

    per_template = {t: accuracy(t) for t in TEMPLATES}
    phrase_scores = single_emb @ class_text(conditioner, labels, None).T
    per_class = {lab: float((phrase_scores.argmax(1) == truth)[truth == c].float().mean())
                 for c, lab in enumerate(labels) if bool((truth == c).any())}
    report = {
        "clean": {
            "clips": len(singles.ids),
            "accuracy_train_templates_mean": float(np.mean(list(per_template.values()))),
            "accuracy_train_templates_min": min(per_template.values()),
            "accuracy_per_template": per_template,
            "accuracy_phrase": float((phrase_scores.argmax(1) == truth).float().mean()),
            "accuracy_heldout_template": accuracy(HELDOUT_TEMPLATE),
            "heldout_template": HELDOUT_TEMPLATE,
            "accuracy_per_class_phrase": per_class,
        },
    }
    two = [i for i, lab in enumerate(mixtures.labels) if len(lab) == 2]
    if two:
        mix = mixtures.subset(two)
        mix_emb = embed_clips(conditioner, unit_rms(mix.audio) * 0.05)
        targets = torch.zeros(len(two), len(labels), dtype=torch.bool)
        for i, lab in enumerate(mix.labels):
            targets[i, [labels.index(x) for x in lab]] = True

        def recall(template):
            scores = mix_emb @ class_text(conditioner, labels, template).T
            top2 = scores.topk(2, dim=1).indices
            return float(targets.gather(1, top2).float().sum() / targets.sum())

        report["mixtures"] = {
            "clips": len(two),
            "top2_recall_phrase": recall(None),
            "top2_recall_train_templates_mean": float(np.mean([recall(t) for t in TEMPLATES])),
            "top2_recall_heldout_template": recall(HELDOUT_TEMPLATE),
        }
    report["leakage"] = leakage_check(conditioner, singles, single_emb, labels)
    return report


@torch.no_grad()
def leakage_check(conditioner, singles: ClipSet, clean_emb: torch.Tensor,
                  labels: list[str]) -> dict:
    """Does leakage lower the score of the right phrase? Each clip gets another instrument's
    clip (the next clip of a different instrument, cyclically) added at :data:`LEAK_DB`."""
    own = torch.tensor([labels.index(lab[0]) for lab in singles.labels])
    n = len(own)
    partner = []
    for i in range(n):
        j = next((k % n for k in range(i + 1, i + n) if own[k % n] != own[i]), None)
        if j is None:
            return {"note": "needs clips of two instruments"}
        partner.append(j)
    audio = unit_rms(singles.audio)
    leaky = unit_rms(audio + db(torch.tensor(LEAK_DB)) * audio[partner]) * 0.05
    leaky_emb = embed_clips(conditioner, leaky)
    text = class_text(conditioner, labels, None)
    scale = conditioner.logit_scale
    rows = torch.arange(n)
    clean_prob = (scale * clean_emb @ text.T).softmax(-1)[rows, own]
    leaky_prob = (scale * leaky_emb @ text.T).softmax(-1)[rows, own]
    clean_cos = (clean_emb * text[own]).sum(-1)
    leaky_cos = (leaky_emb * text[own]).sum(-1)
    return {
        "leak_db": LEAK_DB,
        "right_phrase_probability_clean": float(clean_prob.mean()),
        "right_phrase_probability_leaky": float(leaky_prob.mean()),
        "clean_more_probable_fraction": float((clean_prob > leaky_prob).float().mean()),
        "right_phrase_cosine_clean": float(clean_cos.mean()),
        "right_phrase_cosine_leaky": float(leaky_cos.mean()),
        "clean_higher_cosine_fraction": float((clean_cos > leaky_cos).float().mean()),
        "leaked_phrase_cosine_clean": float((clean_emb * text[own[partner]]).sum(-1).mean()),
        "leaked_phrase_cosine_leaky": float((leaky_emb * text[own[partner]]).sum(-1).mean()),
    }


@torch.no_grad()
def embed_speed(conditioner, sample_rate: int, clip_seconds: float = 3.0,
                batch: int = 64) -> float:
    """Milliseconds per clip of ``embed_audio`` (forward, eval mode, a batch of noise)."""
    wav = 0.05 * torch.randn(batch, int(clip_seconds * sample_rate),
                             generator=torch.Generator().manual_seed(0))
    conditioner.embed_audio(wav)
    start = time.perf_counter()
    for _ in range(3):
        conditioner.embed_audio(wav)
    return (time.perf_counter() - start) / 3 / batch * 1000


# ------------------------------------------------------------------------------ training
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


def train(data_dir: str | Path, out_dir: str | Path, conf: dict, log=print) -> dict:
    """Train the audio tower, evaluate it, write ``mini_clap.pth`` and ``eval.json``.

    Args:
        data_dir: holds ``clap_pool.jsonl`` and ``clap_heldout.jsonl``.
        out_dir: where ``mini_clap.pth``, ``eval.json`` and ``config.yaml`` are written.
        conf: a config resolved by :func:`load_train_config`.
        log: where progress lines go.

    Returns:
        The evaluation report (the content of ``eval.json``).
    """
    import yaml

    from bisep.checkpoint import save
    from bisep.conditioners.mini_clap import MiniClapConditioner
    from bisep.atomic import write_text_atomic
    from bisep.data.prompts import TEMPLATES
    from bisep.losses.contrastive import bimodal_contrastive_loss

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    for name in (POOL_MANIFEST, HELDOUT_MANIFEST):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(f"{data_dir / name} does not exist: run data preparation "
                                    f"first (`bisep prepare synth_music {data_dir}`, recipe "
                                    f"stage 1)")
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
        raise ValueError(f"{data_dir / POOL_MANIFEST} needs single-instrument clips of at "
                         f"least two instruments")
    log(f"train-clap: {len(singles.ids)} clean clips and {len(mixtures.ids)} mixtures of "
        f"{len(labels)} instruments; held out {len(heldout.ids)} clips")

    captions = list(TEMPLATES) + [None]
    batches = BatchMaker(singles, mixtures, conf, captions)
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

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    max_log_scale = math.log(conf["max_logit_scale"])
    conditioner.train()
    start, running = time.perf_counter(), []
    for step in range(conf["steps"]):
        audio, item_labels = batches()
        texts = [batches.caption(lab) for lab in item_labels]
        text_emb = conditioner.embed_text(texts)
        audio_emb = conditioner.audio(audio)
        scale = conditioner.log_logit_scale.exp()
        # The loss function contrasts its first argument's rows against the second's: called
        # twice, each direction gets its own positives (see the module docstring).
        nce = 0.5 * (bimodal_contrastive_loss(audio_emb, text_emb, scale,
                                              positive_mask=subset_positives(item_labels))
                     + bimodal_contrastive_loss(text_emb, audio_emb, scale,
                                                positive_mask=same_labels(item_labels)))
        template = captions[step % len(captions)]
        targets = torch.tensor([[lab in clip for lab in labels] for clip in item_labels])
        multi = multi_label_loss(scale * audio_emb @ class_text(conditioner, labels, template).T,
                                 targets)
        loss = nce + conf["class_loss_weight"] * multi
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            conditioner.log_logit_scale.clamp_(max=max_log_scale)
        running.append((nce.item(), multi.item()))
        if conf["log_every"] and ((step + 1) % conf["log_every"] == 0
                                  or step + 1 == conf["steps"]):
            nce_mean, multi_mean = np.mean(running, axis=0)
            log(f"step {step + 1}/{conf['steps']}: batch InfoNCE {nce_mean:.3f}, multi-label "
                f"{multi_mean:.3f}, logit scale {scale.item():.1f}, "
                f"{time.perf_counter() - start:.0f} s")
            running = []
    train_seconds = time.perf_counter() - start

    conditioner.freeze()
    report = evaluate(conditioner, heldout, labels)
    report["train"] = {"steps": conf["steps"], "seconds": round(train_seconds, 1),
                       "clean_clips": len(singles.ids), "mixtures": len(mixtures.ids),
                       "logit_scale": float(conditioner.logit_scale)}
    report["embed_audio_ms_per_clip"] = round(embed_speed(conditioner, rate), 3)
    report["targets"] = {
        "zero_shot_clean>=0.95": min(report["clean"]["accuracy_train_templates_mean"],
                                     report["clean"]["accuracy_heldout_template"]) >= 0.95,
        "top2_recall_mixtures>=0.90": report.get("mixtures", {}).get(
            "top2_recall_phrase", 0.0) >= 0.90,
    }
    save(checkpoint_package(conditioner, conf, labels, report), out_dir / CHECKPOINT_NAME)
    write_text_atomic(out_dir / "eval.json", json.dumps(report, indent=2) + "\n")
    return report
