"""bisep.data: prompts, manifests, synth_music rendering, MoM plans and the training Dataset,
and the `bisep prepare` / `bisep mix` commands."""
import hashlib
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from bisep.data import mom as mom_module
from bisep.data import mom_plan as plan_module
from bisep.data import synth_music
from bisep.data.manifest import DataError, read_manifest, write_manifest
from bisep.data.mom import MoMDataset, collate_mom, pad_phrases
from bisep.data.mom_plan import make_mom_plan, read_plan, write_plan
from bisep.data.prompts import (HELDOUT_TEMPLATE, TEMPLATES, fill, mixture_prompt, phrase)
from bisep.data.melody import INSTRUMENTS, make_melody
from bisep.data.soundfont import Renderer, default_soundfont, is_audible
from bisep.data.synth_music import SPLITS, SynthMusic
from bisep.hashing import sha256_of
from conftest import REPO, assert_mentions, run_cli

TINY = yaml.safe_load((REPO / "tests" / "recipe_tiny" / "data.yaml").read_text())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny recipe's data, prepared once for the module."""
    data = tmp_path_factory.mktemp("tiny") / "data"
    SynthMusic(**TINY).prepare(data)
    return data


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def tree_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): md5(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "meta.json"}


# -- prompts -----------------------------------------------------------------------------
def test_prompts():
    assert phrase("violin") == "the sound of a violin"
    assert phrase("accordion") == "the sound of an accordion"
    assert phrase("acoustic_guitar") == "the sound of an acoustic guitar"
    assert mixture_prompt(["flute", "violin"]) == "the sound mixture of a flute and a violin"
    assert mixture_prompt(["violin"]) == phrase("violin")
    assert mixture_prompt(["cello", "flute", "violin"]) == \
        "the sound mixture of a cello, a flute and a violin"
    assert fill("{} music", ["acoustic_guitar", "violin"]) == "acoustic guitar and violin music"
    assert fill(HELDOUT_TEMPLATE, "tuba") == "a recording of someone playing the tuba"
    assert len(TEMPLATES) >= 6 and HELDOUT_TEMPLATE not in TEMPLATES
    assert all(t.count("{}") == 1 for t in TEMPLATES)


# -- manifests ---------------------------------------------------------------------------
def test_manifest_round_trip(tmp_path):
    (tmp_path / "wav").mkdir()
    for name in ("a.wav", "a_x.wav", "a_y.wav"):
        (tmp_path / "wav" / name).write_bytes(b"")
    items = [{"id": "a", "audio": str(tmp_path / "wav" / "a.wav"), "labels": ["x", "y"],
              "duration": 1.0, "stems": {"x": str(tmp_path / "wav" / "a_x.wav"),
                                         "y": "wav/a_y.wav"}, "extra": 3}]
    path = write_manifest(tmp_path / "m.jsonl", items)
    line = json.loads(path.read_text())
    assert line["audio"] == "wav/a.wav"
    assert line["stems"] == {"x": "wav/a_x.wav", "y": "wav/a_y.wav"}
    back = read_manifest(path)
    assert back[0]["audio"] == str((tmp_path / "wav" / "a.wav").resolve())
    assert back[0]["stems"]["y"] == str((tmp_path / "wav" / "a_y.wav").resolve())
    assert back[0]["extra"] == 3 and back[0]["labels"] == ["x", "y"]


