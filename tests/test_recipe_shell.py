"""The recipe shell (recipes/bisep.sh through egs/synth_music/bimodal/run.sh), run for real
in subprocesses: options, --help, bad options, missing prerequisites, the command of each
stage and the resume scripts. A fake python records the `-m bisep` calls, so nothing is
trained here."""
import os
import re
import subprocess

import pytest

from conftest import REPO, assert_mentions

RECIPE = REPO / "egs" / "synth_music" / "bimodal"
SHARED = REPO / "recipes" / "bisep.sh"


def run_recipe(*args, script=RECIPE / "run.sh", cwd=None):
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env={**os.environ, "LC_ALL": "C"})


@pytest.fixture
def fake(tmp_path):
    """A fake python that appends each call's arguments to calls.txt (one per line, then
    a blank line), and folders for the recipe's outputs.

    Returns a dict: python, calls() -> list of argument lists, data, dump, exp, conf.
    """
    log = tmp_path / "calls.txt"
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" '' >> {log}\n")
    python.chmod(0o755)
    conf = tmp_path / "conf"
    conf.mkdir()
    for name in ("data.yaml", "mini_clap.yaml", "train_weak.yaml", "my_unsup.yml"):
        (conf / name).write_text("mode: weak\n")

    def calls():
        if not log.exists():
            return []
        return [block.split("\n") for block in log.read_text().split("\n\n") if block]

    return {"python": python, "calls": calls, "data": tmp_path / "data",
            "dump": tmp_path / "dump", "exp": tmp_path / "exp", "conf": conf}


def options(fake, *extra):
    return ["--python", fake["python"], "--data_dir", fake["data"], "--dump_dir", fake["dump"],
            "--exp_dir", fake["exp"], "--data_config", fake["conf"] / "data.yaml",
            "--clap_config", fake["conf"] / "mini_clap.yaml", *extra]


def touch(*paths):
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")


def declared_options():
    """``{name: default as written}`` of the option block of recipes/bisep.sh."""
    text = SHARED.read_text()
    block = text[text.index("# ----"):text.index("help_message=")]
    return dict(re.findall(r"^([a-z_]+)=(\S*)", block, flags=re.M))


def test_recipe_layout():
    assert (RECIPE / "utils").is_symlink()
    assert os.readlink(RECIPE / "utils") == "../../../recipes/utils"
    for script in (RECIPE / "run.sh", RECIPE / "local" / "data.sh", SHARED,
                   REPO / "recipes" / "utils" / "parse_options.sh"):
        assert os.access(script, os.X_OK), script
    # What the stages and local/full.sh write (data*/, dump*/, exp*/) is never committed.
    for folder in ("data", "dump", "exp", "data_train4", "dump_sup05", "exp_ood"):
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index",
                                  str(RECIPE / folder / "x.wav")], cwd=REPO)
        assert ignored.returncode == 0, f"{folder}/ is not git-ignored"
    kept = subprocess.run(["git", "check-ignore", "-q", "--no-index",
                           str(RECIPE / "conf" / "data.yaml")], cwd=REPO)
    assert kept.returncode == 1


def test_help_lists_every_option_with_its_default():
    out = run_recipe("--help")
    assert out.returncode == 0, out.stderr
    declared = declared_options()
    assert {"stage", "stop_stage", "python", "data_config", "clap_config", "clap_checkpoint",
            "train_configs", "data_dir", "dump_dir", "exp_dir"} <= set(declared)
    for name, default in declared.items():
        entry = re.search(rf"^  --{name} +(.*?)(?=^  --|\Z)", out.stdout, flags=re.M | re.S)
        assert entry, f"--{name} is not in --help"
        text = " ".join(entry.group(1).split())
        assert "(default: " in text, f"--{name} has no default in --help"
        if "$" not in default and name != "python":  # python's is the venv's, below
            value = re.escape(default.strip('"'))
            form = rf'"{value}"' if not value else rf'(?:{value}|"{value}")'
            assert re.search(rf"\(default: {form}[),]", text), f"--{name}: default {default}"
    assert f"(default: {REPO / '.venv' / 'bin' / 'python'})" in out.stdout  # the repo's venv


