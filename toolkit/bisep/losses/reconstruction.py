"""Magnitude-domain reconstruction losses of the paper (all weighted L1 on |STFT|).

- :func:`mix_separate_loss` (L_UNS): the unsupervised mix-and-separate baseline; each
  mixture of a mixture of mixtures is recovered from its mixture-level prompt.
- :func:`consistency_reconstruction_loss` (L_CRL): the phrase outputs of each mixture
  must add back up to that mixture.
- :func:`supervised_separation_loss` (L_SUP): single-source targets, when they exist
  (supervised and semi-supervised training).
- :func:`containment_loss` (not in the paper): each phrase output must fit inside its own
  mixture; a one-sided relative of L_CRL that needs mixtures only.

All share one weighting, ``W = clip(log(1 + |X|), 1e-3, 10)``
(``docs/paper.md#loudness-weight``), which weighs loud bins more without letting a few peaks
dominate.
"""
from __future__ import annotations

import torch

from bisep.losses._checks import check, phrase_shapes, promote, reduce, same_shape

WEIGHT_MIN, WEIGHT_MAX = 1e-3, 10.0


def loudness_weight(mag: torch.Tensor) -> torch.Tensor:
    """``clip(log1p(|X|), 1e-3, 10)``, detached (a weight, not a target).

    Shape:
        any shape -> the same shape.
    """
    return torch.log1p(mag.detach()).clamp(WEIGHT_MIN, WEIGHT_MAX)


