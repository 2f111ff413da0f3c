"""STFT front end and inverse, the plain torch path every separator shares.

The paper's setting is ``n_fft = win = 1022, hop = 256`` at 16 kHz (512 bins x 512
frames for 131,070 samples), Hann window, ``center=True``, reflect padding.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


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


def stft_power(wav: torch.Tensor, window: torch.Tensor, n_fft: int, hop_length: int
               ) -> torch.Tensor:
    """Power spectrum ``|X|²`` of the centred, reflect-padded STFT, with a cheaper backward.

    The forward is ``torch.stft`` (``center=True``, ``pad_mode="reflect"``, onesided), as
    ``torchaudio.transforms.Spectrogram(power=2)`` computes it. The backward is written out
    as one real inverse FFT per frame and an overlap-add, where autograd's passes through the
    complex STFT, whose ``rfft`` backward is a full-length complex FFT: on 42 clips of 3 s
    (the weak training step's phrase outputs through the judge) forward and backward went
    from 0.18 to 0.12 s on 2 CPU threads. Gradients agree with autograd's to float rounding
    (``tests/test_dsp.py``). Only once differentiable.

    Args:
        wav: the signal; gradients flow to it.
        window: the analysis window, ``n_fft`` samples, no gradient.
        n_fft, hop_length: as for ``torch.stft``.

    Shape:
        - wav: ``(batch, time)``.
        - output: ``(batch, n_fft // 2 + 1, frames)``, the frames of ``torch.stft`` with
          ``center=True``.
    """
    if window.shape != (n_fft,) or window.requires_grad:
        raise ValueError(f"stft_power needs a window of n_fft={n_fft} samples without "
                         f"gradient, got shape {tuple(window.shape)}")
    padded = F.pad(wav.unsqueeze(1), (n_fft // 2, n_fft // 2), mode="reflect").squeeze(1)
    return _FramedPower.apply(padded, window.to(wav.dtype), n_fft, hop_length)


class _FramedPower(torch.autograd.Function):
    """``|rfft(frame · window)|²`` of every frame of an already padded signal.

    For ``P_k = |X_k|²`` with ``X_k = Σ_n w_n x_n e^{-2πikn/N}`` over the onesided bins
    ``k = 0..N/2``, ``∂L/∂(w_n x_n) = 2 Re Σ_k g_k X_k e^{2πikn/N}``. ``N · irfft`` of a
    onesided spectrum counts each bin between DC and Nyquist twice (with its
    negative-frequency twin) and those two once, so they are doubled first.
    """

    @staticmethod
    def forward(ctx, padded, window, n_fft, hop_length):
        spec = torch.stft(padded, n_fft, hop_length, n_fft, window, center=False,
                          return_complex=True)                     # (batch, freq, frames)
        ctx.save_for_backward(spec, window)
        ctx.n_fft, ctx.hop_length, ctx.length = n_fft, hop_length, padded.shape[-1]
        return (spec * spec.conj()).real

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        spec, window = ctx.saved_tensors
        n_fft, hop = ctx.n_fft, ctx.hop_length
        weighted = (grad * spec).transpose(-1, -2)                  # (batch, frames, freq)
        weighted[..., 0] *= 2
        if n_fft % 2 == 0:
            weighted[..., -1] *= 2
        frames = torch.fft.irfft(weighted, n=n_fft).mul_(window * n_fft)
        return _overlap_add(frames, hop, ctx.length), None, None, None


def _overlap_add(frames: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    """Sum of the frames, frame ``f`` starting at sample ``f * hop``.

    Where the hop divides the frame, as many shifted adds as frames overlap (about 1.4x
    faster than ``F.fold``'s ``col2im`` on CPU for a 50% overlap); otherwise ``F.fold``.

    Shape:
        ``(batch, frames, n)`` -> ``(batch, length)``, ``length >= (frames - 1) * hop + n``.
    """
    batch, count, n = frames.shape
    if n % hop:
        return F.fold(frames.transpose(1, 2), (1, length), (1, n), stride=(1, hop)
                      ).view(batch, length)
    out = frames.new_zeros(batch, length)
    for part, chunk in enumerate(frames.view(batch, count, n // hop, hop).unbind(2)):
        out[:, part * hop:(part + count) * hop].view(batch, count, hop).add_(chunk)
    return out
