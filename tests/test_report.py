"""`bisep report`: RESULTS.md and RESULTS.png from experiments scored by a real `bisep score`."""
import contextlib
import io
import json

import numpy as np
import pytest
import soundfile as sf

from bisep.cli.main import main
from bisep.report import find_experiments, mode_from_tag, ratio_table

RATE = 8000
#: tag -> (mode written in config.yaml or None, noise level of its estimates)
ARMS = {"unsup": (None, 0.6), "train_weak_x": ("weak", 0.25), "sup": ("supervised", 0.2),
        "semi": ("semi", 0.15)}


def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([*map(str, args)])
    return rc, out.getvalue(), err.getvalue()


def make_data(root):
    """data/test.jsonl with two 2-source items, and data/meta.json."""
    rng = np.random.default_rng(0)
    lines = []
    for n, labels in enumerate([["flute", "violin"], ["cello", "flute"]]):
        stems = {}
        t = np.arange(RATE) / RATE
        for k, label in enumerate(labels):
            stems[label] = f"wav/test_{n}/{label}.wav"
            (root / "wav" / f"test_{n}").mkdir(parents=True, exist_ok=True)
            wave = np.sin(2 * np.pi * 300 * (k + 1) * (n + 1) * t) * (0.3 + 0.1 * rng.random())
            sf.write(root / stems[label], wave.astype(np.float32), RATE, subtype="FLOAT")
        mix = sum(sf.read(root / p, dtype="float32")[0] for p in stems.values())
        sf.write(root / "wav" / f"test_{n}.wav", mix, RATE, subtype="FLOAT")
        lines.append({"id": f"test_{n}", "audio": f"wav/test_{n}.wav", "labels": labels,
                      "duration": 1.0, "stems": stems})
    (root / "test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (root / "meta.json").write_text(json.dumps({"sample_rate": RATE, "seed": 3,
                                                "counts": {"test": 2}, "nested": {"a": [1]}}))
    return root / "test.jsonl", lines


