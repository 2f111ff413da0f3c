"""`bisep train`: the modes, what data each may read, checkpoints, resume after a kill."""
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import BIN, assert_mentions, run_cli

TINY = Path(__file__).parent / "recipe_tiny"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Tiny synth_music data (stage 1) and its mixture-of-mixtures plans (stage 2)."""
    root = tmp_path_factory.mktemp("corpus")
    run_cli("prepare", "synth_music", root / "data", "--conf", TINY / "data.yaml", check=True)
    run_cli("mix", "--data-dir", root / "data", "--dump-dir", root / "dump",
            "--supervised-fraction", "0.5", check=True)
    return root


def train(corpus, exp, config="train_weak.yaml", *overrides, data=None, check=True):
    return run_cli("train", "--config", TINY / config, "--data-dir", data or corpus / "data",
                   "--dump-dir", corpus / "dump", "--exp-dir", exp, *overrides, check=check,
                   timeout=600)


def test_weak_training_writes_checkpoints_logs_and_a_usable_model(corpus, tmp_path):
    exp = tmp_path / "weak"
    train(corpus, exp)
    assert (exp / "config.yaml").read_text().startswith("mode: weak")
    record = json.loads((exp / "data.json").read_text())
    assert record["data_dir"] == str((corpus / "data").resolve()) and record["sources"] == "none"
    assert record["clips_with_stems"] == 0 and record["stems_fraction"] == 0.0
    last = torch.load(exp / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    assert not any(k.startswith("conditioner.") for k in last["state_dict"])
    assert list((exp / "checkpoints").glob("step*.ckpt"))
    header = (exp / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in ("step", "train_loss", "val_loss", "val_si_sdr", "train/clap_contrastive"):
        assert column in header

    from bisep.inference import Separator

    sep = Separator.from_pretrained(exp)
    out = sep.separate(torch.randn(16000) * 0.1, ["violin", "flute"], sample_rate=16000)
    assert [r.target.shape for r in out] == [(16000,), (16000,)]


def test_weak_mode_never_reads_single_source_audio(corpus, tmp_path):
    # Remove every training stem: the weak mode must not notice, the supervised one must.
    data = tmp_path / "data"
    shutil.copytree(corpus / "data", data)
    from bisep.data.manifest import read_manifest

    stems = [Path(p) for it in read_manifest(data / "train.jsonl")
             for p in it.get("stems", {}).values()]
    assert stems and all(str(p).startswith(str(data)) for p in stems)
    for path in stems:
        path.unlink()
    train(corpus, tmp_path / "weak", "train_weak.yaml", "trainer.max_steps=2", data=data)
    out = train(corpus, tmp_path / "semi", "train_semi.yaml", data=data, check=False)
    assert out.returncode != 0
    assert any(p.name in out.stderr for p in stems) or "stem" in out.stderr.lower()


def test_semi_mode_trains_on_the_supervised_subset(corpus, tmp_path):
    exp = tmp_path / "semi"
    train(corpus, exp, "train_semi.yaml")
    header = (exp / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "train/supervised" in header or "val/supervised" in header
    assert torch.load(exp / "model.pth", weights_only=True)["infos"]["training"]["mode"] == "semi"
    # The share of single-source data it used: the clips of the plan lines marked sup.
    from bisep.data.manifest import read_manifest
    from bisep.data.mom import read_plan

    sup = {part for line in read_plan(corpus / "dump" / "mom_train.jsonl") if line["sup"]
           for part in line["parts"]}
    clips = len(read_manifest(corpus / "data" / "train.jsonl"))
    record = json.loads((exp / "data.json").read_text())
    assert record["sources"] == "sup" and record["train_clips"] == clips
    assert record["clips_with_stems"] == len(sup) > 0
    assert record["stems_fraction"] == pytest.approx(len(sup) / clips)


STEP_LINE = re.compile(r"^rank 0 epoch (\d+) step (\d+) MoMs (\S+)$", re.M)


def steps(output: str) -> dict[int, tuple[int, list[str]]]:
    """``{step: (epoch, MoM ids)}`` of a run's debug lines (``BISEP_LOG_LEVEL=DEBUG``)."""
    return {int(s): (int(e), ids.split(",")) for e, s, ids in STEP_LINE.findall(output)}


