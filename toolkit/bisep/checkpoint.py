"""Model checkpoints as Asteroid serializes them, saved atomically, loaded safely.

A checkpoint is a plain dict that ``torch.load(..., weights_only=True)`` can read::

    {"model_name": "cond_unet",            # the separator's plugin name
     "model_args": {...},                  # model.get_model_args()
     "state_dict": {...},
     "infos": {"software_versions": {...}, "config": {...}, ...}}

:func:`from_pretrained` rebuilds the model through the plugin registry, so a separator
from a third-party plugin round-trips like a built-in one.
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


def load(path: str | Path) -> dict:
    """Read a bisep checkpoint with ``weights_only=True``; clear errors otherwise."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "model.pth", path / "best_model.pth"]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise CheckpointError(f"{path}: a model directory must hold model.pth or "
                                  f"best_model.pth (what `bisep train` writes)")
        path = found
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file. Check the path, or train a "
                              f"model first (recipe stage 4).")
    try:
        package = torch.load(path, map_location="cpu", weights_only=True)
    # The weights-only unpickler reports foreign content in many ways (UnpicklingError,
    # KeyError on an unknown memo entry, ...): all of them mean "not a safe checkpoint".
    except (RuntimeError, EOFError, KeyError, ValueError, zipfile.BadZipFile,
            pickle.UnpicklingError) as exc:
        lines = str(exc).splitlines() or [""]
        # torch's weights_only refusal buries the reason under advice to disable the check.
        reason = next((ln.strip() for ln in lines if "WeightsUnpickler error" in ln), lines[0])
        raise CheckpointError(
            f"{path}: cannot be read as a torch checkpoint ({type(exc).__name__}: {reason}). "
            f"The file is truncated or corrupt, holds objects other than tensors and plain "
            f"data, or was not written by torch.save; re-run the stage that wrote it.") from None
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
    model = factory(**{**package["model_args"], **overrides})
    try:
        model.load_state_dict(package["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: the weights do not fit {kind} "
                              f"'{package['model_name']}' with the stored arguments "
                              f"({str(exc).splitlines()[0]}). Overrides that change the "
                              f"architecture cannot be applied to trained weights.") from None
    return model
