"""``bisep separate``: extract what the queries describe from files or folders.

::

    bisep separate exp/weak/model.pth --query violin --query flute song.wav more/ -o out/

writes ``out/song_violin.wav``, ``out/song_flute.wav``, ... at each input's own rate and
channel count. In folder mode every ``.wav``/``.flac`` inside is processed; a bad file is
reported and the others still run (exit status 1 if any failed).
"""
from __future__ import annotations

import sys
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac")


def add_parser(sub):
    p = sub.add_parser("separate", help="separate audio files with a trained model",
                       description="Separate one output per query from audio files or folders "
                                   "of them. Outputs are written atomically as "
                                   "<out_dir>/<input stem>_<query>.wav.")
    p.add_argument("model", help="a checkpoint file or a model directory holding model.pth")
    p.add_argument("inputs", nargs="+", help="audio files (.wav, .flac) or folders of them")
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


def run(args) -> int:
    from bisep.cli.main import CliError, user_errors
    from bisep.checkpoint import CheckpointError
    from bisep.inference import Separator, query_slug
    from bisep import audio

    queries, names = build_queries(args)
    files = collect_inputs(args.inputs)
    try:
        separator = Separator.from_pretrained(
            args.model, device=args.device, overlap=args.overlap,
            chunk_seconds=args.chunk_seconds or None)
    except (CheckpointError, *user_errors()) as exc:
        raise CliError(str(exc)) from None
    slugs = [query_slug(name) for name in names]
    out_dir = Path(args.out_dir)
    failures = 0
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="file", file=sys.stderr)
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
