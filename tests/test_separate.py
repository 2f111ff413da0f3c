"""Inference: Separator API and `bisep separate`, with the example plugin's separator and
query encoder (real checkpoints, real wav files, real subprocesses)."""
import numpy as np
import pytest
import soundfile as sf
import torch

from bisep import checkpoint
from bisep.inference import Separator
from conftest import assert_mentions, run_cli


def save_model(registry, path, identity=False, conditioner="example_hash"):
    torch.manual_seed(0)
    model = registry.build("separator", "example_gain", query_dim=8)
    if identity:  # every mask ~1: separation returns the input (tests the chunk cross-fade)
        with torch.no_grad():
            model.gain.weight.zero_()
            model.gain.bias.fill_(60.0)
    config = {"separator": "example_gain", "conditioner": conditioner, "conditioner_conf": {}}
    return checkpoint.save(checkpoint.serialize(model, config=config), path)


def tone(seconds, rate, freq=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)
    return np.stack([x * (1 + 0.1 * c) for c in range(channels)]).astype(np.float32)


def test_chunked_overlap_add_reconstructs_with_identity_masks(tmp_path, use_plugins):
    registry = use_plugins("example")
    path = save_model(registry, tmp_path / "model.pth", identity=True)
    wav = tone(3.3, 8000, channels=2)
    for chunk, overlap in [(None, 0.25), (0.5, 0.25), (0.7, 0.5), (1.0, 0.0)]:
        sep = Separator.from_pretrained(path, registry=registry, chunk_seconds=chunk, overlap=overlap)
        out = sep.separate(wav, ["violin", "flute"], 8000)
        assert [r.target.shape for r in out] == [wav.shape] * 2
        np.testing.assert_allclose(out[0].target, wav, atol=2e-4, err_msg=f"chunk={chunk} overlap={overlap}")


def test_outputs_follow_query_and_input_rate(tmp_path, use_plugins):
    registry = use_plugins("example")
    sep = Separator.from_pretrained(save_model(registry, tmp_path / "m.pth"), registry=registry)
    wav = tone(1.0, 16000)  # the model runs at 8 kHz: resampled there and back
    out = sep.separate(wav, ["violin", "flute"], 16000)
    assert [(r.query, r.target.shape, r.sample_rate) for r in out] == [
        ("violin", (1, 16000), 16000), ("flute", (1, 16000), 16000)]
    assert not np.allclose(out[0].target, out[1].target)  # different queries, different masks
    np.testing.assert_allclose(out[0].target + out[0].residual, wav, atol=1e-6)
    again = sep.separate(wav[0], ["flute"], 16000)  # mono in, mono out
    np.testing.assert_allclose(again[0].target, out[1].target[0], atol=1e-6)
    with pytest.raises(ValueError, match="query text '' is empty"):
        sep.separate(wav, [""], 16000)
    with pytest.raises(ValueError, match="no query given"):
        sep.separate(wav, [], 16000)
    bad = wav.copy()
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sep.separate(bad, ["violin"], 16000)


def test_input_layouts_and_ambiguous_shapes(tmp_path, use_plugins):
    from bisep.errors import UserError

    registry = use_plugins("example")
    sep = Separator.from_pretrained(save_model(registry, tmp_path / "m.pth"), registry=registry)
    stereo = tone(0.5, 8000, channels=2)  # (channels, time)
    first, = sep.separate(stereo, ["violin"], 8000)
    # soundfile's (time, channels) and a tensor give the same, in their own layout.
    for wav, back in [(stereo.T, lambda x: x.T), (torch.from_numpy(stereo), lambda x: x)]:
        again, = sep.separate(wav, ["violin"], 8000)
        assert again.target.shape == tuple(wav.shape)
        np.testing.assert_allclose(back(again.target), first.target, atol=1e-6)
        np.testing.assert_allclose(back(again.residual), stereo - first.target, atol=1e-6)
    for shape in [(2, 2), (6, 5), (40, 30)]:
        with pytest.raises(UserError, match=rf"shape \({shape[0]}, {shape[1]}\).*channels_first"):
            sep.separate(np.zeros(shape, np.float32), ["violin"], 8000)
    # Said explicitly, a short or square signal is taken as given.
    tiny, = sep.separate(np.full((2, 2), 0.1, np.float32), ["violin"], 8000, channels_first=True)
    assert tiny.target.shape == (2, 2)
    with pytest.raises(UserError, match="query text '  ' is empty"):
        sep.separate(stereo, ["  "], 8000)


