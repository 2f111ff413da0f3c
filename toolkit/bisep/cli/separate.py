"""``bisep separate``: extract what the queries describe from files, folders or a manifest.

Files and folders::

    bisep separate exp/weak/model.pth --query violin --query flute song.wav more/ -o out/

writes ``out/song_violin.wav``, ``out/song_flute.wav``, ... at each input's own rate and
channel count. In folder mode every ``.wav``/``.flac`` inside is processed; a bad file is
reported and the others still run (exit status 1 if any failed).

A data manifest (recipe stage 5)::

    bisep separate exp/weak --list data/test.jsonl -o exp/weak/separated

separates each line's mixture ``audio`` with one query per label (the line's
``phrases``, else :func:`bisep.data.prompts.phrase`, e.g. "the sound of a violin") and writes
``out/<id>/<label>.wav`` plus ``out/items.jsonl`` for ``bisep score --list`` (mixture,
the manifest's ``stems`` as references, the estimates; paths relative to ``out``).
``out/separation.json`` records the model (sha256) and settings. A re-run skips items
whose outputs all exist; if the model or settings changed, the old outputs of the
listed items are deleted first and every item is separated again. ``items.jsonl`` is
written only when no item failed, so scoring never sees a partial set by accident.
"""
from __future__ import annotations

import sys
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac")


