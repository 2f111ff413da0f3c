"""The dataset-preparer protocol of recipe stage 1: what a ``dataset`` plugin's factory
returns (``bisep.hookspecs.bisep_register_datasets``). Both built-in families implement
it: :class:`bisep.data.synth_music.SynthMusic` and :class:`bisep.data.corpus.CorpusDataset`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from bisep.data.manifest import DataError


@runtime_checkable
class DatasetPreparer(Protocol):
    """Writes a dataset's manifests (``train.jsonl``, ``valid.jsonl``, ``test.jsonl``,
    ``meta.json``; ``docs/data.md``) and their audio under ``data_dir``, and returns the
    content of ``meta.json``. A re-run on a complete output should write nothing."""

    def prepare(self, data_dir: str | Path) -> dict:
        ...


def prepare_dataset(dataset: object, data_dir: str | Path, name: str = "dataset") -> dict:
    """Run a dataset plugin's preparer into ``data_dir`` (``bisep prepare``).

    Raises:
        DataError: ``dataset`` has no ``prepare(data_dir)`` method (a plugin written for the
            old contract of a plain callable).
    """
    if not isinstance(dataset, DatasetPreparer):
        raise DataError(f"dataset plugin '{name}' returned {type(dataset).__name__}, which has "
                        f"no prepare(data_dir) method; its factory must return an object with "
                        f"one (bisep.data.preparer.DatasetPreparer, docs/plugins.md).")
    return dataset.prepare(data_dir)
