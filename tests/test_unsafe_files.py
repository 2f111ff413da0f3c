"""No file bisep opens can run code: every weight file, its own or one a dependency would
unpickle, goes through ``bisep.checkpoint.read_weights`` (``weights_only=True``) or is
refused. Each test plants a pickle whose ``__reduce__`` would create a marker file behind one
path that reaches a load, and checks that the marker never appears and the error names the
file."""
import pickle

import pytest
import torch

from bisep import checkpoint
from conftest import assert_mentions, run_cli
from test_conditioners_clap import write_bpe_tokenizer, write_roberta_config


class Planted:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def plant(path, marker, raw=False):
    """A checkpoint-shaped file holding a :class:`Planted` object (zip or raw pickle)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    package = {"model_name": "film_masknet", "model_args": {}, "state_dict": {},
               "global_step": 1, "payload": Planted(marker)}
    if raw:
        path.write_bytes(pickle.dumps(package))
    else:
        torch.save(package, path)
    return path


def test_the_planted_pickle_is_live(tmp_path):
    # Guards the tests below: an unsafe load of the planted file does create the marker.
    marker = tmp_path / "marker"
    torch.load(plant(tmp_path / "m.pth", marker), weights_only=False)
    assert marker.exists()


def save_separator(path, conditioner, conditioner_conf, query_dim):
    from bisep.registry import get_registry

    model = get_registry().build("separator", "film_masknet", preset="small",
                                 query_dim=query_dim)
    config = {"separator": "film_masknet", "conditioner": conditioner,
              "conditioner_conf": conditioner_conf}
    return checkpoint.save(checkpoint.serialize(model, config=config), path)


def separate(model, *args):
    """``bisep separate`` in this process: (rc, stderr)."""
    import contextlib
    import io

    from bisep.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["separate", str(model), *map(str, args), "--no-progress"])
    return rc, err.getvalue()


@pytest.fixture
def mixture(tmp_path):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "mix.wav", np.zeros(8000, dtype="float32"), 16000)
    return tmp_path / "mix.wav"


@pytest.mark.parametrize("raw", [False, True], ids=["zip", "raw-pickle"])
def test_separator_model_file(tmp_path, mixture, raw):
    marker = tmp_path / "marker"
    model = plant(tmp_path / "exp" / "model.pth", marker, raw=raw)
    out = run_cli("separate", model.parent, mixture, "-o", tmp_path / "out", "--query", "x")
    assert out.returncode == 2, out.stderr
    assert f"{model}: cannot be read" in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_mini_clap_checkpoint_named_by_a_model_file(tmp_path, mixture):
    marker = tmp_path / "marker"
    evil = plant(tmp_path / "mini_clap.pth", marker)
    model = save_separator(tmp_path / "model.pth", "mini_clap", {"checkpoint": str(evil)}, 384)
    rc, err = separate(model, mixture, "-o", tmp_path / "out", "--query", "x")
    assert rc == 2 and f"{evil}: cannot be read" in err
    assert not marker.exists()


def test_laion_clap_checkpoint_named_by_a_model_file(tmp_path, mixture):
    # laion_clap's own loader would unpickle this file with weights_only=False.
    marker = tmp_path / "marker"
    evil = plant(tmp_path / "clap.pt", marker)
    roberta = tmp_path / "roberta"
    write_roberta_config(roberta, write_bpe_tokenizer(roberta))
    model = save_separator(tmp_path / "model.pth", "laion_clap",
                           {"checkpoint": str(evil), "text_model_dir": str(roberta)}, 512)
    rc, err = separate(model, mixture, "-o", tmp_path / "out", "--query", "x")
    assert rc == 2
    assert_mentions(err, f"{evil}:", "cannot be read", "LAION-CLAP checkpoint")
    assert "weights_only=False" in err  # how to convert a file the user trusts
    assert not marker.exists()


def test_hf_clap_folder_with_a_pickled_model(tmp_path, mixture):
    marker = tmp_path / "marker"
    folder = tmp_path / "clap"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    plant(folder / "pytorch_model.bin", marker)
    model = save_separator(tmp_path / "model.pth", "hf_clap", {"model_dir": str(folder)}, 512)
    rc, err = separate(model, mixture, "-o", tmp_path / "out", "--query", "x")
    assert rc == 2 and "pytorch_model.bin" in err and "no model.safetensors" in err
    assert not marker.exists()


def test_audio_query_file(tmp_path, mixture):
    marker = tmp_path / "marker"
    evil = plant(tmp_path / "example.wav", marker)
    model = save_separator(tmp_path / "model.pth", "mini_clap", {}, 384)
    rc, err = separate(model, mixture, "-o", tmp_path / "out", "--audio-query", evil)
    assert rc == 2 and f"{evil}: not a readable audio file" in err
    assert not marker.exists()


def test_lightning_resume_checkpoint(tmp_path):
    from pathlib import Path

    marker = tmp_path / "marker"
    exp = tmp_path / "exp"
    last = plant(exp / "checkpoints" / "last.ckpt", marker)
    config = Path(__file__).parent / "recipe_tiny" / "train_weak.yaml"
    out = run_cli("train", "--config", config, "--data-dir", tmp_path / "data", "--dump-dir",
                  tmp_path / "dump", "--exp-dir", exp)
    assert out.returncode == 2, out.stderr
    assert_mentions(out.stderr, f"{last}:", "cannot be read", "training checkpoint")
    assert not marker.exists()
    assert not (exp / "config.yaml").exists()  # refused before the run wrote anything
