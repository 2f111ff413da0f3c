"""``bisep separate``: extract what the queries describe from files, folders or a manifest.

Files and folders::

    bisep separate exp/weak/model.pth --query violin --query flute song.wav more/ -o out/
    bisep separate exp/weak --query violin --residual \\
        --filename '{track}/{stem}.{ext}' song.wav -o out/

A data manifest (recipe stage 5)::

    bisep separate exp/weak --list data/test.jsonl -o exp/weak/separated

The work is :func:`bisep.apps.separate_files.separate_files` and
:func:`bisep.apps.separate_manifest.separate_manifest`; ``docs/separating.md`` describes
names, checks, locks and resume. Exit status: 0, 1 if any input failed, 2 on a user error.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from bisep.cli.errors import CliError


def add_parser(sub):
    p = sub.add_parser("separate", help="separate audio files with a trained model",
                       description="Separate one output per query from audio files or folders "
                                   "of them (written as <out_dir>/<input stem>_<query>.wav, or "
                                   "by --filename), "
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
    p.add_argument("--negative-weight", type=_negative_weight, default=0.5,
                   help="how far to move away from --negative, in (0, 1] (default 0.5)")
    p.add_argument("--chunk-seconds", type=float, default=8.0,
                   help="process long files in chunks of this length (default 8; 0 = whole file)")
    p.add_argument("--overlap", type=float, default=0.25,
                   help="fraction of a chunk cross-faded with the next (default 0.25)")
    p.add_argument("--context-seconds", type=float, default=0.0,
                   help="audio added on each side of a chunk while it runs, then dropped "
                        "(default 0; the model's receptive field brings chunked output "
                        "closest to one pass)")
    p.add_argument("--chunk-norm", choices=("file", "chunk"), default="file",
                   help="'file' (default): chunks normalise by the whole file's statistics, "
                        "gathered in a first run over them, as one pass does; 'chunk': each "
                        "by its own, in half the time")
    p.add_argument("--residual", action="store_true",
                   help="also write each query's residual, the mixture minus the target "
                        "(named no-<query> by the default --filename)")
    p.add_argument("--filename", default=None, metavar="TEMPLATE",
                   help="output path below -o, with the fields {track} (input name), {query} "
                        "(query label), {stem} (the label, or no-<label> for a residual), "
                        "{kind} (target/residual) and {ext} (default '{track}_{stem}.{ext}'; "
                        "e.g. '{track}/{stem}.{ext}'); not with --list")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that exist (refused otherwise, before any work)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _negative_weight(text: str) -> float:
    """``--negative-weight``, refused by argparse unless in (0, 1] (``Query``'s range), so
    the message names the option rather than the ``Query`` argument, before any work."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def build_queries(args):
    """The queries of ``--query``/``--audio-query`` and their file-name labels."""
    from bisep import audio
    from bisep.conditioners.query import Query
    from bisep.naming import query_label

    import torch

    if not args.query and not args.audio_query:
        raise CliError("no query given: add --query TEXT (e.g. --query violin) or "
                       "--audio-query example.wav")
    queries, labels = [], []
    for text in args.query:
        labels.append(query_label(text, negative=args.negative))
        queries.append(Query(text=text, negative=args.negative,
                             negative_weight=args.negative_weight))
    for path in args.audio_query:
        labels.append(query_label(audio_name=Path(path).stem, negative=args.negative))
        wav, rate = audio.read(path)
        queries.append(Query(audio=torch.from_numpy(wav), audio_rate=rate,
                             negative=args.negative, negative_weight=args.negative_weight))
    return queries, labels


def load_separator(args):
    """The :class:`bisep.inference.Separator` of ``args.model``."""
    from bisep.inference import Separator

    return Separator.from_pretrained(args.model, device=args.device, overlap=args.overlap,
                                     chunk_seconds=args.chunk_seconds or None,
                                     context_seconds=args.context_seconds,
                                     norm_stats=args.chunk_norm)


def run(args) -> int:

    if args.list:
        if args.inputs or args.query or args.audio_query:
            raise CliError("--list takes its inputs and queries from the manifest (one query "
                           "per label); drop the input files, --query and --audio-query.")
        if args.filename or args.residual:
            raise CliError("--list writes <out>/<id>/<label>.wav for bisep score; drop "
                           "--filename and --residual.")
        return run_list(args)
    if not args.inputs:
        raise CliError("no input given: name audio files or folders, or a manifest with "
                       "--list data/test.jsonl")
    return run_files(args)


def run_files(args) -> int:
    from bisep.apps.separate_files import separate_files
    from bisep.naming import DEFAULT_TEMPLATE, check_template

    queries, labels = build_queries(args)
    check_template(args.filename or DEFAULT_TEMPLATE)  # before the model loads
    separator = load_separator(args)
    with _progress(args, "file") as progress:
        result = separate_files(separator, args.inputs, queries, args.out_dir, labels=labels,
                                audio_query_files=[Path(p) for p in args.audio_query],
                                filename=args.filename or DEFAULT_TEMPLATE,
                                residual=args.residual, overwrite=args.overwrite,
                                progress=progress)
    print(f"separated {result.separated} of {len(result.inputs)} file(s) into "
          f"{result.out_dir} ({result.outputs_each} output(s) each)")
    return 1 if result.failed else 0


def run_list(args) -> int:
    """``--list`` mode: :func:`bisep.apps.separate_manifest.separate_manifest`."""
    from bisep.apps.separate_manifest import separate_manifest
    from bisep.data.manifest import read_manifest

    read_manifest(args.list)  # a bad manifest is reported before the model loads
    separator = load_separator(args)
    with _progress(args, "item") as progress:
        result = separate_manifest(separator, args.list, args.out_dir, negative=args.negative,
                                   negative_weight=args.negative_weight, progress=progress)
    print(f"separated {result.separated} of {result.listed} item(s) of {args.list} into "
          f"{result.out_dir} ({result.resumed} already done)")
    items_path = result.out_dir / "items.jsonl"
    if result.failed:
        print(f"bisep separate: {len(result.failed)} item(s) failed; {items_path} is written "
              f"once every item is separated: fix them and re-run (finished items are kept).",
              file=sys.stderr)
        return 1
    print(f"wrote {items_path} ({result.separated} item(s), {result.scorable} with "
          f"references to score)")
    if result.without_stems:
        print(f"{result.without_stems} item(s) have no stems (references): `bisep score` "
              f"skips them, `bisep score --reference-free` scores them")
    return 0


@contextmanager
def _progress(args, unit: str):
    """A ``(done, total)`` callback drawing a progress bar on stderr, or ``None``."""
    if args.no_progress:
        yield None
        return
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit=unit, file=sys.stderr)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()
