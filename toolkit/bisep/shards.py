"""Lists split into shards for parallel jobs, and the jobs' outputs merged back.

Recipe stages 5 and 6 (``recipes/bisep.sh --nj N``) cut a JSON-lines list (a data manifest,
or the ``items.jsonl`` that ``bisep separate --list`` writes) into N contiguous shards, run
one ``bisep separate`` or ``bisep score`` job per shard through the recipe's job backend
(``--cmd``), and merge what the jobs wrote::

    split_list(list, nj, out_dir)          out_dir/<name>.<n>.jsonl, n = 1..N, in order
    merge_separated(shard_dirs, manifest, out_dir)
                                           out_dir/items.jsonl, out_dir/separation.json
    merge_scores(shard_dirs, out_dir)      out_dir/per_item.csv, out_dir/summary.json

Shards are contiguous blocks in list order, so the merged files list the items in the order
of the original list, whatever N is. The merged ``per_item.csv`` is the jobs' rows, and
``summary.json`` (the format of ``bisep score``) is computed from those rows as written
(4 decimals): a merge of one shard and a merge of N give the same bytes.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path

from bisep.atomic import write_text_atomic
from bisep.errors import UserError
from bisep.metrics.aggregate import summarize_rows
from bisep.metrics.report import json_text

# The keys of a manifest line or a score-list line that hold a path, or a map of paths,
# relative to the list's folder (bisep.data.manifest, bisep.metrics.files).
PATH_KEYS = ("audio", "mixture")
PATH_MAP_KEYS = ("stems", "sources", "estimates")


class ShardError(ValueError, UserError):
    """A list that cannot be split, or job outputs that cannot be merged (named)."""


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ShardError(f"{path}: no such list file")
    return [line for line in path.read_text().splitlines() if line.strip()]


def _rebased(line: str, where: str, base: Path, to: Path) -> str:
    """A list line whose relative paths, taken from ``base``, are rewritten relative to
    ``to`` (absolute paths stay as they are)."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ShardError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(entry, dict):
        raise ShardError(f"{where}: expected one JSON object per line")

    def move(path):
        if not isinstance(path, str) or os.path.isabs(path):
            return path
        return os.path.relpath(os.path.normpath(base / path), to)

    for key in PATH_KEYS:
        if key in entry:
            entry[key] = move(entry[key])
    for key in PATH_MAP_KEYS:
        if isinstance(entry.get(key), dict):
            entry[key] = {name: move(path) for name, path in entry[key].items()}
    return json.dumps(entry)