@pytest.mark.parametrize("text, message", [
    ('{"id": "a", "audio": "a.wav", "labels": ["x"], "duration": 1}\n{"id": ', "not valid JSON"),
    ('{"id": "a", "audio": "a.wav", "labels": ["x"]}', "missing key 'duration'"),
    ('{"id": "a", "audio": "a.wav", "labels": "x", "duration": 1}', "'labels' has the wrong type"),
    ('{"id": "a", "audio": "a.wav", "labels": ["x"], "duration": 1}\n\n'
     '{"id": "a", "audio": "a.wav", "labels": ["y"], "duration": 1}', "duplicate id 'a'"),
    ('{"id": "a", "audio": "a.wav", "labels": ["x"], "duration": 1, "stems": {"y": "a.wav"}}',
     "give one stem per label"),
    ('{"id": "b", "audio": "b.wav", "labels": ["x"], "duration": 1}', "does not exist"),
])
def test_manifest_errors_name_file_and_line(tmp_path, text, message):
    (tmp_path / "a.wav").write_bytes(b"")
    path = tmp_path / "m.jsonl"
    path.write_text(text + "\n")
    with pytest.raises(DataError) as err:
        read_manifest(path)
    line = text.count("\n") + 1 if "duplicate" in message or "JSON" in message else 1
    assert message in str(err.value) and f"{path}:{line}:" in str(err.value)


# -- rendering ---------------------------------------------------------------------------
def test_instruments_and_melodies():
    assert sorted(INSTRUMENTS) == ["accordion", "acoustic_guitar", "cello", "clarinet", "flute",
                                   "saxophone", "trumpet", "tuba", "violin", "xylophone"]
    assert INSTRUMENTS["violin"].programs == (40,) and INSTRUMENTS["flute"].programs == (73,)
    for name, inst in INSTRUMENTS.items():
        notes = make_melody(inst, np.random.default_rng(1), 3.0, 120.0, 2, "minor")
        assert notes and all(inst.low <= p <= inst.high and 30 <= v <= 127 and s < e
                             for s, e, p, v in notes), name
        assert notes[-1][0] < 3.0 <= notes[-1][0] + 2 * 60 / 120 * max(inst.beats)


def test_render_is_deterministic_and_order_independent():
    renderer = Renderer(default_soundfont(), 16000)
    notes = make_melody(INSTRUMENTS["violin"], np.random.default_rng(0), 1.0, 100.0, 0, "major")
    first = renderer.render(40, notes, 16000)
    renderer.render(73, make_melody(INSTRUMENTS["flute"], np.random.default_rng(1), 1.0, 100.0,
                                    0, "major"), 16000)
    assert np.array_equal(first, renderer.render(40, notes, 16000))
    assert is_audible(first, 16000) and not is_audible(first * 0, 16000)
    conf = SynthMusic(**TINY)
    a = conf.render_clip(renderer, 5, 3, ["cello", "flute"], equal_rms=True)
    b = conf.render_clip(renderer, 5, 3, ["cello", "flute"], equal_rms=True)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    rms = [np.sqrt(np.mean((a[k] / 32768.0) ** 2)) for k in a]
    assert rms == pytest.approx([0.05, 0.05], abs=2e-4)
    other = conf.render_clip(renderer, 5, 4, ["cello", "flute"], equal_rms=True)
    assert not np.array_equal(a["cello"], other["cello"])


