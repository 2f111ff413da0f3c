"""``bisep separate``: extract what the queries describe from files, folders or a manifest.

Files and folders::

    bisep separate exp/weak/model.pth --query violin --query flute song.wav more/ -o out/

writes ``out/song_violin.wav``, ``out/song_flute.wav``, ... at each input's own rate and
channel count. In folder mode every ``.wav``/``.flac`` inside is processed, and a file in a
subfolder is written to the same subfolder of ``out/``; a bad file is reported and the others
still run (exit status 1 if any failed).

Before any work, the run is refused when two inputs (or two queries) would write the same
output, when an output would replace an input, when ``-o`` lies inside an input folder, or
when ``-o`` is not writable or lacks the space the outputs need; an ``--audio-query`` file is
embedded once up front, so a bad example is reported as itself, not as the input's fault.
The output folder is locked while the run writes it (:mod:`bisep.outdir`): a second run into
it stops with a message naming the first.

A data manifest (recipe stage 5)::

    bisep separate exp/weak --list data/test.jsonl -o exp/weak/separated

separates each line's mixture ``audio`` with one query per label (the line's
``phrases``, else :func:`bisep.data.prompts.phrase`, e.g. "the sound of a violin") and writes
``out/<id>/<label>.wav`` plus ``out/items.jsonl`` for ``bisep score --list`` (mixture,
the manifest's ``stems`` as references, the estimates; paths relative to ``out``).
``out/separation.json`` records the model (sha256), the manifest (path and sha256) and the
settings. A re-run skips items whose outputs all exist; if any of them changed, the old
outputs of the listed items are deleted first and every item is separated again. ``items.jsonl`` is
written only when no item failed, so scoring never sees a partial set by accident.
"""
from __future__ import annotations

import sys
from contextlib import ExitStack, contextmanager
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


def collect_inputs(inputs: list[str]) -> list[tuple[Path, Path]]:
    """``(file, output subfolder)`` pairs: files as given (written to ``-o`` itself), folders
    expanded to their audio files, sorted, each written to its subfolder's place under ``-o``
    (so ``in/a/x.wav`` and ``in/b/x.wav`` do not write the same output)."""
    from bisep.cli.main import CliError

    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                           and not p.name.startswith("."))  # not bisep's temporary files
            if not found:
                raise CliError(f"{item}: folder holds no .wav or .flac files")
            files.extend((p, p.parent.relative_to(item)) for p in found)
        else:
            files.append((item, Path()))  # a missing file is reported when it is read
    return files


def plan_outputs(files: list[tuple[Path, Path]], slugs: list[str], out_dir: Path,
                 inputs: list[str], audio_queries: list[str]) -> list[list[Path]]:
    """The output paths of each input file, one per query.

    Raises:
        CliError: two inputs or two queries would write one file, an output would replace
            an input, or ``out_dir`` lies inside an input folder.
    """
    from bisep.cli.main import CliError
    from bisep.inference import output_name

    resolved_out = out_dir.resolve()
    for item in map(Path, inputs):
        if item.is_dir() and resolved_out.is_relative_to(item.resolve()):
            raise CliError(f"-o {out_dir} lies inside the input folder {item}: the outputs "
                           f"would mix with the inputs, and a re-run would separate them "
                           f"again. Choose an output folder outside it.")
    read = {path.resolve(): path for path in
            [*(f for f, _ in files), *map(Path, audio_queries)]}
    seen, plan = {}, []
    for path, sub in files:
        outputs = [out_dir / sub / output_name(path.stem, slug) for slug in slugs]
        for out in outputs:
            key = out.resolve()
            if key in read:
                raise CliError(f"-o {out_dir}: the output {out} would overwrite the input "
                               f"{read[key]} before it is read. Choose another output folder.")
            if key in seen:
                first = seen[key]
                why = (f"the inputs {first} and {path} have the same name" if first != path
                       else "two queries have the same file-name label")
                raise CliError(f"{why}: both would be written to {out}. Rename one, or "
                               f"separate them into different output folders.")
            seen[key] = path
        plan.append(outputs)
    return plan


