"""The corpus recipes egs/{music,vggsound,audiocaps}/bimodal on tiny fake copies of each
dataset (tests/corpus_fakes.py: real metadata formats, WAV and MP4 clips, broken entries
on purpose). Each local/data.sh runs for real in a subprocess; the checks cover the
manifests, the clips, the skip report, the compositions, determinism, re-runs, stage 2
(bisep mix) and the training items of AudioCaps."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import yaml

import corpus_fakes
from bisep.data.captions import parse_caption
from bisep.data.manifest import DataError, item_caption, item_phrases, read_manifest
from bisep.data.prompts import slugify
from bisep.data.splits import hash_split
from conftest import REPO, assert_mentions

RATE, SAMPLES = 16000, 8000
COMMON = {"sample_rate": RATE, "duration": 0.5, "min_duration": 0.3, "seed": 8}
CONFIGS = {
    "music": {**COMMON, "max_segments": 2, "test_fraction": 0.3, "valid_fraction": 0.3,
              "train_repeats": 2, "valid_repeats": 1, "test_repeats": 3},
    "vggsound": {**COMMON, "test_fraction": 0.3, "valid_fraction": 0.3},
    "audiocaps": {**COMMON, "valid_fraction": 0.5},
}
DATASETS = tuple(CONFIGS)
METADATA = {"music": ["MUSIC21_solo_videos.json"], "vggsound": ["vggsound.csv"],
            "audiocaps": ["train.csv", "val.csv", "test.csv"]}


def recipe(name):
    return REPO / "egs" / name / "bimodal"


def run(script, *args, cwd, env=None):
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=180, env={**os.environ, "LC_ALL": "C", **(env or {})})


def data_sh(name, root, data_dir, conf):
    out = run(recipe(name) / "local" / "data.sh", "--python", sys.executable, "--root", root,
              "--nj", 2, "--data_config", conf, "--data_dir", data_dir, cwd=recipe(name))
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Every dataset's fake copy, prepared twice into different folders.

    Returns ``{name: {"root", "broken", "conf", "data", "again"}}``.
    """
    out = {}
    for name in DATASETS:
        base = tmp_path_factory.mktemp(name)
        root = base / "copy"
        broken = getattr(corpus_fakes, f"fake_{name}")(root)
        conf = base / "data.yaml"
        conf.write_text(yaml.safe_dump(CONFIGS[name]))
        for folder in ("data", "again"):
            data_sh(name, root, base / folder, conf)
        out[name] = {"root": root, "broken": broken, "conf": conf, "data": base / "data",
                     "again": base / "again"}
    return out


def manifests(data_dir):
    return {split: read_manifest(data_dir / f"{split}.jsonl") for split in
            ("train", "valid", "test")}


def pcm(path):
    with sf.SoundFile(path) as handle:
        assert (handle.samplerate, handle.channels, handle.frames, handle.subtype) == \
               (RATE, 1, SAMPLES, "PCM_16"), path
        return handle.read(dtype="int16").astype(np.int32)


def expected_clips(name, root, broken):
    """``split -> sorted good clip ids`` from the metadata and the documented split rule."""
    conf, seed = CONFIGS[name], CONFIGS[name]["seed"]
    clips = {}
    if name == "music":
        fractions = [("test", conf["test_fraction"]),
                     ("valid", conf["valid_fraction"] * (1 - conf["test_fraction"]))]
        videos = json.loads((root / "MUSIC21_solo_videos.json").read_text())["videos"]
        for instrument, ids in videos.items():
            for video in dict.fromkeys(ids):
                clip = f"{instrument}_{video}"
                if clip not in broken:
                    split = hash_split(video, seed, fractions)
                    segments = [f"{clip}_000", f"{clip}_001"] if split == "train" else [clip]
                    clips.setdefault(split, []).extend(segments)
    elif name == "vggsound":
        fractions = [("test", conf["test_fraction"]),
                     ("valid", conf["valid_fraction"] * (1 - conf["test_fraction"]))]
        for video, start, *_ in csv_rows(root / "vggsound.csv"):
            clip = f"{video}_{int(start):06d}"
            if clip not in broken:
                clips.setdefault(hash_split(clip, seed, fractions), []).append(clip)
    else:
        for group in ("train", "val", "test"):
            for video in dict.fromkeys(row[1] for row in csv_rows(root / f"{group}.csv")[1:]):
                if video not in broken:
                    split = group if group != "val" else hash_split(
                        video, seed, [("valid", conf["valid_fraction"])], rest="partner")
                    clips.setdefault(split, []).append(video)
    return {split: sorted(ids) for split, ids in clips.items()}