def test_separate_file_names_outputs(tmp_path, use_plugins):
    registry = use_plugins("example")
    sep = Separator.from_pretrained(save_model(registry, tmp_path / "m.pth"), registry=registry)
    sf.write(tmp_path / "song.wav", tone(0.5, 8000)[0], 8000)
    paths = sep.separate_file(tmp_path / "song.wav", ["Acoustic guitar!"], tmp_path / "out")
    assert [p.name for p in paths] == ["song_acoustic_guitar.wav"]


def test_checkpoint_with_unknown_conditioner(tmp_path, use_plugins):
    registry = use_plugins("example")
    path = save_model(registry, tmp_path / "m.pth", conditioner="example_hsah")
    with pytest.raises(Exception) as err:
        Separator.from_pretrained(path, registry=registry)
    assert_mentions(str(err.value), "conditioner 'example_hsah'", "Did you mean 'example_hash'?")


def test_cli_folder_mode_reports_bad_files_and_runs_the_rest(tmp_path, use_plugins, plugin_sites):
    registry = use_plugins("example")
    save_model(registry, tmp_path / "exp" / "model.pth")
    data = tmp_path / "in"
    data.mkdir()
    sf.write(data / "a.wav", tone(0.6, 8000)[0], 8000)
    sf.write(data / "b.flac", tone(0.4, 16000, channels=2).T, 16000)
    (data / "corrupt.wav").write_bytes(b"RIFF....WAVEnope")
    nan = tone(0.2, 8000)[0]
    nan[3] = np.nan
    sf.write(data / "nan.wav", nan, 8000, subtype="FLOAT")
    out = run_cli("separate", tmp_path / "exp", data, "-o", tmp_path / "out", "--query", "violin",
                  "--query", "flute", "--negative", "speech", pythonpath=[plugin_sites["example"]])
    assert out.returncode == 1, out.stderr
    assert "skipped" in out.stderr and "corrupt.wav: not a readable audio file" in out.stderr
    assert "nan.wav: 1 samples are NaN" in out.stderr
    assert "separated 2 of 4 file(s)" in out.stdout
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a_flute-not-speech.wav", "a_violin-not-speech.wav",
                       "b_flute-not-speech.wav", "b_violin-not-speech.wav"]
    b, rate = sf.read(tmp_path / "out" / "b_violin-not-speech.wav", always_2d=True)
    assert rate == 16000 and b.shape == (6400, 2)


def test_cli_audio_query_and_errors(tmp_path, use_plugins, plugin_sites):
    registry = use_plugins("example")
    model = save_model(registry, tmp_path / "model.pth")
    sf.write(tmp_path / "mix.wav", tone(0.5, 8000)[0], 8000)
    sf.write(tmp_path / "ref_violin.wav", tone(0.3, 8000, freq=880)[0], 8000)
    site = [plugin_sites["example"]]
    out = run_cli("separate", model, tmp_path / "mix.wav", "-o", tmp_path / "o", "--audio-query",
                  tmp_path / "ref_violin.wav", "--no-progress", pythonpath=site)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o" / "mix_audio-ref_violin.wav").exists()
    out = run_cli("separate", model, tmp_path / "mix.wav", "-o", tmp_path / "o", "--query", "",
                  pythonpath=site)
    assert out.returncode == 2 and "query text '' is empty" in out.stderr
    out = run_cli("separate", model, tmp_path / "mix.wav", "-o", tmp_path / "o", pythonpath=site)
    assert out.returncode == 2
    assert_mentions(out.stderr, "no query", "--query TEXT")
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.zeros(1)}, foreign)
    out = run_cli("separate", foreign, tmp_path / "mix.wav", "-o", tmp_path / "o", "--query", "x",
                  pythonpath=site)
    assert out.returncode == 2 and "foreign.pth: not a bisep model checkpoint" in out.stderr
    out = run_cli("separate", model, tmp_path / "missing.wav", "-o", tmp_path / "o", "--query", "x",
                  pythonpath=site)
    assert out.returncode == 1 and "missing.wav: no such file" in out.stderr