@pytest.mark.parametrize("args, tokens", [
    (["--no_such_option", "1"], ["unknown option", "--no_such_option"]),
    (["--PATH", "/x"], ["unknown option", "--PATH"]),
    (["--_repo_root", "/x"], ["unknown option", "--_repo_root"]),
    (["--stage"], ["--stage", "needs a value"]),
    (["--stage", "two"], ["--stage", "--stop_stage", "stage numbers", "'two'"]),
    (["leftover"], ["unexpected argument", "'leftover'"]),
    (["--python", "/no/such/python"], ["--python /no/such/python", "not found",
                                       "tools/install.sh"]),
])
def test_bad_options(args, tokens):
    out = run_recipe(*args)
    assert out.returncode == 1
    assert_mentions(out.stderr, *tokens)
    assert "Stage" not in out.stdout  # stopped before any stage


def test_option_spellings(fake):
    # --name=value and dashes work like --name value; the last one given wins.
    out = run_recipe(*options(fake), "--stage=5", "--stop-stage", "5", "--train-configs",
                     fake["conf"] / "train_weak.yaml", "--test_set", "other", "--test-set", "eval")
    assert out.returncode == 1
    assert_mentions(out.stderr, "stage 5", f"{fake['data']}/eval.jsonl")


@pytest.mark.parametrize("stage, present, missing, earlier", [
    (2, [], "data/train.jsonl", 1),
    (3, [], "data/clap_pool.jsonl", 1),
    (4, ["data/train.jsonl", "data/valid.jsonl"], "dump/mom_train.jsonl", 2),
    (4, ["data/train.jsonl", "data/valid.jsonl", "dump/mom_train.jsonl", "dump/mom_valid.jsonl"],
     "exp/mini_clap/mini_clap.pth", 3),
    (5, ["data/test.jsonl"], "exp/weak/model.pth", 4),
    (6, [], "exp/weak/separated/items.jsonl", 5),
    (7, [], "exp/weak/scores/summary.json", 6),
])
def test_missing_prerequisite_names_stage_file_and_fix(fake, stage, present, missing, earlier):
    root = fake["data"].parent
    touch(*(root / path for path in present))
    out = run_recipe(*options(fake, "--train_configs", fake["conf"] / "train_weak.yaml",
                              "--stage", stage, "--stop_stage", stage))
    assert out.returncode == 1, out.stdout
    assert_mentions(out.stderr, "ERROR", f"stage {stage} needs {root / missing}",
                    "does not exist", f"Run stage {earlier} first", f"--stage {earlier}")
    assert fake["calls"]() == []


def test_stage_3_on_data_without_mini_clap_clips_asks_for_a_checkpoint(fake):
    # Stage 1 has run (train.jsonl) but wrote no clap_pool.jsonl, as for MUSIC, VGGSound and
    # AudioCaps: running stage 1 again cannot help, a trained query encoder can.
    touch(fake["data"] / "train.jsonl", fake["data"] / "valid.jsonl")
    out = run_recipe(*options(fake, "--stage", 3, "--stop_stage", 3))
    assert out.returncode == 1, out.stdout
    message = " ".join(out.stderr.split())
    assert_mentions(message, "ERROR", "stage 3", "mini_clap", f"{fake['data']}/clap_pool.jsonl",
                    "does not prepare", "--clap_checkpoint", "music_audioset_epoch_15_esc_90.14.pt")
    assert "Run stage 1 first" not in message
    assert fake["calls"]() == []


