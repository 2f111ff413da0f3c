"""bisep.losses: against loop references, gradients, invariances, numerics, torch-only import."""
import math
import subprocess
import sys
import textwrap

import pytest
import torch

import bisep.losses as L


def seeded(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=dtype)


def randn(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


# ---------------------------------------------------------------- slow references (loops)
def ref_weight(x):
    return min(max(math.log(1 + x), 1e-3), 10.0)


def ref_masked_l1(masks, mix, targets, weight_from_targets, valid=None):
    B, S, F, T = masks.shape
    total = 0.0
    for b in range(B):
        item = 0.0
        for s in range(S):
            if valid is not None and not valid[b, s]:
                continue
            acc = 0.0
            for f in range(F):
                for t in range(T):
                    w = ref_weight(float(targets[b, s, f, t] if weight_from_targets else mix[b, f, t]))
                    acc += w * abs(float(masks[b, s, f, t] * mix[b, f, t] - targets[b, s, f, t]))
            item += acc / (F * T)
        total += item
    return total / B


def ref_consistency(masks, mix, mixtures, weights):
    B, N, K, F, T = masks.shape
    total = 0.0
    for b in range(B):
        for n in range(N):
            acc = 0.0
            for f in range(F):
                for t in range(T):
                    est = sum(float(weights[b, n, k] * masks[b, n, k, f, t]) for k in range(K)) * float(mix[b, f, t])
                    target = float(mixtures[b, n, f, t])
                    acc += ref_weight(target) * abs(est - target)
            total += acc / (F * T)
    return total / B


def ref_contrastive(audio, text, scale, labels, valid):
    """Audio->text InfoNCE where every row with the same label is a positive."""
    M = audio.shape[0]
    rows = []
    for i in range(M):
        if not valid[i]:
            continue
        sims = [scale * float(torch.dot(audio[i] / audio[i].norm(), text[j] / text[j].norm()))
                for j in range(M)]
        denom = sum(math.exp(sims[j]) for j in range(M) if valid[j])
        numer = sum(math.exp(sims[j]) for j in range(M) if valid[j] and labels[j] == labels[i])
        rows.append(-math.log(numer / denom))
    return sum(rows) / len(rows)


def ref_sisdr(est, ref):
    est = est - est.mean()
    ref = ref - ref.mean()
    alpha = float(torch.dot(est, ref)) / (float(torch.dot(ref, ref)) + 1e-8)
    proj = alpha * ref
    noise = est - proj
    return 10 * math.log10(float(torch.dot(proj, proj)) / (float(torch.dot(noise, noise)) + 1e-8) + 1e-8)


# ---------------------------------------------------------------------- against references
def test_mix_separate_matches_loop_reference():
    masks, mix, targets = seeded(2, 2, 3, 4, seed=1), seeded(2, 3, 4, seed=2) * 3, seeded(2, 2, 3, 4, seed=3)
    got = L.mix_separate_loss(masks, mix, targets)
    assert got.item() == pytest.approx(ref_masked_l1(masks, mix, targets, False), rel=1e-10)


def test_supervised_matches_loop_reference_with_padding():
    masks, mix, targets = seeded(2, 3, 3, 4, seed=4), seeded(2, 3, 4, seed=5) * 3, seeded(2, 3, 3, 4, seed=6)
    valid = torch.tensor([[True, True, False], [True, False, False]])
    got = L.supervised_separation_loss(masks, mix, targets, valid)
    assert got.item() == pytest.approx(ref_masked_l1(masks, mix, targets, False, valid), rel=1e-10)


def test_consistency_matches_loop_reference_with_repeated_phrase_weights():
    masks, mix, mixtures = seeded(2, 2, 3, 3, 4, seed=7), seeded(2, 3, 4, seed=8) * 2, seeded(2, 2, 3, 4, seed=9)
    weights = torch.tensor([[[1, 1, 1], [0.5, 0.5, 1]], [[1, 1, 0], [1, 1, 1]]], dtype=torch.float64)
    got = L.consistency_reconstruction_loss(masks, mix, mixtures, weights)
    assert got.item() == pytest.approx(ref_consistency(masks, mix, mixtures, weights), rel=1e-10)


def test_containment_matches_loop_reference_and_punishes_only_the_excess():
    masks, mix, mixtures = seeded(2, 2, 3, 3, 4, seed=7), seeded(2, 3, 4, seed=8) * 2, seeded(2, 2, 3, 4, seed=9)
    weights = torch.tensor([[[1, 1, 1], [0.5, 0.5, 1]], [[1, 1, 0], [1, 1, 1]]], dtype=torch.float64)
    expected = 0.0
    for b in range(2):
        w = torch.log1p(mix[b]).clamp(1e-3, 10)
        for n in range(2):
            for k in range(3):
                excess = (masks[b, n, k] * mix[b] - mixtures[b, n]).clamp(min=0)
                expected += weights[b, n, k].item() * (w * excess).mean().item()
    got = L.containment_loss(masks, mix, mixtures, weights)
    assert got.item() == pytest.approx(expected / 2, rel=1e-10)
    # An output inside its own mixture costs nothing, however little of it it keeps ...
    inside = (mixtures / mix.unsqueeze(1)).unsqueeze(2).expand(-1, -1, 3, -1, -1) * 0.3
    assert L.containment_loss(inside, mix, mixtures).item() == 0.0
    # ... and only the bins that overflow the mixture get a gradient.
    masks = masks.clone().requires_grad_(True)
    L.containment_loss(masks, mix, mixtures).backward()
    overflow = masks.detach() * mix[:, None, None] > mixtures.unsqueeze(2)
    assert (masks.grad[~overflow] == 0).all() and (masks.grad[overflow] > 0).all()
    with pytest.raises(TypeError, match="mixture_mags must be"):
        L.containment_loss(masks, mix, mixtures[:, :1])


def test_judged_level_targets_the_judges_share_of_the_mixture_energy():
    b, n, k, f, t, d = 2, 2, 3, 5, 4, 8
    mix, mixtures = seeded(b, f, t, seed=20) + 0.5, seeded(b, n, f, t, seed=21)
    audio, text = randn(b, n, d, seed=22), randn(b, n, k, d, seed=23)
    valid = torch.tensor([[[True, True, False], [True, True, True]],
                          [[True, False, False], [True, True, False]]])
    scale = torch.tensor(10.0, dtype=torch.float64)
    shares = L.judged_shares(audio, text, scale, valid)
    assert torch.allclose(shares.sum(-1), torch.ones(b, n, dtype=torch.float64))
    assert (shares[~valid] == 0).all() and (shares[0, 0, :2] > 0).all()
    assert shares[1, 0, 0] == 1.0  # a mixture with one phrase: all of its energy
    # Masks that give every valid phrase exactly its share of its mixture's energy cost 0 ...
    energy = mixtures.square().sum(dim=(-2, -1))                      # (B, N)
    unit = mixtures.unsqueeze(2) / mix[:, None, None]                  # output = |X_n|
    exact = unit * (shares * 1).sqrt()[..., None, None]
    assert (exact * mix[:, None, None]).square().sum(dim=(-2, -1)) == pytest.approx(
        (shares * energy[..., None]).numpy(), rel=1e-9)
    loss = L.judged_level_loss(exact.where(valid[..., None, None], unit), mix, mixtures,
                               audio, text, scale, valid)
    assert loss.item() == pytest.approx(0, abs=1e-6)
    # ... and twice the energy costs log 2 per phrase (up to the energy floor), wherever it
    # comes from.
    louder = exact * 2 ** 0.5
    got = L.judged_level_loss(louder.where(valid[..., None, None], unit), mix, mixtures, audio,
                              text, scale, valid)
    assert got.item() == pytest.approx(math.log(2), rel=1e-3)
    masks = louder.clone().requires_grad_(True)
    L.judged_level_loss(masks, mix, mixtures, audio, text, scale, valid).backward()
    assert (masks.grad[~valid] == 0).all() and (masks.grad[valid] >= 0).all()
    assert torch.isfinite(L.judged_level_loss(torch.zeros_like(masks), mix, mixtures, audio,
                                              text, scale, valid))
    with pytest.raises(ValueError, match="at least one valid phrase"):
        L.judged_shares(audio, text, scale, torch.zeros_like(valid))
    with pytest.raises(TypeError, match="phrase_valid"):
        L.judged_shares(audio, text, scale, valid[:, :, :2])


def test_contrastive_matches_loop_reference_with_duplicates_and_padding():
    text_bank = randn(3, 8, seed=10)
    labels = [0, 1, 0, 2, 1, 2]  # rows 0 and 2 share a prompt, as do 1/4 and 3/5
    text = text_bank[labels]
    audio = randn(6, 8, seed=11)
    valid = torch.tensor([True, True, True, True, True, False])
    got = L.bimodal_contrastive_loss(audio, text, 7.0, valid=valid)
    assert got.item() == pytest.approx(ref_contrastive(audio, text, 7.0, labels, valid), rel=1e-9)


def test_contrastive_module_sums_one_infonce_per_mixture_index():
    audio, text = randn(3, 2, 2, 8, seed=12), randn(3, 2, 2, 8, seed=13)
    loss = L.BiModalContrastiveLoss(temperature=0.1)(audio, text)
    by_hand = sum(L.bimodal_contrastive_loss(audio[:, n].reshape(-1, 8), text[:, n].reshape(-1, 8), 10.0)
                  for n in range(2))
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-12)
    pooled = L.BiModalContrastiveLoss(temperature=0.1, pool_mixtures=True)(audio, text)
    assert pooled.item() != pytest.approx(loss.item())


