"""Losses that train an audio-text query encoder (``bisep train-clap``), not a separator.

- :func:`subset_positives`, :func:`same_labels`: the positive masks of the multi-positive
  batch InfoNCE (:func:`bisep.losses.contrastive.bimodal_contrastive_loss`) of the
  ``subset`` objective.
- :func:`multi_label_loss`: each instrument in a clip against the absent ones.
- :func:`energy_share_loss`: the ``energy`` objective. The target of a clip is the share of
  its energy that each instrument holds, so a calibrated encoder's log-odds between two
  instruments estimate their energy ratio in the clip, i.e. the signal-to-interference
  ratio of a separated output.
"""
from __future__ import annotations

import torch

from bisep.losses._checks import check


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
        - output: scalar.
    """
    neg_inf = torch.finfo(logits.dtype).min
    negatives = torch.logsumexp(logits.masked_fill(targets, neg_inf), dim=-1, keepdim=True)
    per_pair = torch.logaddexp(logits, negatives) - logits
    return per_pair[targets].mean()


def energy_share_loss(logits: torch.Tensor, energies: torch.Tensor,
                      power: float = 1.0) -> torch.Tensor:
    """Cross-entropy against the instruments' shares of each clip's energy.

    The target distribution of clip ``i`` is ``q_ic = e_ic^p / Σ_c e_ic^p`` (``e_ic``: the
    energy of instrument ``c``'s part of the clip). With ``p = 1`` the optimum puts
    ``l_ia - l_ib = log(e_ia / e_ib)``: the log-odds between two instruments are their energy
    ratio (``ln 10 / 10`` nats per dB of signal-to-interference ratio), which is what lets
    the encoder judge how much of an interferer a separated output still holds.

    Args:
        logits: scaled cosines with one caption per class.
        energies: non-negative energies per class; every row needs one positive entry.
        power: ``p`` above (``< 1`` flattens the targets, ``> 1`` sharpens them).

    Shape:
        - logits: ``(M, C)``.
        - energies: ``(M, C)``.
        - output: scalar (mean over clips).
    """
    check(logits, "logits", 2, "(M, C)")
    check(energies, "energies", 2, "(M, C)")
    if logits.shape != energies.shape:
        raise TypeError(f"logits and energies must have the same (M, C) shape, got "
                        f"{tuple(logits.shape)} and {tuple(energies.shape)}")
    if power <= 0:
        raise ValueError(f"power must be > 0, got {power}")
    weights = energies.detach().clamp_min(0).to(logits.dtype) ** power
    total = weights.sum(dim=-1, keepdim=True)
    if not bool((total > 0).all()):
        raise ValueError("every clip needs energy in at least one class")
    return -(weights / total * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