# -- --list mode: a data manifest, one query per label (recipe stage 5) --------------------
def write_manifest_set(root, rate=8000):
    """A test manifest of three 2-source items (stems sum to the mixture)."""
    import json

    labels = {"test_000": ["flute", "violin"], "test_001": ["acoustic_guitar", "cello"],
              "test_002": ["flute", "tuba"]}
    lines = []
    for n, (item, names) in enumerate(labels.items()):
        stems = {}
        for k, label in enumerate(names):
            stems[label] = f"wav/test/{item}/{label}.wav"
            (root / "wav" / "test" / item).mkdir(parents=True, exist_ok=True)
            sf.write(root / stems[label], tone(0.5, rate, freq=220.0 * (n + 1) * (k + 1))[0], rate,
                     subtype="FLOAT")
        mix = sum(sf.read(root / path, dtype="float32")[0] for path in stems.values())
        sf.write(root / "wav" / "test" / f"{item}.wav", mix, rate, subtype="FLOAT")
        lines.append(json.dumps({"id": item, "audio": f"wav/test/{item}.wav", "labels": names,
                                 "duration": 0.5, "stems": stems}))
    (root / "test.jsonl").write_text("\n".join(lines) + "\n")
    return root / "test.jsonl"


def separate_list(*args):
    """Run ``bisep separate`` in this process (faster than a subprocess); (rc, out, err)."""
    import contextlib
    import io

    from bisep.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["separate", *map(str, args), "--no-progress"])
    return rc, out.getvalue(), err.getvalue()


def test_cli_list_mode_writes_estimates_and_a_score_list(tmp_path, use_plugins, plugin_sites):
    import json

    registry = use_plugins("example")
    model = save_model(registry, tmp_path / "exp" / "model.pth")
    manifest = write_manifest_set(tmp_path / "data")
    out_dir = tmp_path / "exp" / "separated"
    rc, out, err = separate_list(tmp_path / "exp", "--list", manifest, "-o", out_dir)
    assert rc == 0, err
    assert "separated 3 of 3 item(s)" in out and "(0 already done)" in out
    assert sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.wav")) == [
        "test_000/flute.wav", "test_000/violin.wav", "test_001/acoustic_guitar.wav",
        "test_001/cello.wav", "test_002/flute.wav", "test_002/tuba.wav"]
    # The query of a label is its phrase: the same output as asking for it directly.
    sep = Separator.from_pretrained(model, registry=registry)
    mix, rate = sf.read(tmp_path / "data" / "wav" / "test" / "test_001.wav", dtype="float32")
    direct = sep.separate(mix, ["the sound of an acoustic guitar"], rate)[0].target
    np.testing.assert_allclose(sf.read(out_dir / "test_001" / "acoustic_guitar.wav")[0], direct,
                               atol=1e-6)
    items = [json.loads(line) for line in (out_dir / "items.jsonl").read_text().splitlines()]
    assert items[0] == {"id": "test_000", "mixture": "../../data/wav/test/test_000.wav",
                        "sources": {"flute": "../../data/wav/test/test_000/flute.wav",
                                    "violin": "../../data/wav/test/test_000/violin.wav"},
                        "estimates": {"flute": "test_000/flute.wav",
                                      "violin": "test_000/violin.wav"},
                        "queries": {"flute": "the sound of a flute",
                                    "violin": "the sound of a violin"}}
    record = json.loads((out_dir / "separation.json").read_text())
    assert record["manifest"] == str(manifest.resolve()) and len(record["model_sha256"]) == 64
    # What stage 6 does with it, in a real subprocess.
    scored = run_cli("score", "--list", out_dir / "items.jsonl", "--out-dir", tmp_path / "scores")
    assert scored.returncode == 0, scored.stderr
    assert "scored 3 of 3 items (6 sources)" in scored.stdout

    # Resume: nothing is separated again, the list is written again.
    before = {p: p.stat().st_mtime_ns for p in out_dir.rglob("*.wav")}
    (out_dir / "items.jsonl").unlink()
    rc, out, err = separate_list(tmp_path / "exp", "--list", manifest, "-o", out_dir)
    assert rc == 0 and "(3 already done)" in out and (out_dir / "items.jsonl").exists()
    assert before == {p: p.stat().st_mtime_ns for p in out_dir.rglob("*.wav")}
    # The same run from Python: the same model and manifest, so nothing to do again.
    from bisep.apps.separate_manifest import separate_manifest

    run = separate_manifest(sep, manifest, out_dir)
    assert (run.listed, run.resumed, run.failed, run.scorable) == (3, 3, [], 3)
    assert before == {p: p.stat().st_mtime_ns for p in out_dir.rglob("*.wav")}

    # Another model: the old estimates are stale, every item is separated again.
    save_model(registry, tmp_path / "exp" / "model.pth", identity=True)
    rc, out, err = separate_list(tmp_path / "exp", "--list", manifest, "-o", out_dir)
    assert rc == 0 and "(0 already done)" in out
    assert "was separated with another model_sha256; separating every item again" in err
    np.testing.assert_allclose(sf.read(out_dir / "test_001" / "cello.wav")[0], mix, atol=2e-4)


