"""The laion_clap and hf_clap conditioners and query blending, offline, with random weights.

No pretrained file is available offline, so the tokenizers are a tiny byte-level BPE written into
tmp (the 256 byte symbols, a few merges and RoBERTa's special tokens: a valid roberta-base-style
vocab.json + merges.txt), the LAION RoBERTa tower is one layer wide as roberta-base (768) and the
HF CLAP is a tiny ClapConfig. The LAION audio tower is the real HTSAT-base (about 1 s per forward
of two 10 s clips on 2 CPU cores), so the number of audio forwards is kept small.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bisep.conditioners.base import Conditioner, ConditionerError, QueryError
from bisep.conditioners.clap_common import fit_to_clip
from bisep.conditioners.hf_clap import HfClapConditioner
from bisep.conditioners.laion_clap import LaionClapConditioner
from bisep.conditioners.query import Query, embed_queries
from conftest import assert_mentions

PROMPTS = ["a dog barking", "violin music", "violin music"]

# laion_clap's HTSAT calls torch.meshgrid without indexing=; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning")


def byte_symbols():
    """GPT-2's byte -> printable-character table, which byte-level BPE vocabularies use."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_bpe_tokenizer(folder) -> int:
    """A tiny roberta-style tokenizer (vocab.json + merges.txt); returns its size."""
    folder.mkdir(parents=True, exist_ok=True)
    merges = [("Ġ", "d"), ("o", "g"), ("Ġd", "og")]
    tokens = (["<s>", "<pad>", "</s>", "<unk>"] + byte_symbols()
              + ["".join(m) for m in merges] + ["<mask>"])
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return len(tokens)


def write_roberta_config(folder, vocab_size):
    from transformers import RobertaConfig

    # roberta-base's width (CLAP's text projection expects 768) but one layer; 77 tokens need
    # 79 positions (RoBERTa starts counting after the padding index).
    RobertaConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=1,
                  num_attention_heads=12, intermediate_size=64, max_position_embeddings=80,
                  type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                  layer_norm_eps=1e-5).save_pretrained(folder)


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("roberta")
    write_roberta_config(folder, write_bpe_tokenizer(folder))
    return folder


@pytest.fixture(scope="module")
def laion(roberta_dir):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return LaionClapConditioner(text_model_dir=str(roberta_dir), random_init=True)


def save_hf_clap(folder, fusion=False):
    from transformers import (ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor,
                              RobertaTokenizer)

    tok_dir = folder / "tokenizer-src"
    vocab_size = write_bpe_tokenizer(tok_dir)
    tokenizer = RobertaTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    audio = dict(depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=8,
                 hidden_size=16, window_size=8, enable_fusion=fusion,
                 fusion_type="aff_2d" if fusion else None)
    text = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1,
                num_attention_heads=2, intermediate_size=37, max_position_embeddings=80)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=24))
    model.save_pretrained(folder)
    extractor = ClapFeatureExtractor(truncation="fusion" if fusion else "rand_trunc")
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return save_hf_clap(tmp_path_factory.mktemp("hf_clap"))


@pytest.fixture(scope="module")
def hf(hf_dir):
    return HfClapConditioner(str(hf_dir))


def noise(batch, seconds, rate=48000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, int(seconds * rate), generator=g)


def check_frozen(cond):
    assert all(not p.requires_grad for p in cond.parameters())
    cond.train()
    assert not any(m.training for m in cond.modules()), "a frozen conditioner left eval mode"


# ------------------------------------------------------------------------------ laion_clap
def test_laion_text_embeddings(laion):
    emb = laion.embed_text(PROMPTS)
    assert emb.shape == (3, 512) and laion.embed_dim == 512
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert not torch.allclose(emb[0], emb[1], atol=1e-4), "different prompts, same embedding"
    torch.testing.assert_close(emb[1], emb[2])  # eval mode: no dropout


