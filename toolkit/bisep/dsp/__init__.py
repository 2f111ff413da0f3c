"""Signal processing shared by all separators: STFT, mask application, inverse STFT."""
from bisep.dsp.masking import BACKENDS as MASK_BACKENDS
from bisep.dsp.masking import apply_mask, apply_mask_logits, resolve_backend
from bisep.dsp.stft import Stft, StftConfig, stft_power

__all__ = ["MASK_BACKENDS", "Stft", "StftConfig", "apply_mask", "apply_mask_logits",
           "resolve_backend", "stft_power"]
