"""``bisep score``: SDR/SIR/SAR, SI-SDR, SNR, energy ratio (and SDRi/SI-SDRi) of separated files.

Inputs, paired by name (details in :mod:`bisep.metrics.files` and ``docs/scoring.md``)::

    bisep score --ref-dir R --est-dir E [--mix-dir M] --out-dir OUT
        R/<item>/<source>.wav, E/<item>/<source>.wav, M/<item>.wav
    bisep score --list items.jsonl --out-dir OUT
        {"id": ..., "mixture": path, "sources": {name: path}, "estimates": {name: path}}

Outputs in ``--out-dir`` (each written to a temporary file, then renamed into place):

- ``per_item.csv``: one row per (item, source): ``item, source, sdr, sir, sar, si_sdr,
  snr, energy_ratio_db`` and, with mixtures, ``sdr_mix, si_sdr_mix, sdri, si_sdri``.
- ``summary.json``: mean / median / std / count of every metric over all rows and per
  source name, the skipped items with their reasons, the trimmed items, the backend and
  the sample rate. Non-finite statistics are written as the strings "inf", "-inf", "nan".

The summary table is printed in any case. Items where a reference, estimate or mixture
has ``sum |x| <= 1e-5`` are skipped as the paper does, and counted. Bad inputs (a missing
pair, another sample rate, a multi-channel file without ``--mono``, different lengths
without ``--trim``, an unreadable file) stop the run with the file and the fix. Exit
status: 0, 1 if no item could be scored, 2 on a user error.

``--nj N`` scores batches of items in N worker processes (:mod:`bisep.metrics.batches`);
the outputs are the same as with one.
"""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("score", help="score separated audio against references",
                       description="Score estimates against references: BSS-Eval v3 "
                                   "SDR/SIR/SAR (no permutation, as the paper), SI-SDR, SNR, "
                                   "the energy ratio, and SDRi/SI-SDRi when mixtures are "
                                   "given. Files pair by name: R/<item>/<source>.wav with "
                                   "E/<item>/<source>.wav, mixtures M/<item>.wav; or a "
                                   "JSON-lines list. See docs/scoring.md.")
    src = p.add_argument_group("inputs (folders, or --list)")
    src.add_argument("--ref-dir", help="references: <ref-dir>/<item>/<source>.wav")
    src.add_argument("--est-dir", help="estimates: <est-dir>/<item>/<source>.wav")
    src.add_argument("--mix-dir", help="mixtures: <mix-dir>/<item>.wav (adds SDRi, SI-SDRi)")
    src.add_argument("--list", metavar="ITEMS.jsonl",
                     help='one item per line: {"id": ..., "mixture": path, "sources": '
                          '{name: path}, "estimates": {name: path}}; paths relative to the file')
    p.add_argument("--out-dir", help="write per_item.csv and summary.json here")
    p.add_argument("--backend", "--reference", dest="backend", choices=("fast", "mir_eval"),
                   default="fast",
                   help="BSS-Eval implementation: fast (default; agrees with mir_eval to "
                        "0.01 dB) or mir_eval (the reference implementation, several times "
                        "slower)")
    p.add_argument("--trim", action="store_true",
                   help="cut every signal of an item to the shortest instead of refusing "
                        "different lengths (counted in the summary)")
    p.add_argument("--mono", action="store_true",
                   help="average the channels of multi-channel files instead of refusing them")
    p.add_argument("--nj", type=_positive, default=1,
                   help="worker processes, each scoring batches of 8 items (default 1); "
                        "the results do not depend on it")
    p.set_defaults(func=run)
    return p


