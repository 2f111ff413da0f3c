"""LAION-CLAP as a conditioner: the paper's frozen CLAP, built offline from local files.

The model code is the ``laion_clap`` package's own (``clap_module.create_model``, the ``CLAP``
module, ``clap_module.factory.load_state_dict``). Its convenience wrapper ``CLAP_Module`` is *not*
used: its constructor downloads roberta-base (weights and tokenizer) from the model hub, and its
``load_ckpt()`` downloads a checkpoint whenever no path is given. Here nothing is downloaded:

- the checkpoint is a local file (``checkpoint``), e.g. ``music_audioset_epoch_15_esc_90.14.pt``
  (HTSAT-base audio tower + RoBERTa text tower, no fusion), the one the paper uses;
- the RoBERTa architecture and tokenizer come from a local roberta-base folder
  (``text_model_dir``: ``config.json``, ``vocab.json``, ``merges.txt``). Its weights are not needed,
  since the CLAP checkpoint holds the whole text tower.

Audio is embedded the way CLAP does for clips up to 10 s: repeat-pad then zero-pad to 10 s at
48 kHz (the paper's 8.19 s outputs are therefore zero-padded, see
``docs/paper.md#p11-clap-input-length``). Unlike ``CLAP_Module.get_audio_embedding_from_data``,
inputs are not quantized to int16 (that would cut the gradient), clips longer than 10 s keep
their *first* 10 s instead of a random crop (the loss of an item must not change between calls),
and the batch goes through the audio tower in one call.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from bisep.conditioners.base import ConditionerError
from bisep.conditioners.clap_common import (ClapConditioner, check_tokenizer, check_wav,
                                            fit_to_clip)

CHECKPOINT_HELP = (
    "Download a LAION-CLAP checkpoint on a machine with internet, e.g. "
    "music_audioset_epoch_15_esc_90.14.pt (the paper's, HTSAT-base) from "
    "https://huggingface.co/lukewys/laion_clap, copy it to this machine and set "
    "conditioner_conf.checkpoint to its path. Nothing is downloaded at run time.")

ROBERTA_HELP = (
    "text_model_dir must be a local copy of roberta-base holding config.json, vocab.json and "
    "merges.txt, e.g. made on a machine with internet with `hf download FacebookAI/roberta-base "
    "config.json vocab.json merges.txt --local-dir roberta-base`. Its weights are not needed: "
    "the CLAP checkpoint holds the whole text tower.")

# A checkpoint that pickles more than tensors and plain data is refused rather than unpickled;
# this says how to keep only its weights, once, for a file the user trusts.
SAFE_CHECKPOINT_HELP = (
    "If this is a LAION-CLAP checkpoint you trust, save its weights alone once: `python -c "
    "\"import torch; c = torch.load('IN.pt', weights_only=False); "
    "torch.save(c.get('state_dict', c), 'OUT.pt')\"` and point conditioner_conf.checkpoint "
    "at OUT.pt.")

# The recipes (egs/{music,vggsound,audiocaps}/bimodal) leave text_model_dir to the command line:
# this is where a missing folder is noticed, so the message says how to give it there.
TEXT_MODEL_DIR_HELP = (
    "Give the folder as conditioner_conf.text_model_dir: in the training config, as a `bisep "
    "train` override conditioner_conf.text_model_dir=/path/to/roberta-base, or through a recipe "
    "with ./run.sh --train_args \"conditioner_conf.text_model_dir=/path/to/roberta-base\".")

def read_state(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """A LAION-CLAP checkpoint's state dict, as ``clap_module.factory.load_state_dict`` gives it.

    That loader (the one ``CLAP_Module.load_ckpt`` uses) unpickles with ``weights_only=False``,
    which runs whatever code a crafted file holds, so the file is read here with
    :func:`bisep.checkpoint.read_weights` and the loader's two fixes are repeated: strip the
    ``module.`` prefix of a DataParallel save, drop ``text_branch.embeddings.position_ids``
    (newer transformers no longer store it).

    Raises:
        CheckpointError: the file is unreadable, holds objects other than tensors and plain
            data, or holds no state dict.
    """
    from bisep.checkpoint import CheckpointError, read_weights

    package = read_weights(checkpoint, "LAION-CLAP checkpoint", fix=SAFE_CHECKPOINT_HELP)
    state = package.get("state_dict", package) if isinstance(package, dict) else None
    if isinstance(state, dict) and state and next(iter(state)).startswith("module."):
        state = {k[len("module."):]: v for k, v in state.items()}
    # Every CLAP holds logit_scale_a: a cheap test that fails before the slow model build.
    if not isinstance(state, dict) or not isinstance(state.get("logit_scale_a"), torch.Tensor):
        raise CheckpointError(f"{checkpoint}: not a LAION-CLAP checkpoint (no state dict "
                              f"with logit_scale_a). {CHECKPOINT_HELP}")
    state.pop("text_branch.embeddings.position_ids", None)
    return state


@contextlib.contextmanager
def _swapped(owner, name: str, value):
    """``owner.name`` is ``value`` inside the block and its old value again after it: how
    laion_clap's import and model build are kept off the network."""
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def _import_clap_module():
    """Import ``laion_clap`` without touching the network; return its ``clap_module`` package.

    Importing ``laion_clap`` runs ``from_pretrained`` for three hub tokenizers at module level
    (``laion_clap/training/data.py``); on a machine without internet, online mode retries for over
    ten minutes. Offline they load empty, which is harmless: nothing here uses them.
    ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once, at its own import, so the environment
    variable alone is too late when transformers was imported earlier in the process: the flag is
    also switched on for the duration of this import.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    with _swapped(constants, "HF_HUB_OFFLINE", True):
        import laion_clap  # noqa: F401  (appends its own folder to sys.path)
    # laion_clap's code imports its model package as the top-level name ``clap_module``; use that
    # same module object, so that the patch in ``_build`` reaches the code that builds CLAP.
    import clap_module

    return clap_module


class LaionClapConditioner(ClapConditioner):
    """The LAION-CLAP audio and text towers (no fusion), frozen, from local files.

    Args:
        checkpoint (str, optional): path of a LAION-CLAP checkpoint (``.pt``) trained without
            fusion, e.g. ``music_audioset_epoch_15_esc_90.14.pt``. Required unless ``random_init``.
            Read with ``weights_only=True`` (:func:`read_state`): a file that pickles code is
            refused, never run.
        text_model_dir (str): local roberta-base folder (``config.json``, ``vocab.json``,
            ``merges.txt``): the text tower's architecture and tokenizer.
        amodel (str): LAION-CLAP audio-tower name matching the checkpoint: ``"HTSAT-base"`` for
            the ``music_*`` checkpoints, ``"HTSAT-tiny"`` for ``630k-best.pt`` and
            ``630k-audioset-best.pt``.
        random_init (bool): build the model with random weights and no checkpoint (tests, shape
            checks).
        frozen (bool): no parameter requires grad and the module stays in eval mode.

    Attributes:
        embed_dim (int): 512, the joint space.
        sample_rate (int): 48000.
        token_dim (int): RoBERTa's hidden size (768).
        clip_samples (int): CLAP's window, 10 s at 48 kHz.
        context_length (int): prompts are padded or truncated to 77 tokens, as in CLAP training.
    """

    def __init__(self, checkpoint: str | None = None, text_model_dir: str | None = None,
                 amodel: str = "HTSAT-base", random_init: bool = False, frozen: bool = True):
        super().__init__(frozen=frozen)
        if checkpoint is None and not random_init:
            raise ConditionerError(f"LaionClapConditioner needs a checkpoint path. "
                                   f"{CHECKPOINT_HELP} (random_init=True builds random weights, "
                                   f"for tests only.)")
        if checkpoint is not None and random_init:
            raise ConditionerError("give either a checkpoint or random_init=True, not both")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"LAION-CLAP checkpoint {checkpoint} does not exist. "
                                    f"{CHECKPOINT_HELP}")
        if text_model_dir is None or not (Path(text_model_dir) / "config.json").is_file():
            raise FileNotFoundError(
                f"no roberta-base config.json in text_model_dir={text_model_dir}. "
                f"{TEXT_MODEL_DIR_HELP} {ROBERTA_HELP}")

        from transformers import RobertaConfig, RobertaTokenizer

        text_config = RobertaConfig.from_pretrained(text_model_dir, local_files_only=True)
        if text_config.hidden_size != 768:
            # CLAP's text projection is hard-coded as Linear(768, 512).
            raise ConditionerError(f"{text_model_dir}/config.json has hidden_size "
                                   f"{text_config.hidden_size}; LAION-CLAP's text tower is "
                                   f"roberta-base (768). {ROBERTA_HELP}")
        self.tokenizer = RobertaTokenizer.from_pretrained(text_model_dir, local_files_only=True)
        check_tokenizer(self.tokenizer, text_config.vocab_size, text_model_dir, ROBERTA_HELP)

        clap_module = _import_clap_module()
        if amodel not in clap_module.list_models():
            raise ConditionerError(f"unknown LAION-CLAP audio model {amodel!r}; the music "
                                   f"checkpoints use 'HTSAT-base', 630k-*.pt use 'HTSAT-tiny'")
        # Read the checkpoint first: a wrong file fails before the (slow) model build.
        state = None if checkpoint is None else read_state(checkpoint)
        self.model, model_cfg = self._build(clap_module, amodel, text_config)
        if state is not None:
            self._load(state, checkpoint, amodel)
        audio_cfg = model_cfg["audio_cfg"]
        self.embed_dim = self.model.joint_embed_shape
        self.sample_rate = audio_cfg["sample_rate"]
        self.clip_samples = audio_cfg["clip_samples"]
        self.token_dim = text_config.hidden_size
        self.context_length = self.model.context_length
        if frozen:
            self.freeze()

    @staticmethod
    def _build(clap_module, amodel: str, text_config):
        """``clap_module.create_model`` with the RoBERTa tower built from the local config."""
        from transformers import RobertaModel

        class LocalRoberta:
            """Stands in for ``transformers.RobertaModel`` while CLAP is built: ``CLAP.__init__``
            calls ``RobertaModel.from_pretrained('roberta-base')``, a hub download."""

            @staticmethod
            def from_pretrained(name, *args, **kwargs):
                return RobertaModel(text_config)

        with _swapped(clap_module.model, "RobertaModel", LocalRoberta):
            return clap_module.create_model(amodel, "roberta", precision="fp32",
                                            device=torch.device("cpu"), enable_fusion=False)

    def _load(self, state: dict[str, torch.Tensor], checkpoint: str, amodel: str) -> None:
        try:
            self.model.load_state_dict(state)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]  # torch lists every mismatched key
            raise ConditionerError(
                f"{checkpoint} does not fit LAION-CLAP with audio model {amodel!r} + roberta "
                f"without fusion ({detail}). The music_* checkpoints are HTSAT-base, "
                f"630k-best.pt and 630k-audioset-best.pt are HTSAT-tiny (set amodel), and "
                f"*fusion* checkpoints are not supported.") from exc

    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm CLAP text embeddings (RoBERTa pooled output, then CLAP's projection).

        Args:
            prompts (list of str): non-empty texts.

        Shape:
            output: ``(len(prompts), 512)``.
        """
        tokens = self._tokenize(prompts)
        embeds = self.model.encode_text(tokens, device=tokens["input_ids"].device)
        return F.normalize(embeds, dim=-1)

    def embed_text_tokens(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """RoBERTa's last hidden states, the keys and values of the separator's cross-attention.

        Args:
            prompts (list of str): non-empty texts.

        Shape:
            output: ``(len(prompts), 77, 768)`` states and a ``(len(prompts), 77)`` bool mask,
            ``True`` on real tokens (``<s>`` and ``</s>`` included), ``False`` on padding.
        """
        tokens = self._tokenize(prompts)
        states = self.model.text_branch(**tokens).last_hidden_state
        return states, tokens["attention_mask"].bool()

    def embed_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """Unit-norm CLAP audio embeddings, differentiable with respect to ``wav``.

        Each clip is repeat-padded then zero-padded to 10 s (first 10 s kept if longer), and the
        HTSAT tower computes its own log-mel front end (torchlibrosa, differentiable). No
        ``torch.no_grad`` anywhere: with frozen weights only ``wav`` can carry a gradient.

        Args:
            wav (torch.Tensor): mono waveforms at 48 kHz, floats in [-1, 1].

        Shape:
            - wav: ``(batch, time)``.
            - output: ``(batch, 512)``.
        """
        wav = check_wav(wav)
        param = self.model.logit_scale_a
        wav = fit_to_clip(wav.to(device=param.device, dtype=param.dtype), self.clip_samples)
        inputs = {"waveform": wav,
                  "longer": torch.zeros(wav.shape[0], 1, dtype=torch.bool, device=wav.device)}
        features = self.model.encode_audio(inputs, device=wav.device)["embedding"]
        return F.normalize(self.model.audio_projection(features), dim=-1)