def test_prepare_writes_consistent_splits(tiny):
    meta = json.loads((tiny / "meta.json").read_text())
    assert meta["sample_rate"] == 16000 and len(meta["soundfont_sha256"]) == 64
    assert meta["config"]["train_num_instruments"] == {"2": 0.4, "3": 0.3, "4": 0.3}
    expected = {"clap_pool": TINY["num_clap_singles"] + TINY["num_clap_mixtures"],
                "clap_heldout": TINY["num_heldout_singles"] + TINY["num_heldout_mixtures"],
                "train": TINY["num_train"], "valid": TINY["num_valid"], "test": TINY["num_test"]}
    assert meta["counts"] == expected
    manifests = {split: read_manifest(tiny / f"{split}.jsonl") for split in SPLITS}
    digests = set()
    for split, items in manifests.items():
        assert len(items) == expected[split]
        for item in items:
            assert item["id"].startswith(split + "_") and item["duration"] == 1.0
            assert item["labels"] == sorted(item["labels"])
            assert set(item["labels"]) <= set(INSTRUMENTS)
            audio, rate = sf.read(item["audio"], dtype="float32")
            assert rate == 16000 and audio.shape == (16000,)
            digests.add(md5(item["audio"]))
            if split.startswith("clap"):
                assert "stems" not in item
                continue
            stems = [sf.read(item["stems"][lab], dtype="float32")[0] for lab in item["labels"]]
            assert np.array_equal(audio, np.sum(stems, axis=0))  # exactly the sum
            if split in ("valid", "test"):
                rms = [np.sqrt(np.mean(s.astype(np.float64) ** 2)) for s in stems]
                assert len(stems) == 2 and rms[0] == pytest.approx(rms[1], rel=1e-3)
    assert len(digests) == sum(expected.values())  # no clip repeats, within or across splits
    singles = [it for it in manifests["clap_pool"] if len(it["labels"]) == 1]
    pairs = [it for it in manifests["clap_pool"] if len(it["labels"]) == 2]
    assert len(singles) == TINY["num_clap_singles"] and len(pairs) == TINY["num_clap_mixtures"]
    assert {it["labels"][0] for it in singles} == set(INSTRUMENTS)  # classes balanced
    assert {len(it["labels"]) for it in manifests["train"]} <= {2, 3, 4}


def test_prepare_again_is_a_noop_and_a_killed_run_is_redone(tiny, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="bisep")
    before = {p: p.stat().st_mtime_ns for p in tiny.rglob("*.wav")}
    SynthMusic(**TINY).prepare(tiny)
    assert "up to date" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in tiny.rglob("*.wav")} == before

    small = {**TINY, "num_train": 3, "num_test": 2, "num_clap_singles": 2}
    written = []
    real_write = synth_music.write_pcm16

    def dying_write(path, samples, rate):
        if len(written) == 25:
            raise KeyboardInterrupt
        written.append(path)
        return real_write(path, samples, rate)

    out = tmp_path / "data"
    monkeypatch.setattr(synth_music, "write_pcm16", dying_write)
    with pytest.raises(KeyboardInterrupt):
        SynthMusic(**small).prepare(out)
    monkeypatch.setattr(synth_music, "write_pcm16", real_write)
    assert not (out / "meta.json").exists() and not list(out.glob("*.jsonl"))
    assert not SynthMusic(**small).is_prepared(out)
    caplog.clear()
    SynthMusic(**small).prepare(out)
    assert "wrote" in caplog.text
    clean = tmp_path / "clean"
    SynthMusic(**small).prepare(clean)
    assert tree_digest(out) == tree_digest(clean)
    assert not SynthMusic(**{**small, "seed": 1}).is_prepared(out)  # another config redoes


CSOUND_SF2 = Path("/usr/share/sounds/sf2/sf_GMbank.sf2")  # tools/install.sh installs it


def test_clap_soundfonts_add_pool_clips_and_change_nothing_else(tiny, tmp_path):
    more = tmp_path / "more"
    meta = SynthMusic(**TINY, clap_soundfonts=[str(CSOUND_SF2)]).prepare(more)
    assert meta["clap_soundfonts_sha256"] == [sha256_of(CSOUND_SF2)]
    pool = read_manifest(more / "clap_pool.jsonl")
    base_pool = read_manifest(tiny / "clap_pool.jsonl")
    assert len(pool) == 2 * len(base_pool)
    # The first soundfont's clips and every other split are the same files as without it.
    base = {k: v for k, v in tree_digest(tiny).items() if k.startswith("wav/")}
    found = {k: v for k, v in tree_digest(more).items() if k.startswith("wav/")}
    assert {k: v for k, v in found.items() if k in base} == base
    new_clips = [p for p in found if p not in base]
    assert new_clips and all(p.startswith("wav/clap_pool/") for p in new_clips)
    # The extra soundfont renders other sounds (not a copy of the first one's clips).
    first, extra = pool[0], pool[len(base_pool)]
    assert md5(first["audio"]) != md5(extra["audio"])
    assert SynthMusic(**TINY, clap_soundfonts=[str(CSOUND_SF2)]).is_prepared(more)
    assert not SynthMusic(**TINY).is_prepared(more)
    with pytest.raises(DataError, match=r"clap_soundfonts: soundfont .*none.sf2 does not "
                                        r"exist.*csound-soundfont"):
        SynthMusic(clap_soundfonts=[str(tmp_path / "none.sf2")])
    with pytest.raises(DataError, match="clap_soundfonts must name .sf2 files"):
        SynthMusic(clap_soundfonts=[3])