def test_missing_option_files(fake):
    out = run_recipe(*options(fake, "--data_config", fake["conf"] / "nope.yaml",
                              "--stop_stage", 1))
    assert out.returncode == 1
    assert_mentions(out.stderr, "stage 1", f"--data_config {fake['conf']}/nope.yaml",
                    "no such file")
    touch(*(fake["data"] / f for f in ("train.jsonl", "valid.jsonl")),
          *(fake["dump"] / f for f in ("mom_train.jsonl", "mom_valid.jsonl")))
    out = run_recipe(*options(fake, "--stage", 4, "--stop_stage", 4, "--train_configs", ""))
    assert out.returncode == 1 and "stage 4 needs --train_configs" in out.stderr
    out = run_recipe(*options(fake, "--stage", 4, "--train_configs", "conf/none.yaml"))
    assert out.returncode == 1
    assert_mentions(out.stderr, "--train_configs conf/none.yaml", "no such file", RECIPE)
    touch(fake["conf"] / "weak.yaml")
    out = run_recipe(*options(fake, "--stage", 4, "--train_configs",
                              f"{fake['conf']}/train_weak.yaml {fake['conf']}/weak.yaml"))
    assert out.returncode == 1
    assert_mentions(out.stderr, "--train_configs", "tag 'weak'", "rename")
    out = run_recipe(*options(fake, "--stage", 4, "--train_configs",
                              fake["conf"] / "train_weak.yaml", "--clap_checkpoint",
                              fake["exp"] / "mine.pth"))
    assert out.returncode == 1
    assert_mentions(out.stderr, "stage 4", f"--clap_checkpoint {fake['exp']}/mine.pth",
                    "no such file")
    assert fake["calls"]() == []


def test_stage_commands_and_resume_scripts(fake):
    data, dump, exp, conf = fake["data"], fake["dump"], fake["exp"], fake["conf"]
    touch(*(data / f"{n}.jsonl" for n in ("train", "valid", "test", "clap_pool", "clap_heldout")),
          dump / "mom_train.jsonl", dump / "mom_valid.jsonl", exp / "mini_clap" / "mini_clap.pth")
    for tag in ("weak_s2", "my_unsup_s2"):  # what stages 4-6 would have written
        touch(exp / tag / "model.pth", exp / tag / "separated" / "items.jsonl",
              exp / tag / "scores" / "summary.json")
    configs = f"{conf}/train_weak.yaml {conf}/my_unsup.yml"
    out = run_recipe(*options(fake, "--train_configs", configs, "--tag_suffix", "_s2",
                              "--train_args", "trainer.max_steps=2 seed=3",
                              "--separate_args", "--device cpu", "--mix_args", "--seed 7"))
    assert out.returncode == 0, out.stderr
    assert "Successfully finished" in out.stdout
    assert [line.split(") ", 1)[1] for line in out.stdout.splitlines()
            if "Stage" in line] == [
        f"Stage 1: data preparation: local/data.sh -> {data}",
        f"Stage 2: mixture-of-mixtures plans: {data} -> {dump}",
        f"Stage 3: mini_clap training: {data} -> {exp}/mini_clap",
        f"Stage 4: training weak_s2: {conf}/train_weak.yaml -> {exp}/weak_s2",
        f"Stage 4: training my_unsup_s2: {conf}/my_unsup.yml -> {exp}/my_unsup_s2",
        f"Stage 5: separating {data}/test.jsonl with weak_s2",
        f"Stage 5: separating {data}/test.jsonl with my_unsup_s2",
        "Stage 6: scoring weak_s2", "Stage 6: scoring my_unsup_s2",
        f"Stage 7: results: {exp}/RESULTS.md"]
    bisep = ["-m", "bisep"]
    ckpt = f"conditioner_conf.checkpoint={exp}/mini_clap/mini_clap.pth"
    assert fake["calls"]() == [
        [*bisep, "prepare", "synth_music", "--conf", f"{conf}/data.yaml", str(data)],
        [*bisep, "mix", "--data-dir", str(data), "--dump-dir", str(dump),
         "--supervised-fraction", "0.05", "--seed", "7"],
        [*bisep, "train-clap", "--data-dir", str(data), "--out-dir", f"{exp}/mini_clap",
         "--conf", f"{conf}/mini_clap.yaml"],
        [*bisep, "train", "--config", f"{conf}/train_weak.yaml", "--data-dir", str(data),
         "--dump-dir", str(dump), "--exp-dir", f"{exp}/weak_s2", ckpt, "trainer.max_steps=2",
         "seed=3"],
        [*bisep, "train", "--config", f"{conf}/my_unsup.yml", "--data-dir", str(data),
         "--dump-dir", str(dump), "--exp-dir", f"{exp}/my_unsup_s2", ckpt,
         "trainer.max_steps=2", "seed=3"],
        [*bisep, "separate", f"{exp}/weak_s2", "--list", f"{data}/test.jsonl", "-o",
         f"{exp}/weak_s2/separated", "--device", "cpu"],
        [*bisep, "separate", f"{exp}/my_unsup_s2", "--list", f"{data}/test.jsonl", "-o",
         f"{exp}/my_unsup_s2/separated", "--device", "cpu"],
        *score_calls(exp, "weak_s2"), *score_calls(exp, "my_unsup_s2"),
        [*bisep, "report", "--exp-dir", str(exp), "-o", f"{exp}/RESULTS.md"],
    ]
    # Each stage's output is also in its log.
    assert "Stage 4: training weak_s2" in (exp / "weak_s2" / "logs" / "stage4.log").read_text()
    assert "Stage 1: data preparation" in (exp / "logs" / "stage1.log").read_text()
    resumes = sorted(p.relative_to(exp).as_posix() for p in exp.rglob("resume_stage*.sh"))
    assert resumes == ["mini_clap/resume_stage3.sh", "my_unsup_s2/resume_stage4.sh",
                       "my_unsup_s2/resume_stage5.sh", "my_unsup_s2/resume_stage6.sh",
                       "resume_stage1.sh", "weak_s2/resume_stage4.sh", "weak_s2/resume_stage5.sh",
                       "weak_s2/resume_stage6.sh"]

    # A resume script replays the run (its options, then this experiment's config) from its
    # stage, from any folder; options given to it come last.
    before = len(fake["calls"]())
    out = run_recipe("--stop_stage", 4, script=exp / "weak_s2" / "resume_stage4.sh",
                     cwd=fake["data"].parent)
    assert out.returncode == 0, out.stderr
    assert fake["calls"]()[before:] == [
        [*bisep, "train", "--config", f"{conf}/train_weak.yaml", "--data-dir", str(data),
         "--dump-dir", str(dump), "--exp-dir", f"{exp}/weak_s2", ckpt, "trainer.max_steps=2",
         "seed=3"]]


