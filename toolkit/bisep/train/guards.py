"""A training callback that stops at the first non-finite batch or loss, naming its clips.

Clips are checked before step 1 (:meth:`bisep.data.mom.MoMDataset.check_clips`), but without
the audio cache only a sample is read whole, and a loss can also turn NaN from the model's side
(a learning rate too high). Stopping at the first such step, before its backward pass and
before any checkpoint of it is written, leaves the last good checkpoint to resume from and says
which mixtures were in the batch.
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch

from bisep.errors import UserError


class NonFiniteError(ValueError, UserError):
    """A batch or loss with NaN or infinite values; the message names the batch's clips."""


class FiniteGuard(pl.Callback):
    """Raise :class:`NonFiniteError` on a non-finite training batch or loss."""

    def __init__(self):
        self._batch: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch = batch
        for key in ("mom", "mixtures", "sources"):
            value = batch.get(key)
            if torch.is_tensor(value) and not torch.isfinite(value).all():
                raise NonFiniteError(f"the training batch of step {trainer.global_step} has "
                                     f"NaN or infinite '{key}' samples. "
                                     f"{self.describe(trainer)} Check or re-render those "
                                     f"files.")

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if not torch.isfinite(loss).all():
            raise NonFiniteError(f"the training loss is {loss.item()} at step "
                                 f"{trainer.global_step}. {self.describe(trainer)} If the "
                                 f"files are sound, lower optim_conf.lr or set "
                                 f"trainer.gradient_clip_val; resume from the last checkpoint "
                                 f"by re-running the command.")

    def describe(self, trainer) -> str:
        """The batch's mixtures of mixtures and the files of their clips."""
        ids = list((self._batch or {}).get("id", []))
        dataset = getattr(getattr(trainer, "datamodule", None), "train_set", None)
        if dataset is None or not ids:
            return f"The batch held MoMs {', '.join(ids) or '(unknown)'}."
        parts = {line["id"]: line["parts"] for line in dataset.plan}
        files = [dataset.items[part]["audio"] for mom in ids for part in parts.get(mom, [])]
        return f"The batch held MoMs {', '.join(ids)}, made of {', '.join(files)}."
