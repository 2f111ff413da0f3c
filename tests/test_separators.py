"""bisep.separators: shapes, any length, sharing across queries is exact, padding mask,
gradients, checkpoints, clear errors. Small configurations so the file runs in seconds."""
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bisep.checkpoint import from_pretrained, save, serialize
from bisep.separators.base import Conditioning
from bisep.separators.cond_unet import CondUNet
from bisep.separators.film_masknet import FiLM, FiLMMaskNet
from bisep.separators.inner_product_head import InnerProductHead
from conftest import assert_mentions

SR = 16000
D, TOKEN_DIM, L = 16, 24, 7
B, Q = 2, 3

# name -> factory; "cond_unet_sca" conditions the two deepest levels with SCA blocks.
CONFIGS = {
    "cond_unet": lambda: CondUNet(preset="small", query_dim=D),
    "cond_unet_sca": lambda: CondUNet(preset="small", n_fft=254, hop_length=128, ngf=8,
                                      num_cond_levels=2, num_heads=2, token_dim=TOKEN_DIM,
                                      query_dim=D),
    "film_masknet": lambda: FiLMMaskNet(preset="small", bn_chan=32, hid_chan=64, n_blocks=3,
                                        n_repeats=2, query_dim=D),
}


def build(name, seed=0):
    """A model with every parameter random, so that no output is query-independent by
    initialisation (FiLM starts as identity, the head's projection near zero)."""
    torch.manual_seed(seed)
    model = CONFIGS[name]()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (InnerProductHead, FiLM)):
                module.proj.weight.normal_(0, 0.3)
    return model


def make_query(batch=B, queries=Q, seed=1, lengths=(7, 4, 2)):
    g = torch.Generator().manual_seed(seed)
    emb = F.normalize(torch.randn(batch, queries, D, generator=g), dim=-1)
    tokens = torch.randn(batch, queries, L, TOKEN_DIM, generator=g)
    n = torch.tensor([lengths[i % len(lengths)] for i in range(queries)])
    mask = (torch.arange(L) < n[:, None]).expand(batch, queries, L).clone()
    return Conditioning(emb, tokens, mask)


def select(query, idx):
    """The queries ``idx`` (a list) of every item."""
    pick = (lambda t: None if t is None else t[:, idx])
    return Conditioning(pick(query.embedding), pick(query.tokens), pick(query.token_mask))


