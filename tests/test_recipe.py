"""The real recipe, end to end: egs/synth_music/bimodal/run.sh on tiny configs, every stage.

Each stage runs the real `python -m bisep` command (rendering, mixture plans, mini_clap
training, separator training, separation, scoring, report); tests/test_recipe_shell.py
covers the option parsing and error messages with a recording fake python.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

RECIPE = REPO / "egs" / "synth_music" / "bimodal"
TINY = REPO / "tests" / "recipe_tiny"


def run_recipe(root, *args):
    cmd = [str(RECIPE / "run.sh"), "--data_config", str(TINY / "data.yaml"),
           "--clap_config", str(TINY / "mini_clap.yaml"),
           "--train_configs", str(TINY / "train_weak.yaml"),
           "--data_dir", str(root / "data"), "--dump_dir", str(root / "dump"),
           "--exp_dir", str(root / "exp"), "--supervised_fraction", "0.5",
           *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "LC_ALL": "C"})
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    return root, run_recipe(root)


def test_every_stage_writes_its_outputs(recipe_run):
    root, out = recipe_run
    data, dump, exp = root / "data", root / "dump", root / "exp"
    for stage in range(1, 8):
        assert f"Stage {stage}" in out.stdout
    # 1: manifests and audio
    for name in ("clap_pool", "clap_heldout", "train", "valid", "test"):
        assert (data / f"{name}.jsonl").stat().st_size > 0
    assert json.loads((data / "meta.json").read_text())["sample_rate"] == 16000
    # 2: mixture-of-mixtures plans
    assert (dump / "mom_train.jsonl").stat().st_size > 0
    assert (dump / "mom_valid.jsonl").stat().st_size > 0
    # 3: the query encoder and its evaluation
    assert (exp / "mini_clap" / "mini_clap.pth").exists()
    assert "clean" in json.loads((exp / "mini_clap" / "eval.json").read_text())
    # 4: the separator
    weak = exp / "weak"
    assert (weak / "model.pth").exists() and (weak / "checkpoints" / "last.ckpt").exists()
    assert (weak / "resume_stage4.sh").exists()
    # 5: one estimate per test item and label
    test_items = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    listed = [json.loads(line) for line in
              (weak / "separated" / "items.jsonl").read_text().splitlines()]
    assert len(listed) == len(test_items)
    for item in test_items:
        for label in item["labels"]:
            assert (weak / "separated" / item["id"] / f"{label}.wav").exists()
    # 6: scores
    summary = json.loads((weak / "scores" / "summary.json").read_text())
    rows = (weak / "scores" / "per_item.csv").read_text().splitlines()
    assert summary["items"] == {"listed": len(test_items), "scored": len(test_items),
                                "skipped": 0, "without_references": 0}
    assert len(rows) - 1 == summary["rows"] == sum(len(it["labels"]) for it in test_items)
    # 6: the reference-free proxy, and the model folder whose card holds these scores
    proxy = json.loads((weak / "scores_reference_free" / "summary.json").read_text())
    assert proxy["rows"] == summary["rows"] and "clap_gain" in proxy["metrics"]
    card = (weak / "model_folder" / "README.md").read_text()
    assert f"| sdri | {round(summary['metrics']['sdri']['mean'], 3)} |" in card
    from bisep.inference import Separator
    assert Separator.from_pretrained(weak / "model_folder").sample_rate == 16000
    # 7: the results page
    results = (exp / "RESULTS.md").read_text()
    assert "SDRi" in results and "weak" in results
    assert "Reference-free score beside SDR" in results and "rho(gain, SDRi)" in results
    assert (exp / "RESULTS.png").stat().st_size > 10_000
    assert "SDRi" in out.stdout  # the table is printed


def test_stage_range_reruns_only_those_stages(recipe_run):
    root, _ = recipe_run
    exp = root / "exp"
    before = {p: p.stat().st_mtime_ns for p in
              (root / "data" / "train.jsonl", exp / "mini_clap" / "mini_clap.pth",
               exp / "weak" / "model.pth")}
    (exp / "RESULTS.md").unlink()
    out = run_recipe(root, "--stage", 6, "--stop_stage", 7)
    assert "Stage 6" in out.stdout and "Stage 5" not in out.stdout
    assert (exp / "RESULTS.md").exists()
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_nj_2_gives_the_scores_of_nj_1(recipe_run):
    # Stages 5-6 again on the trained model with --nj 2: the test list and the scoring list
    # are each split into two jobs (utils/run_jobs.sh), and the merged results match the
    # one-job run of the fixture.
    import shutil

    from bisep.audio import read

    root, _ = recipe_run
    one, two = root / "exp" / "weak", root / "exp_nj2" / "weak"
    two.mkdir(parents=True)
    shutil.copy(one / "model.pth", two / "model.pth")
    out = run_recipe(root, "--stage", 5, "--stop_stage", 6, "--nj", 2,
                     "--exp_dir", root / "exp_nj2")
    assert "jobs 1-2 finished" in out.stdout
    for n in (1, 2):
        assert "separated" in (two / "logs" / f"separate.{n}.log").read_text()
        assert "scored" in (two / "logs" / f"score.{n}.log").read_text()
    for name in ("per_item.csv", "summary.json"):
        assert (two / "scores" / name).read_bytes() == (one / "scores" / name).read_bytes(), name

    def listed(folder):
        rows = [json.loads(line) for line in
                (folder / "separated" / "items.jsonl").read_text().splitlines()]
        return [(row["id"], (folder / "separated" / row["mixture"]).resolve(),
                 {k: (folder / "separated" / v).resolve() for k, v in row["sources"].items()},
                 {k: folder / "separated" / v for k, v in row["estimates"].items()})
                for row in rows]

    items_one, items_two = listed(one), listed(two)
    assert [row[:3] for row in items_one] == [row[:3] for row in items_two]
    assert any("split2/2" in str(path) for row in items_two for path in row[3].values())
    for row_one, row_two in zip(items_one, items_two):
        for label, path in row_one[3].items():
            assert (read(path)[0] == read(row_two[3][label])[0]).all()
    for stage in (5, 6):
        assert f"Stage {stage}" in (two / "logs" / f"stage{stage}.log").read_text()


def test_clap_margin_probe_reads_the_recipe_outputs(recipe_run, tmp_path):
    # local/clap_margin.py on the real stage 3-6 outputs: one row per kind of audio, the
    # judge's rank correlation with SDR, and the figures recorded in an eval.json.
    import csv

    root, _ = recipe_run
    script = RECIPE / "local" / "clap_margin.py"
    record = tmp_path / "eval.json"
    cmd = [sys.executable, str(script), "--exp_dir", str(root / "exp"),
           "--tags", "weak", "--items", "3", "--write_eval", str(record)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split("|")[1].strip() for line in out.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| audio")]
    assert rows == ["reference stems", "mixture", "weak estimates"]
    mixture = next(line for line in out.stdout.splitlines() if line.startswith("| mixture"))
    assert mixture.split("|")[2].strip() == "0.000"  # both phrases score the same audio
    # The SDR column is the mean over the judged outputs (the first 3 items' sources).
    items = [json.loads(line)["id"] for line in
             (root / "exp" / "weak" / "separated" / "items.jsonl").read_text().splitlines()][:3]
    with open(root / "exp" / "weak" / "scores" / "per_item.csv") as handle:
        sdrs = [float(r["sdr"]) for r in csv.DictReader(handle) if r["item"] in items]
    assert f"| {sum(sdrs) / len(sdrs):.2f} |" in out.stdout
    assert f"over all {len(sdrs)} outputs" in out.stdout
    found = json.loads(record.read_text())["separated_outputs"]["separated"]
    assert found["outputs"] == len(sdrs) and found["runs"]["weak"]["outputs"] == len(sdrs)
    missing = subprocess.run([*cmd[:3], str(tmp_path), "--tags", "weak"], capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 1
    assert f"{tmp_path}/mini_clap/mini_clap.pth is missing" in missing.stderr
    assert "stages 3-6" in missing.stderr


def test_pseudo_stems_train_a_student_without_real_stems(recipe_run, tmp_path):
    # local/pseudo_stems.py on the real recipe outputs: the weak model as teacher, half of
    # the training clips kept by the judge, then stages 2 and 4 train a supervised student
    # on the teacher's outputs.
    root, _ = recipe_run
    script = [sys.executable, str(RECIPE / "local" / "pseudo_stems.py")]
    clap = root / "exp" / "mini_clap" / "mini_clap.pth"
    out = tmp_path / "data"
    proc = subprocess.run([*script, "--teacher", root / "exp" / "weak", "--data_dir",
                           root / "data", "--out_dir", out, "--keep", "0.5",
                           "--clap_checkpoint", clap], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    valid = [json.loads(line) for line in (out / "valid.jsonl").read_text().splitlines()]
    originals = (root / "data" / "train.jsonl").read_text().splitlines()
    margins = [json.loads(line) for line in (out / "margins.jsonl").read_text().splitlines()]
    assert len(margins) == len(originals) and len(valid) == len(
        (root / "data" / "valid.jsonl").read_text().splitlines())
    # Every stem is the teacher's output for that clip and label, never a real stem.
    for split, items in (("train", train), ("valid", valid)):
        for item in items:
            assert set(item["stems"]) == set(item["labels"])
            for label, path in item["stems"].items():
                assert path == f"sep_{split}/{item['id']}/{label}.wav"
                assert (out / path).is_file()
            assert (out / item["audio"]).resolve() == (root / "data" / "wav" / split /
                                                       f"{item['id']}.wav").resolve()
    # The kept clips are those whose worst output the judge rates highest.
    worst = {m["id"]: min(m["margins"].values()) for m in margins if m["margins"]}
    kept = {item["id"] for item in train}
    assert 0 < len(kept & set(worst)) < len(worst)
    assert min(worst[i] for i in kept & set(worst)) >= max(worst[i] for i in set(worst) - kept)
    assert (out / "test.jsonl").is_file() and (out / "meta.json").is_file()
    # The student: every kept clip supervised by its pseudo-stems (stage 2), a few steps of
    # the supervised mode on them (stage 4).
    student = run_recipe(tmp_path, "--stage", "2", "--stop_stage", "4", "--supervised_fraction",
                         "1.0", "--train_configs", TINY / "train_sup.yaml",
                         "--clap_checkpoint", clap)
    assert f"{len(kept)} supervised clips" in (tmp_path / "exp" / "logs" / "stage2.log").read_text()
    assert (tmp_path / "exp" / "sup" / "model.pth").is_file(), student.stdout[-2000:]
    # Refused before any work, naming the option.
    for bad, option in ((["--keep", "0"], "--keep"), (["--out_dir", root / "data"], "--out_dir"),
                        (["--teacher", tmp_path], "--teacher")):
        args = {"--teacher": root / "exp" / "weak", "--out_dir": tmp_path / "other",
                "--keep": "1"}
        args.update(dict(zip(bad[::2], bad[1::2])))
        refused = subprocess.run([*script, "--data_dir", root / "data",
                                  *[str(x) for pair in args.items() for x in pair]],
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and option in refused.stderr, refused.stderr
    assert not (tmp_path / "other").exists()
