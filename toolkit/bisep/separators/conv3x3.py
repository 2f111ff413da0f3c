"""A 3x3 convolution that runs NNPACK's Winograd algorithm where no gradient is wanted.

Nearly all the multiply-adds of :class:`~bisep.separators.cond_unet.CondUNet` are 3x3
convolutions; at inference on CPU, Winograd does about half the multiplications of oneDNN's
direct algorithm. Training, GPUs and small layers keep ``F.conv2d``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# NNPACK's Winograd convolution beat oneDNN from 32 channels in and out on (measured 1.1x
# at 32 channels, 1.5-2.5x at 64-1024 on this model's maps; 0.6-0.9x at 16).
WINOGRAD_MIN_CHANNELS = 32


def _winograd_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`conv3x3` uses NNPACK: fp32 CPU tensors, enough channels, no gradient
    wanted, eager mode."""
    return (x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and min(weight.shape[:2]) >= WINOGRAD_MIN_CHANNELS
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            # Also initialises NNPACK, which its convolution needs first.
            and torch._nnpack_available())


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
            ) -> torch.Tensor:
    """3x3 convolution, stride 1, zero padding 1.

    Where nothing needs its gradient (inference) on CPU, it runs NNPACK's Winograd
    algorithm, which does about half the multiplications of oneDNN's direct one and measured
    1.5-2.5x faster on this model's larger layers; results differ in the last digits (a
    relative 1e-5 on a layer), the usual difference between convolution algorithms.
    NNPACK's batched mode was slower than oneDNN, so a batch runs one item at a time.
    Training keeps ``F.conv2d``: its results do not depend on this function.

    Shape:
        ``(N, C_in, H, W)`` and weight ``(C_out, C_in, 3, 3)`` -> ``(N, C_out, H, W)``.
    """
    if not _winograd_applies(x, weight):
        return F.conv2d(x, weight, bias, padding=1)
    x, weight = x.contiguous(), weight.contiguous()
    outs = [torch._nnpack_spatial_convolution(item, weight, bias, [1, 1])
            for item in x.split(1)]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


class Conv3x3(nn.Conv2d):
    """``nn.Conv2d(in_ch, out_ch, 3, padding=1)`` computed by :func:`conv3x3` (same
    parameters and state-dict keys).

    Shape:
        ``(N, in_ch, H, W)`` -> ``(N, out_ch, H, W)``.
    """

    def __init__(self, in_ch: int, out_ch: int, bias: bool = True):
        super().__init__(in_ch, out_ch, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv3x3(x, self.weight, self.bias)
