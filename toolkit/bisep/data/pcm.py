"""16-bit PCM WAV files, written without a float round trip: datasets store their clips
as int16 so that a mixture is exactly the integer sum of its stems."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from bisep.atomic import atomic_path

PCM_MAX = 32767


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16 (values beyond full scale are clipped)."""
    return np.clip(np.round(audio * 32768.0), -32768, PCM_MAX).astype(np.int16)


def write_pcm16(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write int16 samples as a 16-bit PCM WAV, atomically."""
    with atomic_path(path) as tmp:
        sf.write(tmp, samples, sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)


def write_pcm16_if_changed(path: Path, samples: np.ndarray, sample_rate: int) -> bool:
    """:func:`write_pcm16` unless the file already holds exactly these samples; True when
    it wrote."""
    if path.is_file():
        try:
            with sf.SoundFile(str(path)) as handle:
                same = (handle.samplerate == sample_rate and handle.subtype == "PCM_16"
                        and handle.frames == len(samples)
                        and np.array_equal(handle.read(dtype="int16"), samples))
            if same:
                return False
        except (sf.LibsndfileError, RuntimeError):
            pass
    write_pcm16(path, samples, sample_rate)
    return True
