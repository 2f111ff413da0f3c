"""A CLAP in the ``transformers`` format (``ClapModel`` + ``ClapProcessor``) as a conditioner.

``model_dir`` is a local folder as written by ``save_pretrained`` or ``hf download``, e.g. a copy
of ``laion/larger_clap_music`` or ``laion/clap-htsat-unfused``: ``config.json``, the weights,
``preprocessor_config.json`` and the tokenizer files. (To reproduce the paper, use the
``laion_clap`` conditioner with its checkpoint file: that a hub model holds the same weights has
not been checked.) It is loaded with ``local_files_only=True``: nothing is downloaded. Its
weights must be ``model.safetensors`` (or safetensors shards): a folder with only
``pytorch_model.bin``, a pickle that can run code when read, is refused.

The processor's feature extractor works in numpy, which would cut the gradient of the weak loss,
so :meth:`HfClapConditioner.embed_audio` recomputes the same log-mel spectrogram in torch (same
STFT, the extractor's own mel filter bank, same dB conversion) and feeds it to the model. For clips
up to 10 s the features match the extractor's; two choices differ on purpose, for determinism:
clips longer than 10 s keep their first 10 s (the extractor crops at random), and with a fusion
model every clip is marked "not longer" (the extractor marks one clip of an all-short batch at
random, which switches the fusion branch on for it).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from bisep.conditioners.clap_common import (ClapConditioner, check_tokenizer, check_wav,
                                            fit_to_clip)

MODEL_DIR_HELP = (
    "model_dir must be a local folder holding a transformers CLAP (config.json, "
    "model.safetensors, preprocessor_config.json and the tokenizer files), e.g. made on a machine "
    "with internet with `hf download laion/larger_clap_music --local-dir larger_clap_music`.")

# The weight files transformers reads without unpickling (a single file or an index of shards).
SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
SAFETENSORS_HELP = (
    "Weights are read from safetensors only. Convert a folder you trust on a machine with "
    "transformers: `python -c \"from transformers import ClapModel; "
    "ClapModel.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\"`.")


class HfClapConditioner(ClapConditioner):
    """A ``transformers`` CLAP, frozen, from a local folder.

    Args:
        model_dir (str): folder with the model, its feature-extractor config and its tokenizer.
        context_length (int): prompts are padded or truncated to this many tokens (77, as in
            LAION-CLAP training, so that token states line up with the ``laion_clap`` conditioner).
        frozen (bool): no parameter requires grad and the module stays in eval mode.

    Attributes:
        embed_dim (int): the joint space (``config.projection_dim``, 512 for the LAION models).
        sample_rate (int): the feature extractor's rate (48000 for the LAION models).
        token_dim (int): the text model's hidden size (768 for RoBERTa-base).
        clip_samples (int): the feature extractor's window (10 s).
    """

    def __init__(self, model_dir: str, context_length: int = 77, frozen: bool = True):
        super().__init__(frozen=frozen)
        if not (Path(model_dir) / "config.json").is_file():
            raise FileNotFoundError(f"no CLAP config.json in model_dir={model_dir}. "
                                    f"{MODEL_DIR_HELP}")
        if not any((Path(model_dir) / name).is_file() for name in SAFETENSORS):
            pickles = sorted(p.name for p in Path(model_dir).glob("*.bin"))
            found = f" (it holds {', '.join(pickles)}, a pickle bisep does not open)" \
                if pickles else ""
            raise FileNotFoundError(
                f"no model.safetensors in model_dir={model_dir}{found}. {SAFETENSORS_HELP}")
        from transformers import ClapModel, ClapProcessor

        processor = ClapProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = ClapModel.from_pretrained(model_dir, local_files_only=True,
                                               use_safetensors=True)
        self.tokenizer = processor.tokenizer
        check_tokenizer(self.tokenizer, self.model.config.text_config.vocab_size, model_dir,
                        MODEL_DIR_HELP)

        extractor = processor.feature_extractor
        # The extractor uses the HTK mel bank (no norm) for "fusion" and the Slaney one otherwise;
        # fusion models take four stacked copies of the mel of a short clip.
        self.fusion = extractor.truncation == "fusion"
        bank = extractor.mel_filters if self.fusion else extractor.mel_filters_slaney
        self.register_buffer("mel_bank", torch.tensor(bank, dtype=torch.float32).T.contiguous(),
                             persistent=False)  # (n_mels, n_freq)
        self.register_buffer("window", torch.hann_window(extractor.fft_window_size),
                             persistent=False)
        self.n_fft = extractor.fft_window_size
        self.hop_length = extractor.hop_length
        self.sample_rate = extractor.sampling_rate
        self.clip_samples = extractor.nb_max_samples
        self.context_length = context_length
        self.embed_dim = self.model.config.projection_dim
        self.token_dim = self.model.config.text_config.hidden_size
        if frozen:
            self.freeze()

    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings (``ClapModel.get_text_features``).

        Args:
            prompts (list of str): non-empty texts.

        Shape:
            output: ``(len(prompts), embed_dim)``.
        """
        output = self.model.get_text_features(**self._tokenize(prompts))
        return F.normalize(output.pooler_output, dim=-1)

    def embed_text_tokens(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The text model's last hidden states and padding mask (``True`` = real token).

        Args:
            prompts (list of str): non-empty texts.

        Shape:
            output: ``(len(prompts), context_length, token_dim)`` and
            ``(len(prompts), context_length)``.
        """
        tokens = self._tokenize(prompts)
        states = self.model.text_model(**tokens).last_hidden_state
        return states, tokens["attention_mask"].bool()

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """The feature extractor's log-mel spectrogram, in torch (differentiable).

        Power STFT (Hann, centred, reflect padding), mel bank, floor at 1e-10, then dB.

        Shape:
            - wav: ``(batch, time)``.
            - output: ``(batch, frames, n_mels)``.
        """
        spec = torch.stft(wav, self.n_fft, hop_length=self.hop_length, window=self.window,
                          center=True, pad_mode="reflect", return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_bank, power).clamp_min(1e-10)
        return (10.0 * torch.log10(mel)).transpose(1, 2)

    def embed_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """Unit-norm audio embeddings, differentiable with respect to ``wav``.

        Clips are repeat-padded then zero-padded to 10 s (first 10 s kept if longer), as the
        feature extractor's ``repeatpad`` does.

        Args:
            wav (torch.Tensor): mono waveforms at :attr:`sample_rate`, floats in [-1, 1].

        Shape:
            - wav: ``(batch, time)``.
            - output: ``(batch, embed_dim)``.
        """
        wav = check_wav(wav)
        param = self.model.logit_scale_a
        wav = fit_to_clip(wav.to(device=param.device, dtype=torch.float32), self.clip_samples)
        features = self.log_mel(wav).unsqueeze(1).to(param.dtype)
        if self.fusion:
            features = features.expand(-1, 4, -1, -1)
        is_longer = torch.zeros(wav.shape[0], 1, dtype=torch.bool, device=wav.device)
        output = self.model.get_audio_features(input_features=features, is_longer=is_longer)
        return F.normalize(output.pooler_output, dim=-1)