def test_cli_list_mode_reports_bad_items_and_resumes(tmp_path, use_plugins):
    registry = use_plugins("example")
    save_model(registry, tmp_path / "model.pth")
    manifest = write_manifest_set(tmp_path / "data")
    mixture = tmp_path / "data" / "wav" / "test" / "test_001.wav"
    good = mixture.read_bytes()
    mixture.write_bytes(b"RIFF....WAVEnope")
    out_dir = tmp_path / "sep"
    rc, out, err = separate_list(tmp_path / "model.pth", "--list", manifest, "-o", out_dir)
    assert rc == 1
    assert "skipped item 'test_001'" in err and "test_001.wav: not a readable audio file" in err
    assert "1 item(s) failed" in err and "separated 2 of 3 item(s)" in out
    assert not (out_dir / "items.jsonl").exists()  # scoring must not see a partial set
    assert (out_dir / "test_002" / "tuba.wav").exists()
    mixture.write_bytes(good)
    rc, out, err = separate_list(tmp_path / "model.pth", "--list", manifest, "-o", out_dir)
    assert rc == 0 and "(2 already done)" in out and (out_dir / "items.jsonl").exists()


def test_cli_list_mode_errors(tmp_path, use_plugins):
    registry = use_plugins("example")
    save_model(registry, tmp_path / "model.pth")
    manifest = write_manifest_set(tmp_path / "data")
    rc, _, err = separate_list(tmp_path / "model.pth", "--list", manifest, "-o", tmp_path / "o",
                               "--query", "violin")
    assert rc == 2
    assert_mentions(err, "--list", "manifest", "drop", "--query")
    rc, _, err = separate_list(tmp_path / "model.pth", "-o", tmp_path / "o", "--query", "violin")
    assert rc == 2 and "no input given" in err
    manifest.write_text(manifest.read_text() + "{not json\n")
    rc, _, err = separate_list(tmp_path / "model.pth", "--list", manifest, "-o", tmp_path / "o")
    assert rc == 2 and f"{manifest}:4: not valid JSON" in err
    rc, _, err = separate_list(tmp_path / "model.pth", "--list", tmp_path / "none.jsonl", "-o",
                               tmp_path / "o")
    assert rc == 2 and "none.jsonl: no such manifest" in err
    assert not (tmp_path / "o").exists()


