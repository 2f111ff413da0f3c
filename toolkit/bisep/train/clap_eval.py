"""How good a judge of separated audio an audio-text query encoder is (``eval.json``).

A query encoder that supervises a separator (the weak loss L_CNT) must do more than name
instruments: its preference for the queried phrase has to *fall as other instruments leak
into an output*, or the separator can satisfy it without separating. The figures:

- :func:`evaluate`: zero-shot accuracy on held-out single-instrument clips (per training
  template, with the separator's phrase, and with a template never seen in training), top-2
  recall on 2-instrument mixtures, the leakage curve (:func:`leakage_curve`) and the masked
  outputs check (:func:`masked_output_check`);
- :func:`margin_sdr_correlation`: over real separated outputs (``bisep separate --list``
  folders and their ``bisep score`` results), the Spearman rank correlation between the
  *margin* (cosine with the queried phrase minus cosine with the other source's phrase) and
  the output's SDR. This is the judge's bar: a judge whose margin does not rank outputs
  the way SDR does cannot teach a separator to separate.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bisep.train.clap_batches import ClipSet, db, masked_outputs, split_by_count, unit_rms

# The level a held-out clip's leakage is added at in the one-level leakage check, and the
# levels of the leakage curve (dB of the added instrument against the clip).
LEAK_DB = -12.0
LEAK_CURVE_DB = (-30.0, -20.0, -12.0, -6.0, -3.0, 0.0)


def spearman(x, y) -> float:
    """Spearman's rank correlation (``nan`` for fewer than 3 pairs or a constant input)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def class_text(conditioner, labels: list[str], template: str | None) -> torch.Tensor:
    """``(C, D)`` embeddings of one caption per label: ``template`` filled, or the
    separator's :func:`~bisep.data.prompts.phrase` for ``None``."""
    from bisep.data.prompts import fill, phrase

    prompts = [phrase(lab) if template is None else fill(template, lab) for lab in labels]
    return conditioner.embed_text(prompts)