def weighted_l1(estimate: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
    """Mean over the last two (freq, frames) axes of ``weight · |estimate − target|``.

    Shape:
        - estimate, target, weight: ``(..., F, T)`` (weight broadcastable).
        - output: ``(...)``.
    """
    return (weight * (estimate - target).abs()).mean(dim=(-2, -1))


def _masked_targets_loss(masks, mix_mag, target_mags, valid, weight_from_targets, names):
    mask_name, target_name, valid_name = names
    check(masks, mask_name, 4, "(B, S, F, T)")
    check(mix_mag, "mix_mag", 3, "(B, F, T)")
    check(target_mags, target_name, 4, "(B, S, F, T)")
    same_shape(masks, target_mags, f"{mask_name} and {target_name}")
    if mix_mag.shape != (masks.shape[0], *masks.shape[2:]):
        raise TypeError(f"mix_mag must be (B, F, T) = ({masks.shape[0]}, {masks.shape[2]}, "
                        f"{masks.shape[3]}), got {tuple(mix_mag.shape)}")
    masks, mix_mag, target_mags = promote(masks, mix_mag, target_mags)
    estimate = masks * mix_mag.unsqueeze(1)
    weight = loudness_weight(target_mags if weight_from_targets else mix_mag.unsqueeze(1))
    per_source = weighted_l1(estimate, target_mags, weight)  # (B, S)
    if valid is not None:
        check(valid, valid_name, 2, "(B, S)")
        per_source = per_source * valid.to(per_source.dtype)
    return per_source.sum(dim=1)


def mix_separate_loss(mixture_masks: torch.Tensor, mom_mag: torch.Tensor,
                      mixture_mags: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """L_UNS: recover each mixture of the mixture of mixtures from its mixture prompt.

    ``Σ_n mean_{f,t}[ W ⊙ |M(c_n) ⊙ |X| − |X_n|| ]`` with ``W`` from the mixture of
    mixtures ``|X|`` (docs/paper.md#l_uns).

    Args:
        mixture_masks: masks predicted for the mixture-level prompts ``c_n``.
        mom_mag: magnitude of the mixture of mixtures ``|X|``.
        mixture_mags: magnitudes of its mixtures ``|X_n|``.
        reduction: over the batch: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - mixture_masks: ``(B, N, F, T)``.
        - mom_mag: ``(B, F, T)``.
        - mixture_mags: ``(B, N, F, T)``.
        - output: scalar, or ``(B,)`` with ``reduction="none"``.
    """
    per_item = _masked_targets_loss(mixture_masks, mom_mag, mixture_mags, None, False,
                                    ("mixture_masks", "mixture_mags", ""))
    return reduce(per_item, reduction)


def supervised_separation_loss(source_masks: torch.Tensor, mom_mag: torch.Tensor,
                               source_mags: torch.Tensor, source_valid: torch.Tensor | None = None,
                               reduction: str = "mean") -> torch.Tensor:
    """L_SUP: mix-and-separate with single-source targets (docs/paper.md#l_sup).

    ``Σ_s valid_s · mean_{f,t}[ W ⊙ |M(p_s) ⊙ |X| − |S_s|| ]``, ``W`` from ``|X|``.

    Args:
        source_masks: masks predicted for each source's prompt.
        mom_mag: magnitude of the mixture the sources were summed into.
        source_mags: magnitudes of the single-source targets.
        source_valid: ``False`` for padded source slots (items with fewer sources).
        reduction: over the batch.

    Shape:
        - source_masks: ``(B, S, F, T)``.
        - mom_mag: ``(B, F, T)``.
        - source_mags: ``(B, S, F, T)``.
        - source_valid: ``(B, S)`` bool.
        - output: scalar, or ``(B,)``.
    """
    per_item = _masked_targets_loss(source_masks, mom_mag, source_mags, source_valid, False,
                                    ("source_masks", "source_mags", "source_valid"))
    return reduce(per_item, reduction)


def _phrase_inputs(phrase_masks, mom_mag, mixture_mags, phrase_weights):
    """Checks the inputs of the phrase-level terms; fills default weights; promotes."""
    b, n, k, _, _ = phrase_shapes(phrase_masks, mom_mag, mixture_mags)
    if phrase_weights is None:
        phrase_weights = phrase_masks.new_ones(b, n, k)
    check(phrase_weights, "phrase_weights", 3, f"({b}, {n}, {k})")
    phrase_masks, mom_mag, mixture_mags, phrase_weights = promote(
        phrase_masks, mom_mag, mixture_mags, phrase_weights)
    return phrase_masks, mom_mag, mixture_mags, phrase_weights


def consistency_reconstruction_loss(phrase_masks: torch.Tensor, mom_mag: torch.Tensor,
                                    mixture_mags: torch.Tensor,
                                    phrase_weights: torch.Tensor | None = None,
                                    reduction: str = "mean") -> torch.Tensor:
    """L_CRL: the phrase outputs of each mixture must re-sum to that mixture.

    ``Σ_n mean_{f,t}[ W_n ⊙ |Σ_k w_{n,k} M_{n,k} ⊙ |X| − |X_n|| ]`` with
    ``W_n = clip(log1p|X_n|, 1e-3, 10)`` (docs/paper.md#l_crl). ``w_{n,k}`` is
    ``1/copies`` for a phrase repeated to fill K slots and 0 for an absent phrase.

    Args:
        phrase_masks: masks predicted for each phrase ``p_{n,k}``.
        mom_mag: magnitude of the mixture of mixtures ``|X|``.
        mixture_mags: magnitudes of the mixtures ``|X_n|``.
        phrase_weights: ``w_{n,k}``; default all ones.
        reduction: over the batch.

    Shape:
        - phrase_masks: ``(B, N, K, F, T)``.
        - mom_mag: ``(B, F, T)``.
        - mixture_mags: ``(B, N, F, T)``.
        - phrase_weights: ``(B, N, K)``.
        - output: scalar, or ``(B,)``.
    """
    phrase_masks, mom_mag, mixture_mags, phrase_weights = _phrase_inputs(
        phrase_masks, mom_mag, mixture_mags, phrase_weights)
    summed_mask = (phrase_weights[..., None, None] * phrase_masks).sum(dim=2)  # (B, N, F, T)
    estimate = summed_mask * mom_mag.unsqueeze(1)
    per_item = weighted_l1(estimate, mixture_mags, loudness_weight(mixture_mags)).sum(dim=1)
    return reduce(per_item, reduction)


def containment_loss(phrase_masks: torch.Tensor, mom_mag: torch.Tensor,
                     mixture_mags: torch.Tensor, phrase_weights: torch.Tensor | None = None,
                     reduction: str = "mean") -> torch.Tensor:
    """Each phrase output must fit inside the mixture its phrase came from.

    ``Σ_n Σ_k w_{n,k} mean_{f,t}[ W ⊙ relu(M_{n,k} ⊙ |X| − |X_n|) ]`` with ``W`` from the
    mixture of mixtures ``|X|``. The parts of a mixture of mixtures have disjoint labels, so
    whatever a phrase output holds beyond its own mixture ``X_n`` belongs to another
    mixture: it is leakage, known without single-source audio. Unlike L_CRL, nothing
    rewards an output for taking its mixture's other instruments: an output that stays
    inside ``|X_n|`` costs nothing, however it shares ``X_n`` with the other phrases
    (that is left to the judge's term).

    Args:
        phrase_masks: masks predicted for each phrase ``p_{n,k}``.
        mom_mag: magnitude of the mixture of mixtures ``|X|``.
        mixture_mags: magnitudes of the mixtures ``|X_n|``.
        phrase_weights: ``w_{n,k}``, ``1/copies`` for a phrase repeated to fill K and 0 for
            an absent phrase; default all ones.
        reduction: over the batch: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - phrase_masks: ``(B, N, K, F, T)``.
        - mom_mag: ``(B, F, T)``.
        - mixture_mags: ``(B, N, F, T)``.
        - phrase_weights: ``(B, N, K)``.
        - output: scalar, or ``(B,)`` with ``reduction="none"``.
    """
    phrase_masks, mom_mag, mixture_mags, phrase_weights = _phrase_inputs(
        phrase_masks, mom_mag, mixture_mags, phrase_weights)
    estimate = phrase_masks * mom_mag[:, None, None]                    # (B, N, K, F, T)
    excess = torch.relu(estimate - mixture_mags.unsqueeze(2))
    per_phrase = (loudness_weight(mom_mag)[:, None, None] * excess).mean(dim=(-2, -1))
    return reduce((phrase_weights * per_phrase).sum(dim=(1, 2)), reduction)


class MixSeparateLoss(torch.nn.Module):
    """Module form of :func:`mix_separate_loss` (plugin ``mix_separate``).

    Shape:
        - mixture_masks: ``(B, N, F, T)``; mom_mag: ``(B, F, T)``;
          mixture_mags: ``(B, N, F, T)``; output: scalar.
    """

    def forward(self, mixture_masks, mom_mag, mixture_mags):
        return mix_separate_loss(mixture_masks, mom_mag, mixture_mags)


class SupervisedSeparationLoss(torch.nn.Module):
    """Module form of :func:`supervised_separation_loss` (plugin ``supervised``).

    Shape:
        - source_masks: ``(B, S, F, T)``; mom_mag: ``(B, F, T)``;
          source_mags: ``(B, S, F, T)``; source_valid: ``(B, S)``; output: scalar.
    """

    def forward(self, source_masks, mom_mag, source_mags, source_valid=None):
        return supervised_separation_loss(source_masks, mom_mag, source_mags, source_valid)


class ConsistencyReconstructionLoss(torch.nn.Module):
    """Module form of :func:`consistency_reconstruction_loss`
    (plugin ``consistency_reconstruction``).

    Shape:
        - phrase_masks: ``(B, N, K, F, T)``; mom_mag: ``(B, F, T)``;
          mixture_mags: ``(B, N, F, T)``; phrase_weights: ``(B, N, K)``; output: scalar.
    """

    def forward(self, phrase_masks, mom_mag, mixture_mags, phrase_weights=None):
        return consistency_reconstruction_loss(phrase_masks, mom_mag, mixture_mags,
                                               phrase_weights)


class ContainmentLoss(torch.nn.Module):
    """Module form of :func:`containment_loss` (plugin ``containment``).

    Shape:
        - phrase_masks: ``(B, N, K, F, T)``; mom_mag: ``(B, F, T)``;
          mixture_mags: ``(B, N, F, T)``; phrase_weights: ``(B, N, K)``; output: scalar.
    """

    def forward(self, phrase_masks, mom_mag, mixture_mags, phrase_weights=None):
        return containment_loss(phrase_masks, mom_mag, mixture_mags, phrase_weights)
