"""``bisep score`` on real wav files: outputs, the jsonl form, and every bad input."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bisep.cli.main import main
from bisep.metrics import score_item
from bisep.metrics.files import ScoreInputError, items_from_dirs, items_from_list, load_item
from conftest import assert_mentions

BISEP = Path(sys.executable).parent / "bisep"
RATE = 16000
SOURCES = ("guitar", "violin")


def _source(rng, length):
    t = np.arange(length) / RATE
    f0 = rng.uniform(100, 400)
    tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 7))
    return 0.1 * tone + 0.005 * rng.standard_normal(length)


@pytest.fixture
def dataset(tmp_path):
    """3 items x 2 sources x 0.5 s: ref/<item>/<source>.wav, est/..., mix/<item>.wav."""
    rng = np.random.default_rng(0)
    length = RATE // 2
    for item in ("a", "b", "c"):
        refs = np.stack([_source(rng, length) for _ in SOURCES])
        ests = refs + 0.2 * refs[::-1] + 0.003 * rng.standard_normal(refs.shape)
        for folder, arrays in (("ref", refs), ("est", ests)):
            (tmp_path / folder / item).mkdir(parents=True)
            for name, x in zip(SOURCES, arrays):
                sf.write(tmp_path / folder / item / f"{name}.wav", x, RATE, subtype="FLOAT")
        (tmp_path / "mix").mkdir(exist_ok=True)
        sf.write(tmp_path / "mix" / f"{item}.wav", refs.sum(0), RATE, subtype="FLOAT")
    return tmp_path


def run_score(*args, cwd=None):
    """``bisep score`` through the installed console script, in a real subprocess."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([str(BISEP), "score", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def score_error(capsys, *args):
    """Run ``bisep score`` in-process, expect exit 2, return the error message."""
    assert main(["score", *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bisep score: error: ")
    return err


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write(path, signal, rate=RATE):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal, rate, subtype="FLOAT")


# -- through a subprocess ------------------------------------------------------------------

def test_score_folders_writes_rows_and_summary(dataset):
    out = dataset / "out"
    proc = run_score("--ref-dir", dataset / "ref", "--est-dir", dataset / "est",
                     "--mix-dir", dataset / "mix", "--out-dir", out)
    assert proc.returncode == 0, proc.stderr
    assert "scored 3 of 3 items (6 sources), backend fast, 16000 Hz" in proc.stdout
    rows = read_csv(out / "per_item.csv")
    assert [(r["item"], r["source"]) for r in rows] == [(i, s) for i in "abc" for s in SOURCES]
    assert list(rows[0]) == ["item", "source", "sdr", "sir", "sar", "si_sdr", "snr",
                             "energy_ratio_db", "sdr_mix", "si_sdr_mix", "sdri", "si_sdri"]
    # The numbers are those of the library on the same files.
    refs = np.stack([sf.read(dataset / "ref" / "b" / f"{s}.wav")[0] for s in SOURCES])
    ests = np.stack([sf.read(dataset / "est" / "b" / f"{s}.wav")[0] for s in SOURCES])
    mix = sf.read(dataset / "mix" / "b.wav")[0]
    expected = score_item(refs, ests, mix)
    for k, row in enumerate(rows[2:4]):
        for name, values in expected.items():
            assert float(row[name]) == pytest.approx(values[k], abs=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    sdrs = [float(r["sdr"]) for r in rows]
    assert summary["metrics"]["sdr"]["mean"] == pytest.approx(np.mean(sdrs), abs=1e-4)
    assert summary["metrics"]["sdr"]["count"] == 6
    assert summary["by_source"]["violin"]["sdri"]["count"] == 3
    assert summary["items"] == {"listed": 3, "scored": 3, "skipped": 0,
                                "without_references": 0}
    assert summary["sample_rate"] == 16000 and summary["backend"] == "fast"
    assert sorted(os.listdir(out)) == ["per_item.csv", "summary.json"]  # no temp files left
    # The command is a skin over score_files: the same report from Python.
    from bisep.metrics.report import score_files

    report = score_files(items_from_dirs(dataset / "ref", dataset / "est", dataset / "mix"))
    assert report.csv_text() == (out / "per_item.csv").read_text()
    assert report.summary == summary and "scored 3 of 3 items" in report.table()


def test_score_list_with_mir_eval_agrees_with_fast(dataset):
    lines = [{"id": item, "mixture": f"mix/{item}.wav",
              "sources": {s: f"ref/{item}/{s}.wav" for s in SOURCES},
              "estimates": {s: f"est/{item}/{s}.wav" for s in SOURCES}} for item in "abc"]
    (dataset / "items.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    proc = run_score("--list", "items.jsonl", "--reference", "mir_eval", "--out-dir", "slow",
                     cwd=dataset)
    assert proc.returncode == 0, proc.stderr
    assert main(["score", "--list", str(dataset / "items.jsonl"),
                 "--out-dir", str(dataset / "fast")]) == 0
    slow = read_csv(dataset / "slow" / "per_item.csv")
    fast = read_csv(dataset / "fast" / "per_item.csv")
    assert len(slow) == 6
    for a, b in zip(slow, fast):
        for name in ("sdr", "sir", "sar", "sdri"):
            assert float(a[name]) == pytest.approx(float(b[name]), abs=0.01)


def _many_items(root, count, length=RATE // 4):
    """``count`` items (more than one batch of ``bisep.metrics.batches``), with one
    different length and one silent estimate, so that batches hold several shapes."""
    rng = np.random.default_rng(1)
    for index in range(count):
        item = f"item{index:02d}"
        size = length + 160 if index == 3 else length
        refs = np.stack([_source(rng, size) for _ in SOURCES])
        ests = refs + 0.3 * refs[::-1] + 0.01 * rng.standard_normal(refs.shape)
        if index == 5:
            ests[1] = 0
        for name, ref, est in zip(SOURCES, refs, ests):
            write(root / "ref" / item / f"{name}.wav", ref)
            write(root / "est" / item / f"{name}.wav", est)
        write(root / "mix" / f"{item}.wav", refs.sum(0))


def test_score_nj_merges_to_the_same_outputs(tmp_path):
    from bisep.metrics.batches import BATCH_ITEMS

    _many_items(tmp_path, BATCH_ITEMS + 4)
    folders = ["--ref-dir", tmp_path / "ref", "--est-dir", tmp_path / "est",
               "--mix-dir", tmp_path / "mix"]
    for nj in (1, 2):
        proc = run_score(*folders, "--out-dir", tmp_path / f"nj{nj}", "--nj", nj)
        assert proc.returncode == 0, proc.stderr
    for name in ("per_item.csv", "summary.json"):
        assert (tmp_path / "nj1" / name).read_text() == (tmp_path / "nj2" / name).read_text()
    summary = json.loads((tmp_path / "nj2" / "summary.json").read_text())
    assert summary["items"] == {"listed": BATCH_ITEMS + 4, "scored": BATCH_ITEMS + 3,
                                "skipped": 1, "without_references": 0}
    assert summary["skipped"]["items"][0]["id"] == "item05"


def test_score_nj_reports_the_first_bad_item(tmp_path, capsys):
    from bisep.metrics.batches import BATCH_ITEMS

    _many_items(tmp_path, 2 * BATCH_ITEMS)
    for item in (f"item{BATCH_ITEMS + 1:02d}", "item02"):  # one in each batch
        write(tmp_path / "est" / item / "violin.wav", np.zeros(RATE // 8))
    for nj in (1, 2):
        err = score_error(capsys, "--ref-dir", tmp_path / "ref", "--est-dir",
                          tmp_path / "est", "--nj", nj)
        assert_mentions(err, "item 'item02'", "length")
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as exit_info:  # argparse refuses it
            main(["score", "--ref-dir", str(tmp_path / "ref"), "--est-dir",
                  str(tmp_path / "est"), "--nj", bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "--nj" in err and "at least 1" in err and bad in err


def test_score_missing_estimate_is_a_user_error(dataset):
    (dataset / "est" / "b" / "violin.wav").unlink()
    proc = run_score("--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert proc.returncode == 2
    assert proc.stderr.startswith("bisep score: error: "), proc.stderr
    assert_mentions(proc.stderr, "1 reference", "no estimate")
    assert f"{dataset / 'est' / 'b' / 'violin.wav'}" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- bad inputs, in-process (each checks the message) --------------------------------------

def test_extra_estimate_and_missing_mixture(dataset, capsys):
    write(dataset / "est" / "a" / "piano.wav", np.ones(RATE // 2))
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert "1 estimate has no reference" in err and "piano.wav" in err
    (dataset / "est" / "a" / "piano.wav").unlink()
    (dataset / "mix" / "c.wav").unlink()
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est",
                      "--mix-dir", dataset / "mix")
    assert "1 item has no mixture" in err and "c.wav" in err and "drop --mix-dir" in err
    write(dataset / "est" / "zz" / "guitar.wav", np.ones(RATE // 2))  # an item R lacks
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert "1 estimate has no reference" in err and f"{dataset / 'est' / 'zz'}" in err


def test_wrong_layout_and_missing_folder(dataset, capsys):
    write(dataset / "ref" / "loose.wav", np.ones(100))
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert_mentions(err, "directly", "loose.wav", "<item>/<source>.wav")
    (dataset / "ref" / "loose.wav").unlink()
    sf.write(dataset / "ref" / "a" / "violin.flac", np.full(100, 0.5), RATE)
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert_mentions(err, "violin.flac", "violin.wav", "same name")
    (dataset / "ref" / "a" / "violin.flac").unlink()
    (dataset / "ref" / "empty").mkdir()
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert_mentions(err, dataset / "ref" / "empty", ".wav/.flac")
    err = score_error(capsys, "--ref-dir", dataset / "nope", "--est-dir", dataset / "est")
    assert "--ref-dir" in err and "no such folder" in err
    err = score_error(capsys, "--ref-dir", dataset / "ref")
    assert "give --ref-dir and --est-dir" in err
    err = score_error(capsys, "--list", "x.jsonl", "--ref-dir", dataset / "ref")
    assert "not both" in err


def test_length_mismatch_errors_unless_trim(dataset, capsys):
    path = dataset / "est" / "a" / "violin.wav"
    write(path, sf.read(path)[0][:-100])
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert_mentions(err, "item 'a'", "length", "7900", "--trim")
    out = dataset / "out"
    assert main(["score", "--ref-dir", str(dataset / "ref"), "--est-dir",
                 str(dataset / "est"), "--trim", "--out-dir", str(out)]) == 0
    assert "trimmed 1 items (at most 100 samples)" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["trimmed"] == {"items": 1,
                                                                         "max_samples": 100}


def test_sample_rate_mismatch(dataset, capsys):
    path = dataset / "est" / "c" / "guitar.wav"
    write(path, sf.read(path)[0], rate=8000)
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert_mentions(err, f"{path}:", "sample rate", "8000 Hz", "16000 Hz", "sox guitar.wav -r 16000")


def test_stereo_needs_mono(dataset, capsys):
    path = dataset / "est" / "a" / "guitar.wav"
    mono = sf.read(path)[0]
    write(path, np.stack([mono, 0.5 * mono], axis=1))
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert f"{path}: has 2 channels" in err and "--mono" in err
    assert main(["score", "--ref-dir", str(dataset / "ref"), "--est-dir",
                 str(dataset / "est"), "--mono"]) == 0


def test_corrupt_file_names_the_file(dataset, capsys):
    path = dataset / "ref" / "b" / "guitar.wav"
    path.write_bytes(b"RIFF not really a wav file")
    err = score_error(capsys, "--ref-dir", dataset / "ref", "--est-dir", dataset / "est")
    assert_mentions(err, f"{path}:", "readable", "Re-export")


def test_silent_items_are_skipped_and_counted(dataset, capsys):
    write(dataset / "ref" / "a" / "violin.wav", np.zeros(RATE // 2))
    write(dataset / "est" / "c" / "guitar.wav", np.full(RATE // 2, 1e-10))
    out = dataset / "out"
    assert main(["score", "--ref-dir", str(dataset / "ref"), "--est-dir",
                 str(dataset / "est"), "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "scored 1 of 3 items (2 sources)" in printed
    assert "skipped 2 (silent reference: 1, silent estimate: 1)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items"] == {"listed": 3, "scored": 1, "skipped": 2,
                                "without_references": 0}
    assert summary["skipped"]["items"][0] == {
        "id": "a", "reason": "silent reference 'violin': sum|x| = 0 <= 1e-05"}
    assert summary["skipped"]["items"][1]["reason"].startswith("silent estimate 'guitar'")
    assert [r["item"] for r in read_csv(out / "per_item.csv")] == ["b", "b"]


def test_silent_mixture_skips_the_item(dataset):
    write(dataset / "mix" / "b.wav", np.zeros(RATE // 2))
    items = items_from_dirs(dataset / "ref", dataset / "est", dataset / "mix")
    assert [item.id for item in items] == ["a", "b", "c"]
    assert load_item(items[0]).silence() is None
    assert load_item(items[1]).silence() == ("silent mixture",
                                             "silent mixture: sum|x| = 0 <= 1e-05")


def test_nothing_scored_exits_1(dataset, capsys):
    for item in "abc":
        write(dataset / "est" / item / "guitar.wav", np.zeros(RATE // 2))
    assert main(["score", "--ref-dir", str(dataset / "ref"), "--est-dir",
                 str(dataset / "est")]) == 1
    assert "no item could be scored (3 skipped" in capsys.readouterr().err


def test_perfect_estimate_gives_inf_as_strict_json(dataset, capsys):
    for name in SOURCES:
        reference = sf.read(dataset / "ref" / "a" / f"{name}.wav")[0]
        write(dataset / "est" / "a" / f"{name}.wav", reference)
    out = dataset / "out"
    assert main(["score", "--ref-dir", str(dataset / "ref"), "--est-dir",
                 str(dataset / "est"), "--out-dir", str(out)]) == 0

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    summary = json.loads((out / "summary.json").read_text(), parse_constant=refuse)
    assert summary["metrics"]["si_sdr"]["mean"] == "inf"
    assert read_csv(out / "per_item.csv")[0]["snr"] == "inf"


@pytest.mark.parametrize("content, tokens", [
    ('{"id": "a", "sources": {"x": "r.wav"}, "estimates": {"x": "e.wav"}\n',
     ["items.jsonl:1:", "JSON"]),
    ('\n{"id": "a", "sources": {"x": "r.wav"}, "estimates": {"y": "e.wav"}}\n',
     ["items.jsonl:2:", '"sources"', "['x']", '"estimates"', "['y']"]),
    ('{"id": "a", "sources": {"x": "r.wav"}, "estimate": {"x": "e.wav"}}\n',
     ["items.jsonl:1:", "unknown key", "['estimate']"]),
    ('{"sources": {"x": "r.wav"}, "estimates": {"x": "e.wav"}}\n',
     ["items.jsonl:1:", '"id"']),
    ('{"id": "a", "sources": {"x": "r.wav"}, "estimates": {"x": "e.wav"}}\n'
     '{"id": "a", "sources": {"x": "r.wav"}, "estimates": {"x": "e.wav"}}\n',
     ["items.jsonl:2:", "id 'a'", "line 1"]),
    ('{"id": "a", "mixture": "m.wav", "sources": {"x": "r.wav"}, "estimates": {"x": "e.wav"}}\n'
     '{"id": "b", "sources": {"x": "r.wav"}, "estimates": {"x": "e.wav"}}\n',
     ["item 'a'", "mixture", "item 'b'"]),
    ('{"id": "a", "sources": {"x": "r.wav"}, "estimates": {"x": "gone.wav"}}\n',
     ["1 listed file(s)", "do not exist", "gone.wav"]),
    ("", ["no items"]),
])
def test_bad_lists(tmp_path, capsys, content, tokens):
    write(tmp_path / "r.wav", np.ones(1000))
    write(tmp_path / "e.wav", np.ones(1000))
    (tmp_path / "items.jsonl").write_text(content)
    err = score_error(capsys, "--list", tmp_path / "items.jsonl")
    assert_mentions(err, *tokens)


def test_reference_free_scores_a_separated_list_and_real_mixtures(tmp_path, use_plugins):
    import contextlib
    import io

    from bisep.apps.reference_free import score_reference_free
    from bisep.inference import Separator
    from test_separate import save_model, separate_list, write_manifest_set
    import torch

    registry = use_plugins("example")
    model = save_model(registry, tmp_path / "model.pth")
    out_dir = tmp_path / "sep"
    rc, _, err = separate_list(model, "--list", write_manifest_set(tmp_path / "data"), "-o",
                               out_dir)
    assert rc == 0, err
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["score", "--reference-free", "--model", str(model), "--list",
                   str(out_dir / "items.jsonl"), "--out-dir", str(tmp_path / "rf")])
    assert rc == 0, err.getvalue()
    assert "scored 3 of 3 items (6 sources)" in out.getvalue()
    rows = list(csv.DictReader((tmp_path / "rf" / "per_item.csv").open()))
    assert [r["source"] for r in rows[:2]] == ["flute", "violin"]
    summary = json.loads((tmp_path / "rf" / "summary.json").read_text())
    assert summary["kind"].startswith("reference-free")
    # The score is the cosine of the estimate's and the query's embeddings (checked by hand).
    encoder = Separator.from_pretrained(model, registry=registry).conditioner
    first = json.loads((out_dir / "items.jsonl").read_text().splitlines()[0])
    estimate = sf.read(out_dir / first["estimates"]["flute"], dtype="float32")[0]
    emb = encoder.embed_audio(torch.from_numpy(estimate)[None])[0]
    text = encoder.embed_text([first["queries"]["flute"]])[0]
    expected = float(torch.nn.functional.cosine_similarity(emb, text, dim=0))
    assert abs(float(rows[0]["clap_score"]) - expected) < 1e-3
    mixture = sf.read(out_dir / first["mixture"], dtype="float64")[0]
    split = 10 * np.log10(np.sum(estimate.astype(np.float64) ** 2)
                          / np.sum((mixture - estimate) ** 2))
    assert abs(float(rows[0]["energy_split_db"]) - split) < 1e-3
    # A real mixture has no stems: a list without "sources" is scored all the same.
    lines = [json.loads(line) for line in (out_dir / "items.jsonl").read_text().splitlines()]
    moved = out_dir / "real.jsonl"  # beside items.jsonl: the relative paths still resolve
    moved.write_text("".join(json.dumps({k: v for k, v in line.items() if k != "sources"})
                             + "\n" for line in lines))
    report = score_reference_free(encoder, items_from_list(moved))
    assert [r["clap_score"] for r in report.rows] == pytest.approx(
        [float(r["clap_score"]) for r in rows], abs=1e-4)
    from bisep.metrics.report import score_files

    with pytest.raises(ScoreInputError, match="has references.*--reference-free"):
        score_files(items_from_list(moved))  # SDR needs references
    rc = main(["score", "--reference-free", "--list", str(moved)])
    assert rc == 2  # no --model
