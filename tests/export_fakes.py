"""A tiny trained-looking experiment for the export tests: random weights saved the way
training saves them (``mini_clap.pth`` from ``bisep train-clap``'s packaging, ``model.pth``
from :func:`bisep.checkpoint.serialize`), plus a recipe ``scores/summary.json``."""
from __future__ import annotations

import json
from pathlib import Path

import torch

LABELS = ["flute", "violin"]
# film_masknet at cond_unet's "small" STFT, shrunk: 256 bins, 16 x 32 channels, 2 blocks.
TINY_FILM = dict(preset="small", query_dim=384, bn_chan=16, hid_chan=32, n_blocks=2,
                 n_repeats=1, num_film_blocks=1)


def mini_clap_checkpoint(path: Path) -> Path:
    """A mini_clap audio tower with random weights and small channels, as train-clap saves it."""
    from bisep import checkpoint
    from bisep.conditioners.mini_clap import MiniClapConditioner
    from bisep.train.mini_clap import checkpoint_package

    torch.manual_seed(0)
    encoder = MiniClapConditioner(frozen=False, audio_conf={"channels": [4, 4, 8, 16]})
    return checkpoint.save(checkpoint_package(encoder, {}, LABELS, None), path)


def experiment(root: Path, separator: str = "film_masknet", separator_conf: dict | None = None,
               scores: bool = True) -> Path:
    """``root/exp`` holding ``model.pth`` (and ``scores/summary.json``), its query encoder
    at ``root/mini_clap/mini_clap.pth``; returns ``root/exp``."""
    from bisep import checkpoint
    from bisep.registry import get_registry

    clap = mini_clap_checkpoint(root / "mini_clap" / "mini_clap.pth")
    torch.manual_seed(1)
    conf = TINY_FILM if separator_conf is None else separator_conf
    model = get_registry().build("separator", separator, **conf)
    config = {"separator": separator, "separator_conf": conf, "conditioner": "mini_clap",
              "conditioner_conf": {"checkpoint": str(clap)}}
    exp = root / "exp"
    checkpoint.save(checkpoint.serialize(model, config=config), exp / "model.pth")
    if scores:
        stat = {"mean": 4.25, "median": 4.0, "std": 1.0, "count": 4}
        summary = {"metrics": {"sdri": stat, "si_sdri": stat},
                   "by_source": {label: {"sdri": stat} for label in LABELS}}
        (exp / "scores").mkdir()
        (exp / "scores" / "summary.json").write_text(json.dumps(summary))
    return exp