def test_bad_config_is_refused(tmp_path):
    with pytest.raises(DataError, match="sum to 0.9"):
        SynthMusic(train_num_instruments={2: 0.5, 3: 0.4})
    with pytest.raises(DataError, match="numbers are 1..4"):
        SynthMusic(train_num_instruments={7: 1.0})
    with pytest.raises(DataError, match="does not exist"):
        SynthMusic(soundfont=str(tmp_path / "none.sf2"))
    with pytest.raises(DataError, match="num_train must be an integer"):
        SynthMusic(num_train=-1)


# -- MoM plans ---------------------------------------------------------------------------
def fake_items(count=60, seed=0):
    rng = np.random.default_rng(seed)
    names = list(INSTRUMENTS)
    return [{"id": f"c{i}", "labels": sorted(rng.choice(names, int(rng.integers(1, 5)),
                                                        replace=False).tolist())}
            for i in range(count)]


def test_plan_properties():
    items = fake_items()
    labels = {it["id"]: set(it["labels"]) for it in items}
    lines, supervised = make_mom_plan(items, 300, num_parts=2, seed=3)
    assert supervised == [] and not any(line["sup"] for line in lines)
    assert [line["id"] for line in lines[:2]] == ["mom_000000", "mom_000001"]
    for line in lines:
        a, b = line["parts"]
        assert not labels[a] & labels[b] and len(line["gains"]) == 2
        assert all(0.5 <= g <= 1.5 for g in line["gains"])
    assert make_mom_plan(items, 300, num_parts=2, seed=3)[0] == lines
    assert make_mom_plan(items, 300, num_parts=2, seed=4)[0] != lines
    three, _ = make_mom_plan(items, 50, num_parts=3, seed=0)
    assert all(len(set().union(*(labels[p] for p in line["parts"])))
               == sum(len(labels[p]) for p in line["parts"]) for line in three)


def test_plan_supervised_subset():
    items = fake_items(200)
    lines, supervised = make_mom_plan(items, 1000, supervised_fraction=0.25, seed=0)
    assert len(supervised) == 50
    subset = set(supervised)
    assert all(line["sup"] == all(p in subset for p in line["parts"]) for line in lines)
    assert 250 <= sum(line["sup"] for line in lines) <= 400  # 25 % drawn from it, plus chance
    lines, supervised = make_mom_plan(items, 100, supervised_fraction=1.0)
    assert len(supervised) == 200 and all(line["sup"] for line in lines)
    with pytest.raises(DataError, match="disjoint labels"):
        make_mom_plan([{"id": "a", "labels": ["x"]}, {"id": "b", "labels": ["x", "y"]}], 5)
    with pytest.raises(DataError, match="num_parts"):
        make_mom_plan(items, 5, num_parts=1)


