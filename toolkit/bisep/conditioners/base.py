"""The interface every query encoder (conditioner) follows.

A conditioner maps text prompts and audio clips into one joint embedding space. The
separator is conditioned on these embeddings, and the weakly-supervised loss compares
the embedding of a separated output with the embedding of its prompt, so
:meth:`Conditioner.embed_audio` must stay differentiable with respect to its input
(gradients flow *through* the frozen encoder into the separator).
"""
from __future__ import annotations

import torch

from bisep.errors import UserError


class QueryError(ValueError, UserError):
    """A query that cannot be embedded: an empty text, a malformed audio example, a weight out
    of range, or a blend that cancels out. The message names the query and the fix."""


class ConditionerError(ValueError, UserError):
    """A conditioner that cannot be built from its settings or files: weights or a tokenizer
    that do not belong to the model, arguments that do not go together."""


class Conditioner(torch.nn.Module):
    """Base class: a frozen audio-text embedding model.

    Subclasses set ``embed_dim`` and ``sample_rate`` and implement :meth:`embed_text` and
    :meth:`embed_audio`; :meth:`embed_text_tokens` is optional (separators that
    cross-attend to token states use it when available).

    Frozen by default: parameters do not require grad and the module stays in eval mode
    even inside a model that is switched to train mode (a dropout-active text tower was a
    bug in the paper's code).
    """

    embed_dim: int
    sample_rate: int
    token_dim: int | None = None

    def __init__(self, frozen: bool = True):
        super().__init__()
        self.frozen = frozen

    def freeze(self) -> "Conditioner":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True):
        return super().train(False if self.frozen else mode)

    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings.

        Shape:
            output: ``(len(prompts), embed_dim)``.
        """
        raise NotImplementedError

    def embed_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """Unit-norm audio embeddings, differentiable w.r.t. ``wav``.

        Shape:
            - wav: ``(batch, time)`` at :attr:`sample_rate`.
            - output: ``(batch, embed_dim)``.
        """
        raise NotImplementedError

    def embed_text_tokens(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token hidden states and their padding mask (``True`` = real token).

        Shape:
            output: ``(len(prompts), tokens, token_dim)`` and ``(len(prompts), tokens)``.
        """
        raise NotImplementedError(f"{type(self).__name__} gives no token states")

    @staticmethod
    def check_prompts(prompts) -> list[str]:
        """A list of non-empty strings, or a :class:`QueryError` that says which one is wrong."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise QueryError("no query given: pass at least one text prompt")
        for i, p in enumerate(prompts):
            if not isinstance(p, str) or not p.strip():
                raise QueryError(f"query {i} is empty ({p!r}): give a text such as 'violin'")
        return prompts