def make_experiment(exp_dir, tag, mode, noise, manifest, lines, curves=True):
    """Estimates = reference + `noise` x the other source (leakage), scored by `bisep score`."""
    path = exp_dir / tag
    out = path / "separated"
    items = []
    for entry in lines:
        refs = {k: sf.read(manifest.parent / v, dtype="float32")[0]
                for k, v in entry["stems"].items()}
        estimates = {}
        for label, ref in refs.items():
            other = sum(r for k, r in refs.items() if k != label)
            estimates[label] = f"{entry['id']}/{label}.wav"
            (out / entry["id"]).mkdir(parents=True, exist_ok=True)
            sf.write(out / estimates[label], ref + noise * other, RATE, subtype="FLOAT")
        items.append({"id": entry["id"], "mixture": f"../../../data/{entry['audio']}",
                      "sources": {k: f"../../../data/{v}" for k, v in entry["stems"].items()},
                      "estimates": estimates})
    (out / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    (out / "separation.json").write_text(json.dumps({"manifest": str(manifest.resolve())}))
    if mode:
        (path / "config.yaml").write_text(f"mode: {mode}\nseparator: cond_unet\n")
    if curves:
        (path / "logs").mkdir(parents=True)
        rows = ["epoch,step,train_loss,val_loss,train/cnt,train/crl,val_si_sdr"]
        rows += [f"0,{s},{2.0 / s:.3f},{'' if s % 2 else 1.5 / s},{1.0 / s:.3f},{0.5 / s:.3f},"
                 f"{'' if s % 2 else s}" for s in range(1, 9)]
        (path / "logs" / "metrics.csv").write_text("\n".join(rows) + "\n")
    rc, _, err = cli("score", "--list", out / "items.jsonl", "--out-dir", path / "scores")
    assert rc == 0, err


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    manifest, lines = make_data(root / "data")
    for tag, (mode, noise) in ARMS.items():
        make_experiment(root / "exp", tag, mode, noise, manifest, lines, curves=tag != "sup")
    (root / "exp" / "mini_clap").mkdir()  # not an experiment: no scores
    return root / "exp"


def test_report_tables_and_figure(exp_dir):
    rc, out, err = cli("report", "--exp-dir", exp_dir)
    assert rc == 0, err
    text = (exp_dir / "RESULTS.md").read_text()
    summaries = {tag: json.loads((exp_dir / tag / "scores" / "summary.json").read_text())
                 for tag in ARMS}
    sdr = {tag: s["metrics"]["sdr"]["mean"] for tag, s in summaries.items()}
    assert sdr["semi"] > sdr["sup"] > sdr["train_weak_x"] > sdr["unsup"] > 0
    # Summary rows in mode order, modes from config.yaml or from the tag.
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows]
    start = names.index("mixture (no separation)")
    assert names[start:start + 5] == ["mixture (no separation)", "unsup", "train_weak_x", "sup",
                                      "semi"]
    weak_row = rows[start + 2].split("|")
    # The config records no trainer.monitor here: the selection rule shows as unknown.
    assert weak_row[2].strip() == "weak" and weak_row[3].strip() == "?"
    assert weak_row[4].strip() == "2" and weak_row[5].strip() == f"{sdr['train_weak_x']:.2f}"
    assert rows[start + 1].split("|")[2].strip() == "unsupervised (from tag)"
    mix_sdr = summaries["unsup"]["metrics"]["sdr_mix"]["mean"]
    assert rows[start].split("|")[5].strip() == f"{mix_sdr:.2f}"
    # Ratios beside the paper's.
    assert (f"| weak / unsupervised | 1.71 (+71%) | {sdr['train_weak_x'] / sdr['unsup']:.3f} |"
            in text)
    assert f"| weak / supervised | 0.975 (97.5%) | {sdr['train_weak_x'] / sdr['sup']:.3f} |" in text
    assert f"| semi / supervised | 1.17 (+17%) | {sdr['semi'] / sdr['sup']:.3f} |" in text
    # Per instrument, with the data it was tested on.
    assert "## Per instrument: semi, mode semi" in text
    assert "## Per instrument: unsup, mode unsupervised (from tag)" in text
    flute = summaries["semi"]["by_source"]["flute"]
    assert f"| flute | 2 | {flute['sdr']['mean']:.2f} | {flute['sir']['mean']:.2f} |" in text
    assert "`../data/test.jsonl`: 2 of 2 items scored (4 item-source pairs, 3 instruments)" in text
    assert "    - seed: 3" in text and "    - counts: test 2" in text and "nested" not in text
    assert "![results](RESULTS.png)" in text
    assert "| weak / unsupervised |" in out and f"wrote {exp_dir / 'RESULTS.png'}" in out
    png = (exp_dir / "RESULTS.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_report_tags_missing_modes_and_errors(exp_dir, tmp_path):
    rc, out, err = cli("report", "--exp-dir", exp_dir, "--tags", "sup", "unsup", "-o",
                       tmp_path / "r.md", "--no-figure")
    assert rc == 0, err
    text = (tmp_path / "r.md").read_text()
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:4] == ["mixture (no separation)", "sup", "unsup"]  # the --tags order
    assert "| weak / unsupervised | 1.71 (+71%) | n/a | needs experiments in modes weak and " \
           "unsupervised |" in text
    assert "![results]" not in text and not (tmp_path / "r.png").exists()
    rc, _, err = cli("report", "--exp-dir", exp_dir, "--tags", "mini_clap")
    assert rc == 2 and "mini_clap/scores/summary.json: no such file" in err
    assert "Run recipe stage 6" in err
    rc, _, err = cli("report", "--exp-dir", tmp_path / "nothing")
    assert rc == 2 and "no such folder" in err
    rc, _, err = cli("report", "--exp-dir", exp_dir / "mini_clap")
    assert rc == 2 and "no experiment has scores" in err and "stages 4-6" in err


