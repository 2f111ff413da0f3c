"""A per-frequency gain separator: the smallest thing that follows bisep's interface."""
import torch

from bisep.separators.base import BaseSeparator


class GainSeparator(BaseSeparator):
    """mask[b, q, f, t] = sigmoid(W e_q)[f]: a query picks a spectral shape.

    Shape:
        - encode: ``(B, F, T)`` -> the same magnitude.
        - predict_masks: ``(B, Q, F, T)``.
    """

    def __init__(self, n_fft: int = 62, hop_length: int = 16, query_dim: int = 8,
                 sample_rate: int = 8000):
        super().__init__(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                         query_dim=query_dim)
        self.gain = torch.nn.Linear(query_dim, n_fft // 2 + 1)

    def encode(self, mag):
        return mag

    def predict_masks(self, features, query):
        self.check_query(query, features.shape[0])
        shape = torch.sigmoid(self.gain(query.embedding))  # (B, Q, F)
        return shape.unsqueeze(-1).expand(-1, -1, -1, features.shape[-1])

    def get_model_args(self):
        return {"n_fft": self.stft.config.n_fft, "hop_length": self.stft.config.hop_length,
                "query_dim": self.query_dim, "sample_rate": self.sample_rate}


class MaskL2Loss(torch.nn.Module):
    """Mean squared mask value (a toy regulariser for the plugin tests)."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, phrase_masks):
        return self.scale * phrase_masks.pow(2).mean()
