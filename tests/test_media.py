"""Media decoding (bisep.data.media): WAV through soundfile, MP4 (AAC, with and without a
video stream) through PyAV, resampling, offsets, and the reason of every failure."""
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as taf

from bisep.audio import resample_audio as resample
from bisep.data.media import MediaError, check_usable, load_media, media_duration, rms_db
from conftest import assert_mentions
from corpus_fakes import signal, write_broken, write_mp4, write_wav


def test_wav_is_averaged_to_mono_and_resampled(tmp_path):
    audio = signal(1, 1.0, 44100, channels=2)
    path = write_wav(tmp_path / "a.wav", audio, 44100)
    out = load_media(path, 16000)
    expected = taf.resample(torch.from_numpy(sf.read(path, dtype="float32")[0].mean(1)),
                            44100, 16000).numpy()
    assert out.dtype == np.float32 and out.shape == (16000,)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert media_duration(path) == 1.0
    # No resampling at the file's own rate: the samples as stored.
    np.testing.assert_allclose(load_media(path, 44100), audio.mean(0), atol=1e-4)


def test_wav_offset_and_duration_cut_exactly(tmp_path):
    path = write_wav(tmp_path / "a.wav", signal(2, 1.0, 16000), 16000)
    whole = load_media(path, 16000)
    np.testing.assert_array_equal(load_media(path, 16000, offset=0.25, duration=0.5),
                                  whole[4000:12000])
    assert load_media(path, 16000, offset=0.9, duration=0.5).shape == (1600,)  # file ends
    assert load_media(path, 16000, offset=2.0).shape == (0,)


@pytest.mark.parametrize("video", [False, True])
def test_mp4_aac_decodes_with_or_without_video(tmp_path, video):
    audio = signal(3, 1.0, 48000, channels=2)
    path = write_mp4(tmp_path / "a.mp4", audio, 48000, video=video)
    out = load_media(path, 16000)
    # AAC pads the last frame: about 1 s, within one codec frame (1024 samples at 48 kHz).
    assert out.dtype == np.float32 and 16000 <= len(out) <= 16000 + 400
    assert abs(rms_db(out) - rms_db(audio.mean(0))) < 0.5
    assert media_duration(path) == pytest.approx(1.0, abs=0.03)
    # A seek decodes the same samples as the whole file (up to the resampler's edges). Tones
    # only: AAC codes noise as noise parameters (PNS), which the decoder fills with its own
    # random numbers, so noise is not reproduced sample for sample after a seek.
    t = np.arange(48000) / 48000
    chord = np.stack([0.2 * np.sin(2 * np.pi * 330 * t), 0.1 * np.sin(2 * np.pi * 550 * t)])
    path = write_mp4(tmp_path / "b.mp4", chord.astype(np.float32), 48000, video=video)
    whole = load_media(path, 16000)
    part = load_media(path, 16000, offset=0.5, duration=0.25)
    assert part.shape == (4000,)
    np.testing.assert_allclose(part[200:-200], whole[8200:11800], atol=2e-3)


@pytest.mark.parametrize("reason, name", [
    ("unreadable", "x.wav"), ("unreadable", "x.mp4"), ("no_audio_stream", "x.mp4")])
def test_broken_files_raise_their_reason(tmp_path, reason, name):
    path = tmp_path / name
    write_broken(path, reason)
    for call in (lambda: load_media(path, 16000), lambda: media_duration(path)):
        with pytest.raises(MediaError) as info:
            call()
        assert info.value.reason == reason and info.value.path == str(path)
        assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    for path in (None, tmp_path / "nope.mp4", tmp_path):
        with pytest.raises(MediaError, match=r"no such file \(missing\)") as info:
            load_media(path, 16000)
        assert info.value.reason == "missing"


def test_check_usable_reports_short_and_silent_audio():
    check_usable(signal(0, 1.0, 8000)[0], 8000, "a.wav", min_duration=0.5)
    with pytest.raises(MediaError) as err:
        check_usable(signal(0, 0.2, 8000)[0], 8000, "a.wav", min_duration=0.5)
    assert_mentions(str(err.value), "a.wav:", "0.20 s", "at least 0.5 s", "too_short")
    for quiet in (np.zeros(8000, np.float32), np.full(8000, 1e-4, np.float32)):
        with pytest.raises(MediaError) as info:
            check_usable(quiet, 8000, "a.wav", min_duration=0.5)
        assert info.value.reason == "silent"
    with pytest.raises(ValueError, match="unknown media error reason"):
        MediaError("a.wav", "bad", "x")


def test_resample():
    x = signal(0, 0.5, 44100)[0]
    assert resample(x, 44100, 44100) is not None and len(resample(x, 44100, 16000)) == 8000
    assert resample(np.zeros(0, np.float32), 44100, 16000).shape == (0,)


# -- speed fixes (benchmarks/corpus_extract.py) keep the numbers -------------------------
@pytest.mark.parametrize("channels", [1, 2, 3, 6, 8])
def test_wav_channels_averaged_as_numpy_mean(tmp_path, channels):
    """Adding channel rows (fast) gives numpy's mean over the interleaved axis, bit for bit."""
    rng = np.random.default_rng(channels)
    audio = (rng.standard_normal((channels, 8000)) * rng.uniform(0.01, 0.3, (channels, 1)))
    path = write_wav(tmp_path / "a.wav", audio.astype(np.float32), 8000)
    expected = sf.read(path, dtype="float32", always_2d=True)[0].mean(axis=1)
    out = load_media(path, 8000)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(load_media(path, 8000, offset=0.25, duration=0.5),
                                  expected[2000:6000])


def per_frame_decode(path):
    """PyAV decoding with a channel mean per frame (how media.py did it before batching)."""
    import av

    with av.open(str(path)) as container:
        to_float = av.AudioResampler(format="fltp")
        return np.concatenate([converted.to_ndarray().mean(axis=0)
                               for frame in container.decode(container.streams.audio[0])
                               for converted in to_float.resample(frame)])


@pytest.mark.parametrize("channels", [1, 2])
def test_mp4_batched_channel_average_is_per_frame_mean(tmp_path, monkeypatch, channels):
    import bisep.data.media as media

    monkeypatch.setattr(media, "_FRAMES_PER_BATCH", 7)  # several batches and a remainder
    path = write_mp4(tmp_path / "a.mp4", signal(4, 1.0, 44100, channels), 44100)
    np.testing.assert_array_equal(media.decode(path)[0], per_frame_decode(path))
    whole = per_frame_decode(path)
    part, rate = media.decode(path, offset=0.0, duration=0.3)
    assert rate == 44100
    np.testing.assert_array_equal(part, whole[:len(part)])


def test_resample_is_torchaudio_functional_exactly():
    """The kept Resample transform gives functional.resample's numbers (kernel built once)."""
    import bisep.audio

    x = signal(5, 0.5, 44100)[0]
    for orig, new in ((44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000)):
        expected = taf.resample(torch.from_numpy(x), orig, new).numpy()
        np.testing.assert_array_equal(resample(x, orig, new), expected)
    assert bisep.audio._resampler(44100, 16000, torch.float32, torch.device("cpu")) is \
        bisep.audio._resampler(44100, 16000, torch.float32, torch.device("cpu"))