def _positive(text: str) -> int:
    import argparse

    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args) -> int:
    import sys

    from tqdm import tqdm

    from bisep.atomic import write_text_atomic
    from bisep.audio import AudioError
    from bisep.cli.main import CliError
    from bisep.metrics.batches import run_rate, score_items
    from bisep.metrics.files import ScoreInputError

    from bisep.outdir import OutputError, check_writable

    try:
        items = _collect(args)
        if args.out_dir:  # before the work, not after it
            check_writable(args.out_dir, option="--out-dir")
        rate = run_rate(items[0], mono=args.mono, trim=args.trim)
        rows, skipped, trimmed = [], [], []
        # A progress bar only on a terminal: logs and tests get the summary alone.
        with tqdm(total=len(items), desc="scoring", unit="item",
                  disable=not sys.stderr.isatty()) as bar:
            for results in score_items(items, rate, mono=args.mono, trim=args.trim,
                                       backend=args.backend, nj=args.nj):
                for result in results:
                    if result.trimmed:
                        trimmed.append(result.trimmed)
                    if result.skipped is not None:
                        skipped.append({"id": result.id, "kind": result.skipped[0],
                                        "reason": result.skipped[1]})
                    rows += result.rows
                bar.update(len(results))
    except (ScoreInputError, AudioError, OutputError) as exc:
        raise CliError(str(exc)) from None

    columns = [name for name in rows[0] if name not in ("item", "source")] if rows else []
    summary = _summary(args.backend, rate[0], len(items), rows, columns, skipped, trimmed)
    written = []
    if args.out_dir:
        from pathlib import Path

        out = Path(args.out_dir)
        written = [write_text_atomic(out / "per_item.csv", _csv_text(rows, columns)),
                   write_text_atomic(out / "summary.json", _json_text(summary))]
    print(_table(summary, columns))
    for path in written:
        print(f"wrote {path}")
    if not rows:
        print(f"bisep score: error: no item could be scored ({len(skipped)} skipped; "
              f"reasons in the summary).", file=sys.stderr)
        return 1
    return 0


def _summary(backend: str, sample_rate: int | None, n_items: int, rows: list[dict],
             columns: list[str], skipped: list[dict], trimmed: list[int]) -> dict:
    """The content of summary.json (see the module docstring)."""
    from collections import Counter

    from bisep.metrics import summarize_rows

    return {
        "backend": backend,
        "sample_rate": sample_rate,
        "items": {"listed": n_items, "scored": n_items - len(skipped),
                  "skipped": len(skipped)},
        "rows": len(rows),
        "metrics": summarize_rows(rows, columns),
        "by_source": summarize_rows(rows, columns, group_by="source"),
        "skipped": {"by_reason": dict(Counter(s["kind"] for s in skipped)),
                    "items": [{"id": s["id"], "reason": s["reason"]} for s in skipped]},
        "trimmed": {"items": len(trimmed), "max_samples": max(trimmed, default=0)},
    }


def _collect(args):
    """The items named on the command line (folders or --list, not both)."""
    from bisep.cli.main import CliError
    from bisep.metrics.files import items_from_dirs, items_from_list

    folders = [args.ref_dir, args.est_dir, args.mix_dir]
    if args.list:
        if any(folders):
            raise CliError("give either --list or --ref-dir/--est-dir[/--mix-dir], not both.")
        return items_from_list(args.list)
    if not (args.ref_dir and args.est_dir):
        raise CliError("give --ref-dir and --est-dir (optionally --mix-dir), or --list "
                       "items.jsonl. See `bisep score --help`.")
    return items_from_dirs(args.ref_dir, args.est_dir, args.mix_dir)


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["item", "source", *columns])
    for row in rows:
        writer.writerow([row["item"], row["source"], *(f"{row[c]:.4f}" for c in columns)])
    return buffer.getvalue()


def _json_text(summary: dict) -> str:
    import json
    import math

    def clean(value):
        # Strict JSON has no inf/nan; write them as strings rather than drop them.
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {key: clean(v) for key, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(summary), indent=2, allow_nan=False) + "\n"


def _table(summary: dict, columns: list[str]) -> str:
    items = summary["items"]
    head = (f"scored {items['scored']} of {items['listed']} items ({summary['rows']} "
            f"sources), backend {summary['backend']}, {summary['sample_rate']} Hz")
    if items["skipped"]:
        reasons = ", ".join(f"{k}: {n}" for k, n in summary["skipped"]["by_reason"].items())
        head += f"; skipped {items['skipped']} ({reasons})"
    if summary["trimmed"]["items"]:
        head += (f"; trimmed {summary['trimmed']['items']} items (at most "
                 f"{summary['trimmed']['max_samples']} samples)")
    lines = [head, f"{'metric':<16}{'mean':>10}{'median':>10}{'std':>10}{'count':>7}"]
    for name in columns:
        stats = summary["metrics"][name]
        lines.append(f"{name:<16}" + "".join(f"{stats[s]:>10.3f}" for s in
                                              ("mean", "median", "std"))
                     + f"{stats['count']:>7d}")
    return "\n".join(lines)