def test_contrastive_uses_conditioner_scale_when_no_temperature():
    audio, text = randn(2, 1, 2, 8, seed=14), randn(2, 1, 2, 8, seed=15)
    a = L.BiModalContrastiveLoss()(audio, text, logit_scale=torch.tensor(5.0))
    b = L.BiModalContrastiveLoss(temperature=0.2)(audio, text)
    assert a.item() == pytest.approx(b.item())
    with pytest.raises(ValueError, match="temperature or the conditioner's logit_scale"):
        L.BiModalContrastiveLoss()(audio, text)


def test_symmetric_contrastive_adds_text_to_audio_direction():
    audio, text = randn(4, 8, seed=16), randn(4, 8, seed=17)
    one_way = L.bimodal_contrastive_loss(audio, text, 3.0)
    other_way = L.bimodal_contrastive_loss(text, audio, 3.0)
    both = L.bimodal_contrastive_loss(audio, text, 3.0, symmetric=True)
    assert both.item() == pytest.approx(0.5 * (one_way + other_way).item(), rel=1e-12)


def test_perfect_alignment_gives_low_contrastive_loss_and_chance_gives_log_m():
    text = torch.eye(4, dtype=torch.float64)
    assert L.bimodal_contrastive_loss(text, text, 100.0).item() < 1e-10
    uniform = L.bimodal_contrastive_loss(torch.ones(4, 4, dtype=torch.float64), text, 1.0)
    assert uniform.item() == pytest.approx(math.log(4))


