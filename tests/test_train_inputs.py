"""bisep.train.inputs: a phrase repeated within an item is computed once, and a step's
losses and gradients are those of one query per phrase slot (the computation before the
sharing, kept below as a frozen copy)."""
from pathlib import Path

import pytest
import torch

from bisep.config import load_config
from bisep.data.mom import pad_phrases
from bisep.train.inputs import StepInputs, batch_conditioning, phrase_rows
from bisep.train.module import SeparationModule

TINY = Path(__file__).parent / "recipe_tiny"
SR, LENGTH = 16000, 8000
LABELS = [[["violin", "cello"], ["flute", "violin", "tuba"]],
          [["piano"], ["piano", "organ"]]]


def make_batch(seed=0):
    """B=2 MoMs of N=2 mixtures, K=4: repeated padding and a phrase in both mixtures."""
    g = torch.Generator().manual_seed(seed)
    mixtures = 0.1 * torch.randn(2, 2, LENGTH, generator=g)
    padded = [[pad_phrases(labels, 4) for labels in item] for item in LABELS]
    return {"mom": mixtures.sum(1), "mixtures": mixtures,
            "mixture_prompts": [[" and ".join(labels) for labels in item] for item in LABELS],
            "phrases": [[p[0] for p in item] for item in padded],
            "phrase_weights": torch.tensor([[p[1] for p in item] for item in padded]),
            "phrase_valid": torch.tensor([[p[2] for p in item] for item in padded])}


def old_inputs(module, batch):
    """The loss inputs as computed before phrases were shared: every slot is its own query,
    every slot is synthesized, every valid slot is embedded."""
    sep = module.separator
    spec, mag = sep.analyze(batch["mom"])
    features = sep.encode(mag)
    b, n, k = batch["phrase_valid"].shape
    cond = batch_conditioning(module.embed_prompts,
                              [[p for mix in item for p in mix] for item in batch["phrases"]])
    masks = sep.predict_masks(features, cond)
    wavs = sep.synthesize(spec, masks, LENGTH).reshape(b * n * k, -1)
    valid = batch["phrase_valid"].reshape(-1)
    emb = wavs.new_zeros(b * n * k, module.conditioner.embed_dim)
    emb[valid] = module.conditioner.embed_audio(wavs[valid])
    return {"mom_mag": mag,
            "mixture_mags": sep.analyze(batch["mixtures"].reshape(b * n, -1))[1].reshape(
                b, n, *mag.shape[1:]),
            "mixture_masks": sep.predict_masks(
                features, batch_conditioning(module.embed_prompts, batch["mixture_prompts"])),
            "phrase_masks": masks.reshape(b, n, k, *masks.shape[2:]),
            "phrase_weights": batch["phrase_weights"], "phrase_valid": batch["phrase_valid"],
            "phrase_text_emb": cond.embedding.reshape(b, n, k, -1),
            "phrase_audio_emb": emb.reshape(b, n, k, -1),
            "logit_scale": module.conditioner.logit_scale}


def loss_and_grads(module, total):
    params = [p for p in module.separator.parameters() if p.requires_grad]
    return total.detach(), torch.autograd.grad(total, params, allow_unused=True)


@pytest.fixture(scope="module")
def modules():
    separators = {
        "film_masknet": [],
        "cond_unet_sca": ["separator=cond_unet", "separator_conf.preset=small",
                          "separator_conf.num_cond_levels=1", "separator_conf.ngf=8",
                          "separator_conf.token_dim=384"],
    }
    built = {}
    for name, overrides in separators.items():
        torch.manual_seed(0)
        built[name] = SeparationModule(load_config(TINY / "train_weak.yaml", overrides))
    return built


def test_phrase_rows_share_repeats_within_an_item_only():
    rows = phrase_rows([[["a", "b", "a"], ["b", "c", "c"]], [["a", "a", "a"], ["d", "a", "d"]]],
                       share=True)
    assert rows.prompts == ["a", "b", "c", "a", "d"]
    assert rows.items.tolist() == [0, 0, 0, 1, 1]
    assert rows.of_slot.tolist() == [0, 1, 0, 1, 2, 2, 3, 3, 3, 4, 3, 4]
    assert phrase_rows([[["a", "a"]]], share=False).of_slot.tolist() == [0, 1]


# cond_unet with one SCA level: its features are a dataclass of tensors (select_items), and
# in training its queries are not independent.
@pytest.mark.parametrize("name,mode", [("film_masknet", "train"), ("cond_unet_sca", "train"),
                                       ("cond_unet_sca", "eval")])
def test_shared_phrases_give_the_per_slot_losses_and_gradients(modules, name, mode):
    module = modules[name].train(mode == "train")
    batch = make_batch()
    inputs = StepInputs(module.separator, module.conditioner, module.embed_prompts, batch)
    rows = len(inputs["phrase_rows"].prompts)
    # 16 slots, 6 distinct (item, phrase) pairs; a separator that normalises over the
    # queries in training runs every slot.
    assert rows == (16 if (name, mode) == ("cond_unet_sca", "train") else 6)

    total, parts = module.compute_losses(batch)
    new_loss, new_grads = loss_and_grads(module, total)
    old = old_inputs(module, batch)
    old_total, old_parts = 0.0, {}
    for term, (term_name, weight, required, optional) in zip(module.terms, module.term_specs):
        old_parts[term_name] = term(**{n: old[n] for n in required + optional})
        old_total = old_total + weight * old_parts[term_name]
    old_loss, old_grads = loss_and_grads(module, old_total)

    for term_name, value in parts.items():
        torch.testing.assert_close(value, old_parts[term_name].detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(new_loss, old_loss, rtol=1e-5, atol=1e-6)
    # Float rounding, relative to the largest gradient: a gradient that is a sum cancelling
    # to near zero can differ by a large fraction of itself.
    scale = max(float(g.abs().max()) for g in old_grads if g is not None)
    for new, ref in zip(new_grads, old_grads):
        assert (new is None) == (ref is None)
        if new is not None:
            torch.testing.assert_close(new, ref, rtol=1e-4, atol=1e-5 * scale)
    assert any(g is not None and g.abs().sum() > 0 for g in new_grads)
