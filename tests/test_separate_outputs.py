"""`bisep separate` under hostile inputs and output folders: nothing is overwritten or mixed
silently, short and odd inputs fail (or work) per file, folders are checked and locked
before the work (real files, in-process and subprocess runs)."""
import json
import socket
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile as sf

from bisep.outdir import LOCK_NAME
from conftest import assert_mentions, run_cli
from test_separate import save_model, tone, write_manifest_set


def separate(*args):
    """``bisep separate`` in this process: (rc, stdout, stderr)."""
    import contextlib
    import io

    from bisep.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["separate", *map(str, args), "--no-progress"])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def model(tmp_path, use_plugins):
    return save_model(use_plugins("example"), tmp_path / "model.pth")


def wav(path, seconds=0.3, rate=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, rate)[0], rate)
    return path


def test_outputs_never_replace_inputs(tmp_path, model):
    data = tmp_path / "in"
    wav(data / "a.wav")
    user = wav(data / "a_violin.wav", seconds=0.2).read_bytes()
    rc, _, err = separate(model, data, "-o", data, "--query", "violin")
    assert rc == 2
    assert_mentions(err, f"-o {data}", "inside the input folder", "outside")
    rc, _, err = separate(model, data / "a.wav", data / "a_violin.wav", "-o", data,
                          "--query", "violin")
    assert rc == 2 and "would overwrite the input" in err and "a_violin.wav" in err
    assert (data / "a_violin.wav").read_bytes() == user
    assert sorted(p.name for p in data.iterdir()) == ["a.wav", "a_violin.wav"]


def test_same_names_in_subfolders_and_clashing_queries(tmp_path, model):
    data = tmp_path / "in"
    wav(data / "x" / "song.wav")
    wav(data / "y" / "song.wav", seconds=0.2)
    rc, out, err = separate(model, data, "-o", tmp_path / "out", "--query", "violin")
    assert rc == 0, err
    assert "separated 2 of 2" in out
    assert sorted(p.relative_to(tmp_path / "out").as_posix()
                  for p in (tmp_path / "out").rglob("*.wav")) == ["x/song_violin.wav",
                                                                   "y/song_violin.wav"]
    assert sf.info(tmp_path / "out" / "y" / "song_violin.wav").frames == 1600
    rc, _, err = separate(model, data / "x" / "song.wav", data / "y" / "song.wav",
                          "-o", tmp_path / "o2", "--query", "violin")
    assert rc == 2
    assert_mentions(err, "x/song.wav", "y/song.wav", "same name", "--filename")
    assert not (tmp_path / "o2").exists()


def test_names_encode_queries_and_never_collide_or_overwrite(tmp_path, model):
    song = wav(tmp_path / "in" / "song.wav")
    cello = wav(tmp_path / "cello.wav", seconds=1.0)
    out_dir = tmp_path / "out"
    # Two texts with one label get a suffix; audio queries and negatives are named.
    rc, out, err = separate(model, song, "-o", out_dir, "--query", "Violin", "--query",
                            "violin!", "--audio-query", cello, "--residual")
    assert rc == 0, err
    assert "(6 output(s) each)" in out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "song_audio-cello.wav", "song_no-audio-cello.wav", "song_no-violin-2.wav",
        "song_no-violin.wav", "song_violin-2.wav", "song_violin.wav"]
    mixture = sf.read(song, dtype="float32")[0]
    target, residual = (sf.read(out_dir / name, dtype="float32")[0]
                        for name in ("song_violin.wav", "song_no-violin.wav"))
    np.testing.assert_allclose(target + residual, mixture, atol=1e-6)
    # A re-run does not overwrite without --overwrite, and says so before any work.
    before = {p: p.stat().st_mtime_ns for p in out_dir.iterdir()}
    rc, _, err = separate(model, song, "-o", out_dir, "--query", "violin")
    assert rc == 2 and "song_violin.wav" in err and "exists" in err and "--overwrite" in err
    assert before == {p: p.stat().st_mtime_ns for p in out_dir.iterdir()}
    rc, _, err = separate(model, song, "-o", out_dir, "--query", "violin", "--overwrite")
    assert rc == 0, err
    # A negative is part of the name; a template puts outputs in folders.
    rc, _, err = separate(model, song, "-o", out_dir, "--query", "violin", "--negative",
                          "piano", "--filename", "{track}/{kind}/{query}.{ext}", "--residual")
    assert rc == 0, err
    assert sorted(p.relative_to(out_dir / "song").as_posix()
                  for p in (out_dir / "song").rglob("*.wav")) == [
        "residual/violin-not-piano.wav", "target/violin-not-piano.wav"]


