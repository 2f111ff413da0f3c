"""Audio I/O: real files, clear errors, atomic writes."""
import numpy as np
import pytest
import soundfile as sf

from bisep import audio
from bisep.audio import AudioError
from conftest import assert_mentions


def tone(seconds=0.5, rate=16000, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_read_write_round_trip_and_mono(tmp_path):
    stereo = np.stack([tone(), 0.5 * tone()])
    path = audio.write(tmp_path / "a" / "x.wav", stereo, 16000)
    data, rate = audio.read(path)
    assert rate == 16000 and data.shape == (2, 8000)
    np.testing.assert_allclose(data, stereo, atol=1e-7)
    mono, _ = audio.read(path, mono=True)
    np.testing.assert_allclose(mono[0], 0.75 * tone(), atol=1e-6)


def test_resampling_keeps_the_tone(tmp_path):
    path = audio.write(tmp_path / "x.wav", tone(rate=44100, freq=1000), 44100)
    with pytest.raises(AudioError) as err:
        audio.read(path, sample_rate=16000)
    assert_mentions(str(err.value), f"{path}:", "sample rate", "44100 Hz", "16000 Hz")
    data, rate = audio.read(path, sample_rate=16000, resample=True)
    assert rate == 16000 and abs(data.shape[1] - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(data[0]))
    assert abs(np.argmax(spectrum) * 16000 / data.shape[1] - 1000) < 5


def test_bad_files_are_named(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: no such file"):
        audio.read(tmp_path / "missing.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(AudioError, match="corrupt.wav: not a readable audio file"):
        audio.read(corrupt)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0,), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: the file holds no samples"):
        audio.read(empty)
    nan = tmp_path / "nan.wav"
    samples = tone()
    samples[10:13] = np.nan
    sf.write(nan, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: 3 samples are NaN or infinite"):
        audio.read(nan)
    with pytest.raises(AudioError, match="is a directory"):
        audio.read(tmp_path)


def test_write_refuses_nan_and_unknown_formats_and_leaves_no_temp(tmp_path):
    with pytest.raises(AudioError, match="refusing to write NaN"):
        audio.write(tmp_path / "x.wav", np.array([0.0, np.nan]), 16000)
    with pytest.raises(AudioError, match=r"cannot write '.mp3' files"):
        audio.write(tmp_path / "x.mp3", tone(), 16000)
    assert list(tmp_path.iterdir()) == []


def test_resample_tensor_matches_torchaudio_and_keeps_its_kernel():
    import torch
    import torchaudio.functional as AF

    from bisep.audio import _resampler, resample_tensor

    wav = torch.randn(2, 4410, requires_grad=True)
    out = resample_tensor(wav, 44100, 16000)
    torch.testing.assert_close(out, AF.resample(wav, 44100, 16000))
    assert out.shape == (2, 1600) and out.requires_grad
    assert _resampler(44100, 16000, torch.float32, wav.device) is \
        _resampler(44100, 16000, torch.float32, wav.device)
    assert resample_tensor(wav, 16000, 16000) is wav
