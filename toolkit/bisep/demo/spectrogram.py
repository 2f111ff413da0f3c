"""Spectrogram images of the demo's mixture, target and residual (matplotlib, Agg).

The three images share one colour scale, set by the mixture's loudest bin, so what the
target takes from the mixture shows as the same colours moving from one image to another.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# 64 ms frames with 75 % overlap: fine enough in frequency to see harmonics at 16-48 kHz.
FRAME_SECONDS = 0.064
DYNAMIC_RANGE_DB = 80.0


def log_spectrogram(wav: np.ndarray, rate: int) -> tuple[np.ndarray, float, float]:
    """The magnitude spectrogram in dB of the channel average.

    Returns:
        ``(db, hop_seconds, nyquist_hz)``.

    Shape:
        wav: ``(channels, time)`` or ``(time,)``; db: ``(frequencies, frames)``.
    """
    from scipy.signal import stft

    mono = np.asarray(wav, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=0)
    size = max(16, int(FRAME_SECONDS * rate))
    hop = size // 4
    _, _, spec = stft(mono, fs=rate, nperseg=size, noverlap=size - hop, boundary="even",
                      padded=True)
    return 20 * np.log10(np.abs(spec) + 1e-8), hop / rate, rate / 2


def save_spectrogram(wav: np.ndarray, rate: int, path: str | Path, title: str,
                     top_db: float | None = None) -> Path:
    """Draw the spectrogram of ``wav`` to a PNG (written atomically).

    Args:
        top_db: the level drawn brightest (the mixture's maximum, so that the three images
            compare); ``None`` uses this signal's own maximum.

    Shape:
        wav: ``(channels, time)`` or ``(time,)``.
    """
    # A bare Figure renders with the Agg canvas and never touches pyplot's global backend
    # (a server has no display, and a Python user's own pyplot setup stays as it was).
    from matplotlib.figure import Figure

    from bisep.atomic import atomic_path

    db, hop, nyquist = log_spectrogram(wav, rate)
    top = float(db.max()) if top_db is None else top_db
    fig = Figure(figsize=(6.4, 2.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma",
                      vmin=top - DYNAMIC_RANGE_DB, vmax=top,
                      extent=(0, db.shape[1] * hop, 0, nyquist / 1000))
    ax.set(title=title, xlabel="time (s)", ylabel="frequency (kHz)")
    fig.colorbar(image, ax=ax, label="dB")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