def test_ratio_needs_positive_denominator(exp_dir):
    experiments = {e.tag: e for e in find_experiments(exp_dir)}
    experiments["unsup"].summary["metrics"]["sdr"]["mean"] = -1.5
    table = "\n".join(ratio_table(list(experiments.values())))
    assert "| weak / unsupervised | 1.71 (+71%) | n/a |" in table
    assert "needs a positive, finite denominator" in table


def test_mode_from_tag():
    assert [mode_from_tag(t) for t in ("weak", "unsup_small", "semi_sup", "sup-2", "baseline",
                                       "supervised", "unsupervised")] == [
        "weak", "unsupervised", "semi", "supervised", None, "supervised", "unsupervised"]


@pytest.fixture(scope="module")
def seeds_dir(tmp_path_factory):
    """Arms run with two seeds each; supervised at two shares of stems, semi at one."""
    root = tmp_path_factory.mktemp("seeds")
    manifest, lines = make_data(root / "data")
    arms = {  # tag: (mode, loss name, dump folder, share of stems, noise per seed)
        "unsup": ("unsupervised", "mix_separate", "dump", 0.0, (0.6, 0.5)),
        "weak": ("weak", "clap_contrastive", "dump", 0.0, (0.3, 0.35)),
        "sup": ("supervised", "neg_sdr", "dump", 1.0, (0.1, 0.12)),
        "sup_f05": ("supervised", "neg_sdr", "dump_f05", 0.05, (0.4, 0.45)),
        "semi": ("semi", "neg_sdr", "dump", 0.05, (0.2, 0.25)),
    }
    for tag, (mode, loss, dump, share, noises) in arms.items():
        for seed, noise in zip((1, 2), noises):
            name = tag if seed == 1 else f"{tag}_s{seed}"
            make_experiment(root / "exp", name, None, noise, manifest, lines, curves=False)
            (root / "exp" / name / "config.yaml").write_text(
                f"mode: {mode}\nseed: {seed}\ncriterions: [{{name: {loss}}}]\n")
            (root / "exp" / name / "data.json").write_text(json.dumps(
                {"data_dir": "/d/data", "dump_dir": f"/d/{dump}", "stems_fraction": share}))
    return root / "exp"