def output_bytes(paths, outputs_each: int) -> int:
    """About how many bytes the float32 outputs of these audio files take (unreadable files
    count nothing: they are reported when they are read)."""
    from bisep import audio

    total = 0
    for path in paths:
        try:
            info = audio.info(path)
        except (ValueError, OSError):
            continue
        total += outputs_each * (info.frames * info.channels * 4 + 4096)
    return total


@contextmanager
def prepared(out_dir: Path, need_bytes: int):
    """:func:`bisep.outdir.prepare` for ``-o``; a folder it refuses is a CliError."""
    from bisep.cli.main import CliError
    from bisep.outdir import OutputError, prepare

    with ExitStack() as stack:
        try:
            stack.enter_context(prepare(out_dir, need_bytes, option="-o"))
        except OutputError as exc:
            raise CliError(str(exc)) from None
        yield out_dir


def reason(exc: BaseException) -> str:
    """A per-file failure as the user sees it: a user error's own message; anything else
    (a bug, or a case no check caught) with its type, so that it can be reported."""
    from bisep.cli.main import user_errors

    if isinstance(exc, (ValueError, OSError, *user_errors())):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


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


def check_audio_queries(separator, queries, paths: list[str]) -> None:
    """Embed each ``--audio-query`` example once, before any input is read, so that an
    example the query encoder cannot take (too short, ...) is reported as itself."""
    from bisep.cli.main import CliError
    from bisep.conditioners.query import embed_queries

    import torch

    examples = [q for q in queries if q.audio is not None]
    for path, query in zip(paths, examples):
        try:
            with torch.no_grad():
                embed_queries(separator.conditioner, [query])
        except (ValueError, RuntimeError) as exc:
            raise CliError(f"--audio-query {path}: the query encoder cannot embed it "
                           f"({exc}). Use a longer example (a second or more).") from None


def load_separator(args):
    """The :class:`bisep.inference.Separator` of ``args.model``; user errors as CliError."""
    from bisep.checkpoint import CheckpointError
    from bisep.cli.main import CliError, user_errors
    from bisep.inference import Separator

    try:
        return Separator.from_pretrained(
            args.model, device=args.device, overlap=args.overlap,
            chunk_seconds=args.chunk_seconds or None)
    except (CheckpointError, ValueError, *user_errors()) as exc:
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
    from bisep.inference import query_slug

    queries, names = build_queries(args)
    files = collect_inputs(args.inputs)
    slugs = [query_slug(name) for name in names]
    out_dir = Path(args.out_dir)
    plan = plan_outputs(files, slugs, out_dir, args.inputs, args.audio_query)
    separator = load_separator(args)
    check_audio_queries(separator, queries, args.audio_query)
    failures = 0
    with prepared(out_dir, output_bytes((f for f, _ in files), len(slugs))):
        bar = _progress(args, len(files), "file")
        for (path, _), outputs in zip(files, plan):
            try:
                wav, rate = audio.read(path)
                stems = separator.separate(wav, queries, rate)
                for out, stem in zip(outputs, stems):
                    audio.write(out, stem, rate)
            except Exception as exc:  # one bad file never stops the batch
                failures += 1
                print(f"bisep separate: skipped {path}: {reason(exc)}", file=sys.stderr)
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
    from bisep.cli.main import CliError, user_errors
    from bisep.data.manifest import read_manifest
    from bisep.outdir import OutputError, check_space

    try:
        entries = read_manifest(args.list)
    except (ValueError, *user_errors()) as exc:
        raise CliError(str(exc)) from None
    if not entries:
        raise CliError(f"{args.list}: the manifest lists no items.")
    separator = load_separator(args)
    out_dir = Path(args.out_dir)
    with prepared(out_dir, 0):
        _start_or_resume(out_dir, args, entries)
        # The space check counts only what is left to separate, so a resumed run fits.
        todo = [e for e in entries if not _done(out_dir, e)]
        need = sum(output_bytes([e["audio"]], len(e["labels"])) for e in todo)
        try:
            check_space(out_dir, need, option="-o")
        except OutputError as exc:
            raise CliError(str(exc)) from None
        return _separate_items(args, separator, entries, out_dir)