def test_cli_list_mode_lists_items_without_stems_and_score_counts_them(tmp_path, use_plugins):
    import csv
    import json

    registry = use_plugins("example")
    model = save_model(registry, tmp_path / "model.pth")
    manifest = write_manifest_set(tmp_path / "data")
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    del lines[1]["stems"]  # a practitioner's recording: no references
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out_dir = tmp_path / "o"
    rc, out, err = separate_list(model, "--list", manifest, "-o", out_dir)
    assert rc == 0, err
    assert "(3 item(s), 2 with references to score)" in out
    assert "1 item(s) have no stems" in out and "--reference-free" in out
    items = [json.loads(line) for line in (out_dir / "items.jsonl").read_text().splitlines()]
    assert [item["id"] for item in items] == ["test_000", "test_001", "test_002"]
    assert "sources" not in items[1] and "sources" in items[0]
    assert items[1]["estimates"] == {"acoustic_guitar": "test_001/acoustic_guitar.wav",
                                     "cello": "test_001/cello.wav"}
    assert items[1]["queries"]["cello"] == "the sound of a cello"

    # SDR: the item without references is left out and counted, in a real subprocess.
    scored = run_cli("score", "--list", out_dir / "items.jsonl", "--out-dir", tmp_path / "s")
    assert scored.returncode == 0, scored.stderr
    assert "scored 2 of 3 items (4 sources)" in scored.stdout
    assert "1 without references, not scored" in scored.stdout
    assert "1 of 3 item(s) have no references" in scored.stderr
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["items"] == {"listed": 3, "scored": 2, "skipped": 0,
                                "without_references": 1}
    rows = list(csv.DictReader((tmp_path / "s" / "per_item.csv").open()))
    assert {r["item"] for r in rows} == {"test_000", "test_002"}
    # The same from Python; a progress bar over the listed items fills up.
    from bisep.metrics.files import items_from_list
    from bisep.metrics.report import score_files

    done = []
    report = score_files(items_from_list(out_dir / "items.jsonl"), progress=done.append)
    assert sum(done) == 3 and report.summary["items"] == summary["items"]
    # The reference-free score takes every item.
    rc, out, err = run_main("score", "--reference-free", "--model", model, "--list",
                            out_dir / "items.jsonl", "--out-dir", tmp_path / "rf")
    assert rc == 0, err
    assert "scored 3 of 3 items (6 sources)" in out

    # No item with stems: items.jsonl lists them all; SDR refuses with the way out.
    manifest.write_text("".join(json.dumps({k: v for k, v in line.items() if k != "stems"})
                                + "\n" for line in lines))
    rc, out, err = separate_list(model, "--list", manifest, "-o", tmp_path / "o2")
    assert rc == 0, err
    assert "(3 item(s), 0 with references to score)" in out
    assert len((tmp_path / "o2" / "items.jsonl").read_text().splitlines()) == 3
    rc, out, err = run_main("score", "--list", tmp_path / "o2" / "items.jsonl")
    assert rc == 2
    assert_mentions(err, "3 item(s)", "references", "--reference-free")


def run_main(*args):
    """Run ``bisep`` in this process (the example plugin stays registered); (rc, out, err)."""
    import contextlib
    import io

    from bisep.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(map(str, args)))
    return rc, out.getvalue(), err.getvalue()


def varied_tones(seconds, rate, seed=0):
    """Tones whose pitch and level (0.003 to 0.8, log-uniform) change every 4 s over noise:
    a file whose loudness differs from chunk to chunk, as mixtures put end to end do."""
    rng = np.random.default_rng(seed)
    t = np.arange(4 * rate) / rate
    parts = [np.exp(rng.uniform(np.log(0.003), np.log(0.8)))
             * np.sin(2 * np.pi * rng.uniform(110, 1760) * t)
             + 0.01 * rng.standard_normal(t.size) for _ in range(int(seconds / 4))]
    return np.concatenate(parts).astype(np.float32)


