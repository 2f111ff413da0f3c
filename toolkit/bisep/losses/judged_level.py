"""The judge's energy shares as level targets for the phrase outputs (not in the paper).

A query encoder trained with the ``energy`` objective (``bisep train-clap``, docs/conditioners.md)
estimates each instrument's share of a clip's energy: the softmax of its scaled cosines with
the instruments' captions. :func:`judged_level_loss` asks it about each *real* mixture
``X_n`` of a mixture of mixtures, over the phrases that name ``X_n``'s instruments, and asks
each phrase output to carry that share of ``X_n``'s energy. The judge only ever sees real
mixtures here, never the separator's outputs, so the separator cannot learn around it; an
output that takes a mixture-mate's instrument as well as its own is too loud.
"""
from __future__ import annotations

import torch

from bisep.losses._checks import check, phrase_shapes, promote, reduce

# Energies below this fraction of the mixture's count as this fraction: log(0) would give
# a silent output an infinite loss and no useful gradient.
ENERGY_FLOOR = 1e-6


def judged_shares(mixture_audio_emb: torch.Tensor, phrase_text_emb: torch.Tensor,
                  logit_scale: torch.Tensor, phrase_valid: torch.Tensor) -> torch.Tensor:
    """Each phrase's share of its mixture's energy, as the judge estimates it (detached).

    ``softmax_k(s · cos(a_n, t_{n,k}))`` over the valid phrases of mixture ``n``; 0 for the
    others.

    Shape:
        - mixture_audio_emb: ``(B, N, D)``; phrase_text_emb: ``(B, N, K, D)``;
          logit_scale: ``()``; phrase_valid: ``(B, N, K)`` bool.
        - output: ``(B, N, K)``, summing to 1 over ``K``.
    """
    check(mixture_audio_emb, "mixture_audio_emb", 3, "(B, N, D)")
    check(phrase_text_emb, "phrase_text_emb", 4, "(B, N, K, D)")
    if phrase_text_emb.shape[:2] != mixture_audio_emb.shape[:2] or \
            phrase_text_emb.shape[-1] != mixture_audio_emb.shape[-1]:
        raise TypeError(f"phrase_text_emb {tuple(phrase_text_emb.shape)} does not match "
                        f"mixture_audio_emb {tuple(mixture_audio_emb.shape)}: need (B, N, K, D) "
                        f"and (B, N, D)")
    if phrase_valid.shape != phrase_text_emb.shape[:3]:
        raise TypeError(f"phrase_valid must be {tuple(phrase_text_emb.shape[:3])}, got "
                        f"{tuple(phrase_valid.shape)}")
    if not bool(phrase_valid.any(dim=-1).all()):
        raise ValueError("every mixture needs at least one valid phrase")
    with torch.no_grad():
        audio, text, scale = promote(mixture_audio_emb, phrase_text_emb, logit_scale)
        audio = torch.nn.functional.normalize(audio, dim=-1)
        text = torch.nn.functional.normalize(text, dim=-1)
        logits = scale * torch.einsum("bnd,bnkd->bnk", audio, text)
        return logits.masked_fill(~phrase_valid, float("-inf")).softmax(dim=-1)


def judged_level_loss(phrase_masks: torch.Tensor, mom_mag: torch.Tensor,
                      mixture_mags: torch.Tensor, mixture_audio_emb: torch.Tensor,
                      phrase_text_emb: torch.Tensor, logit_scale: torch.Tensor,
                      phrase_valid: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Phrase outputs at the level the judge gives their instrument in the mixture.

    ``mean_{valid (n,k)} | log E(M_{n,k} ⊙ |X|) − log(π_{n,k} · E(|X_n|)) |``, with
    ``E(·)`` the energy summed over bins and ``π`` :func:`judged_shares`. An absolute
    error of log-energies: 1 is a factor e (4.3 dB) of energy, whatever the mixture's
    loudness.

    Args:
        phrase_masks: masks predicted for each phrase ``p_{n,k}``.
        mom_mag: magnitude of the mixture of mixtures ``|X|``.
        mixture_mags: magnitudes of the mixtures ``|X_n|``.
        mixture_audio_emb: the judge's embeddings of the mixtures' audio.
        phrase_text_emb: the judge's embeddings of the phrases.
        logit_scale: the judge's logit scale.
        phrase_valid: ``True`` on the first copy of each phrase (padding is ignored).
        reduction: over the batch: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - phrase_masks: ``(B, N, K, F, T)``; mom_mag: ``(B, F, T)``;
          mixture_mags: ``(B, N, F, T)``; mixture_audio_emb: ``(B, N, D)``;
          phrase_text_emb: ``(B, N, K, D)``; logit_scale: ``()``;
          phrase_valid: ``(B, N, K)`` bool.
        - output: scalar, or ``(B,)`` with ``reduction="none"``.
    """
    phrase_shapes(phrase_masks, mom_mag, mixture_mags)
    shares = judged_shares(mixture_audio_emb, phrase_text_emb, logit_scale, phrase_valid)
    phrase_masks, mom_mag, mixture_mags, shares = promote(phrase_masks, mom_mag, mixture_mags,
                                                          shares)
    output_energy = (phrase_masks * mom_mag[:, None, None]).square().sum(dim=(-2, -1))
    mixture_energy = mixture_mags.square().sum(dim=(-2, -1)).unsqueeze(-1)      # (B, N, 1)
    floor = ENERGY_FLOOR * mixture_energy + torch.finfo(output_energy.dtype).tiny
    error = ((output_energy + floor).log() - (shares * mixture_energy + floor).log()).abs()
    valid = phrase_valid.to(error.dtype)
    per_item = (error * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2))
    return reduce(per_item, reduction)


class JudgedLevelLoss(torch.nn.Module):
    """Module form of :func:`judged_level_loss` (plugin ``judged_level``).

    Shape:
        - phrase_masks: ``(B, N, K, F, T)``; mom_mag: ``(B, F, T)``;
          mixture_mags: ``(B, N, F, T)``; mixture_audio_emb: ``(B, N, D)``;
          phrase_text_emb: ``(B, N, K, D)``; logit_scale: ``()``;
          phrase_valid: ``(B, N, K)``; output: scalar.
    """

    def forward(self, phrase_masks, mom_mag, mixture_mags, mixture_audio_emb, phrase_text_emb,
                logit_scale, phrase_valid):
        return judged_level_loss(phrase_masks, mom_mag, mixture_mags, mixture_audio_emb,
                                 phrase_text_emb, logit_scale, phrase_valid)
