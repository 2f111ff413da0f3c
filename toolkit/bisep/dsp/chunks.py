"""Where the chunks of a long signal lie, and how their outputs are cross-faded.

Every boundary is a multiple of the STFT hop, so a chunk's frames are frames of the whole
signal: a chunk that began between two of them would see every sample at other offsets in
its analysis windows (on the recipe's model, a 1 s context, 62.5 hops, took the agreement
with one pass from 22.8 to 15 dB SNR). Each chunk is run on a window that adds
``context`` samples of the signal on both sides (receptive field, STFT edge frames); only
its centre is kept, and consecutive centres overlap by ``fade`` samples, cross-faded with
complementary raised-cosine ramps (``sin²`` and ``cos²``, which sum to one)::

    window  |<-context->|<-------------- size -------------->|<-context->|
    weight              |/ fade \\____________________/ fade \\|
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ChunkPlan:
    """The chunks of a signal of ``length`` samples.

    Attributes:
        length: the signal's samples.
        size: samples each chunk contributes (the last one may be shorter).
        fade: samples shared by consecutive chunks (cross-faded).
        context: samples added on each side of a chunk before it is run, then dropped.
        hop_length: the STFT hop every boundary is a multiple of.
        starts: the first sample of each chunk.
    """

    length: int
    size: int
    fade: int
    context: int
    hop_length: int
    starts: tuple[int, ...]

    @classmethod
    def of(cls, length: int, chunk_seconds: float | None, overlap: float,
           context_seconds: float, sample_rate: int, hop_length: int) -> "ChunkPlan | None":
        """The plan for these settings, every length rounded to the hop (the chunk and the
        fade down, the context up); ``None`` when the signal fits in one chunk."""
        if chunk_seconds is None:
            return None
        size = max(hop_length, int(chunk_seconds * sample_rate) // hop_length * hop_length)
        if length <= size:
            return None
        fade = int(size * overlap) // hop_length * hop_length
        context = math.ceil(context_seconds * sample_rate / hop_length) * hop_length
        step = size - fade
        starts = tuple(range(0, length - fade, step) if fade else range(0, length, step))
        return cls(length, size, fade, context, hop_length, starts)

    @property
    def step(self) -> int:
        """Samples from one chunk's start to the next's."""
        return self.size - self.fade

    def window_start(self, i: int) -> int:
        """First sample of chunk ``i``'s window (its context included)."""
        return max(0, self.starts[i] - self.context)

    def window_end(self, i: int) -> int:
        """One past the last sample of chunk ``i``'s window."""
        return min(self.length, self.starts[i] + self.size + self.context)

    def weight(self, i: int, valid: int, device=None) -> torch.Tensor:
        """Cross-fade weights of chunk ``i``'s ``valid`` kept samples.

        Shape:
            output: ``(valid,)``; summed over the chunks, one at every sample.
        """
        weight = torch.ones(valid, device=device)
        if self.fade:
            ramp = torch.sin(0.5 * math.pi * (torch.arange(self.fade, device=device) + 0.5)
                             / self.fade) ** 2
            if i > 0:
                weight[:self.fade] = ramp[:valid]
            if i < len(self.starts) - 1:
                weight[-self.fade:] = 1 - ramp  # sin² + cos² = 1 across every overlap
        return weight