def snr_db(estimate, reference):
    return 10 * np.log10(np.sum(reference ** 2) / np.sum((estimate - reference) ** 2))


@pytest.mark.parametrize("chunk, overlap, context", [(8.0, 0.25, 0.0), (3.3, 0.3, 1.0)])
def test_chunked_output_matches_one_pass(tmp_path, use_plugins, chunk, overlap, context):
    # The recipe's film_masknet (gLN in every block, a ~4 s receptive field), FiLM weights
    # drawn so that the queries matter. 3.3 s chunks are no whole number of STFT hops.
    registry = use_plugins("example")
    torch.manual_seed(0)
    model = registry.build("separator", "film_masknet", preset="small", query_dim=8)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "film" in name:
                param.normal_(0, 0.05)
    config = {"separator": "film_masknet", "conditioner": "example_hash", "conditioner_conf": {}}
    path = checkpoint.save(checkpoint.serialize(model, config=config), tmp_path / "model.pth")
    wav = varied_tones(32.0, 16000)
    queries = ["violin", "flute"]

    def separate(**settings):
        sep = Separator.from_pretrained(path, registry=registry, **settings)
        return np.stack([r.target for r in sep.separate(wav, queries, 16000)])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small model on shared cores: threads only wait on each other
    try:
        one_pass = separate(chunk_seconds=None)
        chunked = separate(chunk_seconds=chunk, overlap=overlap, context_seconds=context)
        # Each chunk normalised by its own statistics is what the bound catches.
        per_chunk = separate(chunk_seconds=chunk, overlap=overlap, context_seconds=context,
                             norm_stats="chunk")
    finally:
        torch.set_num_threads(threads)
    assert snr_db(chunked, one_pass) >= 30.0
    assert snr_db(per_chunk, one_pass) < 30.0


def test_chunk_plan_boundaries_fall_on_stft_frames():
    from bisep.dsp.chunks import ChunkPlan

    plan = ChunkPlan.of(100_000, 1.3, 0.3, 0.1, 16000, 256)
    assert plan.size % 256 == plan.fade % 256 == plan.context % 256 == 0
    assert plan.context >= 1600 and all(start % 256 == 0 for start in plan.starts)
    total = torch.zeros(plan.length)
    for i, start in enumerate(plan.starts):
        valid = min(plan.size, plan.length - start)
        total[start:start + valid] += plan.weight(i, valid)
        assert plan.window_start(i) % 256 == 0 and plan.window_end(i) <= plan.length
    torch.testing.assert_close(total, torch.ones(plan.length))
    assert ChunkPlan.of(100_000, None, 0.3, 0.0, 16000, 256) is None
    assert ChunkPlan.of(10_000, 1.0, 0.3, 0.0, 16000, 256) is None  # fits in one chunk


def test_bad_chunk_settings_are_refused(tmp_path, use_plugins):
    from bisep.errors import UserError

    registry = use_plugins("example")
    path = save_model(registry, tmp_path / "model.pth")
    for settings, token in [({"context_seconds": -1.0}, "context_seconds"),
                            ({"norm_stats": "batch"}, "norm_stats")]:
        with pytest.raises(UserError, match=token):
            Separator.from_pretrained(path, registry=registry, **settings)


def test_file_group_norm_normalises_every_chunk_by_the_whole_input():
    from bisep.separators.file_norm import FileGroupNorm

    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(2, 4)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(3, 4, 50) * torch.linspace(0.1, 3.0, 50)  # level varies along time
    stats = FileGroupNorm(norm)
    # Two chunks with 5 frames of context each; each counts only the frames it owns.
    with torch.no_grad():
        for window, owned in [(x[..., :25], slice(0, 20)), (x[..., 15:], slice(5, 35))]:
            with stats.collecting(owned, window.shape[-1]):
                norm(window)
        stats.freeze()
        with stats.applied():
            middle = norm(x[..., 10:30])
        whole = norm(x)
    torch.testing.assert_close(middle, whole[..., 10:30], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(norm(x[..., 10:30]), middle, atol=1e-3)  # its own statistics