@pytest.mark.parametrize("options, tokens", [
    (["--filename", "{track}_{instrument}.{ext}"], ("{instrument}", "{track}", "{stem}")),
    (["--filename", "{track}.{ext}", "--query", "flute"], ("two outputs", "{query}")),
    (["--filename", "{track}_{query}.{ext}", "--residual"], ("two outputs", "{stem}")),
    (["--filename", "../{track}_{stem}.{ext}"], ("relative path", "..")),
    (["--query", "   "], ("query text", "empty")),
    (["--negative", " "], ("negative", "empty")),
])
def test_bad_names_are_refused_before_any_work(tmp_path, model, options, tokens):
    song = wav(tmp_path / "song.wav")
    rc, out, err = separate(model, song, "-o", tmp_path / "out", "--query", "violin", *options)
    assert rc == 2 and all(token in err for token in tokens), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("weight", ["1.5", "0", "-0.2", "nan", "half"])
def test_negative_weight_out_of_range_is_refused_by_the_parser(tmp_path, model, capsys, weight):
    from bisep.cli.main import main

    song = wav(tmp_path / "song.wav")
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses it, before the model loads
        main(["separate", str(model), str(song), "-o", str(tmp_path / "out"), "--query",
              "violin", "--negative", "piano", "--negative-weight", weight, "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--negative-weight" in err and "(0, 1]" in err and weight in err, err
    assert "negative_weight" not in err and not (tmp_path / "out").exists()


def test_short_inputs_long_queries_and_tiny_chunks(tmp_path, model):
    data = tmp_path / "in"
    data.mkdir()
    sf.write(data / "a_tiny.wav", np.full(10, 0.1, dtype="float32"), 8000)
    (data / "b_corrupt.wav").write_bytes(b"RIFF....WAVEnope")
    wav(data / "c_normal.wav")
    query = "a very long description of a violin " * 10  # 360 characters
    rc, out, err = separate(model, data, "-o", tmp_path / "out", "--query", query)
    assert rc == 1 and "separated 2 of 3" in out and "b_corrupt.wav" in err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(names) == 2 and all(len(n) < 100 for n in names), names
    tiny = tmp_path / "out" / names[0]
    assert names[0].startswith("a_tiny_a_very_long") and sf.info(tiny).frames == 10
    rc, _, err = separate(model, data / "c_normal.wav", "-o", tmp_path / "o2", "--query", "x",
                          "--chunk-seconds", "0.001")
    assert rc == 2 and "--chunk-seconds" in err and "STFT frame" in err
    rc, _, err = separate(model, data / "c_normal.wav", "-o", tmp_path / "o3", "--query", "x",
                          "--context-seconds", "-1")
    assert rc == 2 and "--context-seconds" in err and ">= 0" in err
    rc, out, _ = separate(model, data / "c_normal.wav", "-o", tmp_path / "o4", "--query", "x",
                          "--chunk-seconds", "0.1", "--context-seconds", "0.05",
                          "--chunk-norm", "chunk")
    assert rc == 0 and "separated 1 of 1" in out
    written = sf.info(tmp_path / "o4" / "c_normal_x.wav").frames
    assert written == sf.info(data / "c_normal.wav").frames


def test_a_short_audio_query_is_blamed_on_itself(tmp_path):
    from bisep import checkpoint
    from bisep.registry import get_registry

    sep = get_registry().build("separator", "film_masknet", preset="small", query_dim=384)
    config = {"separator": "film_masknet", "conditioner": "mini_clap", "conditioner_conf": {}}
    model = checkpoint.save(checkpoint.serialize(sep, config=config), tmp_path / "m.pth")
    example = tmp_path / "ten_samples.wav"
    sf.write(example, np.full(10, 0.1, dtype="float32"), 16000)
    mix = wav(tmp_path / "mix.wav", rate=16000)
    with pytest.warns(UserWarning, match="random weights"):
        rc, _, err = separate(model, mix, "-o", tmp_path / "out", "--audio-query", example)
    assert rc == 2 and f"--audio-query {example}" in err and "mix.wav" not in err
    assert not (tmp_path / "out").exists()


def test_unwritable_or_full_output_folder_is_refused_before_work(tmp_path, model,
                                                                  monkeypatch):
    import shutil

    mix = wav(tmp_path / "mix.wav")
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    rc, _, err = separate(model, mix, "-o", blocker / "out", "--query", "violin")
    assert rc == 2 and f"-o {blocker / 'out'} cannot be created" in err
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    rc, out, err = separate(model, mix, "-o", tmp_path / "out", "--query", "violin")
    assert rc == 2 and "has 1 kB free" in err and "need about" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_list_mode_outputs_of_another_manifest_are_not_reused(tmp_path, model):
    first = write_manifest_set(tmp_path / "one")
    other = write_manifest_set(tmp_path / "two", rate=16000)  # the same ids, other audio
    out_dir = tmp_path / "sep"
    rc, out, err = separate(model, "--list", first, "-o", out_dir)
    assert rc == 0, err
    rc, out, err = separate(model, "--list", other, "-o", out_dir)
    assert rc == 0 and "(0 already done)" in out
    assert "with another manifest;" in err  # same content, another folder: other audio
    assert sf.info(out_dir / "test_000" / "flute.wav").samplerate == 16000
    other.write_text("".join(other.read_text().splitlines(keepends=True)[:2]))
    rc, out, err = separate(model, "--list", other, "-o", out_dir)
    assert rc == 0 and "with another manifest_sha256;" in err and "(0 already done)" in out
    record = json.loads((out_dir / "separation.json").read_text())
    assert record["manifest"] == str(other.resolve()) and len(record["manifest_sha256"]) == 64


@contextmanager
def held_lock(folder, command):
    """``folder`` locked by a live process (a sleeping child) that claims to run ``command``;
    yields its pid."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / LOCK_NAME).write_text(json.dumps(
            {"pid": other.pid, "host": socket.gethostname(), "command": command,
             "started": "now"}))
        yield other.pid
    finally:
        other.kill()
        other.wait()


def test_a_live_lock_stops_a_second_run_and_a_stale_one_is_cleared(tmp_path, model):
    manifest = write_manifest_set(tmp_path / "data")
    out_dir = tmp_path / "sep"
    out_dir.mkdir()
    with held_lock(out_dir, "bisep separate first-run") as pid:
        orphan_of_live = out_dir / f".flute.wav.{pid}.tmp"
        orphan_of_live.write_bytes(b"half")
        rc, _, err = separate(model, "--list", manifest, "-o", out_dir)
        assert rc == 2 and f"pid {pid}" in err and "bisep separate first-run" in err
        assert not (out_dir / "test_000").exists()
    dead = pid
    orphan = out_dir / "test_000" / f".flute.wav.{dead}.tmp"
    orphan.parent.mkdir()
    orphan.write_bytes(b"half")
    rc, out, err = separate(model, "--list", manifest, "-o", out_dir)
    assert rc == 0, err
    assert "stale lock" in err and "removed 2 temporary file(s)" in err
    assert not orphan.exists() and not (out_dir / LOCK_NAME).exists()


@pytest.mark.parametrize("command", ["train", "train-clap"])
def test_a_live_lock_stops_bisep_train(tmp_path, command):
    from pathlib import Path

    exp = tmp_path / "exp"
    exp.mkdir()
    with held_lock(exp, "bisep train first") as pid:
        tiny = Path(__file__).parent / "recipe_tiny"
        args = (["--config", tiny / "train_weak.yaml", "--data-dir", tmp_path, "--dump-dir",
                 tmp_path, "--exp-dir", exp] if command == "train" else
                ["--conf", tiny / "mini_clap.yaml", "--data-dir", tmp_path, "--out-dir", exp])
        out = run_cli(command, *args)
    assert out.returncode == 2 and f"pid {pid}" in out.stderr
    assert "bisep train first" in out.stderr and sorted(p.name for p in exp.iterdir()) == [
        LOCK_NAME]


def test_score_checks_its_out_dir_before_scoring(tmp_path, model):
    manifest = write_manifest_set(tmp_path / "data")
    rc, _, err = separate(model, "--list", manifest, "-o", tmp_path / "sep")
    assert rc == 0, err
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    out = run_cli("score", "--list", tmp_path / "sep" / "items.jsonl", "--out-dir",
                  blocker / "scores")
    assert out.returncode == 2 and "--out-dir" in out.stderr and "cannot be created" in out.stderr
    assert "scored" not in out.stdout


def test_a_write_that_fails_mid_run_is_reported_and_the_batch_goes_on(tmp_path, model,
                                                                     monkeypatch):
    from bisep import audio

    for name in ("a", "b", "c"):
        wav(tmp_path / "in" / f"{name}.wav")
    real = audio.sf.write

    def disk_full_for_b(file, *args, **kwargs):
        if ".b_violin.wav." in str(file):
            raise OSError(28, "No space left on device")
        return real(file, *args, **kwargs)

    monkeypatch.setattr(audio.sf, "write", disk_full_for_b)
    rc, out, err = separate(model, tmp_path / "in", "-o", tmp_path / "out", "--query", "violin")
    assert rc == 1 and "separated 2 of 3" in out
    assert "b_violin.wav: cannot be written" in err and "disk may be full" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_violin.wav",
                                                                    "c_violin.wav"]


def test_list_mode_a_label_too_long_for_a_file_name_fails_only_its_item(tmp_path, model):
    manifest = write_manifest_set(tmp_path / "data")
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    long = "violin" * 50  # 300 characters
    lines[1]["labels"][1] = long
    lines[1]["stems"][long] = lines[1]["stems"].pop("cello")
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    rc, out, err = separate(model, "--list", manifest, "-o", tmp_path / "sep")
    assert rc == 1 and "separated 2 of 3" in out
    assert "skipped item 'test_001'" in err and "over 251 bytes" in err
    assert (tmp_path / "sep" / "test_002" / "tuba.wav").exists()