def add_parser(sub):
    p = sub.add_parser("separate", help="separate audio files with a trained model",
                       description="Separate one output per query from audio files or folders "
                                   "of them (written as <out_dir>/<input stem>_<query>.wav), "
                                   "or every mixture of a data manifest with one query per "
                                   "label (--list; written as <out_dir>/<id>/<label>.wav "
                                   "plus <out_dir>/items.jsonl for `bisep score --list`). "
                                   "Outputs are written atomically.")
    p.add_argument("model", help="a checkpoint file or a model directory holding model.pth")
    p.add_argument("inputs", nargs="*", help="audio files (.wav, .flac) or folders of them")
    p.add_argument("--list", metavar="MANIFEST.jsonl",
                   help="a data manifest (e.g. data/test.jsonl) instead of inputs: each line's "
                        "audio is separated with one query per label; re-runs skip items "
                        "already done")
    p.add_argument("-o", "--out-dir", required=True, help="where to write the outputs")
    p.add_argument("--query", action="append", default=[], metavar="TEXT",
                   help="text of what to extract (repeatable)")
    p.add_argument("--audio-query", action="append", default=[], metavar="WAV",
                   help="an example recording of what to extract (repeatable)")
    p.add_argument("--negative", metavar="TEXT",
                   help="what to keep out, applied to every query (e.g. 'speech')")
    p.add_argument("--negative-weight", type=float, default=0.5,
                   help="how far to move away from --negative, in (0, 1] (default 0.5)")
    p.add_argument("--chunk-seconds", type=float, default=8.0,
                   help="process long files in chunks of this length (default 8; 0 = whole file)")
    p.add_argument("--overlap", type=float, default=0.25,
                   help="fraction of a chunk cross-faded with the next (default 0.25)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders expanded to their audio files (sorted)."""
    from bisep.cli.main import CliError

    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise CliError(f"{item}: folder holds no .wav or .flac files")
            files.extend(found)
        else:
            files.append(item)  # a missing file is reported when it is read
    return files


def build_queries(args):
    from bisep import audio
    from bisep.cli.main import CliError
    from bisep.conditioners.query import Query

    import torch

    if not args.query and not args.audio_query:
        raise CliError("no query given: add --query TEXT (e.g. --query violin) or "
                       "--audio-query example.wav")
    queries, names = [], []
    try:
        for text in args.query:
            queries.append(Query(text=text, negative=args.negative,
                                 negative_weight=args.negative_weight))
            names.append(text)
        for path in args.audio_query:
            wav, rate = audio.read(path)
            queries.append(Query(audio=torch.from_numpy(wav), audio_rate=rate,
                                 negative=args.negative, negative_weight=args.negative_weight))
            names.append(Path(path).stem)  # outputs are named after the example file
    except ValueError as exc:  # AudioError included: a bad example file
        raise CliError(str(exc)) from None
    return queries, names


def load_separator(args):
    """The :class:`bisep.inference.Separator` of ``args.model``; user errors as CliError."""
    from bisep.checkpoint import CheckpointError
    from bisep.cli.main import CliError, user_errors
    from bisep.inference import Separator

    try:
        return Separator.from_pretrained(
            args.model, device=args.device, overlap=args.overlap,
            chunk_seconds=args.chunk_seconds or None)
    except (CheckpointError, *user_errors()) as exc:
        raise CliError(str(exc)) from None


def run(args) -> int:
    from bisep.cli.main import CliError

    if args.list:
        if args.inputs or args.query or args.audio_query:
            raise CliError("--list takes its inputs and queries from the manifest (one query "
                           "per label); drop the input files, --query and --audio-query.")
        return run_list(args)
    if not args.inputs:
        raise CliError("no input given: name audio files or folders, or a manifest with "
                       "--list data/test.jsonl")
    return run_files(args)


def run_files(args) -> int:
    from bisep import audio
    from bisep.cli.main import user_errors
    from bisep.inference import query_slug

    queries, names = build_queries(args)
    files = collect_inputs(args.inputs)
    separator = load_separator(args)
    slugs = [query_slug(name) for name in names]
    out_dir = Path(args.out_dir)
    failures = 0
    bar = _progress(args, len(files), "file")
    for path in files:
        try:
            wav, rate = audio.read(path)
            stems = separator.separate(wav, queries, rate)
            for slug, stem in zip(slugs, stems):
                audio.write(out_dir / f"{path.stem}_{slug}.wav", stem, rate)
        except (ValueError, *user_errors()) as exc:
            failures += 1
            print(f"bisep separate: skipped {path}: {exc}", file=sys.stderr)
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    done = len(files) - failures
    print(f"separated {done} of {len(files)} file(s) into {out_dir} "
          f"({len(slugs)} output(s) each)")
    return 1 if failures else 0


def run_list(args) -> int:
    """``--list`` mode (see the module docstring)."""
    import json

    from bisep import audio
    from bisep.cli.main import CliError, user_errors
    from bisep.conditioners.query import Query
    from bisep.atomic import write_text_atomic
    from bisep.data.manifest import item_phrases, read_manifest

    try:
        entries = read_manifest(args.list)
    except (ValueError, *user_errors()) as exc:
        raise CliError(str(exc)) from None
    if not entries:
        raise CliError(f"{args.list}: the manifest lists no items.")
    separator = load_separator(args)
    out_dir = Path(args.out_dir)
    _start_or_resume(out_dir, args, entries)

    records, failures, resumed, no_stems = [], 0, 0, 0
    bar = _progress(args, len(entries), "item")
    for entry in entries:
        try:
            labels = _estimate_names(entry)
            targets = {label: out_dir / entry["id"] / f"{label}.wav" for label in labels}
            if all(path.exists() for path in targets.values()):
                resumed += 1  # atomic writes: a file that exists is complete
            else:
                wav, rate = audio.read(entry["audio"])
                queries = [Query(text=text, negative=args.negative,
                                 negative_weight=args.negative_weight)
                           for text in item_phrases(entry)]
                for label, stem in zip(labels, separator.separate(wav, queries, rate)):
                    audio.write(targets[label], stem, rate)
            if entry.get("stems"):
                records.append(_score_record(entry, targets, out_dir))
            else:
                no_stems += 1
        except (ValueError, *user_errors()) as exc:
            failures += 1
            print(f"bisep separate: skipped item '{entry['id']}' of {args.list}: {exc}",
                  file=sys.stderr)
        if bar:
            bar.update(1)
    if bar:
        bar.close()

    items_path = out_dir / "items.jsonl"
    done = len(entries) - failures
    print(f"separated {done} of {len(entries)} item(s) of {args.list} into {out_dir} "
          f"({resumed} already done)")
    if no_stems:
        print(f"{no_stems} item(s) have no stems (references), so they are not listed in "
              f"{items_path} for scoring")
    if failures:
        items_path.unlink(missing_ok=True)
        print(f"bisep separate: {failures} item(s) failed; {items_path} is written once every "
              f"item is separated: fix them and re-run (finished items are kept).",
              file=sys.stderr)
        return 1
    write_text_atomic(items_path, "".join(json.dumps(record) + "\n" for record in records))
    print(f"wrote {items_path} ({len(records)} item(s) to score)")
    return 0


def _estimate_names(entry: dict) -> list[str]:
    """The labels of a manifest entry (checked by ``read_manifest``), which name its
    queries and output files.

    Raises:
        ValueError: an id or label that is not a plain file name.
    """
    for name in (entry["id"], *entry["labels"]):
        if not _plain_name(name):
            raise ValueError(f"{name!r} cannot name an output file or folder (empty, hidden "
                             f"or with a path separator); rename it in the manifest")
    return list(entry["labels"])


def _plain_name(name) -> bool:
    """A non-empty, non-hidden file name without path separators."""
    return (isinstance(name, str) and bool(name) and not name.startswith(".")
            and "/" not in name and "\\" not in name)


def _score_record(entry: dict, targets: dict, out_dir: Path) -> dict:
    """One ``bisep score --list`` line; paths relative to ``out_dir`` so the folder moves
    with the data it points to."""
    import os

    def rel(path) -> str:
        return os.path.relpath(Path(path).resolve(), out_dir.resolve())

    return {"id": entry["id"], "mixture": rel(entry["audio"]),
            "sources": {label: rel(entry["stems"][label]) for label in targets},
            "estimates": {label: rel(path) for label, path in targets.items()}}


def _fingerprint(args) -> dict:
    """What the outputs depend on: the model file's hash and the separation settings
    (not its path: a moved experiment folder keeps its outputs)."""
    import hashlib

    model = Path(args.model)
    if model.is_dir():  # as bisep.checkpoint.load resolves a model directory
        model = next(p for p in (model / "model.pth", model / "best_model.pth") if p.exists())
    digest = hashlib.sha256()
    with open(model, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"model_sha256": digest.hexdigest(), "chunk_seconds": args.chunk_seconds,
            "overlap": args.overlap, "negative": args.negative,
            "negative_weight": args.negative_weight}


def _start_or_resume(out_dir: Path, args, entries: list[dict]) -> None:
    """Write ``separation.json``; if an earlier run used another model or settings,
    delete its outputs for the listed items first, so that a resumed run never mixes
    estimates of two models."""
    import json

    from bisep.atomic import write_text_atomic

    stamp = _fingerprint(args)
    record = out_dir / "separation.json"
    if record.exists():
        try:
            previous = json.loads(record.read_text())
        except json.JSONDecodeError:
            previous = {}
        changed = sorted(k for k in stamp if previous.get(k) != stamp[k])
        if changed:
            print(f"{out_dir} was separated with another {', '.join(changed)}; "
                  f"separating every item again", file=sys.stderr)
            (out_dir / "items.jsonl").unlink(missing_ok=True)
            for entry in entries:
                for label in entry["labels"]:
                    # Only names the loop could have written (see _estimate_names).
                    if _plain_name(entry["id"]) and _plain_name(label):
                        (out_dir / entry["id"] / f"{label}.wav").unlink(missing_ok=True)
    stamp.update(model=str(Path(args.model).resolve()), manifest=str(Path(args.list).resolve()))
    write_text_atomic(record, json.dumps(stamp, indent=2) + "\n")


def _progress(args, total: int, unit: str):
    if args.no_progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr)
