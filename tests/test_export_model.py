"""The model folder (`bisep export-model`, `Separator.from_pretrained(folder)`) and the
`bisep export-onnx` command, with real files and real subprocesses."""
import json
import shutil

import numpy as np
import pytest
import torch

from bisep import checkpoint
from bisep.export.checksums import ModelFolderError
from bisep.export.model_folder import is_model_folder
from bisep.inference import Separator
from conftest import run_cli
from export_fakes import LABELS, experiment

FILES = {"config.json", "model.safetensors", "query_encoder.safetensors", "README.md",
         "checksums.sha256"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``(exp_dir, folder)``: a tiny experiment and the folder `bisep export-model` wrote."""
    root = tmp_path_factory.mktemp("export")
    exp = experiment(root)
    out = run_cli("export-model", exp, root / "hf_model", check=True)
    assert out.stdout.strip().splitlines()[-1] == str(root / "hf_model")
    return exp, root / "hf_model"


def test_folder_holds_its_files_and_a_model_card(exported):
    exp, folder = exported
    assert {p.name for p in folder.iterdir()} == FILES
    config_text = (folder / "config.json").read_text()
    assert str(exp.parent) not in config_text  # no path outside the folder
    config = json.loads(config_text)
    assert config["labels"] == LABELS
    assert config["conditioner"]["text_tower"]["sha256"] == (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")
    card = (folder / "README.md").read_text()
    header = card.split("---")[1]
    for token in ("license: mit", "audio-to-audio", "audio-source-separation", "synth_music",
                  "sdri", "4.25"):
        assert token in header
    for token in ("synthetic", "`flute`, `violin`", "10.0 s clip", "Peak RSS",
                  "Separator.from_pretrained"):
        assert token in card
    listed = {line.split()[1] for line in (folder / "checksums.sha256").read_text().splitlines()}
    assert listed == FILES - {"checksums.sha256"}


def test_a_copied_folder_separates_like_the_checkpoint(exported, tmp_path, monkeypatch):
    exp, folder = exported
    reference = Separator.from_pretrained(exp / "model.pth")  # the .pth path still works
    copy = shutil.copytree(folder, tmp_path / "elsewhere" / "model")
    wav = np.random.default_rng(0).uniform(-0.3, 0.3, 12000).astype(np.float32)
    expected = reference.separate(wav, ["the sound of a flute"], 16000)

    def no_pickle(*args, **kwargs):
        raise AssertionError("a model folder must load without torch.load")

    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = Separator.from_pretrained(copy)
    assert (loaded.chunk_seconds, loaded.overlap) == (8.0, 0.25)
    np.testing.assert_allclose(loaded.separate(wav, ["the sound of a flute"], 16000)[0].target,
                               expected[0].target, atol=1e-6)


def test_a_run_folder_is_told_from_a_model_folder_by_its_checkpoint(exported, tmp_path):
    # One rule (bisep.checkpoint.folder_checkpoint): a folder holding a run's checkpoint is a
    # run folder, even beside a config.json; the checkpoint is the one resolve() finds.
    exp, folder = exported
    assert is_model_folder(folder) and not is_model_folder(exp)
    run = shutil.copytree(folder, tmp_path / "run")
    shutil.copy(exp / "model.pth", run / "best_model.pth")
    assert not is_model_folder(run) and checkpoint.resolve(run) == run / "best_model.pth"
    assert not is_model_folder(tmp_path / "missing") and not is_model_folder(exp / "model.pth")


@pytest.mark.parametrize("damage, tokens", [
    ("tamper:model.safetensors", ("model.safetensors", "modified")),
    ("tamper:README.md", ("README.md", "modified")),
    ("delete:query_encoder.safetensors", ("query_encoder.safetensors", "missing")),
    ("delete:checksums.sha256", ("checksums.sha256", "missing")),
    ("delete:config.json", ("config.json", "missing")),
])
def test_a_tampered_or_missing_file_is_refused(exported, tmp_path, damage, tokens):
    copy = shutil.copytree(exported[1], tmp_path / "model")
    action, name = damage.split(":")
    if action == "delete":
        (copy / name).unlink()
    else:
        data = bytearray((copy / name).read_bytes())
        data[-1] ^= 0xFF
        (copy / name).write_bytes(bytes(data))
    with pytest.raises(ModelFolderError) as err:
        Separator.from_pretrained(copy)
    for token in tokens:
        assert token in str(err.value)


def test_a_non_empty_out_dir_needs_overwrite(exported, tmp_path):
    exp, _ = exported
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = run_cli("export-model", exp, out)
    assert proc.returncode == 2
    assert "already exists" in proc.stderr and "--overwrite" in proc.stderr
    assert (out / "notes.txt").exists()
    run_cli("export-model", exp, out, "--overwrite", check=True)
    assert {p.name for p in out.iterdir()} == FILES
    assert not list(tmp_path.glob(".taken*"))  # no temporary folder left beside it


def test_only_a_mini_clap_query_encoder_can_travel(tmp_path, use_plugins):
    from bisep import checkpoint
    from bisep.export.model_folder import export_model

    registry = use_plugins("example")
    model = registry.build("separator", "example_gain", query_dim=8)
    config = {"separator": "example_gain", "conditioner": "example_hash", "conditioner_conf": {}}
    path = checkpoint.save(checkpoint.serialize(model, config=config), tmp_path / "model.pth")
    with pytest.raises(ModelFolderError, match="'example_hash'.*only mini_clap"):
        export_model(path, tmp_path / "out", registry=registry)
    assert not (tmp_path / "out").exists()


def test_the_recipe_skips_a_model_that_cannot_travel(tmp_path, use_plugins, capsys):
    from bisep.cli.main import main
    from test_separate import save_model

    model = save_model(use_plugins("example"), tmp_path / "model.pth")  # example_hash encoder
    assert main(["export-model", str(model), str(tmp_path / "out")]) == 2
    assert "only mini_clap" in capsys.readouterr().err
    assert main(["export-model", str(model), str(tmp_path / "out"), "--skip-unportable"]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "'example_hash'" in err
    assert not (tmp_path / "out").exists()


def test_cli_exports_onnx_and_refuses_what_it_cannot(exported, tmp_path):
    import onnxruntime

    folder = exported[1]
    onnx_path = tmp_path / "masks.onnx"
    run_cli("export-onnx", folder, onnx_path, check=True)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["bisep_separator"] == "FiLMMaskNet" and meta["n_fft"] == "510"
    assert [i.name for i in session.get_inputs()] == ["magnitude", "query_embedding"]

    again = run_cli("export-onnx", folder, onnx_path)
    assert again.returncode == 2 and "already exists" in again.stderr

    # cond_unet with an SCA level cross-attends to mini_clap's token states.
    exp = experiment(tmp_path / "sca", "cond_unet", dict(
        preset="small", ngf=4, num_downs=3, num_cond_levels=1, num_heads=2, token_dim=384,
        query_dim=384), scores=False)
    refused = run_cli("export-onnx", exp / "model.pth", tmp_path / "sca.onnx")
    assert refused.returncode == 2
    assert "CondUNet" in refused.stderr and "token states" in refused.stderr
    assert not (tmp_path / "sca.onnx").exists()