def test_sisdr_family_matches_loop_reference():
    est, ref = randn(2, 3, 200, seed=18), randn(2, 3, 200, seed=19)
    pw = L.pairwise_neg_sisdr(est, ref)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                assert pw[b, i, j].item() == pytest.approx(-ref_sisdr(est[b, i], ref[b, j]), rel=1e-9)
    assert torch.allclose(L.multisrc_neg_sisdr(est, ref), torch.diagonal(pw, dim1=1, dim2=2).mean(-1))
    assert torch.allclose(L.singlesrc_neg_sisdr(est[:, 0], ref[:, 0]), pw[:, 0, 0])


def test_snr_and_sdsdr_definitions():
    ref = randn(1, 500, seed=20)
    noise = randn(1, 500, seed=21) * 0.1
    est = 0.5 * ref + noise
    # SNR and SD-SDR punish the gain; SI-SDR does not.
    assert L.singlesrc_neg_sisdr(est, ref).item() < L.singlesrc_neg_snr(est, ref).item()
    assert L.singlesrc_neg_sisdr(est, ref).item() < L.singlesrc_neg_sdsdr(est, ref).item()


def test_pit_finds_the_best_permutation():
    ref = randn(2, 3, 300, seed=22)
    order = torch.tensor([[2, 0, 1], [1, 2, 0]])
    est = torch.stack([ref[b, order[b]] for b in range(2)]) + 0.01 * randn(2, 3, 300, seed=23)
    loss, reordered = L.PITLoss(L.pairwise_neg_sisdr)(est, ref, return_est=True)
    assert loss.item() < -30
    assert torch.allclose(reordered, ref, atol=0.05)
    fixed = L.multisrc_neg_sisdr(est, ref).mean()
    assert loss.item() < fixed.item()


