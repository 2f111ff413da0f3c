"""A judge that keeps learning while the separator trains against it (``judge_update``).

Beyond the paper. The weak loss asks the query encoder's audio tower (the *judge*) whether a
separated output sounds like its phrase and nothing else. A frozen judge is learnt around:
the separator finds outputs the judge scores well that still hold the other instrument
(docs/results.md). With ``judge_update.every: N``, every N training steps the judge takes
``steps`` optimiser steps of its own ``train-clap`` objective (:mod:`bisep.train.mini_clap`)
on batches that also hold the *current* separator's outputs, so what the separator has just
learnt to get past is what the judge learns next.

What the judge learns from is its own data, never the separator's: the pool of
``bisep train-clap`` (``<data_dir>/clap_pool.jsonl``: single-instrument clips and
2-instrument mixtures, disjoint from the separator's training, validation and test clips).
Each update the separator, in eval mode and without gradients, separates ``outputs``
mixtures of two of the pool's clean clips with each instrument's phrase; passing each clip
through the same mask on its own gives every output's exact leakage
(:func:`~bisep.train.clap_batches.separator_outputs`), the target of the ``energy``
objective. The separator itself still trains on mixtures only; its training set holds no
single-source audio, as in the weak mode without updates.

The batch composition, objective and clip length are the judge's own, read from
``mini_clap.pth`` (a random tower, in tests, takes :class:`MiniClapTrainConfig`'s
defaults), with ``judge_conf`` overriding any of its keys; ``per_batch`` of each batch are
the current separator's outputs. The optimiser is AdamW at a constant ``lr`` on the audio
tower alone: the logit scale stays the judge's own, so the weak loss keeps its scale.

The updated tower and its optimiser state are saved in the Lightning checkpoint (this
callback's state), so a resumed run continues with the judge it had; each update draws from
a generator seeded by the training seed and the update's number, so the draws do not depend
on where a run was stopped, and every process of a multi-process run updates its copy of the
judge with the same batches. The exported separator (``model.pth``) does not need the judge:
at inference the queries come from the text tower, which no update touches.

Because the judge changes, the weak validation loss (``val_loss``) of one step is not
comparable with another's; configs with updates select the checkpoint on a term that does
not read the judge (``val/mix_separate``) or on ``val_si_sdr``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from bisep.config import ConfigError

log = logging.getLogger(__name__)

#: The pool the judge learns from, written by data preparation next to the separator's data.
POOL_MANIFEST = "clap_pool.jsonl"
#: Loss inputs that read the judge's audio tower: a config with updates needs one.
JUDGED_INPUTS = frozenset({"phrase_audio_emb"})


def judge_train_config(conditioner_conf: dict, judge_conf: dict) -> dict:
    """The ``train-clap`` config the judge's updates follow: the judge checkpoint's own
    training config (defaults for a random tower), then ``judge_conf``'s keys.

    Raises:
        ConfigError: a ``judge_conf`` key or value ``bisep train-clap`` refuses.
    """
    from bisep.checkpoint import load
    from bisep.config import LineMap
    from bisep.train.clap_config import resolve_train_config

    base = {}
    if conditioner_conf.get("checkpoint"):
        package = load(Path(conditioner_conf["checkpoint"]))
        base = dict(package.get("infos", {}).get("config") or {})
    where = LineMap("judge_update.judge_conf (over the judge's own train-clap config)")
    return resolve_train_config({**base, **judge_conf}, where)


def online_judge(config: dict, data_dir: str | Path, registry=None) -> "OnlineJudge":
    """The :class:`OnlineJudge` a config with ``judge_update.every > 0`` trains with, after
    refusing settings that cannot work (before any training).

    Raises:
        ConfigError: the conditioner is not mini_clap, no loss term reads the judge, or a
            ``judge_conf`` key is wrong; naming the key and the fix.
        FileNotFoundError: the judge's pool is missing.
    """
    from bisep.registry import get_registry
    from bisep.train.inputs import term_inputs

    registry = registry or get_registry()
    if config["conditioner"] != "mini_clap":
        raise ConfigError(f"judge_update.every > 0 trains the query encoder's audio tower, which "
                          f"needs conditioner: mini_clap (a trainable tower and the train-clap "
                          f"objective); got '{config['conditioner']}'. Set judge_update.every: 0")
    judged = any(JUDGED_INPUTS.intersection(
        term_inputs(registry.build("loss", item["name"], **item["conf"]), item["name"])[0])
        for item in config["criterions"])
    if not judged:
        raise ConfigError("judge_update.every > 0 but no criterion reads the judge "
                          "(phrase_audio_emb, e.g. clap_contrastive): the updates would change "
                          "nothing the separator trains on. Set judge_update.every: 0")
    update = config["judge_update"]
    return OnlineJudge(data_dir, update,
                       judge_train_config(config["conditioner_conf"], update["judge_conf"]),
                       config["seed"])


class _OnDevice:
    """A :class:`~bisep.train.clap_batches.BatchMaker` whose batches' audio is moved to
    ``device`` (the judge's)."""

    def __init__(self, batches, device):
        self.batches, self.device = batches, device

    def __call__(self):
        batch = self.batches()
        batch.audio = batch.audio.to(self.device)
        return batch

    def caption(self, labels):
        return self.batches.caption(labels)


class OnlineJudge(pl.Callback):
    """Updates the module's query encoder every ``every`` steps (module docstring).

    Args:
        data_dir: the separator's data folder; the judge's pool is its ``clap_pool.jsonl``.
        update_conf: the resolved ``judge_update`` section.
        judge_conf: :func:`judge_train_config`'s result.
        seed: the training seed.

    Raises:
        FileNotFoundError: ``clap_pool.jsonl`` is missing (checked here, before training).
    """

    def __init__(self, data_dir: str | Path, update_conf: dict, judge_conf: dict, seed: int):
        self.pool_file = Path(data_dir) / POOL_MANIFEST
        if not self.pool_file.is_file():
            raise FileNotFoundError(f"judge_update needs the judge's pool {self.pool_file}: run "
                                    f"data preparation (`bisep prepare`, recipe stage 1) or set "
                                    f"judge_update.every: 0")
        self.conf, self.judge_conf, self.seed = update_conf, judge_conf, seed
        self.updates = 0
        self._optimizer = None
        self._restored: dict | None = None

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        if self._optimizer is None:
            return {"updates": 0}
        return {"updates": self.updates, "judge": self._judge.audio_state_dict(),
                "optimizer": self._optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        # Applied in on_train_start, once the pool and the optimiser exist.
        self._restored = state_dict

    # -- hooks ----------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        from bisep.data.prompts import TEMPLATES
        from bisep.data.manifest import DataError
        from bisep.train.clap_batches import load_clips, split_by_count

        self._judge, separator = pl_module.conditioner, pl_module.separator
        if separator.sample_rate != self._judge.sample_rate:
            raise ConfigError(f"judge_update: the separator runs at {separator.sample_rate} Hz "
                              f"and the judge at {self._judge.sample_rate} Hz; the judge learns "
                              f"from the separator's outputs as they are. Set "
                              f"judge_update.every: 0")
        start = time.perf_counter()
        pool = load_clips(self.pool_file, self._judge.sample_rate,
                          self.judge_conf["clip_seconds"])
        self.singles, self.mixtures = split_by_count(pool)
        self.labels = sorted({lab for clip in pool.labels for lab in clip})
        if len({lab for (lab,) in self.singles.labels}) < 2:
            raise DataError(f"{self.pool_file} needs single-instrument clips of at least two "
                            f"instruments for judge_update")
        self.captions = list(TEMPLATES) + [None]
        self._optimizer = torch.optim.AdamW(self._judge.audio.parameters(), lr=self.conf["lr"],
                                            weight_decay=self.judge_conf["weight_decay"])
        self._constant = torch.optim.lr_scheduler.LambdaLR(self._optimizer, lambda step: 1.0)
        if self._restored and self._restored.get("updates"):
            self._judge.audio_state_load(self._restored["judge"])
            self._optimizer.load_state_dict(self._restored["optimizer"])
            self.updates = self._restored["updates"]
        log.info("judge_update: %d clean clips and %d mixtures of %d instruments from %s in "
                 "%.0f s; %d updates so far", len(self.singles.ids), len(self.mixtures.ids),
                 len(self.labels), self.pool_file, time.perf_counter() - start, self.updates)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.conf["every"]:
            return
        losses, (judged, true) = self.update(pl_module.separator)
        # Straight to the logger, one row per update: a value self.log()-ed from this hook
        # is written again with the next step's row. Step numbers as Lightning's own rows
        # (the step's index, from 0), so an update sits on the row of the step before it.
        if trainer.is_global_zero and trainer.logger is not None:
            trainer.logger.log_metrics({"judge_update/loss": sum(losses) / len(losses),
                                        "judge_update/judged_share": judged,
                                        "judge_update/true_share": true},
                                       step=trainer.global_step - 1)

    def shares(self, bank: tuple) -> tuple[float, float]:
        """How much of the separator's fresh outputs the judge gives the queried instrument,
        against the truth: the mean over outputs of the judge's probability for the queried
        phrase against the other one (its logit scale, its phrase captions), and the mean
        true share of the queried instrument's energy. A separator that fools the judge
        shows a judged share well above the true one.
        """
        from bisep.train.clap_eval import class_text, embed_clips

        audio, _, energies, _ = bank
        index = {lab: i for i, lab in enumerate(self.labels)}
        with torch.no_grad():
            logits = self._judge.logit_scale * embed_clips(self._judge, audio) @ \
                class_text(self._judge, self.labels, None).T
        judged, true = [], []
        for row, energy in zip(logits.cpu(), energies):
            queried, other = energy  # the queried instrument comes first
            pair = torch.stack([row[index[queried]], row[index[other]]])
            judged.append(float(pair.softmax(0)[0]))
            true.append(energy[queried] / max(energy[queried] + energy[other], 1e-12))
        return sum(judged) / len(judged), sum(true) / len(true)

    # -- the update -------------------------------------------------------------------------
    def update(self, separator) -> tuple[list[float], tuple[float, float]]:
        """One update: the current separator's outputs, then ``steps`` judge steps.

        Returns:
            The judge's loss at each step, and :meth:`shares` of the outputs before the
            steps.
        """
        from bisep.train.clap_batches import BatchMaker, ClipSet, separator_outputs
        from bisep.train.mini_clap import train_step

        start = time.perf_counter()
        judge, device = self._judge, self._judge.log_logit_scale.device
        seed = self.seed + 7919 * (self.updates + 1)  # the update's own draws
        was_training = separator.training
        separator.eval()
        singles = ClipSet(self.singles.audio.to(device), self.singles.labels, self.singles.ids)
        bank = separator_outputs(separator, judge, singles, self.conf["outputs"], seed)
        separator.train(was_training)
        shares = self.shares(bank)
        conf = {**self.judge_conf, "seed": seed, "separator_per_batch": self.conf["per_batch"]}
        bank = (bank[0].cpu(), *bank[1:])
        batches = _OnDevice(BatchMaker(self.singles, self.mixtures, conf, self.captions, bank),
                            device)
        # Unfrozen for the update only: between updates no gradient reaches the tower.
        judge.frozen = False
        judge.train()
        judge.audio.requires_grad_(True)
        losses = []
        try:
            with torch.enable_grad():
                for step in range(self.conf["steps"]):
                    template = self.captions[(self.updates + step) % len(self.captions)]
                    parts = train_step(judge, batches, template, self.labels, conf,
                                       self._optimizer, self._constant)
                    losses.append(sum(parts.values()))
        finally:
            self._optimizer.zero_grad(set_to_none=True)
            judge.frozen = True
            judge.freeze()
        self.updates += 1
        log.info("judge_update %d: %d separator outputs (judged share of the queried "
                 "instrument %.2f, true %.2f), %d steps, loss %.3f -> %.3f, %.1f s",
                 self.updates, len(bank[1]), *shares, len(losses), losses[0], losses[-1],
                 time.perf_counter() - start)
        return losses, shares
