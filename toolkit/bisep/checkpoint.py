"""Model checkpoints as Asteroid serializes them, saved atomically, loaded safely.

A checkpoint is a plain dict that ``torch.load(..., weights_only=True)`` can read::

    {"model_name": "cond_unet",            # the separator's plugin name
     "model_args": {...},                  # model.get_model_args()
     "state_dict": {...},
     "infos": {"software_versions": {...}, "config": {...}, ...}}

:func:`from_pretrained` rebuilds the model through the plugin registry, so a separator
from a third-party plugin round-trips like a built-in one.

:func:`read_weights` is the one way bisep opens a torch weight file, its own or a
dependency's (a Lightning ``last.ckpt``, a LAION-CLAP checkpoint): ``weights_only=True``, so a
crafted file cannot run code while it is read, only be refused with its name.
"""
from __future__ import annotations

import pickle
import platform
import zipfile
from pathlib import Path
from typing import Any

import torch

import bisep
from bisep.atomic import atomic_path
from bisep.errors import UserError

REQUIRED_KEYS = ("model_name", "model_args", "state_dict")


class CheckpointError(ValueError, UserError):
    """A checkpoint that cannot be read or does not hold a bisep model."""


def software_versions() -> dict[str, str]:
    # str(): torch.__version__ is a TorchVersion, which weights_only loading refuses.
    versions = {"bisep": bisep.__version__, "torch": str(torch.__version__),
                "python": platform.python_version()}
    try:
        import torchaudio

        versions["torchaudio"] = str(torchaudio.__version__)
    except ImportError:
        pass
    return versions


def registry_name(model: torch.nn.Module, kind: str = "separator", registry=None) -> str:
    """The name under which ``type(model)`` is registered (for serialization)."""
    from bisep.registry import PluginError, get_registry

    registry = registry or get_registry()
    for name in registry.names(kind):
        try:
            if registry.factory(kind, name) is type(model):
                return name
        except PluginError:  # an unimportable or clashing plugin is not ours
            continue
    raise CheckpointError(
        f"{type(model).__module__}.{type(model).__qualname__} is not registered as a {kind} "
        f"plugin, so a checkpoint of it could not be loaded again. Register it through a "
        f"bisep_register_{kind}s hook, or pass model_name explicitly.")


def serialize(model: torch.nn.Module, model_name: str | None = None,
              config: dict | None = None, **infos: Any) -> dict:
    """The checkpoint dict of ``model`` (see the module docstring)."""
    if not hasattr(model, "get_model_args"):
        raise CheckpointError(f"{type(model).__name__} has no get_model_args(): bisep cannot "
                              f"record how to rebuild it")
    package = {
        "model_name": model_name or registry_name(model),
        "model_args": model.get_model_args(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "infos": {"software_versions": software_versions(), **infos},
    }
    if config is not None:
        package["infos"]["config"] = config
    return package


def save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``.

    A process killed while saving leaves the previous checkpoint intact.
    """
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def read_weights(path: str | Path, what: str = "torch checkpoint", fix: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain data only.

    A file that pickles anything else (a ``__reduce__`` that would run code included) is
    refused before any of it runs.

    Args:
        path: the file.
        what: what the file should be, for the message ("LAION-CLAP checkpoint").
        fix: how to get a good file, appended to the message.

    Raises:
        CheckpointError: missing, unreadable, or holding objects other than tensors and
            plain data; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file. {fix}".rstrip())
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    # The weights-only unpickler reports foreign content in many ways (UnpicklingError,
    # KeyError on an unknown memo entry, ...): all of them mean "not a safe checkpoint".
    except (RuntimeError, EOFError, KeyError, ValueError, AttributeError, IndexError,
            TypeError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        lines = str(exc).splitlines() or [""]
        # torch's weights_only refusal buries the reason under advice to disable the check.
        reason = next((ln.strip() for ln in lines if "WeightsUnpickler error" in ln), lines[0])
        raise CheckpointError(
            f"{path}: cannot be read as a {what} ({type(exc).__name__}: {reason}). The file "
            f"is truncated or corrupt, holds objects other than tensors and plain data (bisep "
            f"never unpickles code), or was not written by torch.save. {fix}".rstrip()) from None


# What a model directory (a `bisep train` run) holds, in order of preference.
CHECKPOINT_NAMES = ("model.pth", "best_model.pth")


def folder_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint a model directory holds (the first of :data:`CHECKPOINT_NAMES` that
    exists), or ``None``: the one rule that tells a run folder from any other folder."""
    return next((Path(folder) / name for name in CHECKPOINT_NAMES
                 if (Path(folder) / name).exists()), None)


def resolve(path: str | Path) -> Path:
    """The checkpoint file of ``path``: the file itself, or a model directory's
    ``model.pth`` (else ``best_model.pth``).

    Raises:
        CheckpointError: a directory that holds neither.
    """
    path = Path(path)
    if path.is_dir():
        found = folder_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: a model directory must hold model.pth or "
                                  f"best_model.pth (what `bisep train` writes)")
        path = found
    return path


def load(path: str | Path) -> dict:
    """Read a bisep checkpoint with :func:`read_weights`; clear errors otherwise."""
    path = resolve(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file. Check the path, or train a "
                              f"model first (recipe stage 4).")
    package = read_weights(path, fix="Re-run the stage that wrote it.")
    if not isinstance(package, dict) or any(k not in package for k in REQUIRED_KEYS):
        keys = sorted(package)[:8] if isinstance(package, dict) else type(package).__name__
        hint = (" It looks like a Lightning training checkpoint: load it with "
                "bisep.train resume, or export the model." if isinstance(package, dict)
                and "pytorch-lightning_version" in package else "")
        raise CheckpointError(f"{path}: not a bisep model checkpoint (expected keys "
                              f"{', '.join(REQUIRED_KEYS)}; found {keys}).{hint}")
    return package


def from_pretrained(path_or_package: str | Path | dict, kind: str = "separator",
                    registry=None, **overrides: Any) -> torch.nn.Module:
    """Rebuild a model from a checkpoint (path, model directory, or loaded dict).

    ``overrides`` replace entries of the stored ``model_args`` (for example a different
    mask backend at inference). The class is resolved through the plugin registry.
    """
    from bisep.registry import get_registry

    if isinstance(path_or_package, dict):
        package, where = path_or_package, "<checkpoint dict>"
    else:
        package, where = load(path_or_package), str(path_or_package)
    registry = registry or get_registry()
    factory = registry.factory(kind, package["model_name"])
    args = package["model_args"]
    if not isinstance(args, dict):
        raise CheckpointError(f"{where}: model_args must be a mapping of keyword arguments, "
                              f"got {type(args).__name__}; the file was not written by bisep.")
    try:
        model = factory(**{**args, **overrides})
    # Arguments of another architecture (TypeError) or out of range (ValueError): the file
    # does not match the registered plugin of that name.
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: its model_args do not build {kind} "
                              f"'{package['model_name']}' ({exc}). The checkpoint was written "
                              f"for another version or architecture of that model; re-export "
                              f"it, or use the bisep/plugin version that wrote it.") from None
    try:
        model.load_state_dict(package["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: the weights do not fit {kind} "
                              f"'{package['model_name']}' with the stored arguments "
                              f"({str(exc).splitlines()[0]}). Overrides that change the "
                              f"architecture cannot be applied to trained weights.") from None
    return model
