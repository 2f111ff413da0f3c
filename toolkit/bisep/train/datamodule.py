"""The Lightning data module: mixture-of-mixtures batches and validation compositions.

Reads what recipe stages 1 and 2 wrote::

    <data_dir>/train.jsonl, valid.jsonl      (bisep.data.manifest format)
    <dump_dir>/mom_train.jsonl, mom_valid.jsonl   (bisep mix)

Single-source stems are loaded only for the supervised and semi-supervised modes (see
``sources``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from bisep.audio import read
from bisep.data.manifest import item_phrases, read_manifest
from bisep.data.manifest import DataError
from bisep.data.mom import MoMDataset, collate_mom, read_plan
from bisep.errors import UserError


class MissingStageOutput(FileNotFoundError, UserError):
    """A file an earlier recipe stage writes is missing."""


def require(path: Path, stage: str) -> Path:
    if not path.exists():
        raise MissingStageOutput(f"{path} does not exist: it is written by {stage}; run that "
                                 f"stage first (see `run.sh --help`)")
    return path


class TrainOrder(DistributedSampler):
    """The order in which one process reads the training MoMs, resumable mid-epoch.

    Each epoch's order is a permutation drawn from ``seed`` and the epoch alone (Lightning
    calls ``set_epoch``), cut into one disjoint shard per process; the few MoMs left over
    after an equal split are skipped for that epoch rather than given to two processes, as
    Lightning's own sampler would. A run resumed from a checkpoint taken mid-epoch would
    otherwise start its epoch again from the first batch, training twice on what it had seen
    and never on the rest: ``batches_done`` (the batches of this epoch already trained on,
    read from the trainer when the epoch's iterator is made) is skipped, so a resumed run
    reads exactly the MoMs an uninterrupted one would.

    Args:
        dataset: the training MoMs.
        batch_size: MoMs per batch and process.
        num_replicas, rank: processes and this one's global rank.
        seed: the shuffling seed.
        batches_done: callable giving the batches of the current epoch already trained on.
    """

    def __init__(self, dataset: Dataset, batch_size: int, num_replicas: int, rank: int,
                 seed: int, batches_done: Callable[[], int] = lambda: 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                         seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.batches_done = batches_done

    def __iter__(self) -> Iterator[int]:
        order = list(super().__iter__())
        return iter(order[self.batches_done() * self.batch_size:])


class ReferenceSet(Dataset):
    """Compositions with references, for query-level validation scores.

    Each item: ``mixture (L,)``, ``references (S, L)`` in sorted label order and ``prompts``
    (the query of each reference: the item's ``phrases``, or the labels' default phrases,
    :func:`bisep.data.manifest.item_phrases`), as stage 5 queries the test set. Items must
    all hold ``S`` references of one length ``L``.
    """

    def __init__(self, manifest: Path, sample_rate: int, max_items: int | None = None):
        self.items = [it for it in read_manifest(manifest) if it.get("stems")][:max_items]
        if not self.items:
            raise ValueError(f"{manifest}: no item has stems (references) to validate on")
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        labels = sorted(item["stems"])
        # The phrases follow item["labels"]; the references are in sorted order.
        texts = dict(zip(item["labels"], item_phrases(item)))
        mixture = torch.from_numpy(self._read(item["audio"]))
        refs = torch.from_numpy(np.stack([self._read(item["stems"][lab]) for lab in labels]))
        return {"mixture": mixture, "references": refs, "prompts": [texts[lab] for lab in labels]}

    def _read(self, path: str) -> np.ndarray:
        return read(path, self.sample_rate, mono=True)[0][0]


def collate_references(items: list[dict]) -> dict:
    return {"mixture": torch.stack([it["mixture"] for it in items]),
            "references": torch.stack([it["references"] for it in items]),
            "prompts": [it["prompts"] for it in items]}


class MoMDataModule(pl.LightningDataModule):
    """Training and validation loaders for one recipe's data and dump folders.

    Args:
        data_dir: stage 1 output (manifests and audio).
        dump_dir: stage 2 output (mixture-of-mixtures plans).
        data_conf: the config's ``data`` section (batch sizes, workers, phrases, whether
            training clips stay in memory: ``cache_audio``).
        sources: which MoMs carry single-source targets: ``"none"`` (unsupervised and weak
            modes: no stem file is opened), ``"sup"`` (the stage-2 supervised subset, semi
            mode) or ``"all"`` (supervised mode).
        sample_rate: the separator's rate.
        seed: shuffling seed.
    """

    def __init__(self, data_dir: str | Path, dump_dir: str | Path, data_conf: dict,
                 sources: str, sample_rate: int, seed: int = 0):
        super().__init__()
        self.data_dir, self.dump_dir = Path(data_dir), Path(dump_dir)
        self.conf = data_conf
        if sources not in ("none", "sup", "all"):
            raise ValueError(f"sources must be 'none', 'sup' or 'all', got {sources!r}")
        self.sources = sources
        self.sample_rate = sample_rate
        self.seed = seed
        stage1, stage2 = "stage 1 (data preparation)", "stage 2 (bisep mix)"
        self.train_manifest = require(self.data_dir / "train.jsonl", stage1)
        self.valid_manifest = require(self.data_dir / "valid.jsonl", stage1)
        self.train_plan = require(self.dump_dir / "mom_train.jsonl", stage2)
        self.valid_plan = require(self.dump_dir / "mom_valid.jsonl", stage2)

    def stem_usage(self) -> dict:
        """What this run trains on: the data and plan folders, and how many training clips
        have their stems (single-source audio) read, for reports that plot results against
        the share of single-source data. ``sources="sup"`` reads the stems of the plan lines
        marked ``sup``; ``"all"`` those of every line."""
        clips = len(read_manifest(self.train_manifest, check_files=False))
        reads = {"none": lambda line: False, "sup": lambda line: line["sup"],
                 "all": lambda line: True}[self.sources]
        with_stems = {part for line in read_plan(self.train_plan) if reads(line)
                      for part in line["parts"]}
        return {"data_dir": str(self.data_dir.resolve()), "dump_dir": str(self.dump_dir.resolve()),
                "sources": self.sources, "train_clips": clips,
                "clips_with_stems": len(with_stems), "stems_fraction": len(with_stems) / clips}

    def setup(self, stage: str | None = None) -> None:
        common = dict(num_phrases=self.conf["num_phrases"], sample_rate=self.sample_rate,
                      load_sources=self.sources != "none", sup_only=self.sources == "sup",
                      cache=self.conf["cache_audio"])
        self.train_set = MoMDataset(self.train_plan, self.train_manifest, **common)
        # Stage 2 draws the validation MoMs from valid.jsonl: neither train nor test clips.
        self.valid_set = MoMDataset(self.valid_plan, self.valid_manifest, **common)
        # A bad clip fails before step 1, named, instead of at the step that draws it.
        self.train_set.check_clips()
        self.valid_set.check_clips()
        self.reference_set = ReferenceSet(self.valid_manifest, self.sample_rate,
                                          self.conf["max_valid_items"])

    def train_dataloader(self) -> DataLoader:
        """Batches of ``data.batch_size`` MoMs for this process, in :class:`TrainOrder`.

        With several processes (DDP: ``trainer.world_size`` > 1) each process reads its own
        shard of every epoch; one step then averages ``batch_size x world_size`` MoMs.
        """
        size = self.conf["batch_size"]
        world, rank = (1, 0) if self.trainer is None else \
            (self.trainer.world_size, self.trainer.global_rank)
        if len(self.train_set) < size * world:
            raise DataError(f"{self.train_plan}: {len(self.train_set)} MoMs, but one step takes "
                            f"data.batch_size ({size}) x {world} process(es) = {size * world}; "
                            f"mix more (bisep mix --num-train-mom) or lower data.batch_size.")
        order = TrainOrder(self.train_set, size, num_replicas=world, rank=rank, seed=self.seed,
                           batches_done=self._batches_done)
        return DataLoader(self.train_set, batch_size=size, drop_last=True, collate_fn=collate_mom,
                          num_workers=self.conf["num_workers"],
                          persistent_workers=self.conf["num_workers"] > 0, sampler=order)

    def _batches_done(self) -> int:
        """Batches of the current epoch already trained on: more than 0 only when the
        trainer has just restored a checkpoint taken mid-epoch."""
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.completed

    def val_dataloader(self) -> list[DataLoader]:
        """Held-out MoMs (``val_loss``) and reference compositions (``val_si_sdr``). With
        several processes Lightning gives each a shard; it repeats a few items so that the
        shards have equal sizes, and the metrics are averaged over the processes."""
        size, workers = self.conf["valid_batch_size"], self.conf["num_workers"]
        return [DataLoader(self.valid_set, batch_size=size, collate_fn=collate_mom,
                           num_workers=workers),
                DataLoader(self.reference_set, batch_size=size, collate_fn=collate_references,
                           num_workers=workers)]
