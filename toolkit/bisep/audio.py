"""Reading and writing audio files: clear errors on bad input, atomic writes.

WAV/FLAC go through ``soundfile`` (torchaudio >= 2.9 needs FFmpeg for I/O); resampling
uses ``torchaudio.functional.resample``. Arrays are ``float32`` shaped ``(channels, time)``.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import soundfile as sf

from bisep.atomic import atomic_path
from bisep.errors import UserError


class AudioError(ValueError, UserError):
    """An audio file that cannot be used; the message names the file and the fix."""


def read(path: str | Path, sample_rate: int | None = None, mono: bool = False,
         resample: bool = False) -> tuple[np.ndarray, int]:
    """Read an audio file as ``float32`` of shape ``(channels, time)``.

    Args:
        path: the file.
        sample_rate: the rate the caller expects. With ``resample=False`` another rate
            is an error; with ``resample=True`` the audio is resampled to it.
        mono: average the channels into one.
        resample: see ``sample_rate``.

    Returns:
        ``(audio, rate)``.

    Raises:
        AudioError: missing, unreadable, empty or non-finite audio; a wrong rate.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file. Check the path.")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file.")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc}). Re-export it as "
                         f"WAV or FLAC, e.g. `sox in.ext -r 16000 out.wav`.") from None
    audio = np.ascontiguousarray(data.T)
    if audio.shape[1] == 0:
        raise AudioError(f"{path}: the file holds no samples.")
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise AudioError(f"{path}: {bad} samples are NaN or infinite. Re-render or repair "
                         f"the file; bisep does not guess values for them.")
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    if sample_rate is not None and rate != sample_rate:
        if not resample:
            raise AudioError(f"{path}: sample rate is {rate} Hz, expected {sample_rate} Hz. "
                             f"Resample it (e.g. `sox {path.name} -r {sample_rate} out.wav`) "
                             f"or let the caller resample.")
        audio = resample_audio(audio, rate, sample_rate)
        rate = sample_rate
    return audio, rate


def resample_audio(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling with torchaudio (``functional.resample``'s numbers). Shape
    ``(..., time)`` and dtype are kept.

    The windowed-sinc kernel is built once per pair of rates and dtype (a kept
    ``torchaudio.transforms.Resample``): ``functional.resample`` rebuilds it on every call,
    which cost more than the filtering itself for a 10 s clip
    (``benchmarks/corpus_extract.py``).
    """
    if orig_rate == new_rate or audio.shape[-1] == 0:
        return audio
    import torch

    return resample_tensor(torch.from_numpy(np.ascontiguousarray(audio)), orig_rate,
                           new_rate).numpy()


def resample_tensor(wav, orig_rate: int, new_rate: int):
    """:func:`resample_audio` for a torch tensor, on its device and differentiable; the
    kernel is built once per pair of rates, dtype and device.

    Shape:
        - wav: ``(..., time)``, floating point.
        - output: ``(..., ceil(time * new_rate / orig_rate))``.
    """
    if orig_rate == new_rate or wav.shape[-1] == 0:
        return wav
    return _resampler(orig_rate, new_rate, wav.dtype, wav.device)(wav)


@functools.lru_cache(maxsize=16)
def _resampler(orig_rate: int, new_rate: int, dtype, device):
    import torchaudio.transforms as tat

    return tat.Resample(orig_rate, new_rate, dtype=dtype).to(device)


def write(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> Path:
    """Write ``audio`` (``(channels, time)`` or ``(time,)``) atomically.

    The data goes to a temporary file in the same folder, which then replaces ``path``,
    so a killed process never leaves a half-written file under the final name.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise AudioError(f"{path}: audio to write must be (channels, time), got {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: refusing to write NaN or infinite samples.")
    file_format = _format(path)
    try:
        with atomic_path(path) as tmp:
            sf.write(tmp, audio.T, sample_rate, subtype=subtype, format=file_format)
    # libsndfile reports a full disk or a lost folder as "System error." alone.
    except (sf.LibsndfileError, OSError) as exc:
        raise AudioError(f"{path}: cannot be written ({exc}). The disk may be full or the "
                         f"folder not writable: free some space or choose another output "
                         f"folder.") from None
    return path


def _format(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    formats = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}
    if ext not in formats:
        raise AudioError(f"{path}: cannot write '.{ext}' files; use .wav or .flac.")
    return formats[ext]


def info(path: str | Path) -> sf._SoundFileInfo:
    """``soundfile.info`` with the same errors as :func:`read`."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file. Check the path.")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc}).") from None
