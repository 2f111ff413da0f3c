"""The Lightning module: one training loop for every mode.

A mode is a list of loss terms (``criterions`` in the config) and the data they need; the
module never branches on the mode. Each step runs the separator's query-independent half
once per mixture of mixtures, then asks each loss term for its inputs by name
(:mod:`bisep.train.inputs`).

Validation logs the same weighted loss on held-out mixtures of mixtures (``val_loss``) and,
when a validation manifest with references is given, the SI-SDR and SI-SDR improvement of
single-source queries on 2-source validation compositions (``val_si_sdr``,
``val_si_sdri``): the weak loss need not track separation quality, so both are logged and
the config chooses which one selects the best checkpoint. In a multi-process run the
validation metrics are averaged over the processes (``sync_dist``), so every process ranks
the checkpoints alike; training metrics are those of global rank 0's batches.
"""
from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch

from bisep.config import OPTIMIZERS, SCHEDULE_KEYS, SCHEDULERS, ConfigError
from bisep.losses.sdr import neg_sdr
from bisep.registry import get_registry
from bisep.separators.base import Conditioning
from bisep.train.inputs import SOURCE_INPUTS, StepInputs, batch_conditioning, term_inputs

log = logging.getLogger(__name__)


class SeparationModule(pl.LightningModule):
    """Separator + frozen conditioner + weighted loss terms, from a resolved config.

    Args:
        config: a config resolved by :func:`bisep.config.load_config`.
        registry: plugin registry (default: the global one).
    """

    def __init__(self, config: dict, registry=None):
        super().__init__()
        registry = registry or get_registry()
        self.config = config
        self.separator = registry.build("separator", config["separator"],
                                        **config["separator_conf"])
        self.conditioner = registry.build("conditioner", config["conditioner"],
                                          **config["conditioner_conf"]).freeze()
        if self.conditioner.embed_dim != self.separator.query_dim:
            raise ConfigError(
                f"separator_conf.query_dim is {self.separator.query_dim} but conditioner "
                f"'{config['conditioner']}' gives {self.conditioner.embed_dim}-d embeddings; "
                f"set separator_conf.query_dim: {self.conditioner.embed_dim}")
        self.query_source = config["data"].get("query_source", "text")
        if self.query_source == "audio" and self.separator.uses_tokens:
            raise ConfigError(
                f"data.query_source: audio gives one pooled embedding per query, but separator "
                f"'{config['separator']}' with these settings reads text token states; use "
                f"data.query_source: text or a separator without token conditioning")
        self.terms = torch.nn.ModuleList()
        self.term_specs: list[tuple[str, float, list[str], list[str]]] = []
        self.term_schedules: list[tuple[int, int, int, int]] = []
        for item in config["criterions"]:
            term = registry.build("loss", item["name"], **item["conf"])
            required, optional = term_inputs(term, item["name"])
            self.terms.append(term)
            self.term_specs.append((item["name"], item["weight"], required, optional))
            self.term_schedules.append(tuple(item.get(key, 0) for key in SCHEDULE_KEYS))
        # For any conditioner (plugins may not cache); mini_clap's own serves use outside training.
        self._text_cache: dict[str, tuple] = {}
        self.wants_tokens = (self.separator.uses_tokens
                             and self.conditioner.token_dim is not None)

    # The conditioner is frozen and rebuilt from its own checkpoint: keep it out of the
    # training checkpoint so a resumed run cannot silently swap query encoders.
    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        return {k: v for k, v in state.items() if not k.startswith("conditioner.")}

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        own = {k: v for k, v in super().state_dict().items() if k.startswith("conditioner.")}
        return super().load_state_dict({**state_dict, **own}, strict=strict, **kwargs)

    # -- queries --------------------------------------------------------------------------
    def embed_prompts(self, prompts: list[str]) -> Conditioning:
        """Conditioning ``(1, Q, ...)`` for ``prompts``; text embeddings are cached."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            with torch.no_grad():
                emb = self.conditioner.embed_text(missing).float().cpu()
                tokens = mask = None
                if self.wants_tokens:
                    tokens, mask = self.conditioner.embed_text_tokens(missing)
            for i, p in enumerate(missing):
                self._text_cache[p] = (emb[i], None if tokens is None else tokens[i].cpu(),
                                       None if mask is None else mask[i].cpu())
        rows = [self._text_cache[p] for p in prompts]
        emb = torch.stack([r[0] for r in rows]).unsqueeze(0).to(self.device)
        if rows[0][1] is None:
            return Conditioning(emb)
        length = max(r[1].shape[0] for r in rows)
        tokens = emb.new_zeros(1, len(rows), length, rows[0][1].shape[-1])
        mask = torch.zeros(1, len(rows), length, dtype=torch.bool, device=self.device)
        for i, (_, tok, m) in enumerate(rows):
            tokens[0, i, :tok.shape[0]] = tok.to(self.device)
            mask[0, i, :m.shape[0]] = m.to(self.device)
        return Conditioning(emb, tokens, mask)

    # -- losses ---------------------------------------------------------------------------
    def term_factor(self, index: int, step: int | None) -> float:
        """How much of its weight term ``index`` has at ``step`` (``None``: all of it)."""
        start, ramp, stop, fade = self.term_schedules[index]
        if step is None:
            return 1.0
        if step < start or (stop and step >= stop):
            return 0.0
        warm = 1.0 if step >= start + ramp else (step - start + 1) / (ramp + 1)
        cool = 1.0 if not stop or step < stop - fade else (stop - step) / (fade + 1)
        return min(warm, cool)

    def compute_losses(self, batch: dict, step: int | None = None
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted total and each term's value for one batch.

        Args:
            batch: a collated mixture-of-mixtures batch.
            step: the training step, for terms that warm up (``criterions[].start_step``);
                ``None`` weighs every term fully (validation).
        """
        inputs = StepInputs(self.separator, self.conditioner, self.embed_prompts, batch,
                            query_source=self.query_source)
        total, parts = 0.0, {}
        for index, (term, (name, weight, required, optional)) in enumerate(
                zip(self.terms, self.term_specs)):
            if SOURCE_INPUTS.intersection(required) and "sources" not in batch:
                # Semi-supervised: this batch drew no item with single-source targets.
                continue
            factor = self.term_factor(index, step)
            if factor == 0.0:
                continue
            value = term(**inputs.kwargs_for(required, optional))
            if not torch.isfinite(value):
                raise FloatingPointError(
                    f"loss '{name}' is {value.item()} at step {self.global_step}; lower "
                    f"optim_conf.lr or set trainer.gradient_clip_val, and resume from the last "
                    f"checkpoint")
            parts[name] = value.detach()
            total = total + factor * weight * value
        return total, parts

    def training_step(self, batch, batch_idx):
        if log.isEnabledFor(logging.DEBUG):  # which MoMs each process trains on (BISEP_LOG_LEVEL)
            log.debug("rank %d epoch %d step %d MoMs %s", self.global_rank, self.current_epoch,
                      self.global_step, ",".join(batch["id"]))
        total, parts = self.compute_losses(batch, step=self.global_step)
        size = batch["mom"].shape[0]
        self.log("train_loss", total, prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        return total

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        size = batch["mom"].shape[0] if "mom" in batch else batch["mixture"].shape[0]
        if "mom" in batch:
            total, parts = self.compute_losses(batch)
            self.log("val_loss", total, batch_size=size, add_dataloader_idx=False,
                     sync_dist=True)
            for name, value in parts.items():
                self.log(f"val/{name}", value, batch_size=size, add_dataloader_idx=False,
                         sync_dist=True)
            return
        si_sdr, si_sdri = self.query_scores(batch)
        self.log("val_si_sdr", si_sdr, prog_bar=True, batch_size=size, add_dataloader_idx=False,
                 sync_dist=True)
        self.log("val_si_sdri", si_sdri, batch_size=size, add_dataloader_idx=False,
                 sync_dist=True)

    def query_scores(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean SI-SDR and SI-SDRi of one query per reference source.

        Shape:
            batch: ``mixture (B, L)``, ``references (B, S, L)``, ``prompts`` B lists of S.
        """
        mixture, refs = batch["mixture"], batch["references"]
        spec, mag = self.separator.analyze(mixture)
        features = self.separator.encode(mag)
        cond = batch_conditioning(self.embed_prompts, batch["prompts"])
        est = self.separator.synthesize(spec, self.separator.predict_masks(features, cond),
                                        mixture.shape[-1])
        si_sdr = -neg_sdr(est, refs, kind="sisdr")
        si_sdr_mix = -neg_sdr(mixture.unsqueeze(1).expand_as(refs), refs, kind="sisdr")
        return si_sdr.mean(), (si_sdr - si_sdr_mix).mean()

    # -- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optim_cls = getattr(torch.optim, OPTIMIZERS[self.config["optim"]])
        optimizer = optim_cls(params, **self.config["optim_conf"])
        if self.config["scheduler"] is None:
            return optimizer
        sched_cls = getattr(torch.optim.lr_scheduler, SCHEDULERS[self.config["scheduler"]])
        scheduler = sched_cls(optimizer, **self.config["scheduler_conf"])
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler,
                                 "interval": self.config["trainer"]["scheduler_interval"]}}