# ------------------------------------------------------------------------------ gradients
def test_gradcheck_reconstruction_terms():
    mix, targets = seeded(1, 3, 4, seed=30) + 0.5, seeded(1, 2, 3, 4, seed=31) + 0.3
    masks = seeded(1, 2, 3, 4, seed=32).requires_grad_()
    assert torch.autograd.gradcheck(lambda m: L.mix_separate_loss(m, mix, targets), (masks,))
    assert torch.autograd.gradcheck(lambda m: L.supervised_separation_loss(m, mix, targets), (masks,))
    phrase = seeded(1, 2, 2, 3, 4, seed=33).requires_grad_()
    assert torch.autograd.gradcheck(lambda m: L.consistency_reconstruction_loss(m, mix, targets), (phrase,))


def test_gradcheck_contrastive_and_sdr():
    audio = randn(4, 6, seed=34).requires_grad_()
    text = randn(4, 6, seed=35)
    assert torch.autograd.gradcheck(lambda a: L.bimodal_contrastive_loss(a, text, 3.0, symmetric=True), (audio,))
    est = randn(2, 2, 64, seed=36).requires_grad_()
    ref = randn(2, 2, 64, seed=37)
    for fn in (L.multisrc_neg_sisdr, L.multisrc_neg_sdsdr, L.multisrc_neg_snr):
        assert torch.autograd.gradcheck(lambda e: fn(e, ref).sum(), (est,))


# ----------------------------------------------------------------------------- invariances
def test_sisdr_is_scale_invariant_and_snr_is_not():
    est, ref = randn(2, 400, seed=40), randn(2, 400, seed=41)
    assert torch.allclose(L.singlesrc_neg_sisdr(3.7 * est, ref), L.singlesrc_neg_sisdr(est, ref))
    assert torch.allclose(L.singlesrc_neg_sisdr(est, 0.2 * ref), L.singlesrc_neg_sisdr(est, ref))
    assert not torch.allclose(L.singlesrc_neg_snr(3.7 * est, ref), L.singlesrc_neg_snr(est, ref))


def test_contrastive_invariant_to_embedding_scale_and_row_order():
    audio, text = randn(5, 8, seed=42), randn(5, 8, seed=43)
    base = L.bimodal_contrastive_loss(audio, text, 4.0)
    assert L.bimodal_contrastive_loss(10 * audio, 0.1 * text, 4.0).item() == pytest.approx(base.item())
    perm = torch.tensor([3, 1, 4, 0, 2])
    assert L.bimodal_contrastive_loss(audio[perm], text[perm], 4.0).item() == pytest.approx(base.item())


def test_consistency_invariant_to_phrase_order():
    masks, mix, mixtures = seeded(2, 2, 3, 3, 4, seed=44), seeded(2, 3, 4, seed=45), seeded(2, 2, 3, 4, seed=46)
    base = L.consistency_reconstruction_loss(masks, mix, mixtures)
    shuffled = masks[:, :, torch.tensor([2, 0, 1])]
    assert L.consistency_reconstruction_loss(shuffled, mix, mixtures).item() == pytest.approx(base.item())


def test_perfect_masks_give_zero_reconstruction_loss():
    sources = seeded(1, 2, 3, 4, seed=47)
    mix = sources.sum(1)
    ideal = sources / mix.unsqueeze(1)
    assert L.supervised_separation_loss(ideal, mix, sources).item() == pytest.approx(0, abs=1e-12)
    assert L.consistency_reconstruction_loss(ideal.unsqueeze(1), mix, mix.unsqueeze(1)).item() == pytest.approx(0, abs=1e-12)