def test_report_over_seeds_and_shares_of_stems(seeds_dir):
    rc, out, err = cli("report", "--exp-dir", seeds_dir, "--figure-items", "0")
    assert rc == 0, err
    text = (seeds_dir / "RESULTS.md").read_text()
    sdr = {p.name: json.loads((p / "scores" / "summary.json").read_text())["metrics"]["sdr"]["mean"]
           for p in seeds_dir.iterdir() if (p / "scores").is_dir()}

    def mean_sd(tag):
        a, b = sdr[tag], sdr[f"{tag}_s2"]
        return (a + b) / 2, abs(a - b) / 2 ** 0.5

    assert "## Over seeds (mean ± standard deviation)" in text
    for tag, mode, share in [("unsup", "unsupervised", "0%"), ("sup_f05", "supervised", "5%"),
                             ("semi", "semi", "5%")]:
        mean, sd = mean_sd(tag)
        assert f"| {tag} | {mode} | {share} | 1, 2 | {mean:.2f} ± {sd:.2f} |" in text
    # Ratios of the arm means, with the per-seed range; each supervised arm is a denominator.
    weak, unsup = mean_sd("weak")[0], mean_sd("unsup")[0]
    per_seed = sorted([sdr["weak"] / sdr["unsup"], sdr["weak_s2"] / sdr["unsup_s2"]])
    assert (f"| weak / unsupervised | 1.71 (+71%) | {weak / unsup:.3f} | {per_seed[0]:.3f} .. "
            f"{per_seed[1]:.3f} | weak / unsup (0% of stems) |") in text
    assert "| semi / supervised | 1.17 (+17%) | " in text
    assert "semi / sup_f05 (5% of stems) |" in text and "semi / sup (100% of stems) |" in text
    # SDR against the share of stems: a table and a figure.
    assert "## SDR against the share of single-source data" in text
    for tag, mode, share in [("sup_f05", "supervised", "5%"), ("sup", "supervised", "100%"),
                             ("semi", "semi", "5%")]:
        assert f"| {mode} | {tag} | {share} | 2 | {mean_sd(tag)[0]:.2f} ±" in text
    png = (seeds_dir / "RESULTS_fraction.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![SDR against the share of stems](RESULTS_fraction.png)" in text
    assert "weak / unsupervised | 1.71 (+71%) | " in out  # the headline repeats the seed tables


def test_one_seed_runs_get_no_seed_tables(exp_dir):
    rc, _, err = cli("report", "--exp-dir", exp_dir, "--no-figure")
    assert rc == 0, err
    text = (exp_dir / "RESULTS.md").read_text()
    assert "Over seeds" not in text and "share of single-source data" not in text


def test_corrupt_records_name_the_file(seeds_dir, tmp_path):
    import shutil

    copy = tmp_path / "exp"
    shutil.copytree(seeds_dir / "weak", copy / "weak")
    (copy / "weak" / "data.json").write_text('{"data_dir": ')
    rc, _, err = cli("report", "--exp-dir", copy, "--no-figure")
    assert rc == 2 and "weak/data.json: not valid JSON" in err and "re-run training" in err
    (copy / "weak" / "data.json").unlink()
    (copy / "weak" / "config.yaml").write_text("mode: [weak\n")
    rc, _, err = cli("report", "--exp-dir", copy, "--no-figure")
    assert rc == 2 and "weak/config.yaml: not valid YAML" in err


def test_rows_name_the_checkpoint_selection_and_audio_queries(tmp_path):
    from bisep.report import Experiment
    from bisep.report.tables import mode_text

    def exp(config):
        return Experiment("t", tmp_path, "unsupervised", "config.yaml", {}, None, config)

    clipsep = exp({"trainer": {"monitor": "val_si_sdr"}, "data": {"query_source": "audio"}})
    assert clipsep.selection == "val_si_sdr (stems)"
    assert mode_text(clipsep) == "unsupervised, audio queries"
    plain = exp({"trainer": {"monitor": "val_loss"}, "data": {"query_source": "text"}})
    assert plain.selection == "val_loss" and mode_text(plain) == "unsupervised"


def test_claims_file_replaces_the_papers_ratios(exp_dir, tmp_path):
    claims = tmp_path / "claims.yaml"
    claims.write_text("claims:\n  - {numerator: semi, denominator: unsupervised, "
                      "paper: '2.0 (other paper)'}\n")
    rc, out, err = cli("report", "--exp-dir", exp_dir, "--no-figure", "-o", tmp_path / "r.md",
                       "--claims", claims)
    assert rc == 0, err
    text = (tmp_path / "r.md").read_text()
    assert "| semi / unsupervised | 2.0 (other paper) |" in text
    assert "1.71 (+71%)" not in text and "semi / unsupervised" in out
    claims.write_text("claims:\n  - {numerator: weakly, denominator: unsupervised, paper: x}\n")
    rc, _, err = cli("report", "--exp-dir", exp_dir, "--no-figure", "--claims", claims)
    assert rc == 2 and "claims.yaml: claims[0]" in err and "numerator 'weakly'" in err
    rc, _, err = cli("report", "--exp-dir", exp_dir, "--claims", tmp_path / "none.yaml")
    assert rc == 2 and "none.yaml" in err and "--claims" in err


def test_spectrograms_show_items_with_references_only(tmp_path):
    from bisep.report import find_experiments
    from bisep.report.figures import _spectrogram_rows

    manifest, lines = make_data(tmp_path / "data")
    make_experiment(tmp_path / "exp", "unsup", None, 0.6, manifest, lines, curves=False)
    items = tmp_path / "exp" / "unsup" / "separated" / "items.jsonl"
    entries = [json.loads(line) for line in items.read_text().splitlines()]
    del entries[0]["sources"]  # a recording without stems, listed first
    items.write_text("".join(json.dumps(x) + "\n" for x in entries))
    rows = _spectrogram_rows(find_experiments(tmp_path / "exp"), n_items=1)
    assert [title for title, _ in rows] == ["test_1: cello", "test_1: flute"]