def test_laion_token_states(laion):
    states, mask = laion.embed_text_tokens(PROMPTS[:2])
    assert states.shape == (2, 77, 768) and laion.token_dim == 768
    assert mask.dtype == torch.bool
    lengths = [len(laion.tokenizer(p)["input_ids"]) for p in PROMPTS[:2]]
    assert mask.sum(dim=1).tolist() == lengths
    assert not torch.allclose(states[0], states[1])


def test_laion_audio_is_differentiable_and_frozen(laion):
    wav = noise(2, 1.5).requires_grad_()
    emb = laion.embed_audio(wav)
    assert emb.shape == (2, 512) and laion.sample_rate == 48000
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(emb[0], emb[1], atol=1e-5)
    target = laion.embed_text(PROMPTS[:2])
    (emb * target).sum().backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0
    assert all(p.grad is None for p in laion.parameters())
    check_frozen(laion)


def test_laion_logit_scale(laion):
    scale = laion.logit_scale
    assert scale.dim() == 0 and not scale.requires_grad
    assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)  # CLAP's initial value


def test_laion_loads_a_local_checkpoint(laion, roberta_dir, tmp_path):
    # The official files hold {"state_dict": {"module.<name>": tensor}} and still store
    # RoBERTa's position_ids buffer, which laion_clap's loader drops.
    state = {f"module.{k}": v for k, v in laion.model.state_dict().items()}
    state["module.logit_scale_a"] = torch.tensor(np.log(50.0))
    state["module.text_branch.embeddings.position_ids"] = torch.arange(80)[None]
    path = tmp_path / "clap.pt"
    torch.save({"epoch": 15, "state_dict": state}, path)
    loaded = LaionClapConditioner(checkpoint=str(path), text_model_dir=str(roberta_dir))
    assert loaded.logit_scale.item() == pytest.approx(50.0, rel=1e-5)
    torch.testing.assert_close(loaded.embed_text(PROMPTS[:2]), laion.embed_text(PROMPTS[:2]))
    check_frozen(loaded)


def test_laion_refuses_a_foreign_checkpoint(roberta_dir, tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"head.weight": torch.zeros(2)}}, path)
    with pytest.raises(ValueError, match="not a LAION-CLAP checkpoint.*lukewys/laion_clap"):
        LaionClapConditioner(checkpoint=str(path), text_model_dir=str(roberta_dir))
    with pytest.raises(ConditionerError) as err:
        LaionClapConditioner(checkpoint=str(path), text_model_dir=str(roberta_dir),
                             amodel="HTSAT-huge")
    assert_mentions(str(err.value), "audio model 'HTSAT-huge'", "'HTSAT-base'", "'HTSAT-tiny'")


def test_laion_argument_errors(roberta_dir, tmp_path):
    with pytest.raises(ConditionerError, match="music_audioset_epoch_15_esc_90.14.pt.*lukewys"):
        LaionClapConditioner(text_model_dir=str(roberta_dir))
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        LaionClapConditioner(checkpoint=str(tmp_path / "missing.pt"),
                             text_model_dir=str(roberta_dir))
    with pytest.raises(ConditionerError, match="not both"):
        LaionClapConditioner(checkpoint="x.pt", text_model_dir=str(roberta_dir), random_init=True)
    with pytest.raises(FileNotFoundError, match="roberta-base"):
        LaionClapConditioner(random_init=True)


def test_laion_refuses_the_empty_tokenizer(tmp_path):
    # Without vocab.json/merges.txt, transformers silently builds a 5-token tokenizer.
    write_roberta_config(tmp_path, 300)
    with pytest.raises(ConditionerError,
                       match=r"is empty \(5 tokens\).*local copy of roberta-base"):
        LaionClapConditioner(text_model_dir=str(tmp_path), random_init=True)


