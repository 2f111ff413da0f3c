"""The query encoder as a judge of leakage: the energy-share objective, the masked outputs it
trains on, its evaluation (leakage curve, masked outputs, margin against the SDR of real
separated outputs) and a tiny `bisep train-clap` run with it."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bisep.losses.audio_text import energy_share_loss
from bisep.train.clap_batches import (ARTEFACT, BatchMaker, ClipSet, masked_outputs,
                                      target_artefacts)
from bisep.train.clap_eval import margin_sdr_correlation, spearman
from bisep.train.clap_config import load_train_config
from conftest import REPO, assert_mentions, run_cli
from test_mini_clap import TINY_CONF, write_tiny_data


def test_energy_share_loss_is_lowest_at_the_log_energy_ratio():
    energies = torch.tensor([[4.0, 1.0, 0.0]])
    best = torch.log(torch.tensor([[4.0, 1.0, 1e-6]])).requires_grad_()
    loss = energy_share_loss(best, energies)
    loss.backward()
    assert best.grad.abs().max() < 1e-5  # the optimum: log-odds = log energy ratio
    for worse in ([[0.0, 0.0, 0.0]], [[5.0, 0.0, -5.0]], [[0.0, 2.0, -9.0]]):
        assert energy_share_loss(torch.tensor(worse), energies) > loss
    # A clean clip: the usual cross-entropy.
    logits = torch.tensor([[0.3, 1.2, -0.4]])
    torch.testing.assert_close(energy_share_loss(logits, torch.tensor([[0.0, 2.0, 0.0]])),
                               torch.nn.functional.cross_entropy(logits, torch.tensor([1])))


def test_energy_share_loss_errors():
    with pytest.raises(TypeError, match=r"same \(M, C\)"):
        energy_share_loss(torch.zeros(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="energy in at least one class"):
        energy_share_loss(torch.zeros(2, 3), torch.tensor([[1.0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="power"):
        energy_share_loss(torch.zeros(1, 2), torch.ones(1, 2), power=0)


def test_masked_outputs_are_the_masked_mixture_and_its_parts_energies():
    g = torch.Generator().manual_seed(0)
    parts = torch.randn(3, 2, 8000, generator=g) * torch.tensor([1.0, 0.5])[None, :, None]
    sharp, blend = torch.tensor([8.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])
    out, masked = masked_outputs(parts, sharp, blend, torch.Generator().manual_seed(1))
    assert out.shape == (3, 8000) and masked.shape == (3, 2, 8000)
    # Masking is linear: the output is the sum of each source's masked part.
    torch.testing.assert_close(masked.sum(dim=1), out)
    energy = masked.square().sum(-1)
    share0 = energy[:, 0] / energy.sum(-1)
    # A sharp ratio mask keeps the first source; a random mask keeps both at their levels.
    assert share0[0] > 0.95 and share0[0] > share0[1] > share0[2]
    assert 0.6 < share0[2] < 0.95


def test_artefacts_are_the_first_sources_distortion_beyond_a_gain():
    g = torch.Generator().manual_seed(2)
    parts = torch.randn(2, 2, 8000, generator=g)
    # An all-pass mask keeps s0 whole (no artefact); a sharp ratio mask carves holes in it.
    _, masked = masked_outputs(parts, torch.tensor([1.0, 4.0]), torch.tensor([1.0, 0.0]),
                               torch.Generator().manual_seed(0))
    kept, artefact = target_artefacts(parts[:, 0], masked[:, 0])
    energy = masked[:, 0].square().sum(-1)
    assert kept.shape == artefact.shape == (2,)
    torch.testing.assert_close(kept + artefact, energy)
    assert artefact[1] / energy[1] > artefact[0] / energy[0]
    # A pure gain is no artefact.
    kept, artefact = target_artefacts(parts[:, 0], 0.3 * parts[:, 0])
    assert torch.all(artefact < 1e-6 * kept)
    conf = load_train_config(None, ["seed=1", "clean_per_batch=2", "pool_mixtures_per_batch=0",
                                    "made_mixtures_per_batch=0", "masked_per_batch=3",
                                    "artefact_targets=true"])
    rate = 16000
    singles = ClipSet(torch.randn(4, rate, generator=g), [("a",), ("b",), ("c",), ("a",)],
                      ["0", "1", "2", "3"])
    batch = BatchMaker(singles, ClipSet(torch.zeros(0, rate), [], []), conf, [None])()
    assert all(ARTEFACT in e for e in batch.energies[2:])
    assert all(ARTEFACT not in e for e in batch.energies[:2])


def test_batches_carry_each_instruments_energy():
    rate, n = 16000, 8
    t = torch.arange(rate) / rate
    audio = torch.stack([torch.sin(2 * np.pi * (200 + 50 * i) * t) for i in range(n)])
    labels = [(name,) for name in ["flute", "tuba", "violin", "cello"] * 2]
    singles = ClipSet(audio, labels, [str(i) for i in range(n)])
    conf = load_train_config(None, ["seed=1", "clean_per_batch=3", "pool_mixtures_per_batch=0",
                                    "made_mixtures_per_batch=2", "masked_per_batch=4",
                                    "three_fraction=0.5", "added_level_db=[-30, 0]"])
    empty = ClipSet(torch.zeros(0, rate), [], [])
    batch = BatchMaker(singles, empty, conf, [None])()
    assert batch.audio.shape == (9, rate) and len(batch.labels) == len(batch.energies) == 9
    for labels_, energies in zip(batch.labels, batch.energies):
        assert set(energies) == set(labels_) and all(e > 0 for e in energies.values())
    assert all(len(lab) == 1 for lab in batch.labels[:3])
    assert all(len(lab) >= 2 for lab in batch.labels[3:])
    again = BatchMaker(singles, empty, conf, [None])()
    torch.testing.assert_close(again.audio, batch.audio)  # seeded


def test_config_checks_the_judge_keys():
    from bisep.config import ConfigError

    assert load_train_config(None, ["objective=energy"])["objective"] == "energy"
    with pytest.raises(ConfigError) as err:
        load_train_config(None, ["objective=soft"])
    assert_mentions(str(err.value), "objective", "subset, energy", "'soft'")
    with pytest.raises(ConfigError, match="mask_max_blend"):
        load_train_config(None, ["mask_max_blend=2"])
    with pytest.raises(ConfigError, match="mask_sharpness"):
        load_train_config(None, ["mask_sharpness=[0, 2]"])


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 2], [1, 2])) and np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_train_clap_energy_objective_writes_the_judge_figures(tmp_path):
    # One tiny run with every kind of item: masked outputs, a trained separator's outputs,
    # artefact targets; then --evaluate on the result, and the errors.
    data, out = tmp_path / "data", tmp_path / "exp"
    write_tiny_data(data)
    model = tiny_separator_file(tmp_path)
    result = run_cli("train-clap", "--data-dir", data, "--out-dir", out, "--conf", TINY_CONF,
                     "clip_seconds=1.0", "objective=energy", "masked_per_batch=2",
                     "artefact_targets=true", f"separator_models=[{tmp_path}]",
                     "separator_outputs=3", "separator_per_batch=2", check=True)
    assert "energy share" in result.stdout and "objective energy" in result.stdout
    assert f"6 outputs of {model}" in result.stdout
    report = json.loads((out / "eval.json").read_text())
    assert report["objective"] == "energy"
    curve = report["leakage_curve"]
    assert [p["leak_db"] for p in curve["points"]] == [None, -30.0, -20.0, -12.0, -6.0, -3.0,
                                                       0.0]
    assert isinstance(curve["monotone"], bool)
    assert "leakage_curve_monotone" in report["targets"]
    masked = report["masked_outputs"]
    assert masked["outputs"] > 50 and -1 <= masked["spearman_margin_sir"] <= 1
    # --evaluate judges a trained encoder again, e.g. on another soundfont's held-out clips.
    again = run_cli("train-clap", "--data-dir", data, "--out-dir", tmp_path / "ev",
                    "--evaluate", out / "mini_clap.pth", check=True)
    assert "wrote" in again.stdout
    second = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert second["leakage_curve"] == curve and second["checkpoint"].endswith("mini_clap.pth")
    missing = run_cli("train-clap", "--data-dir", tmp_path, "--out-dir", tmp_path / "ev2",
                      "--evaluate", out / "mini_clap.pth")
    assert missing.returncode == 2 and "clap_heldout.jsonl does not exist" in missing.stderr
    missing = run_cli("train-clap", "--data-dir", data, "--out-dir", out, "--conf", TINY_CONF,
                      "objective=energy", f"separator_models=[{tmp_path / 'none'}]")
    assert missing.returncode == 2 and "separator_models" in missing.stderr
    assert f"{tmp_path / 'none'} does not exist" in missing.stderr
    assert "Loading weights" not in missing.stderr  # refused before any work
    # The recipe's probe of the judge's energy shares (the judged_level loss's targets).
    stems = write_stem_manifest(tmp_path / "stems")
    probe = subprocess.run([sys.executable, str(REPO / "egs/synth_music/bimodal/local/judge_shares.py"),
                            "--list", stems, "--clap_checkpoint", out / "mini_clap.pth"],
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    shares = json.loads(probe.stdout)
    assert shares["clips"] == 3 and shares["parts"] == 6
    # The tuba is 0, 6 and 12 dB under a square wave's level: never an equal share.
    assert shares["equal_shares"]["median_db"] > 1 and shares["judge"]["p90_db"] >= 0
    bad = subprocess.run([sys.executable, str(REPO / "egs/synth_music/bimodal/local/judge_shares.py"),
                          "--list", stems, "--clap_checkpoint", tmp_path / "none.pth"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--clap_checkpoint" in bad.stderr and "none.pth" in bad.stderr


def write_stem_manifest(folder, rate=16000):
    """Three 2-instrument clips with stems, the second instrument 0, 6 and 12 dB down."""
    from bisep.audio import write
    from bisep.data.manifest import write_manifest

    t, items = np.arange(rate) / rate, []
    for i in range(3):
        parts = {"flute": np.sin(2 * np.pi * 880 * t), "tuba": 10 ** (-0.3 * i) * np.sign(
            np.sin(2 * np.pi * 110 * t))}
        stems = {}
        for name, wav in parts.items():
            stems[name] = f"wav/{i}/{name}.wav"
            write(folder / stems[name], (0.1 * wav).astype(np.float32), rate)
        write(folder / f"wav/{i}.wav", (0.1 * sum(parts.values())).astype(np.float32), rate)
        items.append({"id": f"clip{i}", "audio": f"wav/{i}.wav", "labels": sorted(parts),
                      "duration": 1.0, "stems": stems})
    write_manifest(folder / "train.jsonl", items)
    return folder / "train.jsonl"


def write_separated(folder, ids, rate=16000):
    """A fake `bisep separate --list` folder and `bisep score` CSV: estimates are the
    reference plus the other source at a known level, so SDR is known."""
    from bisep.audio import write

    g = np.random.default_rng(0)
    items, rows = [], []
    for n, item_id in enumerate(ids):
        refs = {"flute": g.standard_normal(rate) * 0.05, "tuba": g.standard_normal(rate) * 0.05}
        entry = {"id": item_id, "sources": {}, "estimates": {}, "mixture": f"{item_id}/mix.wav"}
        write(folder / entry["mixture"], (refs["flute"] + refs["tuba"]).astype(np.float32), rate)
        for label, other in (("flute", "tuba"), ("tuba", "flute")):
            leak = 0.1 * (n + 1)
            est = refs[label] + leak * refs[other]
            entry["sources"][label] = f"{item_id}/ref_{label}.wav"
            entry["estimates"][label] = f"{item_id}/{label}.wav"
            write(folder / entry["sources"][label], refs[label].astype(np.float32), rate)
            write(folder / entry["estimates"][label], est.astype(np.float32), rate)
            rows.append({"item": item_id, "source": label, "sdr": -20 * np.log10(leak)})
        items.append(entry)
    (folder / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    scores = folder / "per_item.csv"
    with open(scores, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["item", "source", "sdr"])
        writer.writeheader()
        writer.writerows(rows)
    return folder / "items.jsonl", scores


def test_margin_sdr_correlation_over_separated_outputs(tmp_path):
    from bisep.conditioners.mini_clap import MiniClapConditioner

    with torch.random.fork_rng(), pytest.warns(UserWarning, match="random weights"):
        torch.manual_seed(0)
        judge = MiniClapConditioner(audio_conf={"channels": [4, 4, 8, 16]})
    runs = {"a": write_separated(tmp_path / "a", ["x1", "x2", "x3"]),
            "b": write_separated(tmp_path / "b", ["y1", "y2"])}
    found = margin_sdr_correlation(judge, runs)
    assert found["outputs"] == 10 and found["runs"]["a"]["outputs"] == 6
    assert found["runs"]["b"]["mean_sdr"] == pytest.approx(
        np.mean([20.0, 20.0, -20 * np.log10(0.2), -20 * np.log10(0.2)]))
    assert -1 <= found["spearman"] <= 1
    assert margin_sdr_correlation(judge, runs, limit=1)["outputs"] == 4
    with pytest.raises(FileNotFoundError, match="per_item.csv does not exist.*'c'"):
        margin_sdr_correlation(judge, {"c": (runs["a"][0], tmp_path / "per_item.csv")})


def test_recipe_judge_config_loads():
    conf = load_train_config(REPO / "egs" / "synth_music" / "bimodal" / "conf" / "mini_clap.yaml")
    assert conf["objective"] == "energy" and conf["masked_per_batch"] > 0


def tiny_separator_file(folder):
    from bisep.checkpoint import save, serialize
    from bisep.registry import get_registry

    with torch.random.fork_rng():
        torch.manual_seed(0)
        separator = get_registry().build("separator", "film_masknet", preset="small",
                                         query_dim=384)
    return save(serialize(separator.eval(), "film_masknet"), folder / "model.pth")


def test_separator_outputs_carry_their_exact_leakage(tmp_path):
    from bisep.checkpoint import from_pretrained
    from bisep.conditioners.mini_clap import MiniClapConditioner
    from bisep.train.clap_batches import separator_outputs

    separator = from_pretrained(tiny_separator_file(tmp_path)).eval()
    with pytest.warns(UserWarning, match="random weights"):
        judge = MiniClapConditioner(audio_conf={"channels": [4, 4, 8, 16]})
    g = torch.Generator().manual_seed(3)
    singles = ClipSet(torch.randn(6, 8000, generator=g), [("a",), ("b",), ("c",)] * 2,
                      [str(i) for i in range(6)])
    audio, labels, energies, splits = separator_outputs(separator, judge, singles, 5, seed=0)
    assert audio.shape == (10, 8000) and len(labels) == len(energies) == len(splits) == 10
    for lab, energy, (kept, artefact) in zip(labels, energies, splits):
        assert len(lab) == 2 and set(energy) == set(lab)
        queried = next(iter(energy))
        assert kept + artefact == pytest.approx(energy[queried], rel=1e-3)
    again, *_ = separator_outputs(separator, judge, singles, 5, seed=0)
    torch.testing.assert_close(again, audio)  # seeded
    assert torch.isfinite(audio).all() and audio.abs().sum() > 0


def test_every_synth_music_config_resolves_and_the_screen_expands():
    # The levers of the screening are configs of the same trainer: each loads with its one
    # change, and conf/screen.yaml expands into runs (full_plan.py, as local/full.sh does).
    from bisep.config import load_config

    recipe = REPO / "egs" / "synth_music" / "bimodal"
    base = load_config(recipe / "conf" / "train_weak.yaml")
    configs = {p.stem: load_config(p) for p in sorted((recipe / "conf").glob("train_*.yaml"))}
    weights = {name: {c["name"]: c["weight"] for c in cfg["criterions"]}
               for name, cfg in configs.items()}
    assert weights["train_weak_crl1"]["consistency_reconstruction"] == 1.0
    assert configs["train_weak_crl_warmup"]["criterions"][1]["start_step"] == 300
    assert configs["train_weak_sym"]["criterions"][0]["conf"]["symmetric"] is True
    assert configs["train_weak_t005"]["criterions"][0]["conf"]["temperature"] == 0.05
    assert weights["train_weak_cnt2"]["clap_contrastive"] == 2.0
    assert weights["train_weak_no_crl_cnt2"] == {"clap_contrastive": 2.0, "mix_separate": 5.0}
    for name, change in (("sym", {"symmetric": True}), ("t01", {"temperature": 0.1})):
        no_crl = configs[f"train_weak_no_crl_{name}"]["criterions"]
        assert [c["name"] for c in no_crl] == ["clap_contrastive", "mix_separate"]
        assert change.items() <= no_crl[0]["conf"].items()
    assert weights["train_weak_contain"] == {"clap_contrastive": 0.5, "mix_separate": 5.0,
                                             "containment": 5.0}
    assert weights["train_weak_level"] == {"clap_contrastive": 0.5, "mix_separate": 5.0,
                                           "judged_level": 1.0}
    assert weights["train_weak_contain_level"] == {**weights["train_weak_contain"],
                                                   "judged_level": 1.0}
    assert weights["train_semi_snr_no_crl"] == {"clap_contrastive": 0.5, "mix_separate": 5.0,
                                                "neg_sdr": 0.5}
    assert configs["train_weak_k2"]["data"]["num_phrases"] == 2
    assert configs["train_weak_long"]["trainer"]["max_steps"] == 4 * base["trainer"]["max_steps"]
    for name, short in (("train_weak_no_crl_long", "train_weak_no_crl"),
                        ("train_unsup_long", "train_unsup")):
        long, ref = configs[name], configs[short]
        assert long["trainer"]["max_steps"] == long["scheduler_conf"]["T_max"] == 4800
        assert {**long, "trainer": ref["trainer"], "scheduler_conf": ref["scheduler_conf"]} == ref
    fade = configs["train_weak_no_crl_fade_long"]
    faded = {k: v for k, v in fade["criterions"][0].items() if k not in ("stop_step", "fade_steps")}
    assert faded == configs["train_weak_no_crl_long"]["criterions"][0]
    assert (fade["criterions"][0]["stop_step"], fade["criterions"][0]["fade_steps"]) == (2400, 1200)
    assert fade["trainer"]["monitor"] == "val/mix_separate"
    short = configs["train_weak_no_crl_fade"]
    assert (short["criterions"][0]["stop_step"], short["criterions"][0]["fade_steps"]) == (800, 400)
    assert {**short, "criterions": configs["train_weak_no_crl"]["criterions"],
            "trainer": configs["train_weak_no_crl"]["trainer"]} == configs["train_weak_no_crl"]
    for name, ref, start, ramp in (("train_weak_no_crl_late", "train_weak_no_crl", 800, 100),
                                   ("train_weak_no_crl_late_long", "train_weak_no_crl_long",
                                    3600, 400)):
        late, early = configs[name]["criterions"][0], configs[ref]["criterions"][0]
        assert (late["start_step"], late["ramp_steps"]) == (start, ramp)
        assert {k: v for k, v in late.items() if k not in ("start_step", "ramp_steps")} == early
        assert {**configs[name], "criterions": configs[ref]["criterions"]} == configs[ref]
    audio_long = configs["train_unsup_audio_long"]
    assert audio_long["trainer"]["max_steps"] == audio_long["scheduler_conf"]["T_max"] == 4800
    assert {**audio_long, "trainer": configs["train_unsup_long"]["trainer"],
            "data": configs["train_unsup_long"]["data"]} == configs["train_unsup_long"]
    assert configs["train_weak_sisdr"]["trainer"]["monitor"] == "val_si_sdr"
    for name, ref in (("train_weak_online", "train_weak"),
                      ("train_weak_no_crl_online", "train_weak_no_crl")):
        online, frozen = configs[name], configs[ref]
        assert online["judge_update"]["every"] == 50 and frozen["judge_update"]["every"] == 0
        assert online["trainer"]["monitor"] == "val/mix_separate"
        assert {**online, "judge_update": frozen["judge_update"],
                "trainer": frozen["trainer"]} == frozen
        art = configs[f"{name}_art"]
        assert art["judge_update"]["judge_conf"] == {"artefact_targets": True}
        assert {**art, "judge_update": online["judge_update"]} == online
    assert configs["train_unsup_audio"]["data"]["query_source"] == "audio"
    def expand(experiment_list: str) -> str:
        return subprocess.run([sys.executable, "local/full_plan.py", "--conf", experiment_list],
                              cwd=recipe, capture_output=True, text=True, check=True).stdout

    plan = expand("conf/screen.yaml")
    tags = [line.split("\t")[1] for line in plan.splitlines() if line.startswith("run\t")]
    assert "weak_judge1" in tags and "unsup_audio" in tags and len(tags) == 33
    # The semi-supervised arm with stems in half of its MoMs, on its own plan.
    lines = plan.splitlines()
    assert any(line.startswith("run\tsemi_snr_no_crl_m50\t") and "dump_semi50" in line
               for line in lines)
    assert any(line.startswith("plan\t") and "dump_semi50" in line
               and "--sup-mom-fraction 0.5" in line for line in lines)
    assert any(line.startswith("clap\t") for line in plan.splitlines())
    # The screen decides on the validation compositions: every run is also scored there.
    assert sum(line.startswith("eval\texp_valid\t") for line in lines) == 33
    # The confirmation: three seeds of each arm, each also on validation and out of domain.
    confirm = expand("conf/confirm.yaml")
    runs = [line.split("\t")[1] for line in confirm.splitlines() if line.startswith("run\t")]
    assert len(runs) == 24 and {"weak_no_crl_fade_long_j2_s3", "unsup_audio_long_j2_s2",
                                "sup_snr_f05_s3"} <= set(runs)
    for folder, test_set in (("exp_valid", "--test_set valid"), ("exp_fluidr3", "--test_set test")):
        evals = [line for line in confirm.splitlines() if line.startswith(f"eval\t{folder}\t")]
        assert len(evals) == 24 and all(test_set in line for line in evals)


def test_two_source_items_skip_items_without_references(tmp_path):
    from bisep.train.clap_eval import two_source_items

    lines = [{"id": "real", "mixture": "real.wav", "estimates": {"a": "1.wav", "b": "2.wav"}},
             {"id": "one", "mixture": "m.wav", "sources": {"a": "r.wav"}, "estimates": {"a": "e.wav"}},
             {"id": "two", "mixture": "m.wav", "sources": {"b": "r2.wav", "a": "r1.wav"},
              "estimates": {"a": "e1.wav", "b": "e2.wav"}}]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert [(item["id"], names) for item, names in two_source_items(tmp_path / "items.jsonl")] == [
        ("two", ["a", "b"])]