def score_calls(exp, tag, nj=1, shards=1, extra=()):
    """Stage 6's calls: the list split into shards, one `bisep score` job each, the merge,
    then the reference-free proxy and the model folder."""
    split = f"{exp}/{tag}/scores/split{nj}"
    return [["-m", "bisep", "shards", "split", f"{exp}/{tag}/separated/items.jsonl", "--nj",
             str(nj), "--out-dir", split],
            *(["-m", "bisep", "score", "--list", f"{split}/items.{n}.jsonl", "--out-dir",
               f"{split}/{n}", *extra] for n in range(1, shards + 1)),
            ["-m", "bisep", "shards", "merge-scores", "--out-dir", f"{exp}/{tag}/scores",
             *(f"{split}/{n}" for n in range(1, shards + 1))],
            ["-m", "bisep", "score", "--reference-free", "--model", f"{exp}/{tag}", "--list",
             f"{exp}/{tag}/separated/items.jsonl", "--out-dir",
             f"{exp}/{tag}/scores_reference_free"],
            ["-m", "bisep", "export-model", f"{exp}/{tag}", f"{exp}/{tag}/model_folder",
             "--overwrite", "--skip-unportable"]]


def test_ngpu_num_nodes_nj_and_cmd(fake, tmp_path):
    data, dump, exp, conf = fake["data"], fake["dump"], fake["exp"], fake["conf"]
    touch(data / "train.jsonl", data / "valid.jsonl", dump / "mom_train.jsonl",
          dump / "mom_valid.jsonl", exp / "mini_clap" / "mini_clap.pth", exp / "weak" / "model.pth")
    # A test list of 5 items and the items.jsonl of 5 separated items: 3 jobs of 2, 2, 1.
    (data / "test.jsonl").write_text("".join(f'{{"id": "t{i}"}}\n' for i in range(5)))
    # A job backend that records how it was called, then runs the jobs like run_jobs.sh.
    backend = tmp_path / "bin" / "backend.sh"
    calls = tmp_path / "backend.txt"
    backend.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n"
                       f"exec {SHARED.parent / 'utils' / 'run_jobs.sh'} \"$@\"\n")
    backend.chmod(0o755)
    weak = conf / "train_weak.yaml"
    # Several nodes need a backend that spans them.
    out = run_recipe(*options(fake, "--stage", 4, "--stop_stage", 4, "--train_configs", weak,
                              "--ngpu", 4, "--num_nodes", 2))
    assert out.returncode == 1
    assert_mentions(out.stdout, "--num_nodes 2", "local backend", "--cmd utils/slurm_jobs.sh")
    assert fake["calls"]() == []
    out = run_recipe(*options(fake, "--stage", 4, "--stop_stage", 5, "--train_configs", weak,
                              "--ngpu", 4, "--nj", 3, "--gpu_inference", "true",
                              "--cmd", f"{backend} --max_jobs_run 2",
                              "--train_args", "trainer.devices=2"))
    assert out.returncode == 0, out.stdout + out.stderr
    bisep = ["-m", "bisep"]
    split = f"{exp}/weak/separated/split3"
    made = fake["calls"]()
    assert made[:2] == [
        [*bisep, "train", "--config", str(weak), "--data-dir", str(data), "--dump-dir", str(dump),
         "--exp-dir", f"{exp}/weak", f"conditioner_conf.checkpoint={exp}/mini_clap/mini_clap.pth",
         "trainer.accelerator=gpu", "trainer.devices=4", "trainer.strategy=ddp",
         "trainer.devices=2"],
        [*bisep, "shards", "split", f"{data}/test.jsonl", "--nj", "3", "--out-dir", split]]
    # The jobs run two at a time, so they may start in any order.
    assert sorted(made[2:5]) == [
        [*bisep, "separate", f"{exp}/weak", "--device", "cuda", "--list",
         f"{split}/test.{n}.jsonl", "-o", f"{split}/{n}", "--no-progress"] for n in (1, 2, 3)]
    assert made[5:] == [
        [*bisep, "shards", "merge-separated", "--manifest", f"{data}/test.jsonl", "--out-dir",
         f"{exp}/weak/separated", f"{split}/1", f"{split}/2", f"{split}/3"]]
    backend_calls = calls.read_text().splitlines()
    assert backend_calls[0].startswith(f"--max_jobs_run 2 --gpu 4 --num_nodes 1 "
                                       f"{exp}/weak/logs/train.log {fake['python']} -m bisep train")
    assert backend_calls[1].startswith(f"--max_jobs_run 2 --gpu 1 JOB=1:3 "
                                       f"{exp}/weak/logs/separate.JOB.log")
    for n in (1, 2, 3):
        assert f"--list {split}/test.{n}.jsonl" in (exp / "weak" / "logs" /
                                                      f"separate.{n}.log").read_text()
    stage5 = (exp / "weak" / "logs" / "stage5.log").read_text()
    assert "Stage 5: separating" in stage5 and "jobs 1-3 finished" in stage5

    # More jobs than items: one job per item.
    touch(exp / "weak" / "separated" / "items.jsonl")
    (exp / "weak" / "separated" / "items.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n')
    out = run_recipe(*options(fake, "--stage", 6, "--stop_stage", 6, "--train_configs", weak,
                              "--nj", 8, "--score_args", "--backend mir_eval"))
    assert out.returncode == 0, out.stdout + out.stderr
    expected = score_calls(exp, "weak", nj=8, shards=2, extra=["--backend", "mir_eval"])
    made = fake["calls"]()[-len(expected):]
    assert made[0] == expected[0] and made[3:] == expected[3:]
    assert sorted(made[1:3]) == expected[1:3]  # the two scoring jobs, in either order


@pytest.mark.parametrize("args, tokens", [
    (["--nj", "0"], ["--nj", "1 or more", "'0'"]),
    (["--ngpu", "two"], ["--ngpu", "0 for CPU", "'two'"]),
    (["--num_nodes", "2"], ["--num_nodes 2", "GPUs", "--ngpu"]),
    (["--cmd", "utils/nope.sh"], ["--cmd utils/nope.sh", "not found"]),
])
def test_bad_scaling_options(fake, args, tokens):
    out = run_recipe(*options(fake, *args))
    assert out.returncode == 1
    assert_mentions(out.stderr, *tokens)
    assert fake["calls"]() == []


def test_job_backends(tmp_path):
    run_jobs = SHARED.parent / "utils" / "run_jobs.sh"
    # At most --max_jobs_run at once; each job's JOB replaced; a failed job named.
    script = ("echo start >> {d}/events; sleep 0.3; echo JOB > {d}/out.JOB; "
              "echo end >> {d}/events; [ JOB != 3 ]").format(d=tmp_path)
    out = subprocess.run([run_jobs, "--max_jobs_run", "2", "JOB=1:4", tmp_path / "log/j.JOB.log",
                          "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "1 of 4 jobs failed" in out.stderr
    assert f"{tmp_path}/log/j.3.log" in out.stderr and "j.1.log" not in out.stderr
    assert [(tmp_path / f"out.{n}").read_text() for n in range(1, 5)] == [f"{n}\n" for n in range(1, 5)]
    running = peak = 0
    for event in (tmp_path / "events").read_text().split():
        running += 1 if event == "start" else -1
        peak = max(peak, running)
    assert peak == 2
    assert "# Ended (code 1)" in (tmp_path / "log" / "j.3.log").read_text()

    # The SLURM backend writes a batch script and submits it as an array with sbatch --wait;
    # a fake sbatch records the options and runs the array's tasks here.
    bin_dir = tmp_path / "slurm-bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/usr/bin/env bash\n"
        f"echo \"$@\" > {tmp_path}/sbatch.txt\n"
        "script=${@: -1}; array=; out=\n"
        "while [ $# -gt 1 ]; do case $1 in --array) array=${2%%%*};; --output) out=$2;; esac; shift; done\n"
        "status=0\n"
        "if [ -z \"$array\" ]; then bash $script > $out 2>&1 || status=1; exit $status; fi\n"
        "for ((i=${array%-*}; i<=${array#*-}; i++)); do\n"
        "  SLURM_ARRAY_TASK_ID=$i bash $script > ${out//%a/$i} 2>&1 || status=1\n"
        "done\nexit $status\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nexec \"$@\"\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    slurm = SHARED.parent / "utils" / "slurm_jobs.sh"
    out = subprocess.run([slurm, "--partition", "gpu", "--time", "1:00:00", "--max_jobs_run", "2",
                          "JOB=1:3", tmp_path / "slog/s.JOB.log", "sh", "-c", "echo task JOB"],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    sbatch = (tmp_path / "sbatch.txt").read_text()
    assert "--wait" in sbatch and "--array 1-3%2" in sbatch and "--partition gpu" in sbatch
    assert f"--output {tmp_path}/slog/s.%a.log" in sbatch and "--ntasks 1" in sbatch
    for n in (1, 2, 3):
        assert f"task {n}" in (tmp_path / "slog" / f"s.{n}.log").read_text()
    # A GPU job: G tasks per node under srun, as Lightning's SLURM environment expects.
    out = subprocess.run([slurm, "--gpu", "4", "--num_nodes", "2", tmp_path / "slog/train.log",
                          "sh", "-c", "exit 3"], capture_output=True, text=True, timeout=60,
                         env=env, cwd=tmp_path)
    assert out.returncode == 1 and "failed" in out.stderr
    sbatch = (tmp_path / "sbatch.txt").read_text()
    assert "--nodes 2" in sbatch and "--gres gpu:4 --ntasks-per-node 4" in sbatch
    assert "srun " in (tmp_path / "slog" / "q" / "train.sh").read_text()


def test_clap_checkpoint_skips_stage_3(fake):
    data, exp = fake["data"], fake["exp"]
    touch(data / "train.jsonl", data / "valid.jsonl", fake["dump"] / "mom_train.jsonl",
          fake["dump"] / "mom_valid.jsonl", exp / "given.pth")
    out = run_recipe(*options(fake, "--stage", 3, "--stop_stage", 4, "--clap_checkpoint",
                              exp / "given.pth", "--train_configs",
                              fake["conf"] / "train_weak.yaml"))
    assert out.returncode == 0, out.stderr
    assert f"Stage 3: skipped: --clap_checkpoint {exp}/given.pth is used" in out.stdout
    [call] = fake["calls"]()
    assert call[2] == "train" and f"conditioner_conf.checkpoint={exp}/given.pth" in call
