"""A tiny deterministic query encoder for tests: hashed character trigrams for text, a fixed
projection of the mean log spectrum for audio. Follows bisep's Conditioner interface."""
import zlib

import torch

from bisep.conditioners.base import Conditioner


class HashConditioner(Conditioner):
    """Shape: text ``(N,) -> (N, embed_dim)``; audio ``(N, time) -> (N, embed_dim)``."""

    def __init__(self, embed_dim: int = 8, sample_rate: int = 8000, n_fft: int = 64):
        super().__init__()
        self.embed_dim = embed_dim
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        g = torch.Generator().manual_seed(0)
        self.register_buffer("projection", torch.randn(n_fft // 2 + 1, embed_dim, generator=g))

    def embed_text(self, prompts):
        prompts = self.check_prompts(prompts)
        out = torch.zeros(len(prompts), self.embed_dim)
        for i, text in enumerate(prompts):
            padded = f"  {text.lower()} "
            for j in range(len(padded) - 2):
                out[i, zlib.crc32(padded[j:j + 3].encode()) % self.embed_dim] += 1.0
        return torch.nn.functional.normalize(out, dim=-1)

    def embed_audio(self, wav):
        spec = torch.stft(wav, self.n_fft, self.n_fft // 4, window=torch.hann_window(self.n_fft),
                          return_complex=True).abs()
        feats = torch.log1p(spec).mean(dim=-1) @ self.projection
        return torch.nn.functional.normalize(feats, dim=-1)
