"""Expand conf/full.yaml into the run.sh command lines of local/full.sh, one per line.

Each line is ``KIND<TAB>COMMAND``: ``data`` (stage 1 of an extra data set), ``plan``
(stage 2 of an extra plan), ``clap`` (an extra query encoder, skipped once trained), ``run``
(stages 4-6 of one tag, with the tag as the second field) and ``eval`` (stages 5-6 of that
tag's model on an extra test set: the validation compositions or the out-of-domain test
set, with the set's exp folder and the tag as the second and third fields).
Errors name the file and the key to fix, and exit with status 2.
"""
import argparse
import shlex
import sys
from pathlib import Path

import yaml

RUN_KEYS = {"config", "plan", "suffix", "seeds", "clap"}
MIX_OPTIONS = {"supervised_fraction", "sup_mom_fraction", "num_parts", "num_train_mom", "seed"}


def fail(message: str) -> None:
    print(f"local/full_plan.py: {message}", file=sys.stderr)
    sys.exit(2)


def load(path: Path) -> dict:
    try:
        conf = yaml.safe_load(path.read_text())
    except OSError as exc:
        fail(f"{path}: cannot be read ({exc.strerror}); give the experiment list with --conf")
    except yaml.YAMLError as exc:
        fail(f"{path}: not valid YAML ({exc})")
    if not isinstance(conf, dict) or not isinstance(conf.get("runs"), list) or not conf["runs"]:
        fail(f"{path}: needs a non-empty 'runs' list (see conf/full.yaml)")
    seeds = conf.get("seeds", [1234])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
        fail(f"{path}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
    return conf


def tag_of(config: str, suffix: str) -> str:
    return Path(config).stem.removeprefix("train_") + suffix


def extra_test_sets(conf: dict, path: Path, data_sets: dict, exp_dir: str) -> list[tuple]:
    """The sets every model also separates and scores, each into its own exp folder, as
    ``(test_set, data folder or None for the run's own, exp folder)``.

    ``validation: {exp_dir}``: the validation compositions of the run's own data folder
    (``valid.jsonl``), which the screen decides on. ``out_of_domain: {data, exp_dir}``: the
    test compositions of an extra data set, rendered in another soundfont.
    """
    sets = []
    validation = conf.get("validation")
    if validation is not None:
        if not (isinstance(validation, dict) and validation.get("exp_dir")):
            fail(f"{path}: validation needs 'exp_dir', got {validation!r}")
        sets.append(("valid", None, validation["exp_dir"]))
    ood = conf.get("out_of_domain")
    if ood is not None:
        if not (isinstance(ood, dict) and ood.get("data") in data_sets and ood.get("exp_dir")):
            fail(f"{path}: out_of_domain needs 'data' (a key of 'data') and 'exp_dir', got "
                 f"{ood!r}")
        sets.append(("test", ood["data"], ood["exp_dir"]))
    exp_dirs = [exp_dir] + [exp for *_, exp in sets]
    if len(set(exp_dirs)) != len(exp_dirs):
        fail(f"{path}: validation and out_of_domain each need an exp_dir of their own, apart "
             f"from the runs' {exp_dir}; got {', '.join(exp for *_, exp in sets)}")
    return sets


def commands(conf: dict, path: Path, run_sh: str, threads: int, exp_dir: str,
             python: str = "python3") -> list[str]:
    data_sets = conf.get("data") or {}
    plans = conf.get("plans") or {}
    claps = conf.get("claps") or {}
    lines = []
    for folder, data_config in data_sets.items():
        if not Path(data_config).is_file():
            fail(f"{path}: data.{folder}: no such data config {data_config}")
        lines.append("data\t" + shlex.join([run_sh, "--stage", "1", "--stop_stage", "1",
                                            "--data_config", data_config, "--data_dir", folder]))
    for folder, options in plans.items():
        options = dict(options or {})
        data = options.pop("data", "data")
        if data != "data" and data not in data_sets:
            fail(f"{path}: plans.{folder}.data is '{data}', which is neither data nor a key of "
                 f"'data'")
        unknown = set(options) - MIX_OPTIONS
        if unknown:
            fail(f"{path}: plans.{folder}: unknown option(s) {', '.join(sorted(unknown))}; "
                 f"known: data, {', '.join(sorted(MIX_OPTIONS))}")
        fraction = options.pop("supervised_fraction", 0.05)
        mix_args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items())
        lines.append("plan\t" + shlex.join([run_sh, "--stage", "2", "--stop_stage", "2",
                                            "--data_dir", data, "--dump_dir", folder,
                                            "--supervised_fraction", str(fraction),
                                            "--mix_args", mix_args]))
    for name, clap_config in claps.items():
        if not Path(clap_config).is_file():
            fail(f"{path}: claps.{name}: no such train-clap config {clap_config}")
        out = f"{exp_dir}/{name}"
        lines.append("clap\t" + f"[ -f {shlex.quote(out)}/mini_clap.pth ] || " + shlex.join([
            python, "-m", "bisep", "train-clap", "--data-dir", "data", "--out-dir", out,
            "--conf", clap_config]))
    eval_sets = extra_test_sets(conf, path, data_sets, exp_dir)
    seen = set()
    for number, run in enumerate(conf["runs"], 1):
        where = f"{path}: runs[{number}]"
        if not isinstance(run, dict) or "config" not in run:
            fail(f"{where}: each run is a mapping with at least 'config', got {run!r}")
        unknown = set(run) - RUN_KEYS
        if unknown:
            fail(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: "
                 f"{', '.join(sorted(RUN_KEYS))}")
        if not Path(run["config"]).is_file():
            fail(f"{where}: no such training config {run['config']}")
        plan = run.get("plan", "dump")
        if plan != "dump" and plan not in plans:
            fail(f"{where}: plan '{plan}' is neither dump nor a key of 'plans'")
        data = (plans.get(plan) or {}).get("data", "data")
        clap = []
        if "clap" in run:
            if run["clap"] not in claps:
                fail(f"{where}: clap '{run['clap']}' is not a key of 'claps'")
            clap = ["--clap_checkpoint", f"{exp_dir}/{run['clap']}/mini_clap.pth"]
        seeds = run.get("seeds", conf.get("seeds", [1234]))
        for index, seed in enumerate(seeds):
            suffix = run.get("suffix", "") + ("" if index == 0 else f"_s{seed}")
            tag = tag_of(run["config"], suffix)
            if tag in seen:
                fail(f"{where}: tag '{tag}' is used twice; give the run a 'suffix'")
            seen.add(tag)
            lines.append(f"run\t{tag}\t" + shlex.join([
                run_sh, "--stage", "4", "--stop_stage", "6", "--data_dir", data,
                "--dump_dir", plan, "--exp_dir", exp_dir, "--train_configs", run["config"],
                "--tag_suffix", suffix, *clap,
                "--train_args", f"seed={seed} trainer.num_threads={threads}"]))
            for test_set, set_data, set_exp in eval_sets:
                lines.append(f"eval\t{set_exp}\t{tag}\t" + shlex.join([
                    run_sh, "--stage", "5", "--stop_stage", "6", "--data_dir", set_data or data,
                    "--test_set", test_set, "--exp_dir", set_exp, "--train_configs",
                    run["config"], "--tag_suffix", suffix, *clap]))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conf", type=Path, required=True)
    parser.add_argument("--run_sh", default="./run.sh")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--exp_dir", default="exp")
    parser.add_argument("--python", default="python3", help="runs bisep train-clap")
    args = parser.parse_args()
    print("\n".join(commands(load(args.conf), args.conf, args.run_sh, args.threads,
                             args.exp_dir, args.python)))


if __name__ == "__main__":
    main()
