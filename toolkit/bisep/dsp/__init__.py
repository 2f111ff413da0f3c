"""Signal processing shared by all separators: STFT, mask application, inverse STFT."""
from bisep.dsp.masking import apply_mask
from bisep.dsp.stft import Stft, StftConfig

__all__ = ["Stft", "StftConfig", "apply_mask"]