def _target(out_dir: Path, entry: dict, label: str) -> Path:
    return out_dir / entry["id"] / f"{label}.wav"


def _separate_items(args, separator, entries: list[dict], out_dir: Path) -> int:
    """The ``--list`` loop, run with ``out_dir`` locked."""
    import json

    from bisep import audio
    from bisep.atomic import write_text_atomic
    from bisep.conditioners.query import Query
    from bisep.data.manifest import item_phrases

    records, failures, resumed, no_stems = [], 0, 0, 0
    bar = _progress(args, len(entries), "item")
    for entry in entries:
        try:
            labels = _estimate_names(entry)
            targets = {label: _target(out_dir, entry, label) for label in labels}
            if _done(out_dir, entry):
                resumed += 1
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
        except Exception as exc:  # one bad item never stops the batch
            failures += 1
            print(f"bisep separate: skipped item '{entry['id']}' of {args.list}: "
                  f"{reason(exc)}", file=sys.stderr)
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
            raise ValueError(f"{name!r} cannot name an output file or folder (empty, hidden, "
                             f"with a path separator or over 251 bytes); rename it in the "
                             f"manifest")
    return list(entry["labels"])


def _plain_name(name) -> bool:
    """A non-empty, non-hidden file name without path separators, short enough for a file
    name with ``.wav`` added (255 bytes)."""
    return (isinstance(name, str) and bool(name) and not name.startswith(".")
            and "/" not in name and "\\" not in name and len(name.encode("utf-8")) <= 251)


def _done(out_dir: Path, entry: dict) -> bool:
    """Whether every output of an item exists (atomic writes: a file that exists is
    complete)."""
    names = [entry["id"], *entry["labels"]]
    return all(map(_plain_name, names)) and all(
        _target(out_dir, entry, label).exists() for label in entry["labels"])


def _score_record(entry: dict, targets: dict, out_dir: Path) -> dict:
    """One ``bisep score --list`` line; paths relative to ``out_dir`` so the folder moves
    with the data it points to."""
    import os

    def rel(path) -> str:
        return os.path.relpath(Path(path).resolve(), out_dir.resolve())

    return {"id": entry["id"], "mixture": rel(entry["audio"]),
            "sources": {label: rel(entry["stems"][label]) for label in targets},
            "estimates": {label: rel(path) for label, path in targets.items()}}


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(args) -> dict:
    """What the outputs depend on: the model file's hash (not its path: a moved experiment
    folder keeps its outputs), the manifest's path and hash (its ids and labels name the
    outputs, and its audio paths are relative to it) and the separation settings."""
    model = Path(args.model)
    if model.is_dir():  # as bisep.checkpoint.load resolves a model directory
        model = next(p for p in (model / "model.pth", model / "best_model.pth") if p.exists())
    return {"model_sha256": _sha256(model), "manifest": str(Path(args.list).resolve()),
            "manifest_sha256": _sha256(Path(args.list)), "chunk_seconds": args.chunk_seconds,
            "overlap": args.overlap, "negative": args.negative,
            "negative_weight": args.negative_weight}


def _start_or_resume(out_dir: Path, args, entries: list[dict]) -> None:
    """Write ``separation.json``; if an earlier run used another model, manifest or
    settings, delete its outputs for the listed items first, so that a resumed run never
    mixes estimates of two models or reuses those of another manifest's items."""
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
    stamp.update(model=str(Path(args.model).resolve()))
    write_text_atomic(record, json.dumps(stamp, indent=2) + "\n")


def _progress(args, total: int, unit: str):
    if args.no_progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr)
