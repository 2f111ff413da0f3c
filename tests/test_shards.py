"""bisep.shards: lists split for parallel jobs and the jobs' outputs merged back (the
recipe's --nj); the recipe run itself is in tests/test_recipe.py."""
import json

import pytest

from bisep.shards import ShardError, merge_scores, merge_separated, shard_sizes, split_list
from conftest import assert_mentions, run_cli


def test_shard_sizes_are_contiguous_and_balanced():
    assert shard_sizes(5, 3) == [2, 2, 1]
    assert shard_sizes(2, 8) == [1, 1]  # never an empty shard
    assert shard_sizes(6, 1) == [6]


def test_split_keeps_order_and_rebases_relative_paths(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = [{"id": f"x{i}", "audio": f"wav/x{i}.wav", "labels": ["a"],
              "stems": {"a": f"wav/x{i}_a.wav"}} for i in range(5)]
    lines[4]["audio"] = "/abs/x4.wav"
    (data / "test.jsonl").write_text("".join(json.dumps(line) + "\n\n" for line in lines))
    shards = split_list(data / "test.jsonl", 3, tmp_path / "exp" / "split")
    assert [p.name for p in shards] == ["test.1.jsonl", "test.2.jsonl", "test.3.jsonl"]
    read = [json.loads(line) for p in shards for line in p.read_text().splitlines()]
    assert [line["id"] for line in read] == [f"x{i}" for i in range(5)]
    assert read[0]["audio"] == "../../data/wav/x0.wav"
    assert read[0]["stems"] == {"a": "../../data/wav/x0_a.wav"}
    assert read[4]["audio"] == "/abs/x4.wav"
    with pytest.raises(ShardError, match="at least 1"):
        split_list(data / "test.jsonl", 0, tmp_path / "s")
    (data / "bad.jsonl").write_text('{"id": 1}\n[1]\n')
    with pytest.raises(ShardError, match=r"bad.jsonl:2: expected one JSON object"):
        split_list(data / "bad.jsonl", 2, tmp_path / "s")


def write_job(folder, rows, skipped=(), backend="fast", rate=16000):
    folder.mkdir(parents=True)
    (folder / "per_item.csv").write_text(
        "item,source,sdr\n" + "".join(f"{i},{s},{v:.4f}\n" for i, s, v in rows))
    listed = len({r[0] for r in rows}) + len(skipped)
    (folder / "summary.json").write_text(json.dumps({
        "backend": backend, "sample_rate": rate,
        "items": {"listed": listed, "scored": listed - len(skipped), "skipped": len(skipped)},
        "rows": len(rows), "metrics": {}, "by_source": {},
        "skipped": {"by_reason": {"silent reference": len(skipped)} if skipped else {},
                    "items": [{"id": s, "reason": "silent"} for s in skipped]},
        "trimmed": {"items": 0, "max_samples": 0}}))


def test_merge_scores_is_the_same_for_any_number_of_jobs(tmp_path):
    rows = [("a", "x", 1.0), ("a", "y", 3.0), ("b", "x", float("inf")), ("c", "y", -2.5)]
    write_job(tmp_path / "one" / "1", rows, skipped=["d"])
    write_job(tmp_path / "two" / "1", rows[:2])
    write_job(tmp_path / "two" / "2", rows[2:], skipped=["d"])
    merge_scores([tmp_path / "one" / "1"], tmp_path / "out1")
    summary = merge_scores([tmp_path / "two" / "1", tmp_path / "two" / "2"], tmp_path / "out2")
    for name in ("per_item.csv", "summary.json"):
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()
    assert summary["items"] == {"listed": 4, "scored": 3, "skipped": 1,
                                "without_references": 0}
    assert summary["by_source"]["y"]["sdr"]["mean"] == pytest.approx(0.25)
    assert json.loads((tmp_path / "out2" / "summary.json").read_text())["metrics"]["sdr"][
        "mean"] == "inf"  # strict JSON, as bisep score writes it

    write_job(tmp_path / "mixed" / "1", rows[:2])
    write_job(tmp_path / "mixed" / "2", rows[2:], backend="mir_eval")
    with pytest.raises(ShardError, match="disagree on the backend"):
        merge_scores([tmp_path / "mixed" / "1", tmp_path / "mixed" / "2"], tmp_path / "out3")
    with pytest.raises(ShardError) as err:
        merge_scores([tmp_path / "two" / "1", tmp_path / "two" / "3"], tmp_path / "out4")
    assert_mentions(str(err.value), tmp_path / "two" / "3" / "per_item.csv", "does not exist",
                    "scoring job")


def test_merge_separated_points_into_the_job_folders(tmp_path):
    for n, ids in ((1, ["a", "b"]), (2, ["c"])):
        job = tmp_path / "sep" / "split2" / str(n)
        job.mkdir(parents=True)
        (job / "items.jsonl").write_text("".join(json.dumps(
            {"id": i, "mixture": f"../../../data/{i}.wav", "sources": {"x": f"../../../data/{i}_x.wav"},
             "estimates": {"x": f"{i}/x.wav"}}) + "\n" for i in ids))
        (job / "separation.json").write_text(json.dumps({"manifest": f"test.{n}.jsonl"}))
    merge_separated([tmp_path / "sep" / "split2" / "1", tmp_path / "sep" / "split2" / "2"],
                    tmp_path / "data" / "test.jsonl", tmp_path / "sep")
    merged = [json.loads(line) for line in (tmp_path / "sep" / "items.jsonl").read_text().splitlines()]
    assert [m["id"] for m in merged] == ["a", "b", "c"]
    assert merged[2] == {"id": "c", "mixture": "../data/c.wav", "sources": {"x": "../data/c_x.wav"},
                         "estimates": {"x": "split2/2/c/x.wav"}}
    record = json.loads((tmp_path / "sep" / "separation.json").read_text())
    assert record["manifest"] == str(tmp_path / "data" / "test.jsonl") and record["jobs"] == 2
    with pytest.raises(ShardError, match="the separation job of .* did not finish"):
        merge_separated([tmp_path / "sep" / "split2" / "3"], tmp_path / "t.jsonl", tmp_path / "o")


def test_cli_prints_the_shard_count_and_reports_errors(tmp_path):
    (tmp_path / "l.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n')
    out = run_cli("shards", "split", tmp_path / "l.jsonl", "--nj", "4", "--out-dir", tmp_path / "s")
    assert out.returncode == 0 and out.stdout.strip() == "2"
    out = run_cli("shards", "merge-scores", "--out-dir", tmp_path / "o", tmp_path / "s")
    assert out.returncode == 2 and "per_item.csv does not exist" in out.stderr
    out = run_cli("train", "--config", "x.yaml", "--print_config",
                  env_extra={"BISEP_LOG_LEVEL": "LOUD"})
    assert out.returncode == 2 and "BISEP_LOG_LEVEL=LOUD: use DEBUG" in out.stderr
