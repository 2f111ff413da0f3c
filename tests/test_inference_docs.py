"""Every Python example of docs/inference.md runs, in order, against a small exported model
(a real model folder, real ONNX file, real wav files)."""
import re

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from export_fakes import experiment

DOC = REPO / "docs" / "inference.md"


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.+?)\n```", DOC.read_text(), flags=re.S)


@pytest.fixture
def workplace(tmp_path, monkeypatch):
    """A folder as the page's examples expect it: ``exp/weak/hf_model``,
    ``exp/weak/masks.onnx``, a stereo ``song.wav`` and a mono ``cello.wav``."""
    from bisep.export.model_folder import export_model
    from bisep.export.onnx import export_model_onnx

    exp = experiment(tmp_path / "train")
    weak = tmp_path / "exp" / "weak"
    export_model(exp, weak / "hf_model")
    export_model_onnx(weak / "hf_model", weak / "masks.onnx")
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    song = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    sf.write(tmp_path / "song.wav", (0.2 * song + 0.01 * rng.standard_normal(song.shape)), 16000)
    sf.write(tmp_path / "cello.wav", 0.2 * np.sin(2 * np.pi * 130 * t[:16000]), 16000)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_page_has_examples_for_each_part():
    text = "\n".join(python_examples())
    for token in ("residual", "channels_first", "Query(",
                  "negative=", "separate_file", "chunk_seconds", "onnxruntime"):
        assert token in text, token


def test_every_python_example_runs(workplace, capsys):
    namespace: dict = {}
    for number, example in enumerate(python_examples(), start=1):
        try:
            exec(compile(example, f"{DOC.name} example {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"docs/inference.md example {number} fails:\n{example}") from exc
    printed = capsys.readouterr().out
    assert "['song_the_sound_of_a_violin.wav', 'song_no-the_sound_of_a_violin.wav']" in printed
    assert (workplace / "out" / "song" / "violin.wav").exists()
    assert (workplace / "no_violin.wav").exists()
    mixture = sf.read(workplace / "song.wav", dtype="float32")[0]
    target = sf.read(workplace / "violin.wav", dtype="float32")[0]
    residual = sf.read(workplace / "no_violin.wav", dtype="float32")[0]
    np.testing.assert_allclose(target + residual, mixture, atol=1e-4)  # 16-bit files
