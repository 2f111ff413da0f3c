"""local/full.sh: the whole experiment list of a recipe, run for real on tiny configs.

A copy of egs/synth_music/bimodal (its scripts, with tests/recipe_tiny's configs) in a
temporary repo tree that links to the real recipes/ and .venv; full.sh expands a small
experiment list (two seeds of one arm, an arm on a second plan, the validation set and an
out-of-domain test set), runs them two at a time through the shared stages, and writes the
reports.
"""
import json
import os
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, assert_mentions

RECIPE = REPO / "egs" / "synth_music" / "bimodal"
TINY = REPO / "tests" / "recipe_tiny"


def sh(cwd, *cmd, check=True):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                         timeout=900, env={**os.environ, "LC_ALL": "C"})
    if check:
        assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    (root / "recipes").symlink_to(REPO / "recipes")
    (root / ".venv").symlink_to(REPO / ".venv")
    folder = root / "egs" / "synth_music" / "bimodal"
    (folder / "conf").mkdir(parents=True)
    shutil.copytree(RECIPE / "local", folder / "local")
    shutil.copy(RECIPE / "run.sh", folder)
    (folder / "utils").symlink_to(REPO / "recipes" / "utils")
    shutil.copy(TINY / "data.yaml", folder / "conf" / "data.yaml")
    ood = yaml.safe_load((TINY / "data.yaml").read_text())
    ood.update(seed=5, num_clap_singles=0, num_clap_mixtures=0, num_train=0, num_valid=0)
    (folder / "conf" / "data_ood.yaml").write_text(yaml.safe_dump(ood))
    shutil.copy(TINY / "mini_clap.yaml", folder / "conf" / "mini_clap.yaml")
    shutil.copy(TINY / "train_weak.yaml", folder / "conf" / "train_weak.yaml")
    semi = yaml.safe_load((TINY / "train_semi.yaml").read_text())
    (folder / "conf" / "train_semi.yaml").write_text(yaml.safe_dump(semi))
    (folder / "conf" / "full.yaml").write_text(yaml.safe_dump({
        "seeds": [7, 8],
        "data": {"data_ood": "conf/data_ood.yaml"},
        "plans": {"dump_f50": {"data": "data", "supervised_fraction": 0.5}},
        "validation": {"exp_dir": "exp_valid"},
        "out_of_domain": {"data": "data_ood", "exp_dir": "exp_ood"},
        "runs": [{"config": "conf/train_weak.yaml"},
                 {"config": "conf/train_semi.yaml", "plan": "dump_f50", "suffix": "_f50",
                  "seeds": [7]}]}))
    sh(folder, "./run.sh", "--stop_stage", "3", "--supervised_fraction", "0.5")
    return folder


def test_full_runs_every_arm_and_seed_and_reports_them(recipe, tmp_path):
    out = sh(recipe, "local/full.sh", "--jobs", "2")
    exp = recipe / "exp"
    for tag in ("weak", "weak_s8", "semi_f50"):
        assert (exp / tag / "scores" / "summary.json").is_file(), out.stdout
        assert f"done {tag}" in out.stdout
        assert (exp / "full_logs" / f"{tag}.log").is_file()
    assert yaml.safe_load((exp / "weak_s8" / "config.yaml").read_text())["seed"] == 8
    assert "dump_f50" in (exp / "semi_f50" / "data.json").read_text()
    results = (exp / "RESULTS.md").read_text()
    assert "## Over seeds" in results and "| weak | weak | 0% | 7, 8 |" in results
    # Every model also separated and scored the validation and the out-of-domain sets, each
    # reported in its own folder.
    for tag in ("weak", "weak_s8", "semi_f50"):
        for folder, manifest, items in (("exp_valid", "data/valid.jsonl", 6),
                                        ("exp_ood", "data_ood/test.jsonl", 8)):
            assert f"done {tag} ({folder})" in out.stdout
            scores = json.loads((recipe / folder / tag / "scores" / "summary.json").read_text())
            assert scores["items"]["scored"] == items
            assert (recipe / folder / tag / "model.pth").resolve() == exp / tag / "model.pth"
            assert manifest in (recipe / folder / "RESULTS.md").read_text()
            assert (exp / "full_logs" / f"{tag}.{folder}.log").is_file()
    # A second call finds a finished run finished: nothing is trained again (one run of the
    # list, so that the test does not separate and score every model twice).
    again_conf = tmp_path / "again.yaml"
    again_conf.write_text(yaml.safe_dump({"seeds": [7],
                                          "runs": [{"config": "conf/train_weak.yaml"}]}))
    again = sh(recipe, "local/full.sh", "--conf", again_conf, "--jobs", "2")
    assert "done weak" in again.stdout
    # The tiny config trains 4 steps: the run resumes at its end and takes no step.
    assert "resuming from step 4" in (exp / "full_logs" / "weak.log").read_text()