@pytest.mark.parametrize("name", DATASETS)
def test_manifests_clips_and_skip_report(prepared, name):
    p = prepared[name]
    items = manifests(p["data"])
    clips = expected_clips(name, p["root"], p["broken"])
    conf = CONFIGS[name]
    if name == "audiocaps":
        counts = {"train": len(clips["train"]), "valid": len(clips["valid"]),
                  "test": len(clips["test"])}
    else:
        counts = {split: len(clips[split]) * conf.get(f"{split}_repeats", {"test": 2}.get(
            split, 1)) for split in ("train", "valid", "test")}
    assert {split: len(lines) for split, lines in items.items()} == counts
    # The skip report lists exactly the broken entries, each with its reason.
    rows = (p["data"] / "skipped.tsv").read_text().splitlines()
    assert rows[0] == "id\tpath\treason\tdetail"
    assert {row.split("\t")[0]: row.split("\t")[2] for row in rows[1:]} == p["broken"]
    meta = json.loads((p["data"] / "meta.json").read_text())
    assert meta["counts"] == counts and meta["skipped"] == {r: 1 for r in corpus_fakes.BROKEN}
    used = set()
    for split, lines in items.items():
        for item in lines:
            audio = pcm(item["audio"])  # every clip at the recipe's rate and length
            assert item["duration"] == SAMPLES / RATE
            if "stems" not in item:  # AudioCaps training clips: natural mixtures
                used.add(item["id"])
                continue
            stems = [pcm(item["stems"][label]) for label in item["labels"]]
            np.testing.assert_array_equal(audio, stems[0] + stems[1])  # exactly their sum
            assert len(item["labels"]) == 2 == len(item["phrases"]) == len(set(item["labels"]))
            used.update(item["clips"])
    assert used == {clip for ids in clips.values() for clip in ids}  # every good clip, once


def csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_music_and_vggsound_prompts_are_the_papers(prepared):
    rows = csv_rows(prepared["vggsound"]["root"] / "vggsound.csv")
    vgg_class = {f"{row[0]}_{int(row[1]):06d}": slugify(row[2]) for row in rows}
    for name in ("music", "vggsound"):
        texts = {slugify(row[2]): row[2] for row in rows} if name == "vggsound" else {}
        for split, lines in manifests(prepared[name]["data"]).items():
            for item in lines:
                words = [texts.get(label, label.replace("_", " ")) for label in item["labels"]]
                assert item["phrases"] == [f"The sound of {w}" for w in words]
                assert item["caption"] == f"The sound mixture of {words[0]} and {words[1]}"
                for clip, label in zip(item["clips"], item["labels"]):  # each clip's class
                    assert vgg_class[clip] == label if name == "vggsound" \
                        else clip.startswith(label + "_")
    assert "The sound of male speech, man speaking" in {
        p for item in manifests(prepared["vggsound"]["data"])["test"] for p in item["phrases"]}


def test_audiocaps_captions_phrases_and_test_protocol(prepared):
    p = prepared["audiocaps"]
    items = manifests(p["data"])
    clips = expected_clips("audiocaps", p["root"], p["broken"])
    captions = {}
    for group in ("train", "val", "test"):
        for _, video, _, text in csv_rows(p["root"] / f"{group}.csv")[1:]:
            captions.setdefault(video, []).append(text)
    for item in items["train"]:
        assert item["caption"] == captions[item["id"]][0]
        assert item["phrases"] == parse_caption(item["caption"])[:3]
        assert item["labels"] == [slugify(text) for text in item["phrases"]]
    assert ["A baby cries", "A woman speaks", "A door closes"] in [
        item["phrases"] for item in items["train"]]
    for split, partners in (("test", "partner"), ("valid", "valid")):
        for item in items[split]:
            first, second = item["labels"]
            assert first in clips[split] and second in clips[partners] and first != second
            assert item["phrases"] == [captions[first][0], captions[second][0]]
            assert item["captions"] == {first: captions[first], second: captions[second]}
    assert not {c for i in items["valid"] for c in i["clips"]} & {
        c for i in items["test"] for c in i["clips"]}  # valid and test share no clip
    with open(p["data"] / "test.jsonl") as handle:
        first = json.loads(handle.readline())
    assert set(first) == {"id", "audio", "labels", "phrases", "caption", "stems", "duration",
                          "clips", "captions"}


