"""Waveform losses in Asteroid's shape families: negative SI-SDR, SD-SDR and SNR.

- ``pairwise_*``: ``(B, n_src, T)`` x ``(B, n_src, T)`` -> ``(B, n_src, n_src)``, entry
  ``[b, i, j]`` comparing estimate ``i`` with target ``j`` (input of :class:`PITLoss`).
- ``singlesrc_*``: ``(B, T)`` x ``(B, T)`` -> ``(B,)``.
- ``multisrc_*``: ``(B, n_src, T)`` x ``(B, n_src, T)`` -> ``(B,)`` (sources in the given
  order, averaged).

Definitions (Le Roux et al., "SDR - half-baked or well done?", 2019), with ``s`` the
target and ``ŝ`` the estimate, both zero-meaned by default:

- SI-SDR: ``s_t = <ŝ,s>/||s||² · s``, ``e = ŝ − s_t``;
- SD-SDR: ``s_t`` as SI-SDR, ``e = ŝ − s``;
- SNR: ``s_t = s``, ``e = ŝ − s``;

and ``SDR = 10 log10(||s_t||² / (||e||² + eps) + eps)``. The two ``eps`` keep silent
targets and perfect estimates finite (no NaN/inf), matching Asteroid's values.
"""
from __future__ import annotations

import torch

from bisep.losses._checks import check, promote, same_shape

EPS = 1e-8
KINDS = ("sisdr", "sdsdr", "snr")


def neg_sdr(estimate: torch.Tensor, target: torch.Tensor, kind: str = "sisdr",
            zero_mean: bool = True, eps: float = EPS) -> torch.Tensor:
    """Negative SDR of the given ``kind`` along the last axis (broadcasting).

    Shape:
        - estimate, target: ``(..., T)``, broadcastable.
        - output: the broadcast shape without ``T``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    estimate, target = promote(estimate, target)
    if zero_mean:
        estimate = estimate - estimate.mean(dim=-1, keepdim=True)
        target = target - target.mean(dim=-1, keepdim=True)
    if kind == "snr":
        projection = target
        error = estimate - target
    else:
        dot = (estimate * target).sum(dim=-1, keepdim=True)
        energy = (target ** 2).sum(dim=-1, keepdim=True) + eps
        projection = dot / energy * target
        error = estimate - (projection if kind == "sisdr" else target)
    ratio = (projection ** 2).sum(dim=-1) / ((error ** 2).sum(dim=-1) + eps)
    return -10 * torch.log10(ratio + eps)


def _pairwise(kind):
    def loss(est_targets: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check(est_targets, "est_targets", 3, "(B, n_src, T)")
        check(targets, "targets", 3, "(B, n_src, T)")
        same_shape(est_targets, targets, "est_targets and targets")
        return neg_sdr(est_targets.unsqueeze(2), targets.unsqueeze(1), kind)
    loss.__name__ = f"pairwise_neg_{kind}"
    loss.__doc__ = (f"Pairwise negative {kind.upper()}.\n\n    Shape:\n"
                    f"        - est_targets, targets: ``(B, n_src, T)``.\n"
                    f"        - output: ``(B, n_src, n_src)``, ``[b, i, j]`` = estimate i vs "
                    f"target j.\n")
    return loss


def _singlesrc(kind):
    def loss(est_target: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check(est_target, "est_target", 2, "(B, T)")
        check(target, "target", 2, "(B, T)")
        same_shape(est_target, target, "est_target and target")
        return neg_sdr(est_target, target, kind)
    loss.__name__ = f"singlesrc_neg_{kind}"
    loss.__doc__ = (f"Negative {kind.upper()} of one source.\n\n    Shape:\n"
                    f"        - est_target, target: ``(B, T)``.\n        - output: ``(B,)``.\n")
    return loss


def _multisrc(kind):
    def loss(est_targets: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check(est_targets, "est_targets", 3, "(B, n_src, T)")
        check(targets, "targets", 3, "(B, n_src, T)")
        same_shape(est_targets, targets, "est_targets and targets")
        return neg_sdr(est_targets, targets, kind).mean(dim=-1)
    loss.__name__ = f"multisrc_neg_{kind}"
    loss.__doc__ = (f"Negative {kind.upper()} averaged over sources in the given order.\n\n"
                    f"    Shape:\n        - est_targets, targets: ``(B, n_src, T)``.\n"
                    f"        - output: ``(B,)``.\n")
    return loss


pairwise_neg_sisdr = _pairwise("sisdr")
pairwise_neg_sdsdr = _pairwise("sdsdr")
pairwise_neg_snr = _pairwise("snr")
singlesrc_neg_sisdr = _singlesrc("sisdr")
singlesrc_neg_sdsdr = _singlesrc("sdsdr")
singlesrc_neg_snr = _singlesrc("snr")
multisrc_neg_sisdr = _multisrc("sisdr")
multisrc_neg_sdsdr = _multisrc("sdsdr")
multisrc_neg_snr = _multisrc("snr")


class NegSDRLoss(torch.nn.Module):
    """Negative SDR between estimated and reference waveforms, per query, averaged
    (plugin ``neg_sdr``); used when single-source waveforms exist.

    Args:
        kind: ``"sisdr"``, ``"sdsdr"`` or ``"snr"``.

    Shape:
        - source_estimates: ``(B, S, T)`` separated waveforms.
        - source_wavs: ``(B, S, T)`` references.
        - source_valid: ``(B, S)`` bool, ``False`` for padded slots.
        - output: scalar.
    """

    def __init__(self, kind: str = "sisdr"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind

    def forward(self, source_estimates, source_wavs, source_valid=None):
        check(source_estimates, "source_estimates", 3, "(B, S, T)")
        check(source_wavs, "source_wavs", 3, "(B, S, T)")
        same_shape(source_estimates, source_wavs, "source_estimates and source_wavs")
        per_source = neg_sdr(source_estimates, source_wavs, self.kind)
        if source_valid is None:
            return per_source.mean()
        weights = source_valid.to(per_source.dtype)
        return (per_source * weights).sum() / weights.sum().clamp(min=1)
