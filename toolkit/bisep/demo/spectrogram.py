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
# About the axes' size in pixels (rows, columns) of a 640 x 240 image.
MAX_PIXELS = (192, 512)


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


def max_pool(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` shrunk to at most ``shape`` by taking the maximum of each block.

    Shape:
        image: ``(rows, columns)``; output: ``(ceil(rows / r), ceil(columns / c))`` with
        ``r = ceil(rows / shape[0])`` and ``c = ceil(columns / shape[1])``.
    """
    r = -(-image.shape[0] // shape[0])
    c = -(-image.shape[1] // shape[1])
    if r == 1 and c == 1:
        return image
    rows, cols = -(-image.shape[0] // r) * r, -(-image.shape[1] // c) * c
    padded = np.pad(image, ((0, rows - image.shape[0]), (0, cols - image.shape[1])),
                    mode="edge")
    return padded.reshape(rows // r, r, cols // c, c).max(axis=(1, 3))


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
    frames = db.shape[1]
    # Resampling the full matrix into the axes' few hundred pixels was most of the drawing
    # time; max-pooling first keeps every peak visible and costs almost nothing.
    db = max_pool(db, MAX_PIXELS)
    fig = Figure(figsize=(6.4, 2.4), dpi=100)
    # Fixed axes rather than a layout engine: constrained layout doubled the drawing time.
    ax = fig.add_axes((0.09, 0.2, 0.76, 0.68))
    image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma",
                      vmin=top - DYNAMIC_RANGE_DB, vmax=top, interpolation="nearest",
                      extent=(0, frames * hop, 0, nyquist / 1000))
    ax.set(title=title, xlabel="time (s)", ylabel="frequency (kHz)")
    fig.colorbar(image, cax=fig.add_axes((0.87, 0.2, 0.02, 0.68)), label="dB")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
