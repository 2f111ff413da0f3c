"""The named tensors a training step offers to loss terms, each computed on first use.

A loss term (a ``loss`` plugin) asks for its inputs by the names of its ``forward``
arguments; :class:`StepInputs` computes only what the configured terms ask for. A
weakly-supervised step therefore never builds source targets, and an unsupervised one never
runs the conditioner's audio tower. Each input is computed once per step, whichever terms
read it, and a phrase repeated within an item is separated, synthesized and embedded once
(:class:`PhraseRows`).

Names and shapes (``B`` batch, ``N`` mixtures per mixture of mixtures, ``K`` phrases per
mixture, ``S`` single-source slots, ``F``/``T`` STFT bins/frames, ``L`` samples, ``D``
embedding size) are listed in :data:`PROVIDED`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch

from bisep.audio import resample_tensor
from bisep.separators.base import Conditioning

PROVIDED: dict[str, str] = {
    "mom_mag": "(B, F, T) magnitude of the mixture of mixtures",
    "mixture_mags": "(B, N, F, T) magnitudes of its mixtures",
    "mixture_masks": "(B, N, F, T) masks predicted for the mixture prompts",
    "phrase_masks": "(B, N, K, F, T) masks predicted for the source phrases",
    "phrase_weights": "(B, N, K) 1 / copies of a phrase repeated to fill K",
    "phrase_valid": "(B, N, K) True on the first copy of each phrase",
    "phrase_text_emb": "(B, N, K, D) conditioner embeddings of the phrases",
    "phrase_audio_emb": "(B, N, K, D) conditioner embeddings of the separated phrase audio",
    "mixture_audio_emb": "(B, N, D) conditioner embeddings of the mixtures' own audio (no "
                         "gradient)",
    "logit_scale": "() the conditioner's learned logit scale",
    "source_masks": "(B, S, F, T) masks predicted for the single-source prompts",
    "source_mags": "(B, S, F, T) magnitudes of the single-source targets",
    "source_valid": "(B, S) True where a single-source target exists",
    "source_estimates": "(B, S, L) separated waveforms for the single-source prompts",
    "source_wavs": "(B, S, L) single-source target waveforms",
}
# The inputs that need single-source audio: a mode that has none must not ask for them.
SOURCE_INPUTS = frozenset({"source_masks", "source_mags", "source_estimates", "source_wavs"})
# Shared steps several inputs are computed from.
INTERMEDIATE = frozenset({"spec", "features", "phrase_conditioning", "phrase_rows",
                          "row_masks", "row_wavs", "phrase_wavs"})
PHRASE_INPUTS = frozenset({"phrase_masks", "phrase_audio_emb", "phrase_text_emb"})


def batch_conditioning(embed_prompts: Callable[[list[str]], Conditioning],
                       prompts: list[list[str]]) -> Conditioning:
    """Conditioning ``(B, Q, ...)`` for ``Q`` prompts per batch item (``prompts[b][q]``)."""
    cond = embed_prompts([p for item in prompts for p in item])
    batch, per_item = len(prompts), len(prompts[0])

    def per_batch(x):
        return None if x is None else x.reshape(batch, per_item, *x.shape[2:])

    return Conditioning(per_batch(cond.embedding), per_batch(cond.tokens),
                        per_batch(cond.token_mask))


@dataclass
class PhraseRows:
    """The distinct queries among a batch's ``B·N·K`` phrase slots.

    A phrase repeated to fill K slots, or named by two mixtures of one MoM, asks the same
    separator the same question about the same mixture: its mask, waveform and audio
    embedding are computed once, for its row, and every slot reads its row.

    Attributes:
        items: ``(R,)`` int64, the batch item of each row.
        prompts: the R prompts.
        of_slot: ``(B·N·K,)`` int64, the row of each slot.
    """

    items: torch.Tensor
    prompts: list[str]
    of_slot: torch.Tensor


def phrase_rows(phrases: list[list[list[str]]], share: bool) -> PhraseRows:
    """The rows of :class:`PhraseRows` for ``phrases[b][n][k]``; with ``share=False`` every
    slot is its own row."""
    items, prompts, of_slot, seen = [], [], [], {}
    for b, item in enumerate(phrases):
        for prompt in (p for mix in item for p in mix):
            key = (b, prompt) if share else len(of_slot)
            if key not in seen:
                seen[key] = len(prompts)
                items.append(b)
                prompts.append(prompt)
            of_slot.append(seen[key])
    return PhraseRows(torch.tensor(items), prompts, torch.tensor(of_slot))


def term_inputs(term: torch.nn.Module, name: str) -> tuple[list[str], list[str]]:
    """The required and optional input names of a loss term's ``forward``.

    Raises:
        ValueError: a required argument is not one of :data:`PROVIDED`.
    """
    required, optional = [], []
    for param in inspect.signature(term.forward).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is param.empty:
            if param.name not in PROVIDED:
                raise ValueError(
                    f"loss '{name}' ({type(term).__name__}.forward) needs an argument "
                    f"'{param.name}' that the trainer does not provide; a loss term names its "
                    f"inputs after these: {', '.join(PROVIDED)} (docs/training.md)")
            required.append(param.name)
        elif param.name in PROVIDED:
            optional.append(param.name)
    return required, optional


class StepInputs:
    """Lazily computed loss inputs for one batch.

    Args:
        separator: a :class:`~bisep.separators.base.BaseSeparator`.
        conditioner: a frozen :class:`~bisep.conditioners.base.Conditioner`.
        embed_prompts: ``prompts -> Conditioning`` of shape ``(1, len(prompts), ...)``
            (the module caches text embeddings: the conditioner is frozen).
        batch: a collated mixture-of-mixtures batch (``bisep.data.mom.collate_mom``).
        query_source: ``"text"``: the mixture-level queries are the captions' embeddings;
            ``"audio"``: the conditioner's embedding of each mixture's own audio (CLIPSep-style
            training; phrases and single sources stay text queries).
        share_phrases: compute a phrase repeated within an item once (:class:`PhraseRows`)
            when the separator's queries are independent
            (:attr:`~bisep.separators.base.BaseSeparator.independent_queries`); the values
            are those of one query per slot, up to float rounding. ``False`` runs every slot.
    """

    def __init__(self, separator, conditioner, embed_prompts: Callable[[list[str]], Conditioning],
                 batch: dict, query_source: str = "text", share_phrases: bool = True):
        self.separator = separator
        self.share_phrases = share_phrases
        self.conditioner = conditioner
        self.embed_prompts = embed_prompts
        self.batch = batch
        self.query_source = query_source
        self._cache: dict[str, object] = {}

    def __getitem__(self, name: str):
        if name not in self._cache:
            if name not in PROVIDED and name not in INTERMEDIATE:
                raise KeyError(name)
            self._cache[name] = getattr(self, f"_{name}")()
        return self._cache[name]

    def kwargs_for(self, required: list[str], optional: list[str]) -> dict:
        out = {name: self[name] for name in required}
        for name in optional:
            if name.startswith("source_") and "sources" not in self.batch:
                continue
            out[name] = self[name]
        return out

    # -- shared intermediate results ----------------------------------------------------
    def _spec(self):
        return self.separator.analyze(self.batch["mom"])

    def _features(self):
        return self.separator.encode(self["mom_mag"])

    def _masks(self, prompts: list[list[str]]) -> torch.Tensor:
        """Masks ``(B, Q, F, T)`` for ``Q`` prompts per batch item."""
        return self.separator.predict_masks(self["features"],
                                            batch_conditioning(self.embed_prompts, prompts))

    def _phrase_conditioning(self) -> Conditioning:
        """The phrases' conditioning ``(B, N·K, ...)``, shared by masks and text embeddings."""
        flat = [[p for mix in item for p in mix] for item in self.batch["phrases"]]
        return batch_conditioning(self.embed_prompts, flat)

    def _mags(self, wavs: torch.Tensor) -> torch.Tensor:
        b, m, length = wavs.shape
        return self.separator.analyze(wavs.reshape(b * m, length))[1].reshape(
            b, m, *self["mom_mag"].shape[1:])

    # -- PROVIDED -----------------------------------------------------------------------
    def _mom_mag(self):
        return self["spec"][1]

    def _mixture_mags(self):
        return self._mags(self.batch["mixtures"])

    def _mixture_masks(self):
        if self.query_source == "audio":
            return self.separator.predict_masks(self["features"],
                                                self._audio_conditioning(self.batch["mixtures"]))
        return self._masks(self.batch["mixture_prompts"])

    def _audio_conditioning(self, wavs: torch.Tensor) -> Conditioning:
        """Conditioning ``(B, M, D)`` from the conditioner's embedding of ``wavs (B, M, L)``;
        a query, not a judgement: no gradient flows into it."""
        b, m, length = wavs.shape
        with torch.no_grad():
            audio = resample_tensor(wavs.reshape(b * m, length), self.separator.sample_rate,
                              self.conditioner.sample_rate)
            emb = self.conditioner.embed_audio(audio)
        return Conditioning(emb.reshape(b, m, -1).to(wavs.dtype))

    def _mixture_audio_emb(self):
        return self._audio_conditioning(self.batch["mixtures"]).embedding

    def _phrase_rows(self) -> PhraseRows:
        return phrase_rows(self.batch["phrases"],
                           self.share_phrases and self.separator.independent_queries)

    def _row_masks(self):
        """``(R, F, T)``: one mask per row of :class:`PhraseRows`."""
        rows = self["phrase_rows"]
        if len(rows.prompts) == rows.of_slot.numel():
            # No slot shares a row: one call with the queries of each item together, as
            # a separator whose queries are not independent must be called.
            masks = self.separator.predict_masks(self["features"], self["phrase_conditioning"])
            return masks.flatten(0, 1)
        device = self["mom_mag"].device
        cond = self.embed_prompts(rows.prompts)
        one_per_item = Conditioning(*(None if x is None else x.transpose(0, 1)
                                      for x in (cond.embedding, cond.tokens, cond.token_mask)))
        features = self.separator.select_items(self["features"], rows.items.to(device))
        return self.separator.predict_masks(features, one_per_item)[:, 0]

    def _row_wavs(self):
        """``(R, L)``: the separated waveform of each row."""
        rows = self["phrase_rows"]
        spec = self["spec"][0].index_select(0, rows.items.to(self["spec"][0].device))
        return self.separator.synthesize(spec, self["row_masks"].unsqueeze(1),
                                         self.batch["mom"].shape[-1])[:, 0]

    def _phrase_masks(self):
        phrases = self.batch["phrases"]
        b, n, k = len(phrases), len(phrases[0]), len(phrases[0][0])
        masks = self["row_masks"]
        # index_select, not masks[of_slot]: its backward sums the slots' gradients into the
        # rows with index_add_, several times faster on CPU than the accumulating index_put_
        # of advanced indexing (same sums, float rounding aside).
        return masks.index_select(0, self["phrase_rows"].of_slot.to(masks.device)).reshape(
            b, n, k, *masks.shape[1:])

    def _phrase_weights(self):
        return self.batch["phrase_weights"]

    def _phrase_valid(self):
        return self.batch["phrase_valid"]

    def _phrase_text_emb(self):
        phrases = self.batch["phrases"]
        emb = self["phrase_conditioning"].embedding
        return emb.reshape(len(phrases), len(phrases[0]), len(phrases[0][0]), -1)

    def _phrase_wavs(self):
        """The separated phrase outputs ``(B, N·K, L)``."""
        wavs = self["row_wavs"]
        return wavs.index_select(0, self["phrase_rows"].of_slot.to(wavs.device)).reshape(
            len(self.batch["phrases"]), -1, wavs.shape[-1])  # index_select: see _phrase_masks

    def _sources_are_phrases(self) -> bool:
        # The collated batch queries every source slot with the phrase in the same slot
        # (bisep.data.mom.collate_mom); then the source masks and estimates are the phrase
        # ones, and a semi-supervised step need not predict and synthesize them twice.
        flat = [[p for mix in item for p in mix] for item in self.batch["phrases"]]
        return self.batch.get("source_prompts") == flat

    def _phrase_audio_emb(self):
        valid = self["phrase_valid"]
        b, n, k = valid.shape
        # Repeated phrases (padding up to K) carry no information: embed the first copies
        # only, each row once (all of its valid slots read its embedding).
        wavs = self["row_wavs"]
        slot_rows = self["phrase_rows"].of_slot.to(wavs.device)[valid.reshape(-1)]
        rows, position = torch.unique(slot_rows, return_inverse=True)
        audio = resample_tensor(wavs.index_select(0, rows), self.separator.sample_rate,
                                self.conditioner.sample_rate)  # index_select: see _phrase_masks
        emb = wavs.new_zeros(b * n * k, self.conditioner.embed_dim)
        emb[valid.reshape(-1)] = self.conditioner.embed_audio(audio).to(emb.dtype)[position]
        return emb.reshape(b, n, k, -1)

    def _logit_scale(self):
        return self.conditioner.logit_scale

    def _source_masks(self):
        if self._sources_are_phrases():
            masks = self["phrase_masks"]
            return masks.reshape(masks.shape[0], -1, *masks.shape[3:])
        return self._masks(self.batch["source_prompts"])

    def _source_mags(self):
        return self._mags(self.batch["sources"])

    def _source_valid(self):
        return self.batch["source_valid"]

    def _source_estimates(self):
        if self._sources_are_phrases():
            return self["phrase_wavs"]
        return self.separator.synthesize(self["spec"][0], self["source_masks"],
                                         self.batch["mom"].shape[-1])

    def _source_wavs(self):
        return self.batch["sources"]