# ------------------------------------------------------------------------------ numerics
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_silent_inputs_and_low_precision_stay_finite(dtype):
    silent = torch.zeros(2, 2, 16000, dtype=dtype)
    loud = (randn(2, 2, 16000, seed=50) * 100).to(dtype)
    for est, ref in [(silent, silent), (loud, silent), (silent, loud), (loud, loud)]:
        for fn in (L.multisrc_neg_sisdr, L.multisrc_neg_sdsdr, L.multisrc_neg_snr):
            assert torch.isfinite(fn(est, ref)).all()
    masks = torch.zeros(2, 1, 3, 5, 6, dtype=dtype)  # single phrase, silent output
    zero_mix = torch.zeros(2, 5, 6, dtype=dtype)
    assert torch.isfinite(L.consistency_reconstruction_loss(masks, zero_mix, zero_mix.unsqueeze(1)))
    assert torch.isfinite(L.mix_separate_loss(masks[:, :, 0], zero_mix, zero_mix.unsqueeze(1)))
    emb = torch.zeros(3, 8, dtype=dtype)  # a silent output may embed to ~0
    assert torch.isfinite(L.bimodal_contrastive_loss(emb, torch.eye(3, 8, dtype=dtype), 100.0))


def test_nan_input_raises_clear_error():
    bad = torch.zeros(1, 2, 10)
    bad[0, 1, 3] = float("nan")
    with pytest.raises(ValueError, match="est_targets contains NaN"):
        L.multisrc_neg_sisdr(bad, torch.zeros(1, 2, 10))
    bad_masks = torch.zeros(1, 2, 2, 1, 10)
    bad_masks[0, 1, 0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="phrase_masks contains NaN"):
        L.consistency_reconstruction_loss(bad_masks, torch.ones(1, 1, 10), torch.ones(1, 2, 1, 10))


@pytest.mark.parametrize("call,message", [
    (lambda: L.mix_separate_loss(torch.ones(2, 3, 4), torch.ones(2, 3, 4), torch.ones(2, 3, 4)),
     r"mixture_masks must have shape \(B, S, F, T\), got \(2, 3, 4\)"),
    (lambda: L.consistency_reconstruction_loss(torch.ones(1, 2, 2, 3, 4), torch.ones(1, 3, 4), torch.ones(1, 3, 3, 4)),
     r"mixture_mags must be \(1, 2, 3, 4\)"),
    (lambda: L.bimodal_contrastive_loss(torch.ones(3, 4), torch.ones(2, 4), 1.0),
     r"same M and D"),
    (lambda: L.pairwise_neg_sisdr(torch.ones(2, 100), torch.ones(2, 100)),
     r"est_targets must have shape \(B, n_src, T\)"),
    (lambda: L.BiModalContrastiveLoss(temperature=0.1)(torch.ones(2, 3, 8), torch.ones(2, 3, 8)),
     r"phrase_audio_emb must have shape \(B, N, K, D\)"),
])
def test_wrong_shapes_name_the_expected_shape(call, message):
    with pytest.raises(TypeError, match=message):
        call()


# ---------------------------------------------------------------------- packaging contract
def test_losses_import_with_torch_alone(tmp_path):
    """The loss library must import where only torch is installed."""
    script = textwrap.dedent("""
        import importlib.abc, sys
        BLOCKED = {"yaml", "pluggy", "laion_clap", "asteroid", "lightning", "pytorch_lightning",
                   "soundfile", "mir_eval", "transformers", "torchaudio"}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked for this test: {name}")
        sys.meta_path.insert(0, Block())
        import torch
        import bisep.losses as L
        x = torch.randn(2, 2, 100)
        print(float(L.multisrc_neg_sisdr(x, x).mean()))
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not leaked, leaked
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < -50


def test_every_loss_is_a_registered_plugin():
    from bisep.registry import get_registry

    registry = get_registry()
    for name, cls in [("clap_contrastive", L.BiModalContrastiveLoss),
                      ("consistency_reconstruction", L.ConsistencyReconstructionLoss),
                      ("containment", L.ContainmentLoss), ("judged_level", L.JudgedLevelLoss),
                      ("mix_separate", L.MixSeparateLoss), ("supervised", L.SupervisedSeparationLoss),
                      ("neg_sdr", L.NegSDRLoss)]:
        assert registry.factory("loss", name) is cls
