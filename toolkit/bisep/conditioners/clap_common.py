"""What the CLAP conditioners share (``laion_clap``, ``hf_clap``, and ``mini_clap`` for the
checks): a tokenizer check that catches an empty tokenizer, the audio input check, CLAP's
repeat-pad to its window, and the :class:`ClapConditioner` base (logit scale, tokenizing)."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from bisep.conditioners.base import Conditioner, ConditionerError, QueryError

# Two prompts that share no word: any working tokenizer gives them different ids.
_PROBE_PROMPTS = ("a dog barking", "violin music")


def check_tokenizer(tokenizer, vocab_size: int, folder: str | Path, fix: str) -> None:
    """Refuse a tokenizer that would silently turn every prompt into the same ids.

    ``transformers`` builds an *empty* byte-level BPE tokenizer (5 special tokens, no warning) when
    ``vocab.json``/``merges.txt`` are missing from the folder, or when the hub is offline and the
    files are not cached. Every prompt then encodes to the same few special-token ids and every
    text embedding is the same vector: training runs, and learns nothing.

    Args:
        tokenizer: a ``transformers`` tokenizer.
        vocab_size (int): rows of the text model's token-embedding table.
        folder: where the tokenizer was loaded from (for the message).
        fix (str): how to get a complete folder (for the message).

    Raises:
        ConditionerError: the tokenizer is empty, or has more tokens than the model has embeddings.
    """
    first, second = (tokenizer(p)["input_ids"] for p in _PROBE_PROMPTS)
    if first == second:
        raise ConditionerError(
            f"the tokenizer loaded from {folder} is empty ({len(tokenizer)} tokens): "
            f"{_PROBE_PROMPTS[0]!r} and {_PROBE_PROMPTS[1]!r} both encode to {first}, so every "
            f"prompt would get the same embedding. The folder lacks the tokenizer files "
            f"(vocab.json and merges.txt, or tokenizer.json). {fix}")
    if len(tokenizer) > vocab_size:
        raise ConditionerError(
            f"the tokenizer in {folder} has {len(tokenizer)} tokens but the text model embeds only "
            f"{vocab_size}: the tokenizer files do not belong to this model.")


def check_wav(wav: torch.Tensor) -> torch.Tensor:
    """``wav`` as a ``(batch, time)`` float tensor, or a :class:`QueryError` saying what is
    wrong."""
    if not torch.is_tensor(wav) or wav.dim() != 2:
        shape = tuple(wav.shape) if torch.is_tensor(wav) else type(wav).__name__
        raise QueryError(f"embed_audio expects a (batch, time) tensor, got {shape}; "
                         f"use wav[None] for a single clip")
    if wav.shape[0] == 0 or wav.shape[1] == 0:
        raise QueryError(f"embed_audio got an empty batch of shape {tuple(wav.shape)}")
    if not wav.is_floating_point():
        raise QueryError(f"embed_audio expects float samples in [-1, 1], got {wav.dtype}")
    return wav


def fit_to_clip(wav: torch.Tensor, clip_samples: int) -> torch.Tensor:
    """CLAP's ``repeatpad``: repeat a short clip as many whole times as fit, then zero-pad.

    Longer clips keep their first ``clip_samples`` samples. Differentiable.

    Shape:
        - wav: ``(batch, time)``.
        - output: ``(batch, clip_samples)``.
    """
    length = wav.shape[-1]
    if length >= clip_samples:
        return wav[:, :clip_samples]
    wav = wav.repeat(1, clip_samples // length)
    return F.pad(wav, (0, clip_samples - wav.shape[-1]))


class ClapConditioner(Conditioner):
    """What both CLAP wrappers share: a CLAP model with ``logit_scale_a``, a tokenizer
    padded to ``context_length``. Subclasses set ``model``, ``tokenizer`` and
    ``context_length``."""

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLAP's learned audio-side contrastive scale ``exp(logit_scale_a)``, detached (0-d).

        The paper's contrastive loss multiplies audio-text cosines by it instead of a tuned
        temperature (about 14.3 at initialisation, ``1 / 0.07``).
        """
        return self.model.logit_scale_a.detach().exp()

    def _tokenize(self, prompts) -> dict[str, torch.Tensor]:
        prompts = self.check_prompts(prompts)
        tokens = self.tokenizer(prompts, padding="max_length", truncation=True,
                                max_length=self.context_length, return_tensors="pt")
        device = self.model.logit_scale_a.device
        return {"input_ids": tokens["input_ids"].to(device),
                "attention_mask": tokens["attention_mask"].to(device)}