def test_full_list_errors_name_the_file_and_key(recipe, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("runs:\n  - {config: conf/train_weak.yaml, plan: nowhere}\n")
    out = sh(recipe, "local/full.sh", "--conf", bad, check=False)
    assert out.returncode != 0
    assert_mentions(out.stderr, f"{bad}:", "runs[1]", "plan 'nowhere'", "dump", "'plans'")
    bad.write_text("validation: {exp_dir: exp}\nruns:\n  - {config: conf/train_weak.yaml}\n")
    out = sh(recipe, "local/full.sh", "--conf", bad, check=False)
    assert out.returncode != 0
    assert_mentions(out.stderr, f"{bad}:", "validation", "exp_dir of their own")
    bad.write_text("validation: exp_valid\nruns:\n  - {config: conf/train_weak.yaml}\n")
    out = sh(recipe, "local/full.sh", "--conf", bad, check=False)
    assert_mentions(out.stderr, f"{bad}:", "validation needs 'exp_dir'", "exp_valid")
    bad.write_text("runs:\n  - {config: conf/train_weak.yaml, sed: [1]}\n")
    out = sh(recipe, "local/full.sh", "--conf", bad, check=False)
    assert "unknown key(s) sed" in out.stderr
    out = sh(recipe, "local/full.sh", "--exp_dir", tmp_path / "empty", check=False)
    assert out.returncode == 1
    assert_mentions(out.stderr, "mini_clap.pth", "missing", "./run.sh --stop_stage 3")
    assert "--jobs" in sh(recipe, "local/full.sh", "--help", check=False).stdout


def test_a_run_can_use_another_query_encoder(recipe, tmp_path):
    # claps: extra query encoders trained once (skipped when their mini_clap.pth exists);
    # a run's clap: key gives its stages 4-6 that encoder instead of exp/mini_clap.
    import sys

    conf = tmp_path / "screen.yaml"
    conf.write_text(yaml.safe_dump({
        "claps": {"judge_b": "conf/mini_clap.yaml"},
        "runs": [{"config": "conf/train_weak.yaml", "clap": "judge_b", "suffix": "_b"},
                 {"config": "conf/train_weak.yaml"}]}))
    out = sh(recipe, sys.executable, "local/full_plan.py", "--conf", conf, "--python", "PY")
    lines = out.stdout.splitlines()
    clap = [line for line in lines if line.startswith("clap\t")]
    assert clap == ["clap\t[ -f exp/judge_b/mini_clap.pth ] || PY -m bisep train-clap "
                    "--data-dir data --out-dir exp/judge_b --conf conf/mini_clap.yaml"]
    runs = [line for line in lines if line.startswith("run\t")]
    assert runs[0].startswith("run\tweak_b\t")
    assert "--clap_checkpoint exp/judge_b/mini_clap.pth" in runs[0]
    assert "--clap_checkpoint" not in runs[1]
    conf.write_text(yaml.safe_dump({"runs": [{"config": "conf/train_weak.yaml",
                                              "clap": "nowhere"}]}))
    out = sh(recipe, sys.executable, "local/full_plan.py", "--conf", conf, check=False)
    assert out.returncode == 2
    assert_mentions(out.stderr, "clap 'nowhere'", "'claps'")
