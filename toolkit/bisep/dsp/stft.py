"""STFT front end and inverse, the plain torch path every separator shares.

The paper's setting is ``n_fft = win = 1022, hop = 256`` at 16 kHz (512 bins x 512
frames for 131,070 samples), Hann window, ``center=True``, reflect padding.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class StftConfig:
    """STFT parameters; ``n_fft // 2 + 1`` frequency bins."""

    n_fft: int = 1022
    hop_length: int = 256
    win_length: int | None = None

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def as_dict(self) -> dict:
        return asdict(self)


class Stft(torch.nn.Module):
    """Forward and inverse STFT with a registered (device-following) Hann window.

    Args:
        config: the STFT parameters.

    Shape:
        - :meth:`forward`: ``(..., time)`` real -> ``(..., freq, frames)`` complex.
        - :meth:`inverse`: ``(..., freq, frames)`` complex -> ``(..., length)`` real.
    """

    def __init__(self, config: StftConfig = StftConfig()):
        super().__init__()
        self.config = config
        win = config.win_length or config.n_fft
        self.register_buffer("window", torch.hann_window(win), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        lead = wav.shape[:-1]
        flat = wav.reshape(-1, wav.shape[-1])
        spec = torch.stft(flat, self.config.n_fft, self.config.hop_length,
                          self.window.shape[0], self.window.to(flat.dtype), center=True,
                          pad_mode="reflect", return_complex=True)
        return spec.reshape(*lead, *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        # torch.istft takes at most a 3-D batch: fold every leading dimension into one.
        lead = spec.shape[:-2]
        flat = spec.reshape(-1, *spec.shape[-2:])
        window = self.window.to(flat.real.dtype)
        wav = torch.istft(flat, self.config.n_fft, self.config.hop_length, window.shape[0],
                          window, center=True, length=length)
        return wav.reshape(*lead, length)

    def frames(self, length: int) -> int:
        """Number of STFT frames for ``length`` samples (``center=True``)."""
        return length // self.config.hop_length + 1
