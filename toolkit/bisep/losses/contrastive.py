"""The bi-modal contrastive loss (L_CNT): separated audio should embed near its prompt.

Paper (``docs/paper.md#l_cnt``): for each mixture ``n`` of a
mixture of mixtures, stack the B·K (item, phrase) pairs, embed each separated output
with the frozen audio tower (``a``) and each phrase with the text tower (``t``), and
take a cross-entropy over ``s · a tᵀ`` whose positives are the matching pairs.

Beyond the paper's code (``docs/paper.md#p4-contrastive-details``), pairs whose *texts are identical* ("The sound of
violin" in two items) are all positives rather than false negatives, padded phrases are
masked out, and the text->audio direction can be added (``symmetric``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bisep.losses._checks import check, promote, reduce

# Two prompts whose embeddings have a cosine above this count as the same text: a frozen
# deterministic text tower maps identical strings to identical vectors, so only exact
# duplicates pass (different prompts are far below it).
SAME_TEXT_COSINE = 1.0 - 1e-5


def same_text_mask(text_emb: torch.Tensor) -> torch.Tensor:
    """Which pairs of rows hold the same prompt (identical embeddings).

    Shape:
        - text_emb: ``(M, D)``.
        - output: ``(M, M)`` bool, ``True`` on the diagonal.
    """
    unit = F.normalize(text_emb.detach().float(), dim=-1)
    return unit @ unit.T >= SAME_TEXT_COSINE


def bimodal_contrastive_loss(audio_emb: torch.Tensor, text_emb: torch.Tensor,
                             logit_scale: float | torch.Tensor,
                             positive_mask: torch.Tensor | None = None,
                             valid: torch.Tensor | None = None, symmetric: bool = False,
                             reduction: str = "mean") -> torch.Tensor:
    """InfoNCE between audio embeddings and the text embeddings of their prompts.

    Row ``i`` of ``audio_emb`` was separated with prompt ``i``. For each valid row, the
    loss is ``-log(Σ_{j∈P(i)} exp(s·cos(a_i,t_j)) / Σ_{j valid} exp(s·cos(a_i,t_j)))``,
    where ``P(i)`` are the positives of row ``i`` (by default: the rows with the same
    prompt text, which includes ``i``). This is the audio→text term of the paper; with
    ``symmetric=True`` the text→audio term is averaged in.

    Args:
        audio_emb: embeddings of the separated outputs (normalised here).
        text_emb: embeddings of the prompts, row-aligned with ``audio_emb``.
        logit_scale: ``s = 1/temperature``; the paper uses CLAP's frozen
            ``exp(logit_scale_a)``.
        positive_mask: ``(M, M)`` bool, ``True`` where text ``j`` is a positive for audio
            ``i``. Default: :func:`same_text_mask`.
        valid: ``(M,)`` bool, ``False`` for padded/absent prompts (neither anchor nor
            negative). Default: all valid.
        symmetric: also the text→audio cross-entropy.
        reduction: ``"mean"`` over valid rows, ``"sum"``, or ``"none"`` (per row, 0 for
            invalid rows).

    Shape:
        - audio_emb: ``(M, D)``.
        - text_emb: ``(M, D)``.
        - output: scalar, or ``(M,)`` with ``reduction="none"``.

    Returns:
        The loss (lower is better; ``log M`` at chance for distinct prompts).
    """
    check(audio_emb, "audio_emb", 2, "(M, D)")
    check(text_emb, "text_emb", 2, "(M, D)")
    if audio_emb.shape != text_emb.shape:
        raise TypeError(f"audio_emb and text_emb must both be (M, D) with the same M and D, "
                        f"got {tuple(audio_emb.shape)} and {tuple(text_emb.shape)}")
    m = audio_emb.shape[0]
    if valid is None:
        valid = torch.ones(m, dtype=torch.bool, device=audio_emb.device)
    check(valid, "valid", 1, f"({m},)")
    if positive_mask is None:
        positive_mask = same_text_mask(text_emb)
    check(positive_mask, "positive_mask", 2, f"({m}, {m})")
    if positive_mask.shape != (m, m) or valid.shape != (m,):
        raise TypeError(f"positive_mask must be ({m}, {m}) and valid ({m},), got "
                        f"{tuple(positive_mask.shape)} and {tuple(valid.shape)}")
    audio_emb, text_emb = promote(audio_emb, text_emb)
    valid = valid.bool()
    positive = positive_mask.bool() & valid[None, :] & valid[:, None]
    if not bool(positive.any(dim=1)[valid].all()):
        raise ValueError("every valid row needs at least one valid positive in positive_mask "
                         "(normally its own diagonal entry)")
    a = F.normalize(audio_emb, dim=-1, eps=1e-8)
    t = F.normalize(text_emb, dim=-1, eps=1e-8)
    logits = logit_scale * (a @ t.T)
    per_row = _multi_positive_nce(logits, positive, valid)
    if symmetric:
        per_row = 0.5 * (per_row + _multi_positive_nce(logits.T, positive.T, valid))
    if reduction == "mean":
        return per_row.sum() / valid.sum().clamp(min=1)
    return reduce(per_row, reduction)


def _multi_positive_nce(logits: torch.Tensor, positive: torch.Tensor,
                        valid: torch.Tensor) -> torch.Tensor:
    """Per-row ``-log(Σ_pos softmax)``; 0 for invalid rows."""
    # -inf (not a large negative) removes padded columns exactly; every valid row has at
    # least its own diagonal as a positive, so no row is all -inf.
    neg_inf = torch.finfo(logits.dtype).min
    all_cols = logits.masked_fill(~valid[None, :], neg_inf)
    pos_cols = logits.masked_fill(~positive, neg_inf)
    per_row = torch.logsumexp(all_cols, dim=-1) - torch.logsumexp(pos_cols, dim=-1)
    return torch.where(valid, per_row, torch.zeros_like(per_row))


class BiModalContrastiveLoss(torch.nn.Module):
    """L_CNT over a mixture of mixtures, one InfoNCE per mixture index ``n`` (summed).

    Args:
        temperature: fixed temperature; ``None`` uses the conditioner's own logit scale
            (the paper: CLAP's frozen ``exp(logit_scale_a)``), passed as ``logit_scale``.
        symmetric: add the text→audio direction.
        pool_mixtures: ``False`` (paper) contrasts the B·K phrases of each mixture index
            separately and sums over ``n``; ``True`` contrasts all B·N·K phrases at once.

    Shape:
        - phrase_audio_emb: ``(B, N, K, D)`` embeddings of the separated phrase outputs.
        - phrase_text_emb: ``(B, N, K, D)`` embeddings of the phrases.
        - phrase_valid: ``(B, N, K)`` bool, ``False`` for padding.
        - output: scalar.
    """

    def __init__(self, temperature: float | None = None, symmetric: bool = False,
                 pool_mixtures: bool = False):
        super().__init__()
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.symmetric = symmetric
        self.pool_mixtures = pool_mixtures

    def forward(self, phrase_audio_emb: torch.Tensor, phrase_text_emb: torch.Tensor,
                phrase_valid: torch.Tensor | None = None,
                logit_scale: float | torch.Tensor | None = None) -> torch.Tensor:
        check(phrase_audio_emb, "phrase_audio_emb", 4, "(B, N, K, D)")
        check(phrase_text_emb, "phrase_text_emb", 4, "(B, N, K, D)")
        if phrase_audio_emb.shape != phrase_text_emb.shape:
            raise TypeError(f"phrase_audio_emb and phrase_text_emb must have the same shape "
                            f"(B, N, K, D), got {tuple(phrase_audio_emb.shape)} and "
                            f"{tuple(phrase_text_emb.shape)}")
        b, n, k, d = phrase_audio_emb.shape
        if phrase_valid is None:
            phrase_valid = torch.ones(b, n, k, dtype=torch.bool, device=phrase_audio_emb.device)
        if self.temperature is not None:
            scale = 1.0 / self.temperature
        elif logit_scale is not None:
            scale = logit_scale.detach() if torch.is_tensor(logit_scale) else logit_scale
        else:
            raise ValueError("BiModalContrastiveLoss needs a temperature or the conditioner's "
                             "logit_scale; set criterions[].conf.temperature")
        # Phrase-major rows (k, b) as in the paper's code; the order does not change the loss.
        audio = phrase_audio_emb.permute(1, 2, 0, 3)
        text = phrase_text_emb.permute(1, 2, 0, 3)
        valid = phrase_valid.permute(1, 2, 0)
        if self.pool_mixtures:
            return bimodal_contrastive_loss(audio.reshape(-1, d), text.reshape(-1, d), scale,
                                            valid=valid.reshape(-1), symmetric=self.symmetric)
        return sum(bimodal_contrastive_loss(audio[i].reshape(-1, d), text[i].reshape(-1, d),
                                            scale, valid=valid[i].reshape(-1),
                                            symmetric=self.symmetric)
                   for i in range(n))