def wav(length=SR // 2, batch=B, seed=2):
    return 0.1 * torch.randn(batch, length, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=list(CONFIGS))
def name(request):
    return request.param


# ------------------------------------------------------------------------ shapes, ranges
def test_shapes_and_range(name):
    model = build(name).eval()
    x = wav(SR)
    spec, mag = model.analyze(x)
    masks = model.predict_masks(model.encode(mag), make_query())
    assert masks.shape == (B, Q, *mag.shape[1:])
    assert 0 <= masks.min() and masks.max() <= 1
    assert masks.std() > 0
    assert model(x, make_query()).shape == (B, Q, SR)


@pytest.mark.parametrize("length", [3001, 12345])
def test_any_length_round_trips(name, length):
    model = build(name).eval()
    x = wav(length, batch=1)
    _, mag = model.analyze(x)
    masks = model.predict_masks(model.encode(mag), make_query(batch=1, queries=2))
    assert masks.shape == (1, 2, *mag.shape[1:])
    assert model(x, make_query(batch=1, queries=2)).shape == (1, 2, length)


def test_paper_preset_sizes():
    model = CondUNet()
    args = model.get_model_args()
    assert (args["n_fft"], args["hop_length"], args["ngf"], args["num_downs"]) == (1022, 256, 64, 7)
    assert (args["num_cond_levels"], args["num_heads"], args["num_channels"]) == (3, 8, 32)
    chans = [level[0].out_channels for level in model.downs]
    assert chans == [64, 128, 256, 512, 512, 512, 512]
    assert model.ups[0].out.out_channels == 32
    # The reference code's U-Net, head and text projection, about 87.7 M
    # (docs/paper.md#conditional-u-net), plus the embedding-as-token layer (512 * 768 + 768).
    total = sum(p.numel() for p in model.parameters())
    assert total - (512 * 768 + 768) == pytest.approx(87.7e6, rel=2e-3)


# ------------------------------------------------------------------------ determinism
def test_deterministic_under_seed(name):
    a, b = build(name), build(name)
    query, x = make_query(), wav()
    assert torch.equal(a(x, query), b(x, query))  # train mode
    assert torch.equal(a.eval()(x, query), b.eval()(x, query))


# ------------------------------------------------------------------------ query sharing
def test_query_alone_or_with_others(name):
    model = build(name).eval()
    _, mag = model.analyze(wav())
    query = make_query()
    with torch.no_grad():
        features = model.encode(mag)
        together = model.predict_masks(features, query)
        for i in range(Q):
            alone = model.predict_masks(features, select(query, [i]))
            torch.testing.assert_close(alone[:, 0], together[:, i], atol=1e-5, rtol=1e-4)
    assert (together[:, 0] - together[:, 1]).abs().max() > 1e-3  # the query matters


def unshared_cond_unet(model, mag, query):
    """The plain U-Net, every level run per query with concatenated skips: the reference
    for the shared computation of encode/predict_masks."""
    batch, n_freq, n_frames = mag.shape
    x = model._pad(mag).repeat_interleave(query.num_queries, dim=0)
    x = model.input_norm(torch.log1p(x).unsqueeze(1))
    context, key_mask = model._context(query) if model.sca else (None, None)
    skips = []
    for i, down in enumerate(model.downs):
        x = down(x)
        if i >= model.first_cond:
            x = model.sca[i - model.first_cond](x, context, key_mask)
        skips.append(x)
    x = model.ups[-1](skips[-1])
    for i in range(len(model.ups) - 2, -1, -1):
        x = model.ups[i](x, skips[i])
    maps = x[..., :n_freq, :n_frames].unflatten(0, (batch, -1))
    return model.head(maps, query.embedding)


@pytest.mark.parametrize("name", ["cond_unet", "cond_unet_sca"])
def test_shared_computation_is_exact(name):
    model = build(name).eval()
    _, mag = model.analyze(wav(9999))
    query = make_query()
    with torch.no_grad():
        shared = model.predict_masks(model.encode(mag), query)
        reference = unshared_cond_unet(model, mag, query)
    torch.testing.assert_close(shared, reference, atol=1e-5, rtol=1e-4)


def per_query_film_masknet(model, mag, query):
    """film_masknet run as one network per query, from its layers: every FiLM block whole
    (body, FiLM, 1x1) on ``Q`` copies of each item: the reference for the first FiLM block's
    body running once per item in encode."""
    x = model.shared_blocks(model.bottleneck(model.input_norm(torch.log1p(mag))))
    x = x.repeat_interleave(query.num_queries, dim=0)
    embedding = query.embedding.flatten(0, 1)
    for block in model.film_blocks:
        scale, shift = block.film.proj(embedding).unsqueeze(-1).chunk(2, dim=1)
        x = x + block.out((1 + scale) * block.body(x) + shift)
    return model.mask_out(x).unflatten(0, (mag.shape[0], -1))


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("num_film_blocks", [1, 6])  # 6: every block, no shared blocks
def test_film_masknet_shared_body_gives_the_per_query_masks_and_gradients(mode, num_film_blocks):
    torch.manual_seed(0)
    model = FiLMMaskNet(preset="small", bn_chan=32, hid_chan=64, n_blocks=3, n_repeats=2,
                        num_film_blocks=num_film_blocks, query_dim=D).train(mode == "train")
    with torch.no_grad():
        for block in model.film_blocks:
            block.film.proj.weight.normal_(0, 0.3)
            block.film.proj.bias.normal_(0, 0.3)
    _, mag = model.analyze(wav(9999))
    embedding = make_query().embedding.requires_grad_()
    weights = torch.randn(B, Q, *mag.shape[1:], generator=torch.Generator().manual_seed(3))
    params = dict(model.named_parameters())
    wanted = [embedding, *params.values()]

    shared = model.predict_masks(model.encode(mag), Conditioning(embedding))
    shared_grads = torch.autograd.grad((shared * weights).sum(), wanted)
    reference = per_query_film_masknet(model, mag, Conditioning(embedding))
    reference_grads = torch.autograd.grad((reference * weights).sum(), wanted)

    torch.testing.assert_close(shared, reference, atol=1e-6, rtol=1e-5)
    assert (shared[:, 0] - shared[:, 1]).abs().max() > 1e-3  # the query matters
    # Float rounding, relative to the largest gradient: the gradient of a scalar (PReLU)
    # is a long sum, summed over the queries before or after the body.
    scale = max(float(g.abs().max()) for g in reference_grads)
    for got, ref in zip(shared_grads, reference_grads):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6 * scale)
    body_grad = shared_grads[1 + list(params).index("film_blocks.0.body.0.weight")]
    assert body_grad.abs().sum() > 0