def phrase_items(count=150, vocabulary=100, seed=0):
    """Clips with 1-3 labels drawn with Zipf weights from ``vocabulary`` phrases (like
    AudioCaps' caption phrases: beyond 62 labels, and a few labels in many clips)."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, vocabulary + 1))
    items = []
    for i in range(count):
        picks = cdf.searchsorted(rng.random(int(rng.integers(1, 4))) * cdf[-1], side="right")
        items.append({"id": f"c{i}", "labels": [f"p{k}" for k in dict.fromkeys(picks.tolist())]})
    return items


def plan_digest(lines):
    return hashlib.sha256(json.dumps(lines).encode()).hexdigest()[:16]


# Written by make_mom_plan before its sampler used a label index (issue 9): the plans of a
# seed must not change, or recipes' dump/ files would differ from the ones published.
PLANS_BEFORE = {
    "small": ("c10 c4 c21 c37 c6 c59 c58 c27 c36 c59 c12 c59 c10 c8 c46 c54 c46 c35 c6 c32 "
              "c15 c56 c9 c18",
              "c11 c44 c0 c24 c54 c9 c50 c49 c20 c45 c55 c53 c45 c43 c8 c7 c25 c55",
              "bc93b63cbb609c50", "1be42a1300923e3d"),
    "phrases": ("c25 c124 c70 c146 c126 c123 c64 c135 c68 c106 c27 c128 c25 c86 c69 c128 c67 "
                "c38 c31 c12 c62 c40 c100 c104",
                "c26 c114 c19 c68 c143 c114 c52 c129 c13 c8 c123 c95 c23 c64 c122 c32 c38 c23",
                "250e1e1d1f490000", "b70fe3abc53e72e6"),
}


def check_plans_as_before():
    for name, items in (("small", fake_items()), ("phrases", phrase_items())):
        two, three, digest_two, digest_three = PLANS_BEFORE[name]
        lines, _ = make_mom_plan(items, 12, num_parts=2, supervised_fraction=0.25, seed=5)
        assert " ".join(p for line in lines for p in line["parts"]) == two, name
        lines, _ = make_mom_plan(items, 6, num_parts=3, seed=1)
        assert " ".join(p for line in lines for p in line["parts"]) == three, name
        assert plan_digest(make_mom_plan(items, 300, num_parts=2, supervised_fraction=0.25,
                                         seed=5)[0]) == digest_two, name
        assert plan_digest(make_mom_plan(items, 300, num_parts=3, seed=1)[0]) == digest_three, name


def test_plan_same_as_before_the_label_index():
    check_plans_as_before()


@pytest.mark.parametrize("few", [0, 10 ** 9])
def test_plan_same_on_each_path(monkeypatch, few):
    """The numpy path (labels in many groups), the loop, and the float cdf that rng.choice
    builds (used near a boundary; here forced) all pick the same groups."""
    monkeypatch.setattr(plan_module, "_FEW", few)
    check_plans_as_before()
    real_init = plan_module._PartSampler.__init__

    def init(self, *args):
        real_init(self, *args)
        self.margin = 1.0  # every draw falls back

    monkeypatch.setattr(plan_module._PartSampler, "__init__", init)
    calls = []
    real_choice = plan_module._PartSampler._choice_group
    monkeypatch.setattr(plan_module._PartSampler, "_choice_group",
                        lambda self, u, blocked: calls.append(u) or real_choice(self, u, blocked))
    check_plans_as_before()
    assert len(calls) > 1000


def test_plan_parts_uniform_over_compatible_clips():
    """First part uniform over the clips, second uniform over those sharing no label with it:
    the counts of 24,000 draws against those probabilities (chi-square)."""
    from scipy.stats import chisquare

    labels = {"a": ["x"], "b": ["x", "y"], "c": ["y"], "d": ["z"], "e": ["z"], "f": ["w", "x"],
              "g": ["v"]}
    items = [{"id": key, "labels": value} for key, value in labels.items()]
    vocabulary = {lab: i for i, lab in enumerate(sorted({l for v in labels.values() for l in v}))}
    sampler = plan_module._PartSampler(items, vocabulary)
    expected = {}
    for first in labels:
        partners = [o for o in labels if not set(labels[o]) & set(labels[first])]
        for second in partners:
            expected[first, second] = 1 / len(labels) / len(partners)
    rng = np.random.default_rng(0)
    draws = 24000
    counts = Counter(tuple(sampler.draw(rng, 2)) for _ in range(draws))
    assert set(counts) <= set(expected)
    cells = sorted(expected)
    result = chisquare([counts[c] for c in cells], [expected[c] * draws for c in cells])
    assert result.pvalue > 1e-3, result


def test_plan_errors_name_file_line_and_fix(tiny, tmp_path):
    path = tmp_path / "plan.jsonl"
    write_plan(path, [{"id": "m0", "parts": ["train_000000", "train_000001"], "gains": [1, 1],
                       "sup": False},
                      {"id": "m1", "parts": ["train_000000", "nope"], "gains": [1, 1],
                       "sup": False}])
    with pytest.raises(DataError) as err:
        MoMDataset(path, tiny / "train.jsonl")
    assert f"{path}:2:" in str(err.value) and "'nope'" in str(err.value)
    assert "bisep mix" in str(err.value)
    path.write_text('{"id": "m0", "parts": ["a"], "gains": [1, 2], "sup": false}\n')
    with pytest.raises(DataError) as err:
        read_plan(path)
    assert_mentions(str(err.value), f"{path}:1:", "'gains'", "1 positive")


# -- the training Dataset ----------------------------------------------------------------
@pytest.fixture(scope="module")
def plan(tiny, tmp_path_factory):
    items = read_manifest(tiny / "train.jsonl")
    lines, _ = make_mom_plan(items, 12, supervised_fraction=0.5, seed=0)
    return write_plan(tmp_path_factory.mktemp("dump") / "mom_train.jsonl", lines)


def test_pad_phrases():
    phrases, weights, valid = pad_phrases(["cello", "flute", "violin"], 4)
    assert phrases == [phrase("cello"), phrase("flute"), phrase("violin"), phrase("cello")]
    assert weights == [0.5, 1.0, 1.0, 0.5] and valid == [True, True, True, False]
    assert pad_phrases(["tuba"], 4)[1] == [0.25] * 4


def test_dataset_items(tiny, plan):
    items = {it["id"]: it for it in read_manifest(tiny / "train.jsonl")}
    lines = read_plan(plan)
    ds = MoMDataset(plan, tiny / "train.jsonl", num_phrases=4, load_sources=True)
    assert len(ds) == len(lines)
    seen_sup = seen_weak = False
    for line, item in zip(lines, ds):
        parts = [items[p] for p in line["parts"]]
        assert item["id"] == line["id"]
        assert item["mom"].shape == (16000,) and item["mixtures"].shape == (2, 16000)
        for n, part in enumerate(parts):
            audio = torch.from_numpy(sf.read(part["audio"], dtype="float32")[0])
            assert torch.allclose(item["mixtures"][n], audio * line["gains"][n] / 2, atol=1e-7)
        assert torch.allclose(item["mom"], item["mixtures"].sum(0))
        assert item["mixture_prompts"] == [mixture_prompt(p["labels"]) for p in parts]
        assert item["phrase_weights"].shape == item["phrase_valid"].shape == (2, 4)
        assert item["phrase_valid"].sum(1).tolist() == [len(p["labels"]) for p in parts]
        assert torch.allclose(item["phrase_weights"].sum(1),
                              torch.tensor([float(len(p["labels"])) for p in parts]))
        if line["sup"]:
            seen_sup = True
            assert item["sources"].shape == (8, 16000) and len(item["source_prompts"]) == 8
            assert torch.equal(item["source_valid"], item["phrase_valid"].flatten())
            blocks = item["sources"].view(2, 4, -1)
            assert torch.allclose(blocks.sum(1), item["mixtures"], atol=1e-6)  # stems sum up
            assert item["source_prompts"][0] == phrase(parts[0]["labels"][0])
        else:
            seen_weak = True
            assert "sources" not in item and "source_valid" not in item
    assert seen_sup and seen_weak
    batch = collate_mom([ds[i] for i in range(len(ds))])
    b = len(ds)
    assert batch["mom"].shape == (b, 16000) and batch["mixtures"].shape == (b, 2, 16000)
    assert batch["sources"].shape == (b, 8, 16000) and batch["source_valid"].shape == (b, 8)
    assert len(batch["phrases"]) == b and len(batch["phrases"][0]) == 2
    assert len(batch["phrases"][0][0]) == 4 and len(batch["source_prompts"]) == b
    sup = torch.tensor([line["sup"] for line in lines])
    assert torch.equal(batch["source_valid"].any(1), sup)


def test_no_stem_is_opened_without_load_sources(tiny, plan, monkeypatch, tmp_path):
    opened = []
    real_read = mom_module.read_clip

    def spy(path, sample_rate):
        opened.append(path)
        return real_read(path, sample_rate)

    monkeypatch.setattr(mom_module, "read_clip", spy)
    items = read_manifest(tiny / "train.jsonl")
    stems = {path for it in items for path in it["stems"].values()}
    ds = MoMDataset(plan, tiny / "train.jsonl", load_sources=False)
    batch = collate_mom([ds[i] for i in range(len(ds))])
    assert opened and not stems & set(opened)
    assert set(opened) <= {it["audio"] for it in items}
    assert not batch["source_valid"].any() and "sources" not in batch
    # Each clip is decoded once, then served from memory.
    for i in range(len(ds)):
        ds[i]
    assert len(opened) == len(set(opened))
    # Weak training runs on data that has no stem files at all.
    bare = tmp_path / "data"
    shutil.copytree(tiny, bare)
    for path in (bare / "wav" / "train").glob("*/*.wav"):
        path.unlink()
    ds = MoMDataset(plan, bare / "train.jsonl", load_sources=False)
    assert all(ds[i]["mom"].shape == (16000,) for i in range(len(ds)))


def test_without_cache_nothing_is_kept(tiny, plan, monkeypatch, tmp_path):
    # cache=False (data.cache_audio: false, for corpora larger than RAM): the same items,
    # every file read again for each item, no decoded audio held between items.
    opened = []
    real_read = mom_module.read_clip

    def spy(path, sample_rate):
        opened.append(path)
        return real_read(path, sample_rate)

    cached = MoMDataset(plan, tiny / "train.jsonl", load_sources=True)
    expected_items = [cached[index] for index in range(len(cached))]
    monkeypatch.setattr(mom_module, "read_clip", spy)
    ds = MoMDataset(plan, tiny / "train.jsonl", load_sources=True, cache=False)
    reads = []
    for index, expected in enumerate(expected_items):
        before = len(opened)
        item = ds[index]
        reads.append(opened[before:])
        assert reads[-1] and ds._cache == {}
        for key in ("mom", "mixtures", "sources"):
            assert (key in item) == (key in expected)
            if key in item:
                torch.testing.assert_close(item[key], expected[key], rtol=0, atol=0)
    before = len(opened)
    ds[0]
    assert opened[before:] == reads[0] and ds._cache == {}
    # The training config's data.cache_audio (default true) reaches both training datasets.
    from bisep.config import DATA_KEYS
    from bisep.train.datamodule import MoMDataModule

    dump = tmp_path / "dump"
    dump.mkdir()
    shutil.copy(plan, dump / "mom_train.jsonl")
    valid, _ = make_mom_plan(read_manifest(tiny / "valid.jsonl"), 2, seed=0)
    write_plan(dump / "mom_valid.jsonl", valid)
    conf = {key: default for key, (_, default) in DATA_KEYS.items()}
    for cache in (True, False):
        module = MoMDataModule(tiny, dump, {**conf, "cache_audio": cache}, "none", 16000)
        module.setup()
        assert module.train_set.cache is cache and module.valid_set.cache is cache
    assert conf["cache_audio"] is True


def test_num_phrases_too_small_is_reported(tiny, plan):
    with pytest.raises(DataError, match="raise num_phrases"):
        MoMDataset(plan, tiny / "train.jsonl", num_phrases=1)


# -- command line ------------------------------------------------------------------------
def test_cli_prepare_and_mix(tmp_path):
    conf = REPO / "tests" / "recipe_tiny" / "data.yaml"
    data, dump = tmp_path / "data", tmp_path / "dump"
    out = run_cli("prepare", "synth_music", data, "--conf", conf, "num_test=4", check=True)
    assert "wrote" in out.stdout and len(read_manifest(data / "test.jsonl")) == 4
    out = run_cli("prepare", "synth_music", "--conf", conf, data, "num_test=4", check=True)
    assert "up to date" in out.stdout
    out = run_cli("mix", "--data-dir", data, "--dump-dir", dump, "--num-train-mom", "30",
                  "--num-valid-mom", "5", "--supervised-fraction", "0.5", check=True)
    train = read_plan(dump / "mom_train.jsonl")
    valid = read_plan(dump / "mom_valid.jsonl")
    assert len(train) == 30 and len(valid) == 5 and all(line["sup"] for line in valid)
    sup_ids = (dump / "sup_ids.txt").read_text().split()
    assert len(sup_ids) == TINY["num_train"] // 2
    assert {p for line in valid for p in line["parts"]} <= \
        {it["id"] for it in read_manifest(data / "valid.jsonl")}
    run_cli("mix", "--data-dir", data, "--dump-dir", dump, "--num-train-mom", "30", check=True)
    assert not (dump / "sup_ids.txt").exists()
    assert not any(line["sup"] for line in read_plan(dump / "mom_train.jsonl"))
    assert MoMDataset(dump / "mom_valid.jsonl", data / "valid.jsonl")[0]["mom"].shape == (16000,)


def test_cli_errors(tmp_path):
    out = run_cli("prepare", "synth_music", tmp_path / "d", "num_trian=3")
    assert out.returncode == 2 and "Did you mean 'num_train'" in out.stderr
    out = run_cli("prepare", "synth_musik", tmp_path / "d")
    assert out.returncode == 2 and "Did you mean 'synth_music'" in out.stderr
    out = run_cli("mix", "--data-dir", tmp_path / "nowhere", "--dump-dir", tmp_path / "dump")
    assert out.returncode == 2 and "bisep prepare" in out.stderr


def test_check_clips_names_a_bad_clip_before_training(tiny, plan, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(tiny, data)
    ds = MoMDataset(plan, data / "train.jsonl", load_sources=True)
    assert ds.check_clips() == len(ds._cache) > 0  # cached: every file read whole
    paths = list(ds._cache)
    audio, rate = sf.read(paths[-1], dtype="float32")
    audio[10] = np.inf
    sf.write(paths[-1], audio, rate, subtype="FLOAT")
    with pytest.raises(DataError) as err:
        MoMDataset(plan, data / "train.jsonl", load_sources=True).check_clips()
    assert_mentions(str(err.value), f"{paths[-1]}:", "1 samples", "NaN or infinite")
    sf.write(paths[-1], np.zeros(audio.shape[0] - 5, "float32"), rate)
    # Without the cache only a sample is read whole; the headers still give the length.
    monkeypatch.setattr(MoMDataset, "CHECK_SAMPLE", 1)
    ds = MoMDataset(plan, data / "train.jsonl", load_sources=True, cache=False)
    with pytest.raises(DataError, match=rf"{paths[-1]}: {audio.shape[0] - 5} samples, but "):
        ds.check_clips()
    assert ds._cache == {}


def test_plain_names_are_the_ones_that_can_name_a_file():
    from bisep.data.manifest import is_plain_name

    assert is_plain_name("train_000123") and is_plain_name("é" * 125)
    assert not any(is_plain_name(name) for name in
                   ["", ".hidden", "a/b", "a\\b", "é" * 126, 3, None])