@pytest.mark.parametrize("name", DATASETS)
def test_two_runs_write_the_same_data(prepared, name):
    p = prepared[name]
    for split in ("train", "valid", "test"):
        assert (p["data"] / f"{split}.jsonl").read_text() == \
               (p["again"] / f"{split}.jsonl").read_text()
    for item, twin in zip(manifests(p["data"])["test"], manifests(p["again"])["test"]):
        np.testing.assert_array_equal(pcm(item["audio"]), pcm(twin["audio"]))


def snapshot(folder):
    return {path: (path.stat().st_mtime_ns, path.stat().st_size)
            for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("name", DATASETS)
def test_rerun_writes_nothing(prepared, name):
    p = prepared[name]
    before = snapshot(p["data"])
    out = data_sh(name, p["root"], p["data"], p["conf"])
    assert snapshot(p["data"]) == before
    used = json.loads((p["data"] / "meta.json").read_text())["sources"]["used"]
    assert f"({used} already extracted)" in out.stdout
    assert "0 of the manifests and meta.json rewritten" in out.stdout


def test_stage2_and_training_items(prepared, tmp_path):
    import torch

    from bisep.data.mom import MoMDataset

    for name, fraction, k in (("music", 0.25, 2), ("audiocaps", 0, 3)):
        data, dump = prepared[name]["data"], tmp_path / name
        out = run(recipe(name) / "run.sh", "--stage", 2, "--stop_stage", 2, "--python",
                  sys.executable, "--data_dir", data, "--dump_dir", dump, "--exp_dir",
                  tmp_path / "exp", "--supervised_fraction", fraction,
                  "--mix_args", "--num-train-mom 6 --num-valid-mom 2", cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        train = {item["id"]: item for item in read_manifest(data / "train.jsonl")}
        dataset = MoMDataset(dump / "mom_train.jsonl", data / "train.jsonl", num_phrases=k,
                             load_sources=fraction > 0, sample_rate=RATE)
        assert len(dataset) == 6
        for index in range(len(dataset)):
            line, got = dataset.plan[index], dataset[index]
            parts = [train[part] for part in line["parts"]]
            assert got["mixture_prompts"] == [item["caption"] for item in parts]
            for phrases, item in zip(got["phrases"], parts):
                texts = item["phrases"]
                assert phrases == [texts[j % len(texts)] for j in range(k)]
            if "sources" in got:  # music: the stems of the phrases, scaled like the mixtures
                for n, item in enumerate(parts):
                    stem = sf.read(item["stems"][item["labels"][0]], dtype="float32")[0]
                    scale = line["gains"][n] / 2
                    torch.testing.assert_close(got["sources"][n * k], torch.from_numpy(stem)
                                               * scale)
        if name == "audiocaps":  # captions as mixture prompts, parsed phrases as queries
            assert any(len(set(p)) > 1 for p in got["phrases"])
            assert all(len(prompt.split()) > 3 for prompt in got["mixture_prompts"])


def test_data_sh_names_what_is_missing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ("music", [], 'no MUSIC copy given: add --root /path/to/MUSIC (through run.sh: '
                      '--local_data_opts "--root /path/to/MUSIC")'),
        ("music", ["--root", tmp_path / "nope"], f"--root {tmp_path / 'nope'}: no such folder"),
        ("music", ["--root", empty], f"no MUSIC21_solo_videos.json or MUSIC_solo_videos.json "
                                     f"in {empty}: add --metadata"),
        ("vggsound", ["--root", empty], f"no vggsound.csv in {empty}: add --metadata"),
        ("vggsound", ["--root", empty, "--metadata", "x.csv"], "--metadata x.csv: no such file"),
        ("audiocaps", ["--root", empty], f"no train.csv in {empty}: add --metadata"),
    ]
    for name, args, message in cases:
        out = run(recipe(name) / "local" / "data.sh", *args, cwd=recipe(name))
        assert out.returncode == 1 and message in out.stderr, (name, out.stderr)
    # The same from Python, for `bisep prepare` without the recipe.
    from bisep.data.music import Music

    with pytest.raises(DataError, match="no MUSIC21_solo_videos.json or MUSIC_solo_videos.json"):
        Music(root=str(empty))


@pytest.fixture
def fake_python(tmp_path):
    """A python that records each call's arguments (one per line, then a blank line)."""
    log = tmp_path / "calls.txt"
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" '' >> {log}\n")
    python.chmod(0o755)
    return python, lambda: [b.split("\n") for b in log.read_text().split("\n\n") if b] \
        if log.exists() else []