def shard_sizes(total: int, nj: int) -> list[int]:
    """Sizes of ``min(nj, total)`` contiguous shards of ``total`` lines, differing by at
    most one (the first ones the larger)."""
    nj = min(nj, total)
    return [total // nj + (n < total % nj) for n in range(nj)]


def split_list(path: str | Path, nj: int, out_dir: str | Path) -> list[Path]:
    """Write ``out_dir/<name>.<n>.jsonl`` for n = 1..min(nj, lines): contiguous blocks of
    the list's non-empty lines, relative paths rewritten to hold from ``out_dir``.

    Raises:
        ShardError: no such list, a list without lines, a line that is not a JSON object,
            or ``nj`` below 1.
    """
    path, out_dir = Path(path), Path(out_dir)
    if not isinstance(nj, int) or nj < 1:
        raise ShardError(f"the number of jobs must be at least 1, got {nj!r}")
    lines = _lines(path)
    if not lines:
        raise ShardError(f"{path} lists no items: nothing to split")
    out_dir.mkdir(parents=True, exist_ok=True)
    base, to = path.parent.resolve(), out_dir.resolve()
    stem = path.name[:-len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    shards, start = [], 0
    for number, size in enumerate(shard_sizes(len(lines), nj), start=1):
        block = [_rebased(line, f"{path}:{start + i + 1}", base, to)
                 for i, line in enumerate(lines[start:start + size])]
        shards.append(write_text_atomic(out_dir / f"{stem}.{number}.jsonl",
                                        "".join(line + "\n" for line in block)))
        start += size
    return shards


def _job_file(folder: Path, name: str, stage: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise ShardError(f"{path} does not exist: the {stage} job of {folder} did not finish; "
                         f"see its log, then run the stage again (finished jobs are kept)")
    return path


def merge_separated(shard_dirs: list[str | Path], manifest: str | Path,
                    out_dir: str | Path) -> Path:
    """Merge the ``items.jsonl`` of ``bisep separate --list`` jobs (one per shard, in shard
    order) into ``out_dir/items.jsonl``, paths relative to ``out_dir``; write
    ``out_dir/separation.json`` naming the whole ``manifest`` and each job's record.

    Raises:
        ShardError: a job folder without ``items.jsonl`` (the job failed or did not run).
    """
    out_dir = Path(out_dir)
    to = out_dir.resolve()
    lines, records = [], []
    for folder in map(Path, shard_dirs):
        items = _job_file(folder, "items.jsonl", "separation")
        base = folder.resolve()
        lines += [_rebased(line, f"{items}:{n}", base, to)
                  for n, line in enumerate(_lines(items), start=1)]
        record = folder / "separation.json"
        records.append(json.loads(record.read_text()) if record.is_file() else {})
    summary = {"manifest": str(Path(manifest).resolve()), "jobs": len(records),
               "shards": [str(Path(d).resolve()) for d in shard_dirs], "job_records": records}
    write_text_atomic(out_dir / "separation.json", json.dumps(summary, indent=2) + "\n")
    return write_text_atomic(out_dir / "items.jsonl", "".join(line + "\n" for line in lines))


def merge_scores(shard_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """Merge the ``per_item.csv`` and ``summary.json`` of ``bisep score`` jobs (in shard
    order) into ``out_dir``; the statistics are computed from the merged rows.

    Returns:
        The merged summary (the format of ``bisep score``'s ``summary.json``).

    Raises:
        ShardError: a job folder without its outputs, or jobs that disagree on the backend,
            the sample rate or the metric columns.
    """
    header, rows, texts, summaries = None, [], [], []
    for folder in map(Path, shard_dirs):
        table = _job_file(folder, "per_item.csv", "scoring").read_text()
        summaries.append(json.loads(_job_file(folder, "summary.json", "scoring").read_text()))
        first, *body = table.splitlines()
        if header is not None and first != header:
            raise ShardError(f"{folder}/per_item.csv has the columns {first}, another job "
                             f"{header}: score every shard with the same options")
        header = first
        texts += body
        rows += list(csv.DictReader(io.StringIO(table)))
    for key in ("backend", "sample_rate"):
        values = {s[key] for s in summaries if s["rows"]}
        if len(values) > 1:
            raise ShardError(f"the scoring jobs of {out_dir} disagree on the {key} "
                             f"({sorted(map(str, values))}): score every shard alike")
    columns = header.split(",")[2:]
    for row in rows:
        for column in columns:
            row[column] = float(row[column])
    scored = [s for s in summaries if s["rows"]] or summaries
    skipped = [entry for s in summaries for entry in s["skipped"]["items"]]
    by_reason = Counter()
    for s in summaries:
        by_reason.update(s["skipped"]["by_reason"])
    listed = sum(s["items"]["listed"] for s in summaries)
    # Absent from the summaries of versions that listed only items with references.
    unreferenced = sum(s["items"].get("without_references", 0) for s in summaries)
    summary = {
        "backend": scored[0]["backend"],
        "sample_rate": scored[0]["sample_rate"],
        "items": {"listed": listed, "scored": listed - len(skipped) - unreferenced,
                  "skipped": len(skipped), "without_references": unreferenced},
        "rows": len(rows),
        "metrics": summarize_rows(rows, columns),
        "by_source": summarize_rows(rows, columns, group_by="source"),
        "skipped": {"by_reason": dict(by_reason), "items": skipped},
        "trimmed": {"items": sum(s["trimmed"]["items"] for s in summaries),
                    "max_samples": max(s["trimmed"]["max_samples"] for s in summaries)},
    }
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "per_item.csv", "".join(f"{line}\n" for line in [header, *texts]))
    write_text_atomic(out_dir / "summary.json", json_text(summary))
    return summary
