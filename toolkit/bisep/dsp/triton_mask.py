"""Fused Triton kernels for applying real masks (or mask logits) to a complex spectrogram.

Only :mod:`bisep.dsp.masking` imports this module, and only when the ``"triton"`` backend
is actually used: importing it imports Triton, which every separator must not pay for.
Whether the kernels are compiled for a GPU or run by Triton's interpreter on CPU tensors
is decided when this module is imported (``TRITON_INTERPRET=1`` must be set before that).

What is fused, per batch item and per tile of ``(freq, frames)`` bins:

- forward: load the mixture bins once, then for every query load its mask (or logit),
  apply the sigmoid in registers and store ``sigmoid(l) * X``. The broadcast
  ``(batch, 1, F, T) * (batch, Q, F, T)``, the sigmoid output and any dtype-promoted
  copy of the mask are never materialised.
- backward: one pass over the output gradient computes the mask/logit gradient
  ``Re(G * conj(X))`` (times ``s * (1 - s)`` for logits, with ``s`` recomputed from the
  saved logits) and, when the mixture needs a gradient, accumulates ``sum_q m_q * G_q``
  in registers, so the ``(batch, Q, F, T)`` complex intermediates of the eager backward
  are never written either.

The kernels work on ``torch.view_as_real`` views (``(..., 2)`` interleaved re/im): the
complex arithmetic is plain real arithmetic on the two components, and differentiating
each component on its own gives PyTorch's complex gradient convention.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

# Tiles are (outer, inner, re/im) with the mixture's contiguous axis inner (see _Launch).
# Square: the network's masks are usually contiguous along the *other* axis (frames), and
# 32 x 32 gives them full 128-byte rows too; Triton converts between the two thread
# layouts in shared memory.
BLOCK_A = 32
BLOCK_B = 32
NUM_WARPS = 4


@triton.jit
def _mask_fwd_kernel(
    x_ptr, m_ptr, y_ptr,
    Q, size_a, size_b, tiles_b, tiles,
    sx_n, sx_a, sx_b,
    sm_n, sm_q, sm_a, sm_b,
    sy_n, sy_q, sy_a, sy_b,
    LOGITS: tl.constexpr, FP64: tl.constexpr,
    BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr,
):
    # One program per (batch item n, tile of bins); the query loop runs inside it so the
    # mixture tile is read from memory once and reused for every query.
    pid = tl.program_id(0)
    n = (pid // tiles).to(tl.int64)
    tile = pid % tiles
    a = (tile // tiles_b) * BLOCK_A + tl.arange(0, BLOCK_A)
    b = (tile % tiles_b) * BLOCK_B + tl.arange(0, BLOCK_B)
    c = tl.arange(0, 2)
    inside = (a[:, None] < size_a) & (b[None, :] < size_b)
    inside3 = inside[:, :, None]

    # Complex operands take strides in complex elements, doubled here: a unit stride
    # (specialised by Triton) then shows as aligned, contiguous re/im pairs, which lets
    # the compiler coalesce and vectorise along the inner axis.
    x_off = 2 * (a[:, None] * sx_a + b[None, :] * sx_b)
    x = tl.load(x_ptr + 2 * n * sx_n + x_off[:, :, None] + c[None, None, :], mask=inside3,
                other=0.0)
    if FP64:
        x = x.to(tl.float64)
    else:
        x = x.to(tl.float32)

    m_row = m_ptr + n * sm_n + a[:, None] * sm_a + b[None, :] * sm_b
    y_off = 2 * (a[:, None] * sy_a + b[None, :] * sy_b)
    y_row = y_ptr + 2 * n * sy_n + y_off[:, :, None] + c[None, None, :]
    for _ in range(Q):
        m = tl.load(m_row, mask=inside, other=0.0).to(x.dtype)
        if LOGITS:
            m = tl.sigmoid(m)
        y = x * m[:, :, None]
        tl.store(y_row, y.to(y_ptr.dtype.element_ty), mask=inside3)
        # Advancing the pointers (64-bit) instead of multiplying q by a stride keeps
        # large (batch, Q, F, T) offsets from overflowing 32-bit integers.
        m_row += sm_q
        y_row += 2 * sy_q


@triton.jit
def _mask_bwd_kernel(
    x_ptr, m_ptr, gy_ptr, gm_ptr, gx_ptr,
    Q, size_a, size_b, tiles_b, tiles,
    sx_n, sx_a, sx_b,
    sm_n, sm_q, sm_a, sm_b,
    sgy_n, sgy_q, sgy_a, sgy_b,
    sgm_n, sgm_q, sgm_a, sgm_b,
    sgx_n, sgx_a, sgx_b,
    LOGITS: tl.constexpr, NEED_GM: tl.constexpr, NEED_GX: tl.constexpr, FP64: tl.constexpr,
    BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr,
):
    pid = tl.program_id(0)
    n = (pid // tiles).to(tl.int64)
    tile = pid % tiles
    a = (tile // tiles_b) * BLOCK_A + tl.arange(0, BLOCK_A)
    b = (tile % tiles_b) * BLOCK_B + tl.arange(0, BLOCK_B)
    c = tl.arange(0, 2)
    inside = (a[:, None] < size_a) & (b[None, :] < size_b)
    inside3 = inside[:, :, None]
    if FP64:
        acc = tl.zeros((BLOCK_A, BLOCK_B, 2), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_A, BLOCK_B, 2), dtype=tl.float32)

    if NEED_GM:
        x_off = 2 * (a[:, None] * sx_a + b[None, :] * sx_b)
        x = tl.load(x_ptr + 2 * n * sx_n + x_off[:, :, None] + c[None, None, :], mask=inside3,
                    other=0.0).to(acc.dtype)
    m_row = m_ptr + n * sm_n + a[:, None] * sm_a + b[None, :] * sm_b
    gy_off = 2 * (a[:, None] * sgy_a + b[None, :] * sgy_b)
    gy_row = gy_ptr + 2 * n * sgy_n + gy_off[:, :, None] + c[None, None, :]
    gm_row = gm_ptr + n * sgm_n + a[:, None] * sgm_a + b[None, :] * sgm_b
    for _ in range(Q):
        gy = tl.load(gy_row, mask=inside3, other=0.0).to(acc.dtype)
        if LOGITS or NEED_GX:
            m = tl.load(m_row, mask=inside, other=0.0).to(acc.dtype)
            if LOGITS:
                m = tl.sigmoid(m)
        if NEED_GM:
            # d/dm of (m*xr, m*xi) against (gr, gi): gr*xr + gi*xi = Re(G * conj(X)).
            gm = tl.sum(gy * x, axis=2)
            if LOGITS:
                gm = gm * m * (1.0 - m)
            tl.store(gm_row, gm.to(gm_ptr.dtype.element_ty), mask=inside)
        if NEED_GX:
            acc += gy * m[:, :, None]
        m_row += sm_q
        gy_row += 2 * sgy_q
        gm_row += sgm_q

    if NEED_GX:
        gx_off = 2 * (a[:, None] * sgx_a + b[None, :] * sgx_b)
        tl.store(gx_ptr + 2 * n * sgx_n + gx_off[:, :, None] + c[None, None, :],
                 acc.to(gx_ptr.dtype.element_ty), mask=inside3)


class _Launch:
    """Grid and oriented sizes and strides for one mixture layout.

    Triton assigns a tile's elements to threads by the contiguity it can prove, and
    interleaved re/im pairs are never contiguous along the frequency or frames axis
    itself (stride 2 floats); on such ties the inner tile axis gets the consecutive
    threads. So the inner axis is the mixture's contiguous one: frequency for torch.stft
    output, frames for a contiguous ``(B, F, T)`` tensor. Estimates and the mixture
    gradient share the mixture's layout; an output gradient laid out otherwise is still
    handled correctly, only less coalesced.

    Args:
        spec: the mixture, ``(batch, freq, frames)``.
    """

    def __init__(self, spec: torch.Tensor):
        batch, n_freq, n_frames = spec.shape
        self.freq_inner = spec.stride(1) < spec.stride(2)
        size_a, size_b = (n_frames, n_freq) if self.freq_inner else (n_freq, n_frames)
        tiles_b = triton.cdiv(size_b, BLOCK_B)
        tiles = triton.cdiv(size_a, BLOCK_A) * tiles_b
        self.sizes = (size_a, size_b, tiles_b, tiles)
        self.grid = (batch * tiles,)

    def estimates(self, spec: torch.Tensor, n_queries: int) -> torch.Tensor:
        """Uninitialised ``(B, Q, F, T)`` output laid out like the mixture.

        torch.stft's frequency-contiguous layout is also what torch.istft reads without a
        copy.
        """
        batch, n_freq, n_frames = spec.shape
        if self.freq_inner:
            return spec.new_empty(batch, n_queries, n_frames, n_freq).transpose(2, 3)
        return spec.new_empty(batch, n_queries, n_freq, n_frames)

    def strides(self, t: torch.Tensor) -> tuple[int, ...]:
        """Strides of ``t`` (complex: in complex elements) as (lead..., outer, inner)."""
        *lead, s_freq, s_frames = t.stride()
        return (*lead, s_frames, s_freq) if self.freq_inner else (*lead, s_freq, s_frames)

    def forward_args(self, spec: torch.Tensor, mask: torch.Tensor, out: torch.Tensor,
                     logits: bool) -> tuple[tuple, dict]:
        """Positional and keyword arguments of :func:`_mask_fwd_kernel`."""
        args = (torch.view_as_real(spec), mask, torch.view_as_real(out), mask.shape[1],
                *self.sizes, *self.strides(spec), *self.strides(mask), *self.strides(out))
        meta = dict(LOGITS=logits, FP64=spec.dtype == torch.complex128, BLOCK_A=BLOCK_A,
                    BLOCK_B=BLOCK_B, num_warps=NUM_WARPS)
        return args, meta

    def backward_args(self, x: torch.Tensor, m: torch.Tensor, gy: torch.Tensor,
                      gm: torch.Tensor, gx: torch.Tensor, logits: bool, need_gm: bool,
                      need_gx: bool) -> tuple[tuple, dict]:
        """Positional and keyword arguments of :func:`_mask_bwd_kernel`."""
        args = (torch.view_as_real(x), m, torch.view_as_real(gy), gm, torch.view_as_real(gx),
                gy.shape[1], *self.sizes, *self.strides(x), *self.strides(m),
                *self.strides(gy), *self.strides(gm), *self.strides(gx))
        meta = dict(LOGITS=logits, NEED_GM=need_gm, NEED_GX=need_gx,
                    FP64=gy.dtype == torch.complex128, BLOCK_A=BLOCK_A, BLOCK_B=BLOCK_B,
                    num_warps=NUM_WARPS)
        return args, meta


def _empty_from_meta(meta: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.empty_strided(meta.shape, meta.stride(), dtype=meta.dtype, device=device)


class _MaskFunction(torch.autograd.Function):
    """``(B, F, T) complex x (B, Q, F, T) real -> (B, Q, F, T) complex``: ``m * X``.

    Complex in and out, real views only inside: going through ``view_as_complex`` under
    autograd would make every incoming gradient contiguous first, an extra copy of the
    largest tensor whenever it arrives frequency-contiguous (as from torch.istft). The
    gradients follow PyTorch's convention (``dL/dRe + i dL/dIm``) because each real
    component is differentiated on its own.
    """

    @staticmethod
    def forward(ctx, spec: torch.Tensor, mask: torch.Tensor, logits: bool) -> torch.Tensor:
        launch = _Launch(spec)
        out = launch.estimates(spec, mask.shape[1])
        if out.numel():
            args, meta = launch.forward_args(spec, mask, out, logits)
            _mask_fwd_kernel[launch.grid](*args, **meta)
        # Keep alive only what the backward pass reads: the mixture for the mask
        # gradient, the mask (logits: for the recomputed sigmoid) for either gradient.
        # Meta copies record dtype and strides for allocating the gradients.
        need_spec, need_mask = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.save_for_backward(spec if need_mask else None,
                              mask if need_spec or (need_mask and logits) else None)
        ctx.spec_meta = torch.empty_like(spec, device="meta")
        ctx.mask_meta = torch.empty_like(mask, device="meta")
        ctx.launch, ctx.logits = launch, logits
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        spec, mask = ctx.saved_tensors
        need_spec, need_mask = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_spec = _empty_from_meta(ctx.spec_meta, grad_out.device) if need_spec else None
        grad_mask = _empty_from_meta(ctx.mask_meta, grad_out.device) if need_mask else None
        if grad_out.numel() == 0:
            # No query (or no bin): the mixture received no gradient at all.
            return grad_spec.zero_() if need_spec else None, grad_mask, None

        # Any strides (0 for an expanded gradient); view_as_real needs no lazy conjugate.
        grad_out = grad_out.resolve_conj()
        # Operands a launch does not read still need a valid pointer; grad_out stands in.
        x = spec if spec is not None else grad_out[:, 0]
        gx = grad_spec if grad_spec is not None else grad_out[:, 0]
        real_stand_in = torch.view_as_real(grad_out)[..., 0]
        m = mask if mask is not None else real_stand_in
        gm = grad_mask if grad_mask is not None else real_stand_in
        args, meta = ctx.launch.backward_args(x, m, grad_out, gm, gx, ctx.logits, need_mask,
                                              need_spec)
        _mask_bwd_kernel[ctx.launch.grid](*args, **meta)
        return grad_spec, grad_mask, None


def masked_spec(spec: torch.Tensor, mask: torch.Tensor, logits: bool) -> torch.Tensor:
    """``sigmoid(mask) * X`` (``logits=True``) or ``mask * X`` with the Triton kernels.

    Inputs are checked by :func:`bisep.dsp.masking.apply_mask`; any strides are accepted.

    Args:
        spec: complex mixture STFT (complex32, complex64 or complex128).
        mask: real masks or mask logits, any floating dtype; computed in the mixture's
            real precision, at least float32.
        logits: apply the sigmoid to ``mask`` first.

    Shape:
        - spec: ``(batch, freq, frames)`` complex.
        - mask: ``(batch, queries, freq, frames)`` real.
        - output: ``(batch, queries, freq, frames)`` complex, freq/frames laid out like
          ``spec``.

    Returns:
        The masked estimates, differentiable w.r.t. ``spec`` and ``mask``.
    """
    # view_as_real refuses lazily conjugated tensors; resolving is a no-op otherwise.
    spec = spec.resolve_conj()
    if spec.is_cuda:
        # Triton launches on the current device, which need not be the tensors' one.
        with torch.cuda.device(spec.device):
            return _MaskFunction.apply(spec, mask, logits)
    return _MaskFunction.apply(spec, mask, logits)