@pytest.mark.parametrize("name", DATASETS)
def test_run_sh_passes_local_data_opts_checkpoint_and_train_args(tmp_path, fake_python, name):
    python, calls = fake_python
    data, dump, exp = tmp_path / "data", tmp_path / "dump", tmp_path / "exp"
    base = ["--python", python, "--data_dir", data, "--dump_dir", dump, "--exp_dir", exp]
    copy = tmp_path / "copy"
    copy.mkdir()
    for metadata in METADATA[name]:
        (copy / metadata).write_text("")
    out = run(recipe(name) / "run.sh", *base, "--stop_stage", 1, "--local_data_opts",
              f"--root={copy} --nj 3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    prepare = ["-m", "bisep", "prepare", name, "--conf", "conf/data.yaml", str(data),
               f"root={copy}", "nj=3"]
    assert calls() == [prepare]
    # Stage 1's resume script replays the command line, --local_data_opts included.
    out = run(exp / "resume_stage1.sh", "--stop_stage", 1, cwd=copy)
    assert out.returncode == 0, out.stderr
    assert calls() == [prepare, prepare]
    # Stage 1 wrote no clap_pool.jsonl: stage 3 cannot train mini_clap and says what to give.
    for path in (data / "train.jsonl", data / "valid.jsonl", dump / "mom_train.jsonl",
                 dump / "mom_valid.jsonl"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
    out = run(recipe(name) / "run.sh", *base, "--stage", 3, cwd=tmp_path)
    assert out.returncode == 1 and len(calls()) == 2
    assert_mentions(out.stderr, "stage 3", "mini_clap", f"{data}/clap_pool.jsonl",
                    "does not prepare",
                    "--clap_checkpoint /path/to/music_audioset_epoch_15_esc_90.14.pt --stage 3")
    ckpt = tmp_path / "clap.pt"
    ckpt.write_text("{}\n")
    out = run(recipe(name) / "run.sh", *base, "--stage", 3, "--stop_stage", 4,
              "--clap_checkpoint", ckpt, "--train_args",
              "conditioner_conf.text_model_dir=/models/roberta-base trainer.max_steps=2",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Stage 3: skipped: --clap_checkpoint" in out.stdout
    assert calls()[-1][:4] == ["-m", "bisep", "train", "--config"]
    assert calls()[-1][-3:] == [f"conditioner_conf.checkpoint={ckpt}",
                                "conditioner_conf.text_model_dir=/models/roberta-base",
                                "trainer.max_steps=2"]


def test_training_without_text_model_dir_says_how_to_give_it(tmp_path):
    # The recipes leave LAION-CLAP's roberta-base folder to --train_args: the error of a
    # run without it names that option.
    ckpt = tmp_path / "clap.pt"
    ckpt.write_bytes(b"not read before the folder is checked")
    out = subprocess.run([sys.executable, "-m", "bisep", "train", "--config",
                          recipe("music") / "conf" / "train_weak.yaml", "--data-dir",
                          tmp_path / "data", "--dump-dir", tmp_path / "dump", "--exp-dir",
                          tmp_path / "exp", f"conditioner_conf.checkpoint={ckpt}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert_mentions(out.stderr, "roberta-base", "config.json", "text_model_dir=None")
    assert './run.sh --train_args "conditioner_conf.text_model_dir=/path/to/roberta-base"' \
        in out.stderr


@pytest.mark.parametrize("name", DATASETS)
def test_recipe_layout_and_configs(name):
    folder = recipe(name)
    assert os.readlink(folder / "utils") == "../../../recipes/utils"
    assert {"/data/", "/dump/", "/exp/"} <= set((folder / ".gitignore").read_text().split())
    for script in (folder / "run.sh", folder / "local" / "data.sh"):
        assert os.access(script, os.X_OK)
    help_text = run(folder / "run.sh", "--help", cwd=folder).stdout
    assert "--local_data_opts" in help_text and "--stage" in help_text
    help_text = run(folder / "local" / "data.sh", "--help", cwd=folder).stdout
    assert all(option in help_text for option in ("--root", "--metadata", "--nj"))
    from bisep.config import load_config

    for conf in sorted((folder / "conf").glob("train_*.yaml")):
        cfg = load_config(conf)
        assert cfg["separator"] == "cond_unet" and cfg["conditioner"] == "laion_clap"
        assert cfg["optim_conf"]["lr"] == 1e-4 and cfg["optim_conf"]["weight_decay"] == 1e-4
        assert cfg["data"]["batch_size"] == 16
        assert cfg["data"]["num_phrases"] == (3 if name == "audiocaps" else 2)
        assert cfg["scheduler"] == "steplr" and cfg["scheduler_conf"]["gamma"] == 0.1
        # Validation queries use the items' phrases (captions on AudioCaps): SDR selects.
        assert cfg["trainer"]["monitor"] == "val_si_sdr"
        # Clips kept in RAM only where they fit (MUSIC ~5 GB; not VGGSound's ~40 GB).
        assert cfg["data"]["cache_audio"] == (name == "music")
        assert cfg["data"]["num_workers"] == (0 if name == "music" else 4)


def test_manifest_prompt_keys(tmp_path):
    line = {"id": "a", "audio": "a.wav", "labels": ["dog", "rain"], "duration": 1.0}
    path = tmp_path / "m.jsonl"
    for extra, message in [({"caption": ""}, "'caption' must be a non-empty string"),
                           ({"caption": 3}, "'caption' must be a non-empty string"),
                           ({"phrases": ["A dog barks"]}, "'phrases' has 1 entries but"),
                           ({"phrases": "A dog barks"}, "'phrases' must be a list"),
                           ({"phrases": ["A dog", ""]}, "'phrases' must be a list")]:
        path.write_text(json.dumps({**line, **extra}) + "\n")
        with pytest.raises(DataError, match=f"{path}:1: {message}"):
            read_manifest(path, check_files=False)
    path.write_text(json.dumps({**line, "caption": "Rain and a dog",
                                "phrases": ["A dog barks", "Rain falls"]}) + "\n")
    item = read_manifest(path, check_files=False)[0]
    assert item_caption(item) == "Rain and a dog" and item_phrases(item) == ["A dog barks",
                                                                            "Rain falls"]
    assert item_caption(line) == "the sound mixture of a dog and a rain"
    assert item_phrases(line) == ["the sound of a dog", "the sound of a rain"]


def test_separate_list_queries_each_item_with_its_phrases(prepared, tmp_path, monkeypatch):
    import contextlib
    import io

    from bisep.cli import separate
    from bisep.cli.main import main

    asked = []

    from bisep.inference import SeparationResult

    model = tmp_path / "model.pth"
    model.write_bytes(b"model")

    class Recorder:  # stands in for a trained model: records the queries, returns silence
        source, chunk_seconds, overlap, context_seconds, norm_stats = model, 8.0, 0.25, 0.0, "file"

        def separate(self, wav, queries, rate, channels_first=None):
            asked.append([query.text for query in queries])
            return [SeparationResult(query, np.zeros_like(wav), wav, rate) for query in queries]

    monkeypatch.setattr(separate, "load_separator", lambda args: Recorder())
    manifest = prepared["audiocaps"]["data"] / "test.jsonl"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["separate", str(model), "--list", str(manifest), "-o", str(tmp_path / "sep"),
                   "--no-progress"])
    assert rc == 0
    items = read_manifest(manifest)
    assert asked == [item["phrases"] for item in items]  # full captions, not "the sound of"
    first = items[0]
    assert sorted(p.name for p in (tmp_path / "sep" / first["id"]).iterdir()) == \
        sorted(f"{label}.wav" for label in first["labels"])


def test_a_preparer_without_prepare_is_named(tmp_path):
    from bisep.data.manifest import DataError
    from bisep.data.preparer import prepare_dataset

    with pytest.raises(DataError, match="my_set.*function.*prepare\\(data_dir\\)"):
        prepare_dataset(lambda out: None, tmp_path, "my_set")


def test_a_corpus_plugin_with_the_old_build_name_still_works(tmp_path):
    from bisep.data.corpus import CorpusDataset

    class Old(CorpusDataset):
        def build(self, clips, data_dir):
            return {"train": ["item"]}

    old = Old(str(tmp_path), 16000, 1.0, 0.5, 1, 0)
    with pytest.warns(DeprecationWarning, match="manifest_items"):
        assert old.manifest_items({}, tmp_path) == {"train": ["item"]}