@torch.no_grad()
def embed_clips(conditioner, audio: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """``(n, D)`` unit audio embeddings of ``audio (n, samples)``, in batches."""
    return F.normalize(torch.cat([conditioner.embed_audio(audio[i:i + batch])
                                  for i in range(0, audio.shape[0], batch)]), dim=-1)


def partners(own: torch.Tensor) -> list[int] | None:
    """For each clip, the next clip (cyclically) of another instrument; ``None`` when all
    clips are of one instrument."""
    n = len(own)
    out = []
    for i in range(n):
        j = next((k % n for k in range(i + 1, i + n) if own[k % n] != own[i]), None)
        if j is None:
            return None
        out.append(j)
    return out


@torch.no_grad()
def evaluate(conditioner, heldout: ClipSet, labels: list[str], seed: int = 0) -> dict:
    """The figures of ``eval.json`` on the held-out clips (see the module docstring).

    Args:
        conditioner: a mini_clap (or any) conditioner in eval mode.
        heldout: the held-out clips.
        labels: the instrument names (class order).
        seed: seeds the masked outputs check.
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
    report["leakage_curve"] = leakage_curve(conditioner, singles, labels)
    report["masked_outputs"] = masked_output_check(conditioner, singles, labels, seed)
    return report


@torch.no_grad()
def leakage_check(conditioner, singles: ClipSet, clean_emb: torch.Tensor,
                  labels: list[str]) -> dict:
    """Does leakage lower the score of the right phrase? Each clip gets another instrument's
    clip (:func:`partners`) added at :data:`LEAK_DB`."""
    own = torch.tensor([labels.index(lab[0]) for lab in singles.labels])
    partner = partners(own)
    if partner is None:
        return {"note": "needs clips of two instruments"}
    n = len(own)
    audio = unit_rms(singles.audio)
    leaky = unit_rms(audio + db(torch.tensor(LEAK_DB)) * audio[partner]) * 0.05
    leaky_emb = embed_clips(conditioner, leaky)
    text = F.normalize(class_text(conditioner, labels, None), dim=-1)
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
def leakage_curve(conditioner, singles: ClipSet, labels: list[str],
                  levels_db=LEAK_CURVE_DB) -> dict:
    """The right phrase's cosine and margin as another instrument leaks in louder and louder.

    Each held-out clip gets its :func:`partners` clip added at each level of ``levels_db``.
    ``margin`` is the cosine with the clip's phrase minus the cosine with the leaked
    instrument's phrase; ``monotone`` says whether the mean margin falls at every step up
    in level (a judge of leakage must say yes).
    """
    own = torch.tensor([labels.index(lab[0]) for lab in singles.labels])
    partner = partners(own)
    if partner is None:
        return {"note": "needs clips of two instruments"}
    audio = unit_rms(singles.audio)
    text = F.normalize(class_text(conditioner, labels, None), dim=-1)
    rows = torch.arange(len(own))
    points = []
    for level in [None, *levels_db]:
        mixed = audio if level is None else audio + db(torch.tensor(level)) * audio[partner]
        emb = embed_clips(conditioner, unit_rms(mixed) * 0.05)
        cos = emb @ text.T
        prob = (conditioner.logit_scale * cos).softmax(-1)[rows, own]
        margin = cos[rows, own] - cos[rows, own[partner]]
        points.append({"leak_db": level, "right_phrase_cosine": float(cos[rows, own].mean()),
                       "margin": float(margin.mean()),
                       "right_phrase_probability": float(prob.mean())})
    margins = [p["margin"] for p in points]
    return {"points": points,
            "monotone": bool(all(a > b for a, b in zip(margins, margins[1:])))}


@torch.no_grad()
def masked_output_check(conditioner, singles: ClipSet, labels: list[str], seed: int = 0,
                        count: int = 300) -> dict:
    """Spearman correlation of the margin with the SIR and the SDR of separator-like outputs.

    ``count`` outputs of held-out 2-instrument mixtures (levels within +-6 dB) through
    random ratio masks (:func:`~bisep.train.clap_batches.masked_outputs`, sharpness 0.5-4,
    blend 0-1): their SIR and SDR against the first instrument are exact. No separator is
    needed, so this figure exists as soon as the encoder is trained.
    """
    own = torch.tensor([labels.index(lab[0]) for lab in singles.labels])
    if len(set(own.tolist())) < 2:
        return {"note": "needs clips of two instruments"}
    generator = torch.Generator().manual_seed(seed)
    audio = unit_rms(singles.audio)
    first = torch.randint(len(own), (count,), generator=generator)
    second = torch.randint(len(own), (count,), generator=generator)
    keep = own[first] != own[second]
    first, second = first[keep], second[keep]
    n = len(first)
    level = db(-6 + 12 * torch.rand(n, generator=generator))
    parts = torch.stack([audio[first], level[:, None] * audio[second]], dim=1)
    sharpness = torch.exp(np.log(0.5) + np.log(8.0) * torch.rand(n, generator=generator))
    blend = torch.rand(n, generator=generator)
    output, masked = masked_outputs(parts, sharpness, blend, generator)
    energy = masked.square().sum(dim=-1)
    sir = 10 * torch.log10(energy[:, 0].clamp_min(1e-12) / energy[:, 1].clamp_min(1e-12))
    error = (output - parts[:, 0]).square().sum(-1).clamp_min(1e-12)
    sdr = 10 * torch.log10(parts[:, 0].square().sum(-1) / error)
    emb = embed_clips(conditioner, unit_rms(output) * 0.05)
    text = F.normalize(class_text(conditioner, labels, None), dim=-1)
    rows = torch.arange(n)
    cos = emb @ text.T
    margin = (cos[rows, own[first]] - cos[rows, own[second]]).numpy()
    return {"outputs": n, "spearman_margin_sir": spearman(margin, sir.numpy()),
            "spearman_margin_sdr": spearman(margin, sdr.numpy())}


def two_source_items(items_file: Path, limit: int | None = None):
    """``(item, sorted source names)`` of the 2-source items with references of a
    ``bisep separate --list`` ``items.jsonl`` (the first ``limit`` lines)."""
    lines = [json.loads(x) for x in Path(items_file).read_text().splitlines() if x.strip()]
    for item in lines[:limit]:
        names = sorted(item.get("sources", {}))  # none for an item without stems
        if len(names) == 2:
            yield item, names


@torch.no_grad()
def source_margins(conditioner, paths: list[Path], names: list[str]) -> list[float]:
    """The margin of audio file ``i`` for ``names[i]``'s phrase against the other name's
    (two files of the same length, two names)."""
    from bisep.audio import read
    from bisep.data.prompts import phrase

    text = F.normalize(conditioner.embed_text([phrase(x) for x in names]), dim=-1)
    wavs = [torch.as_tensor(read(path, conditioner.sample_rate, mono=True)[0][0])
            for path in paths]
    cos = F.normalize(conditioner.embed_audio(torch.stack(wavs)), dim=-1) @ text.T
    return [float(cos[i, i] - cos[i, 1 - i]) for i in range(2)]


def _per_output_sdr(scores_csv: Path) -> dict[tuple[str, str], float]:
    with open(scores_csv, newline="") as handle:
        return {(row["item"], row["source"]): float(row["sdr"])
                for row in csv.DictReader(handle)}


@torch.no_grad()
def margin_sdr_correlation(conditioner, runs: dict[str, tuple[Path, Path]],
                           limit: int | None = None) -> dict:
    """The judge's margin against the SDR of real separated outputs.

    Args:
        conditioner: the query encoder to judge with.
        runs: ``name -> (items.jsonl of bisep separate --list, per_item.csv of bisep
            score)``; every 2-source item's two estimates are judged.
        limit: at most this many items per run.

    Returns:
        ``{"spearman": over every run's outputs together, "outputs": their number,
        "runs": {name: {"spearman", "outputs", "mean_margin", "mean_sdr"}}}``.
    """
    everything: list[tuple[float, float]] = []
    per_run = {}
    for name, (items_file, scores_csv) in runs.items():
        items_file, scores_csv = Path(items_file), Path(scores_csv)
        for path in (items_file, scores_csv):
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist: separate and score the run "
                                        f"'{name}' first (recipe stages 5-6)")
        sdr = _per_output_sdr(scores_csv)
        pairs = []
        for item, names in two_source_items(items_file, limit):
            found = source_margins(conditioner, [items_file.parent / item["estimates"][x]
                                                 for x in names], names)
            pairs += [(margin, sdr[(item["id"], source)])
                      for source, margin in zip(names, found) if (item["id"], source) in sdr]
        margins, sdrs = zip(*pairs) if pairs else ((), ())
        per_run[name] = {"spearman": spearman(margins, sdrs), "outputs": len(pairs),
                         "mean_margin": float(np.mean(margins)) if pairs else float("nan"),
                         "mean_sdr": float(np.mean(sdrs)) if pairs else float("nan")}
        everything += pairs
    margins, sdrs = zip(*everything) if everything else ((), ())
    return {"spearman": spearman(margins, sdrs), "outputs": len(everything), "runs": per_run}


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
