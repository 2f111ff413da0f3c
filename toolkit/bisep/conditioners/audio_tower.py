"""mini_clap's audio tower: a small CNN on a log-mel spectrogram, differentiable from the
waveform on (torch STFT and mel bank, no numpy), to a unit-norm embedding.

It is built to be cheap, since the separator's weak loss runs it, frozen, on every separated
clip of every training step and differentiates its output with respect to that clip; its
log-mel is normalised per clip (mean subtracted), so the embedding does not depend on the
clip's overall level.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from bisep.conditioners.base import ConditionerError
from bisep.dsp.stft import stft_power


class LogMel(nn.Module):
    """Log-mel spectrogram with the clip's mean removed (level-invariant), differentiable.

    Args:
        sample_rate, n_fft, hop_length, n_mels, f_min, f_max: the mel front end.

    Shape:
        - wav: ``(batch, time)``.
        - output: ``(batch, n_mels, frames)``.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, hop_length: int = 256,
                 n_mels: int = 64, f_min: float = 30.0, f_max: float = 8000.0):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
            f_min=f_min, f_max=f_max, power=2.0)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        # The floor sits ~100 dB under a full-scale tone: silence gives a flat, finite map.
        logmel = torch.log(self.mel.mel_scale(self.power(wav)) + 1e-10)
        return logmel - logmel.mean(dim=(1, 2), keepdim=True)

    def power(self, wav: torch.Tensor) -> torch.Tensor:
        """``|X|²`` of the STFT, as ``self.mel`` (``power=2``) computes it, with a backward
        written out as real inverse FFTs (:func:`bisep.dsp.stft_power`): the weak training
        step differentiates the frozen tower's output with respect to the separated audio,
        and autograd's backward through the complex STFT (a complex ``sgn`` for ``abs``, a
        full complex FFT for ``rfft``) was most of that tower's backward on CPU.

        Shape:
            - wav: ``(batch, time)``.
            - output: ``(batch, n_fft // 2 + 1, frames)``.
        """
        conf = self.mel.spectrogram
        return stft_power(wav, conf.window, conf.n_fft, conf.hop_length)


def conv_block(cin: int, cout: int, pool: tuple[int, int]) -> nn.Sequential:
    """conv3x3 -> BN -> ReLU -> max-pool."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.MaxPool2d(pool))


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` per channel of an eval-mode BatchNorm: ``bn(x) = scale·x + shift``."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _contiguous_state(module: nn.Module, state: dict, prefix: str, local_metadata) -> None:
    """State-dict hook: the tensors under ``prefix`` in contiguous (NCHW) memory."""
    for key, value in state.items():
        if key.startswith(prefix):
            state[key] = value.contiguous()


class AudioTower(nn.Module):
    """A small CNN from a waveform to a unit-norm embedding.

    Three 2-D conv blocks on the log-mel (pitch moves a note along the mel axis, and 2-D
    kernels see the same timbre at any pitch), then the remaining frequency rows are folded into
    channels for a 1-D conv over time, and mean + max pooling over time (a quiet instrument in a
    mixture shows in the max, a steady one in the mean) feeds a linear projection.

    Args:
        embed_dim: output size (the text tower's, 384).
        channels: channels of the three 2-D blocks and of the 1-D layer.
        sample_rate, n_fft, hop_length, n_mels, f_min, f_max: the mel front end.

    Shape:
        - wav: ``(batch, time)``, any length of at least ``n_fft // 2 + 1`` samples.
        - output: ``(batch, embed_dim)``, unit norm.
    """

    def __init__(self, embed_dim: int = 384, channels: tuple[int, ...] = (8, 16, 32, 128),
                 sample_rate: int = 16000, n_fft: int = 512, hop_length: int = 256,
                 n_mels: int = 64, f_min: float = 30.0, f_max: float = 8000.0):
        super().__init__()
        if len(channels) != 4 or n_mels % 8:
            raise ConditionerError(f"AudioTower needs 4 channel counts and n_mels divisible by "
                                   f"8, got channels={tuple(channels)}, n_mels={n_mels}")
        c1, c2, c3, c4 = channels
        self.logmel = LogMel(sample_rate, n_fft, hop_length, n_mels, f_min, f_max)
        self.input_norm = nn.BatchNorm2d(1)
        # Pool frequency 8x in all, time only 4x: onsets and vibrato are short.
        self.blocks = nn.Sequential(conv_block(1, c1, (2, 2)), conv_block(c1, c2, (2, 2)),
                                    conv_block(c2, c3, (2, 1)))
        self.temporal = nn.Sequential(nn.Conv1d(c3 * n_mels // 8, c4, 3, padding=1, bias=False),
                                      nn.BatchNorm1d(c4), nn.ReLU(inplace=True))
        self.proj = nn.Linear(2 * c4, embed_dim)
        # oneDNN's channels-last (NHWC) kernels run the 2-D blocks' 3x3 convolutions and
        # max-pools faster than NCHW ones on CPU (the forward, and the first convolution's
        # weight gradient when the tower trains; the input gradient, all a frozen tower's
        # backward computes, gains little); the embeddings differ by float rounding only.
        # The layout is the module's own business: its state dict holds contiguous tensors,
        # and loading copies into the channels-last parameters, so checkpoints do not depend
        # on it. (Moving the blocks back with ``.to(memory_format=torch.contiguous_format)``
        # runs the NCHW kernels.)
        self.blocks.to(memory_format=torch.channels_last)
        self.register_state_dict_post_hook(_contiguous_state)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.logmel(wav).unsqueeze(1)                    # (B, 1, mels, frames)
        # The convolutions follow their weights' layout: channels-last from the first block on.
        if self.training:
            x = self.blocks(self.input_norm(x))              # (B, c3, mels/8, frames/4)
            x = self.temporal(x.flatten(1, 2))               # (B, c4, frames/4)
        else:
            x = self._folded_convs(x)
        x = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1)
        return F.normalize(self.proj(x), dim=-1)

    def _folded_convs(self, x: torch.Tensor) -> torch.Tensor:
        """The blocks and the temporal layer in eval mode, each BatchNorm folded into the
        convolution before it (the same function to float rounding).

        A frozen tower runs in eval mode, where a BatchNorm is a fixed affine map per channel;
        as its own layer its backward cost about 5x its forward on CPU, and the weak training
        step differentiates the frozen tower. Folded from the current weights at every call,
        so a tower that trains (the online judge) and is then evaluated stays exact.

        Shape:
            ``(B, 1, mels, frames)`` log-mel -> ``(B, c4, frames/4)``.
        """
        scale, shift = bn_affine(self.input_norm)            # before zero padding: not foldable
        x = x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
        for conv, bn, _, pool in self.blocks:
            scale, shift = bn_affine(bn)
            x = pool(F.relu(F.conv2d(x, conv.weight * scale.view(-1, 1, 1, 1), shift,
                                     padding=conv.padding)))
        conv, bn, _ = self.temporal
        scale, shift = bn_affine(bn)
        return F.relu(F.conv1d(x.flatten(1, 2), conv.weight * scale.view(-1, 1, 1), shift,
                               padding=conv.padding))