def test_laion_import_never_reaches_the_network(roberta_dir):
    # A process that imported huggingface_hub in online mode before building the conditioner:
    # the environment variable is read too late there, and laion_clap's import-time tokenizers
    # would retry the hub for minutes. Any name lookup or connection ends the process at once.
    script = textwrap.dedent(f"""
        import os, socket, sys
        def refuse(*args, **kwargs):
            sys.stderr.write(f"network access: {{args}}\\n")
            os._exit(3)
        socket.getaddrinfo = socket.create_connection = socket.socket.connect = refuse
        import huggingface_hub.constants
        assert not huggingface_hub.constants.HF_HUB_OFFLINE
        from bisep.conditioners.laion_clap import LaionClapConditioner
        LaionClapConditioner(text_model_dir={str(roberta_dir)!r}, random_init=True)
        assert os.environ["HF_HUB_OFFLINE"] == "1"
    """)
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_fit_to_clip_is_clap_repeatpad():
    wav = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(fit_to_clip(wav, 10),
                               torch.tensor([[1.0, 2, 3, 1, 2, 3, 1, 2, 3, 0]]))
    torch.testing.assert_close(fit_to_clip(wav, 2), torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(fit_to_clip(wav, 3), wav)


# ------------------------------------------------------------------------------ hf_clap
def test_hf_text_embeddings_and_tokens(hf):
    emb = hf.embed_text(PROMPTS)
    assert emb.shape == (3, 24) and hf.embed_dim == 24
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert not torch.allclose(emb[0], emb[1], atol=1e-4)
    torch.testing.assert_close(emb[1], emb[2])
    states, mask = hf.embed_text_tokens(PROMPTS[:2])
    assert states.shape == (2, 77, 32) and hf.token_dim == 32
    assert mask.sum(dim=1).tolist() == [len(hf.tokenizer(p)["input_ids"]) for p in PROMPTS[:2]]


@pytest.mark.parametrize("fusion", [False, True])
def test_hf_audio_matches_the_processor(hf, hf_dir, tmp_path, fusion):
    # Our torch front end must give what ClapProcessor + get_audio_features give.
    from transformers import ClapProcessor

    folder = save_hf_clap(tmp_path, fusion=True) if fusion else hf_dir
    cond = HfClapConditioner(str(folder)) if fusion else hf
    processor = ClapProcessor.from_pretrained(str(folder), local_files_only=True)
    wav = noise(2, 3.0)
    features = processor.feature_extractor(list(wav.numpy()), sampling_rate=48000,
                                           return_tensors="pt")["input_features"]
    assert features.shape == (2, 4 if fusion else 1, 1001, 64)
    torch.testing.assert_close(cond.log_mel(fit_to_clip(wav, cond.clip_samples)),
                               features[:, 0], atol=1e-3, rtol=1e-4)
    expected = cond.model.get_audio_features(
        input_features=features, is_longer=torch.zeros(2, 1, dtype=torch.bool)).pooler_output
    torch.testing.assert_close(cond.embed_audio(wav), expected, atol=1e-4, rtol=1e-4)


def test_hf_audio_is_differentiable_and_frozen(hf):
    wav = noise(2, 1.0, seed=1).requires_grad_()
    emb = hf.embed_audio(wav)
    assert emb.shape == (2, 24)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    emb[:, 0].sum().backward()
    assert torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0
    assert all(p.grad is None for p in hf.parameters())
    check_frozen(hf)
    assert hf.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_hf_refuses_the_empty_tokenizer(hf_dir, tmp_path):
    for f in hf_dir.iterdir():
        if f.is_file() and not f.name.startswith("tokenizer"):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ConditionerError, match=r"is empty \(5 tokens\).*hf download laion"):
        HfClapConditioner(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no CLAP config.json"):
        HfClapConditioner(str(tmp_path / "nowhere"))


def test_both_are_registered():
    from bisep.registry import get_registry

    registry = get_registry()
    assert registry.factory("conditioner", "laion_clap") is LaionClapConditioner
    assert registry.factory("conditioner", "hf_clap") is HfClapConditioner


# ------------------------------------------------------------------------------ queries
class TableConditioner(Conditioner):
    """Known unit vectors: texts from a table, every audio clip embeds to ``AUDIO``."""

    embed_dim = 3
    sample_rate = 8000
    TEXTS = {"violin": [1.0, 0.0, 0.0], "piano": [0.6, 0.8, 0.0], "flute": [0.0, 1.0, 0.0]}
    AUDIO = torch.tensor([0.0, 0.0, 1.0])

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.audio_lengths = []

    def embed_text(self, prompts):
        return torch.tensor([self.TEXTS[p] for p in self.check_prompts(prompts)])

    def embed_audio(self, wav):
        self.audio_lengths.append(wav.shape[-1])
        return self.AUDIO.expand(wav.shape[0], 3)


def test_text_queries_are_text_embeddings():
    cond = TableConditioner()
    out = embed_queries(cond, ["violin", Query(text="flute")])
    torch.testing.assert_close(out, cond.embed_text(["violin", "flute"]))


@pytest.mark.parametrize("w", [0.0, 0.25, 1.0])
def test_blend_of_text_and_audio(w):
    cond = TableConditioner()
    out = embed_queries(cond, [Query(text="violin", audio=torch.ones(800), audio_rate=8000,
                                     text_weight=w)])
    expected = F.normalize(w * torch.tensor([1.0, 0, 0]) + (1 - w) * cond.AUDIO, dim=-1)
    torch.testing.assert_close(out[0], expected)


def test_audio_query_is_resampled_and_mixed_down():
    cond = TableConditioner()
    out = embed_queries(cond, [Query(audio=torch.ones(2, 1600), audio_rate=16000)])
    torch.testing.assert_close(out[0], cond.AUDIO)
    assert cond.audio_lengths == [800]


def test_negative_query_moves_away_from_the_negative():
    cond = TableConditioner()
    pos, neg = cond.embed_text(["piano", "violin"])
    out = embed_queries(cond, [Query(text="piano", negative="violin", negative_weight=0.5)])[0]
    torch.testing.assert_close(out, F.normalize(pos - 0.5 * neg, dim=-1))
    assert out @ neg < pos @ neg - 0.3
    assert out @ pos > 0.8
    torch.testing.assert_close(out.norm(), torch.tensor(1.0))


def test_query_errors():
    cond = TableConditioner()
    with pytest.raises(QueryError, match="no query"):
        embed_queries(cond, [])
    with pytest.raises(QueryError, match="needs a text, an audio"):
        Query(negative="violin")
    with pytest.raises(QueryError, match="without audio_rate"):
        Query(audio=torch.ones(10))
    with pytest.raises(QueryError, match="empty"):
        embed_queries(cond, [" "])
    with pytest.raises(QueryError, match=r"text_weight must be in \[0, 1\]"):
        Query(text="violin", audio=torch.ones(10), audio_rate=8000, text_weight=1.5)
    with pytest.raises(QueryError, match="negative_weight"):
        Query(text="violin", negative="piano", negative_weight=0.0)
    with pytest.raises(QueryError, match="cancels the positive"):
        embed_queries(cond, [Query(text="violin", negative="violin", negative_weight=1.0)])
    with pytest.raises(TypeError, match="pass a Query or a str"):
        embed_queries(cond, [3])


def test_queries_with_a_real_conditioner(hf):
    g = torch.Generator().manual_seed(2)
    clip = 0.1 * torch.randn(16000, generator=g)
    out = embed_queries(hf, [Query(text="violin music", audio=clip, audio_rate=16000,
                                   negative="a dog barking"), "a dog barking"])
    assert out.shape == (2, 24)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))
    dog = hf.embed_text(["a dog barking"])[0]
    torch.testing.assert_close(out[1], dog)
    blended = embed_queries(hf, [Query(text="violin music", audio=clip, audio_rate=16000)])[0]
    assert out[0] @ dog < blended @ dog