# ------------------------------------------------------------------------ tuned inference
def pre_tuning_masks():
    """``reference_masks`` of benchmarks/separator_rtf.py: cond_unet's masks as computed
    before its inference path was tuned (one frozen copy, timed by the benchmark)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "separator_rtf.py"
    spec = importlib.util.spec_from_file_location("separator_rtf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_masks


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_tuned_inference_gives_the_pre_tuning_masks(context, monkeypatch):
    reference_masks = pre_tuning_masks()
    calls = []
    winograd = torch._nnpack_spatial_convolution
    monkeypatch.setattr(torch, "_nnpack_spatial_convolution",
                        lambda *args: calls.append(1) or winograd(*args))
    model = build("cond_unet_sca").eval()
    _, mag = model.analyze(wav(9999))
    for query in (make_query(), select(make_query(), [1])):  # shared skips, one query
        with context():
            tuned = model.predict_masks(model.encode(mag), query)
            reference = reference_masks(model, mag, query)
        torch.testing.assert_close(tuned, reference, atol=1e-5, rtol=1e-4)
    # The layers of 32+ channels ran the Winograd convolution (when NNPACK is there).
    assert bool(calls) == torch._nnpack_available()


def test_training_convolutions_stay_on_conv2d(monkeypatch):
    def refuse(*args):
        raise AssertionError("NNPACK used where a gradient is wanted")

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", refuse)
    model = build("cond_unet_sca")
    model(wav(4000), make_query()).mean().backward()
    assert model.ups[0].res.conv.weight.grad is not None


# ------------------------------------------------------------------------ tokens
def test_padding_mask_respected():
    model = build("cond_unet_sca").eval()
    _, mag = model.analyze(wav())
    query = make_query()
    with torch.no_grad():
        features = model.encode(mag)
        base = model.predict_masks(features, query)
        padded = query.tokens.clone()
        padded[~query.token_mask] = 100.0
        same = model.predict_masks(features, Conditioning(query.embedding, padded, query.token_mask))
        real = query.tokens.clone()
        real[:, :, 0] += 1.0
        changed = model.predict_masks(features, Conditioning(query.embedding, real, query.token_mask))
        unmasked = model.predict_masks(features, Conditioning(query.embedding, padded))
    torch.testing.assert_close(same, base, atol=1e-6, rtol=0)
    assert (changed - base).abs().max() > 1e-4
    assert (unmasked - base).abs().max() > 1e-4  # without the mask, padding is attended


def test_no_tokens_attends_to_the_embedding():
    model = build("cond_unet_sca").eval()
    _, mag = model.analyze(wav())
    query = make_query()
    with torch.no_grad():
        features = model.encode(mag)
        masks = model.predict_masks(features, Conditioning(query.embedding))
        other = model.predict_masks(features, Conditioning(query.embedding.flip(1)))
    assert masks.shape == (B, Q, *mag.shape[1:])
    torch.testing.assert_close(other, masks.flip(1), atol=1e-5, rtol=1e-4)
    assert (masks[:, 0] - masks[:, 2]).abs().max() > 1e-4


def test_token_errors():
    model = build("cond_unet_sca")
    _, mag = model.analyze(wav())
    features = model.encode(mag)
    query = make_query()
    with pytest.raises(TypeError, match="token_dim"):
        model.predict_masks(features, Conditioning(query.embedding, query.tokens[..., :-1]))
    empty = query.token_mask.clone()
    empty[0, 1] = False
    with pytest.raises(ValueError, match="no real token"):
        model.predict_masks(features, Conditioning(query.embedding, query.tokens, empty))


# ------------------------------------------------------------------------ gradients
def test_gradient_reaches_head_and_network(name):
    model = build(name).train()
    _, mag = model.analyze(wav())
    model.predict_masks(model.encode(mag), make_query()).square().mean().backward()
    if isinstance(model, CondUNet):
        reached = [model.head.proj.weight, model.head.scale, model.downs[0][0].weight,
                   model.ups[0].out.weight, model.ups[1].res.conv.weight]
        reached += [p for block in model.sca for p in block.parameters()]
    else:
        reached = [model.bottleneck.weight, model.shared_blocks[0].out.weight,
                   model.film_blocks[-1].film.proj.weight, model.mask_out[1].weight]
    for p in reached:
        assert p.grad is not None and p.grad.abs().sum() > 0


# ------------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip(name, tmp_path):
    model = build(name)
    query, x = make_query(), wav()
    with torch.no_grad():
        model(x, query)  # train mode: moves the BatchNorm running statistics
    model.eval()
    expected = model(x, query)
    path = save(serialize(model), tmp_path / "model.pth")
    loaded = from_pretrained(path).eval()
    assert type(loaded) is type(model)
    assert torch.equal(loaded(x, query), expected)


def test_model_args_rebuild(name):
    model = build(name)
    rebuilt = type(model)(**model.get_model_args())
    assert rebuilt.get_model_args() == model.get_model_args()
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    assert "preset" not in model.get_model_args()


def test_explicit_keywords_override_preset():
    args = CondUNet(preset="small", ngf=8, num_cond_levels=1).get_model_args()
    resolved = (args["ngf"], args["num_cond_levels"], args["num_downs"], args["n_fft"])
    assert resolved == (8, 1, 5, 510)
    args = FiLMMaskNet(preset="small", hid_chan=32).get_model_args()
    assert (args["hid_chan"], args["bn_chan"], args["n_fft"]) == (32, 128, 510)
    with pytest.raises(ValueError) as err:
        CondUNet(preset="tiny")
    assert_mentions(str(err.value), "preset 'tiny'", "paper, small")


# ------------------------------------------------------------------------ errors
def test_query_dim_mismatch_is_clear(name):
    model = build(name)
    _, mag = model.analyze(wav())
    features = model.encode(mag)
    with pytest.raises(TypeError, match="trained with another conditioner"):
        model.predict_masks(features, Conditioning(torch.randn(B, Q, D + 1)))
    with pytest.raises(TypeError, match="trained with another conditioner"):
        model.predict_masks(features, Conditioning(torch.randn(B + 1, Q, D)))


def test_invalid_sizes():
    with pytest.raises(ValueError, match="num_cond_levels"):
        CondUNet(preset="small", num_cond_levels=6)
    with pytest.raises(ValueError, match="heads"):
        CondUNet(preset="small", num_cond_levels=1, num_heads=3)
    with pytest.raises(ValueError, match="num_film_blocks"):
        FiLMMaskNet(preset="small", num_film_blocks=0)


def test_registered_and_import_light():
    code = textwrap.dedent("""
        import sys
        import bisep.separators, bisep.separators.cond_unet, bisep.separators.film_masknet
        from bisep.registry import get_registry
        reg = get_registry()
        assert reg.factory("separator", "cond_unet").__name__ == "CondUNet"
        assert reg.factory("separator", "film_masknet").__name__ == "FiLMMaskNet"
        assert "asteroid" not in sys.modules, "separators must not import asteroid"
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
