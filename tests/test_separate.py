"""Inference: Separator API and `bisep separate`, with the example plugin's separator and
query encoder (real checkpoints, real wav files, real subprocesses)."""
import numpy as np
import pytest
import soundfile as sf
import torch

from bisep import checkpoint
from bisep.inference import Separator, query_slug
from conftest import run_cli


def save_model(registry, path, identity=False, conditioner="example_hash"):
    torch.manual_seed(0)
    model = registry.build("separator", "example_gain", query_dim=8)
    if identity:  # every mask ~1: separation returns the input (tests the chunk cross-fade)
        with torch.no_grad():
            model.gain.weight.zero_()
            model.gain.bias.fill_(60.0)
    config = {"separator": "example_gain", "conditioner": conditioner, "conditioner_conf": {}}
    return checkpoint.save(checkpoint.serialize(model, config=config), path)


def tone(seconds, rate, freq=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)
    return np.stack([x * (1 + 0.1 * c) for c in range(channels)]).astype(np.float32)


def test_chunked_overlap_add_reconstructs_with_identity_masks(tmp_path, use_plugins):
    registry = use_plugins("example")
    path = save_model(registry, tmp_path / "model.pth", identity=True)
    wav = tone(3.3, 8000, channels=2)
    for chunk, overlap in [(None, 0.25), (0.5, 0.25), (0.7, 0.5), (1.0, 0.0)]:
        sep = Separator.from_pretrained(path, registry=registry, chunk_seconds=chunk, overlap=overlap)
        out = sep.separate(wav, ["violin", "flute"], 8000)
        assert out.shape == (2, 2, wav.shape[1])
        np.testing.assert_allclose(out[0], wav, atol=2e-4, err_msg=f"chunk={chunk} overlap={overlap}")


def test_outputs_follow_query_and_input_rate(tmp_path, use_plugins):
    registry = use_plugins("example")
    sep = Separator.from_pretrained(save_model(registry, tmp_path / "m.pth"), registry=registry)
    wav = tone(1.0, 16000)  # the model runs at 8 kHz: resampled there and back
    out = sep.separate(wav, ["violin", "flute"], 16000)
    assert out.shape == (2, 1, 16000)
    assert not np.allclose(out[0], out[1])  # different queries, different masks
    again = sep.separate(wav[0], ["flute"], 16000)
    np.testing.assert_allclose(again[0], out[1], atol=1e-6)
    with pytest.raises(ValueError, match="query text '' is empty"):
        sep.separate(wav, [""], 16000)
    with pytest.raises(ValueError, match="no query given"):
        sep.separate(wav, [], 16000)
    bad = wav.copy()
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sep.separate(bad, ["violin"], 16000)


def test_separate_file_names_outputs(tmp_path, use_plugins):
    registry = use_plugins("example")
    sep = Separator.from_pretrained(save_model(registry, tmp_path / "m.pth"), registry=registry)
    sf.write(tmp_path / "song.wav", tone(0.5, 8000)[0], 8000)
    paths = sep.separate_file(tmp_path / "song.wav", ["Acoustic guitar!"], tmp_path / "out")
    assert [p.name for p in paths] == ["song_acoustic_guitar.wav"]
    assert query_slug("  ") == "query"


def test_checkpoint_with_unknown_conditioner(tmp_path, use_plugins):
    registry = use_plugins("example")
    path = save_model(registry, tmp_path / "m.pth", conditioner="example_hsah")
    with pytest.raises(Exception, match="unknown conditioner 'example_hsah'. Did you mean 'example_hash'?"):
        Separator.from_pretrained(path, registry=registry)


def test_cli_folder_mode_reports_bad_files_and_runs_the_rest(tmp_path, use_plugins, plugin_sites):
    registry = use_plugins("example")
    model = save_model(registry, tmp_path / "exp" / "model.pth")
    data = tmp_path / "in"
    data.mkdir()
    sf.write(data / "a.wav", tone(0.6, 8000)[0], 8000)
    sf.write(data / "b.flac", tone(0.4, 16000, channels=2).T, 16000)
    (data / "corrupt.wav").write_bytes(b"RIFF....WAVEnope")
    nan = tone(0.2, 8000)[0]
    nan[3] = np.nan
    sf.write(data / "nan.wav", nan, 8000, subtype="FLOAT")
    out = run_cli("separate", tmp_path / "exp", data, "-o", tmp_path / "out", "--query", "violin",
                  "--query", "flute", "--negative", "speech", pythonpath=[plugin_sites["example"]])
    assert out.returncode == 1, out.stderr
    assert "skipped" in out.stderr and "corrupt.wav: not a readable audio file" in out.stderr
    assert "nan.wav: 1 samples are NaN" in out.stderr
    assert "separated 2 of 4 file(s)" in out.stdout
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a_flute.wav", "a_violin.wav", "b_flute.wav", "b_violin.wav"]
    b, rate = sf.read(tmp_path / "out" / "b_violin.wav", always_2d=True)
    assert rate == 16000 and b.shape == (6400, 2)


def test_cli_audio_query_and_errors(tmp_path, use_plugins, plugin_sites):
    registry = use_plugins("example")
    model = save_model(registry, tmp_path / "model.pth")
    sf.write(tmp_path / "mix.wav", tone(0.5, 8000)[0], 8000)
    sf.write(tmp_path / "ref_violin.wav", tone(0.3, 8000, freq=880)[0], 8000)
    site = [plugin_sites["example"]]
    out = run_cli("separate", model, tmp_path / "mix.wav", "-o", tmp_path / "o", "--audio-query",
                  tmp_path / "ref_violin.wav", "--no-progress", pythonpath=site)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o" / "mix_ref_violin.wav").exists()
    out = run_cli("separate", model, tmp_path / "mix.wav", "-o", tmp_path / "o", "--query", "",
                  pythonpath=site)
    assert out.returncode == 2 and "query text '' is empty" in out.stderr
    out = run_cli("separate", model, tmp_path / "mix.wav", "-o", tmp_path / "o", pythonpath=site)
    assert out.returncode == 2 and "no query given: add --query TEXT" in out.stderr
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.zeros(1)}, foreign)
    out = run_cli("separate", foreign, tmp_path / "mix.wav", "-o", tmp_path / "o", "--query", "x",
                  pythonpath=site)
    assert out.returncode == 2 and "foreign.pth: not a bisep model checkpoint" in out.stderr
    out = run_cli("separate", model, tmp_path / "missing.wav", "-o", tmp_path / "o", "--query", "x",
                  pythonpath=site)
    assert out.returncode == 1 and "missing.wav: no such file" in out.stderr