def test_killed_training_resumes_from_its_last_checkpoint(corpus, tmp_path):
    exp = tmp_path / "resume"
    env = {**os.environ, "BISEP_LOG_LEVEL": "DEBUG"}
    args = [str(BIN / "bisep"), "train", "--config", str(TINY / "train_weak.yaml"),
            "--data-dir", str(corpus / "data"), "--dump-dir", str(corpus / "dump"),
            "--exp-dir", str(exp), "trainer.max_steps=40", "trainer.val_check_interval=20",
            "trainer.checkpoint_every_n_steps=3"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    last = exp / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            step = torch.load(last, weights_only=True)["global_step"]
            if step >= 3:
                break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read().decode()
    os.killpg(proc.pid, signal.SIGKILL)
    killed = proc.stdout.read().decode()
    proc.wait()
    saved = torch.load(last, weights_only=True)["global_step"]
    assert 3 <= saved < 40
    assert not list(last.parent.glob(".*.tmp"))  # atomic writes leave no partial file

    out = run_cli(*args[1:], check=True, timeout=600, env_extra={"BISEP_LOG_LEVEL": "DEBUG"})
    assert f"resuming from step {saved}" in out.stdout
    # The data order resumes too: the resumed run starts mid-epoch where the checkpoint was
    # (it does not read again the MoMs its epoch had already trained on), and a step the
    # killed run took after its checkpoint reads the same MoMs when it is taken again.
    before, after = steps(killed), steps(out.stdout + out.stderr)
    assert min(after) == saved and max(after) == 39
    epoch = after[saved][0]
    seen = {m for step, (e, ids) in before.items() if step < saved and e == epoch for m in ids}
    assert seen and not seen & {m for e, ids in after.values() if e == epoch for m in ids}
    assert all(after[step] == before[step] for step in before.keys() & after.keys())
    assert torch.load(last, weights_only=True)["global_step"] == 40
    rows = (exp / "logs" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    step_col = header.index("step")
    logged = [int(r.split(",")[step_col]) for r in rows[1:]]
    assert logged == sorted(logged) and max(logged) >= 39
    assert len(list((exp / "logs").glob("run*"))) == 2


def test_modes_are_checked_against_their_loss_terms(corpus, tmp_path):
    out = train(corpus, tmp_path / "x", "train_weak.yaml",
                "criterions=[{name: supervised}]", check=False)
    assert out.returncode == 2
    assert "mode 'weak'" in out.stderr and "single-source" in out.stderr


def test_missing_stage_output_names_the_stage(corpus, tmp_path):
    out = run_cli("train", "--config", TINY / "train_weak.yaml", "--data-dir", corpus / "data",
                  "--dump-dir", tmp_path / "nodump", "--exp-dir", tmp_path / "x")
    assert out.returncode == 2
    assert "mom_train.jsonl" in out.stderr and "stage 2" in out.stderr


def test_resume_refuses_another_config(corpus, tmp_path):
    exp = tmp_path / "weak"
    train(corpus, exp, "train_weak.yaml", "trainer.max_steps=2")
    out = train(corpus, exp, "train_weak.yaml", "trainer.max_steps=2", "optim_conf.lr=0.5",
                check=False)
    assert out.returncode == 2 and "another config" in out.stderr
    # Resources are not the experiment: the run continues with another thread count and
    # the allocator left as the system set it.
    out = train(corpus, exp, "train_weak.yaml", "trainer.max_steps=3", check=False)
    assert out.returncode == 2  # max_steps is part of the experiment
    train(corpus, exp, "train_weak.yaml", "trainer.max_steps=2", "trainer.num_threads=1",
          "trainer.keep_freed_memory=false")
    recorded = (exp / "config.yaml").read_text()
    assert "num_threads: 1" in recorded and "keep_freed_memory: false" in recorded


def test_print_config_fills_the_trainer_sections():
    out = run_cli("train", "--config", TINY / "train_weak.yaml", "--print_config", check=True)
    assert "max_steps: 4" in out.stdout and "monitor: val_loss" in out.stdout
    assert "batch_size: 2" in out.stdout and "num_workers: 0" in out.stdout
    bad = run_cli("train", "--config", TINY / "train_weak.yaml", "--print_config",
                  "trainer.max_stepz=3")
    assert bad.returncode == 2 and "max_steps" in bad.stderr


def test_a_pip_installed_loss_plugin_trains_by_name(corpus, tmp_path, plugin_sites):
    # tests/plugins/bisep-example-plugin registers `example_l2(phrase_masks)`; a config
    # names it beside a built-in term, and the trainer feeds it by argument name.
    out = run_cli("train", "--config", TINY / "train_weak.yaml", "--data-dir", corpus / "data",
                  "--dump-dir", corpus / "dump", "--exp-dir", tmp_path / "plug",
                  "trainer.max_steps=2",
                  "criterions=[{name: example_l2, weight: 1.0}, {name: mix_separate}]",
                  pythonpath=[plugin_sites["example"]], check=True, timeout=600)
    header = (tmp_path / "plug" / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "train/example_l2" in header, out.stdout


def test_a_corrupt_last_checkpoint_is_a_clear_error(corpus, tmp_path):
    exp = tmp_path / "weak"
    train(corpus, exp, "train_weak.yaml", "trainer.max_steps=2")
    last = exp / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    out = train(corpus, exp, "train_weak.yaml", "trainer.max_steps=2", check=False)
    assert out.returncode == 2
    assert "last.ckpt" in out.stderr and "cannot be read" in out.stderr


def test_semi_steps_reuse_the_phrase_outputs_for_the_sources(corpus):
    # Source slots are queried with the phrase in the same slot, so the source masks and
    # estimates are the phrase ones: computed once, equal to computing them again.
    from bisep.config import load_config
    from bisep.data.mom import MoMDataset, collate_mom
    from bisep.train.inputs import StepInputs
    from bisep.train.module import SeparationModule

    config = load_config(TINY / "train_semi.yaml")
    module = SeparationModule(config)
    data = MoMDataset(corpus / "dump" / "mom_train.jsonl", corpus / "data" / "train.jsonl",
                      num_phrases=4, load_sources=True)
    lines = [i for i, line in enumerate(data.plan) if line["sup"]][:1] + \
        [i for i, line in enumerate(data.plan) if not line["sup"]][:1]
    batch = collate_mom([data[i] for i in lines])
    inputs = StepInputs(module.separator, module.conditioner, module.embed_prompts, batch)
    with torch.no_grad():
        masks, estimates = inputs["source_masks"], inputs["source_estimates"]
        assert inputs._cache["phrase_masks"].data_ptr() == masks.data_ptr()
        again = inputs._masks(batch["source_prompts"])
        synthesized = module.separator.synthesize(inputs["spec"][0], again,
                                                  batch["mom"].shape[-1])
    torch.testing.assert_close(masks, again)
    torch.testing.assert_close(estimates, synthesized)


def test_reference_set_queries_each_reference_with_its_items_phrase(tmp_path):
    # Validation scores the queries stage 5 uses: an item's own phrases (AudioCaps: the
    # clips' captions), else the labels' default phrases. The phrases follow the order of
    # "labels", the references the sorted one: each reference must get its own phrase.
    import numpy as np
    import soundfile as sf

    from bisep.data.manifest import write_manifest
    from bisep.data.prompts import phrase
    from bisep.train.datamodule import ReferenceSet

    rate, rng = 8000, np.random.default_rng(0)

    def item(name, labels, **extra):
        stems = {}
        for label in labels:
            stems[label] = tmp_path / f"{name}_{label}.wav"
            sf.write(stems[label], rng.uniform(-0.3, 0.3, 800).astype(np.float32), rate,
                     subtype="FLOAT")
        audio = tmp_path / f"{name}.wav"
        sf.write(audio, sum(sf.read(path, dtype="float32")[0] for path in stems.values()),
                 rate, subtype="FLOAT")
        return {"id": name, "audio": str(audio), "labels": labels, "duration": 0.1,
                "stems": {label: str(path) for label, path in stems.items()}, **extra}

    write_manifest(tmp_path / "valid.jsonl", [
        item("caps", ["zz_clip", "aa_clip"], phrases=["A zebra neighs", "An aardvark digs"]),
        item("music", ["violin", "cello"])])
    references = ReferenceSet(tmp_path / "valid.jsonl", rate)
    caps, music = references[0], references[1]
    assert caps["prompts"] == ["An aardvark digs", "A zebra neighs"]
    for row, label in enumerate(["aa_clip", "zz_clip"]):
        expected = sf.read(tmp_path / f"caps_{label}.wav", dtype="float32")[0]
        torch.testing.assert_close(caps["references"][row], torch.from_numpy(expected))
    assert music["prompts"] == [phrase("cello"), phrase("violin")]


def test_audio_queries_train_on_the_mixtures_own_embedding(corpus, tmp_path):
    # data.query_source: audio (the CLIPSep-style baseline): L_UNS queries each mixture with
    # the query encoder's embedding of its audio; the text embedding is never asked for.
    from bisep.config import load_config
    from bisep.data.mom import MoMDataset, collate_mom
    from bisep.train.inputs import StepInputs
    from bisep.train.module import SeparationModule

    config = load_config(TINY / "train_weak.yaml", ["data.query_source=audio"])
    module = SeparationModule(config)
    data = MoMDataset(corpus / "dump" / "mom_train.jsonl", corpus / "data" / "train.jsonl",
                      num_phrases=4)
    batch = collate_mom([data[0], data[1]])
    seen = []
    original = module.separator.predict_masks

    def record(features, cond):
        seen.append(cond.embedding)
        return original(features, cond)

    module.separator.predict_masks = record
    inputs = StepInputs(module.separator, module.conditioner, module.embed_prompts, batch,
                        query_source="audio")
    with torch.no_grad():
        masks = inputs["mixture_masks"]
        expected = module.conditioner.embed_audio(batch["mixtures"].reshape(4, -1))
    assert masks.shape[:2] == (2, 2)
    torch.testing.assert_close(seen[0], expected.reshape(2, 2, -1))
    text = StepInputs(module.separator, module.conditioner, module.embed_prompts, batch)
    with torch.no_grad():
        text["mixture_masks"]
    assert not torch.allclose(seen[1], seen[0])
    # And a whole run with it: the recorded config keeps the option.
    exp = tmp_path / "audio_queries"
    train(corpus, exp, "train_weak.yaml", "data.query_source=audio", "trainer.max_steps=2")
    assert "query_source: audio" in (exp / "config.yaml").read_text()


def test_a_loss_term_can_warm_up_and_fade_out():
    from bisep.config import ConfigError, load_config
    from bisep.train.module import SeparationModule

    config = load_config(TINY / "train_weak.yaml")
    config["criterions"][1].update(start_step=10, ramp_steps=4)
    module = SeparationModule(config)
    factors = [module.term_factor(1, step) for step in (0, 9, 10, 12, 14, 100)]
    assert factors == [0.0, 0.0, 0.2, 0.6, 1.0, 1.0]
    assert module.term_factor(1, None) == 1.0 and module.term_factor(0, 0) == 1.0
    config["criterions"][1].update(stop_step=30, fade_steps=4)
    module = SeparationModule(config)
    factors = [module.term_factor(1, step) for step in (14, 25, 26, 28, 29, 30, 100)]
    assert factors == [1.0, 1.0, 0.8, 0.4, 0.2, 0.0, 0.0]
    assert module.term_factor(1, None) == 1.0
    with pytest.raises(ConfigError, match=r"criterions\[1\].start_step.*>= 0"):
        load_config(TINY / "train_weak.yaml", ["criterions=[{name: mix_separate}, "
                                               "{name: mix_separate, start_step: -1}]"])
    for term, tokens in [("{name: mix_separate, start_step: 10, ramp_steps: 5, stop_step: 20, "
                          "fade_steps: 6}", ["criterions[1].stop_step", "14", "15"]),
                         ("{name: mix_separate, fade_steps: 6}",
                          ["criterions[1].fade_steps", "stop_step"])]:
        with pytest.raises(ConfigError) as err:
            load_config(TINY / "train_weak.yaml",
                        [f"criterions=[{{name: mix_separate}}, {term}]"])
        assert_mentions(str(err.value), *tokens)
    with pytest.raises(ConfigError) as err:
        load_config(TINY / "train_weak.yaml", ["data.query_source=image"])
    assert_mentions(str(err.value), "data.query_source", "text, audio", "'image'")


@pytest.mark.parametrize("config", ["train_weak_no_crl_sym.yaml", "train_weak_no_crl_t01.yaml",
                                    "train_weak_contain.yaml", "train_weak_contain_level.yaml",
                                    "train_semi_snr_no_crl.yaml",
                                    "train_weak_no_crl_fade_long.yaml"])
def test_the_screens_new_recipe_configs_train(corpus, tmp_path, config):
    # The recipe's own files, shrunk by overrides only: what the screen runs is what trains.
    recipe_conf = Path(__file__).parents[1] / "egs" / "synth_music" / "bimodal" / "conf"
    exp = tmp_path / "run"
    run_cli("train", "--config", recipe_conf / config, "--data-dir", corpus / "data",
            "--dump-dir", corpus / "dump", "--exp-dir", exp, "trainer.max_steps=2",
            "trainer.val_check_interval=2", "trainer.checkpoint_every_n_steps=2",
            "trainer.num_threads=1", "trainer.progress_bar=false", "scheduler_conf.T_max=2",
            "data.batch_size=2", "data.valid_batch_size=4", check=True, timeout=600)
    assert torch.load(exp / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    header = (exp / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val/clap_contrastive" in header and "val/consistency_reconstruction" not in header


def test_a_nan_training_clip_is_named_before_step_1(corpus, tmp_path):
    import numpy as np
    import soundfile as sf

    from bisep.data.manifest import read_manifest

    data = tmp_path / "data"
    shutil.copytree(corpus / "data", data)
    clip = Path(read_manifest(data / "train.jsonl")[3]["audio"])
    audio, rate = sf.read(clip, dtype="float32")
    audio[100] = np.nan
    sf.write(clip, audio, rate, subtype="FLOAT")
    out = train(corpus, tmp_path / "weak", data=data, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{clip}: 1 samples are NaN" in out.stderr
    assert not (tmp_path / "weak" / "checkpoints").exists()


def test_what_the_trainer_refuses_is_a_config_error(corpus, tmp_path):
    out = train(corpus, tmp_path / "x", "train_weak.yaml", "trainer.strategy=no_such_strategy",
                check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "trainer section" in out.stderr and "no_such_strategy" in out.stderr
    # A separator sized for another query encoder: named, with the width to set.
    out = train(corpus, tmp_path / "y", "train_weak.yaml", "separator_conf.query_dim=128",
                check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert_mentions(out.stderr, "separator_conf.query_dim", "128", "384")


def test_a_non_finite_batch_or_loss_names_its_clips():
    from types import SimpleNamespace

    from bisep.train.guards import FiniteGuard, NonFiniteError

    dataset = SimpleNamespace(plan=[{"id": "mom_7", "parts": ["a", "b"]}],
                              items={"a": {"audio": "/d/a.wav"}, "b": {"audio": "/d/b.wav"}})
    trainer = SimpleNamespace(global_step=12, datamodule=SimpleNamespace(train_set=dataset))
    guard = FiniteGuard()
    batch = {"id": ["mom_7"], "mom": torch.tensor([[0.0, float("nan")]])}
    with pytest.raises(NonFiniteError) as err:
        guard.on_train_batch_start(trainer, None, batch, 0)
    assert_mentions(str(err.value), "step 12", "NaN or infinite", "'mom'", "mom_7", "/d/a.wav",
                    "/d/b.wav")
    batch["mom"] = torch.zeros(1, 2)
    guard.on_train_batch_start(trainer, None, batch, 0)
    with pytest.raises(NonFiniteError, match=r"loss is nan at step 12.*/d/b.wav.*optim_conf.lr"):
        guard.on_before_backward(trainer, None, torch.tensor(float("nan")))


ONLINE = ("judge_update.every=2", "judge_update.steps=2", "judge_update.outputs=2",
          "judge_update.per_batch=2", "trainer.monitor=val/mix_separate",
          "judge_update.judge_conf={clean_per_batch: 4, pool_mixtures_per_batch: 2, "
          "made_mixtures_per_batch: 2, masked_per_batch: 2, objective: energy, "
          "clip_seconds: 1.0}")


def judge_state(checkpoint):
    states = torch.load(checkpoint, weights_only=True)["callbacks"]
    (state,) = [v for k, v in states.items() if "OnlineJudge" in k]
    return state


def test_an_online_judge_learns_from_the_separator_and_resumes(corpus, tmp_path):
    # Every 2 steps the judge trains on the current separator's outputs of its own pool; its
    # state travels in the Lightning checkpoint, and a run resumed mid-way ends with the judge
    # of the run that was never stopped.
    exp = tmp_path / "online"
    out = train(corpus, exp, "train_weak.yaml", *ONLINE)
    assert "judge_update 2: 4 separator outputs" in out.stdout + out.stderr
    final = judge_state(exp / "checkpoints" / "last.ckpt")
    middle = judge_state(exp / "checkpoints" / "step0000002.ckpt")
    assert (final["updates"], middle["updates"]) == (2, 1)
    moved = [k for k in final["judge"] if not torch.equal(final["judge"][k], middle["judge"][k])]
    assert any(k.startswith("audio.") for k in moved)
    assert torch.equal(final["judge"]["log_logit_scale"], middle["judge"]["log_logit_scale"])
    header = (exp / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"judge_update/loss", "judge_update/judged_share",
            "judge_update/true_share"} <= set(header)
    rows = list(csv.DictReader(open(exp / "logs" / "metrics.csv")))
    shares = [float(r["judge_update/true_share"]) for r in rows if r["judge_update/true_share"]]
    assert len(shares) == 2 and all(0 < x < 1 for x in shares)
    # The checkpoint is chosen on the lowest val/mix_separate (a loss term: minimised).
    terms = {int(r["step"]) + 1: float(r["val/mix_separate"]) for r in rows
             if r.get("val/mix_separate")}
    chosen = torch.load(exp / "model.pth", weights_only=True)["infos"]["training"]["step"]
    assert len(terms) == 2 and chosen == min(terms, key=terms.get)
    # Resume from the step-2 checkpoint in a copy of the folder.
    again = tmp_path / "resumed"
    shutil.copytree(exp, again)
    shutil.copy(again / "checkpoints" / "step0000002.ckpt", again / "checkpoints" / "last.ckpt")
    (again / "model.pth").unlink()
    out = train(corpus, again, "train_weak.yaml", *ONLINE)
    assert "resuming from step 2" in out.stdout + out.stderr
    assert "1 updates so far" in out.stdout + out.stderr
    resumed = judge_state(again / "checkpoints" / "last.ckpt")
    assert resumed["updates"] == 2
    for key, value in final["judge"].items():
        torch.testing.assert_close(resumed["judge"][key], value, atol=1e-4, rtol=1e-4)


def test_what_an_online_judge_refuses_is_named_before_training(corpus, tmp_path):
    recipe_conf = Path(__file__).parents[1] / "egs" / "synth_music" / "bimodal" / "conf"
    # No criterion reads the judge: updating it would change nothing.
    out = run_cli("train", "--config", recipe_conf / "train_unsup.yaml", "--data-dir",
                  corpus / "data", "--dump-dir", corpus / "dump", "--exp-dir", tmp_path / "u",
                  "judge_update.every=2")
    assert out.returncode == 2
    assert_mentions(out.stderr, "judge_update.every", "phrase_audio_emb")
    out = train(corpus, tmp_path / "k", "train_weak.yaml", *ONLINE,
                "judge_update.judge_conf={stepz: 3}", check=False)
    assert out.returncode == 2
    assert_mentions(out.stderr, "judge_update.judge_conf", "stepz", "steps")
    # The judge's pool is part of data preparation's output.
    data = tmp_path / "data"
    shutil.copytree(corpus / "data", data)
    (data / "clap_pool.jsonl").unlink()
    out = train(corpus, tmp_path / "p", "train_weak.yaml", *ONLINE, data=data, check=False)
    assert out.returncode == 2
    assert_mentions(out.stderr, "clap_pool.jsonl", "judge_update.every: 0")
    assert not (tmp_path / "p" / "config.yaml").exists()  # before any work
    out = train(corpus, tmp_path / "n", "train_weak.yaml", "judge_update.every=-1", check=False)
    assert out.returncode == 2 and "judge_update.every" in out.stderr


def test_init_from_starts_a_run_from_another_models_weights(corpus, tmp_path):
    teacher = tmp_path / "teacher"
    train(corpus, teacher, "train_weak.yaml", "trainer.max_steps=2")
    # A student in another mode starts from the teacher's separator: with a learning rate
    # near zero its exported weights are the teacher's (all but the normalisation layers'
    # running statistics, which training updates at any learning rate).
    student = tmp_path / "student"
    train(corpus, student, "train_sup.yaml", f"init_from={teacher}", "optim_conf.lr=1.0e-12")
    weights = [torch.load(p / "model.pth", weights_only=True)["state_dict"]
               for p in (teacher, student)]
    assert weights[0].keys() == weights[1].keys()
    learned = [k for k in weights[0] if "running_" not in k and "num_batches" not in k]
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-8) for k in learned)
    assert f"init_from: {teacher}" in (student / "config.yaml").read_text()
    # Without it the same run starts elsewhere.
    fresh = tmp_path / "fresh"
    train(corpus, fresh, "train_sup.yaml", "optim_conf.lr=1.0e-12")
    state = torch.load(fresh / "model.pth", weights_only=True)["state_dict"]
    assert not all(torch.allclose(state[k], weights[0][k], atol=1e-4) for k in learned)


def test_what_init_from_refuses_is_named_before_training(corpus, tmp_path):
    teacher = tmp_path / "teacher"
    train(corpus, teacher, "train_sup.yaml")
    missing = train(corpus, tmp_path / "a", "train_sup.yaml",
                    f"init_from={tmp_path / 'nope.pth'}", check=False)
    assert missing.returncode == 2 and "nope.pth" in missing.stderr
    assert not (tmp_path / "a" / "config.yaml").exists()
    other = train(corpus, tmp_path / "b", "train_sup.yaml", f"init_from={teacher}",
                  "separator=cond_unet", "separator_conf={preset: small}", check=False)
    assert other.returncode == 2
    assert_mentions(other.stderr, "init_from", "film_masknet", "cond_unet")
    shapes = train(corpus, tmp_path / "c", "train_sup.yaml", f"init_from={teacher}",
                   "separator_conf.bn_chan=64", check=False)
    assert shapes.returncode == 2
    assert_mentions(shapes.stderr, "init_from", "separator_conf")
    assert not (tmp_path / "c" / "checkpoints").exists()
