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
has ``sum |x| <= 1e-5`` are skipped as the paper does, and counted; so are the items of a
list without references (no ``"sources"``, e.g. real recordings), which ``--reference-free``
scores. Bad inputs (a missing
pair, another sample rate, a multi-channel file without ``--mono``, different lengths
without ``--trim``, an unreadable file) stop the run with the file and the fix. Exit
status: 0, 1 if no item could be scored, 2 on a user error.

``--nj N`` scores batches of items in N worker processes (:mod:`bisep.metrics.batches`);
the outputs are the same as with one.

``--reference-free --model EXP_DIR --list items.jsonl`` scores each estimate by the query
encoder instead (:mod:`bisep.apps.reference_free`): a proxy for real mixtures, which have no
references. The work is :func:`bisep.metrics.report.score_files` and
:func:`bisep.apps.reference_free.score_reference_free`.
"""
from __future__ import annotations

from bisep.cli.errors import CliError


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
    p.add_argument("--reference-free", action="store_true",
                   help="score without references, for real mixtures: the query encoder's "
                        "cosine similarity of each estimate (and of the mixture) with its "
                        "query text, and the estimate/residual energy split; a proxy, never "
                        "a replacement for SDR (needs --model and --list)")
    p.add_argument("--model", metavar="EXP_DIR",
                   help="the model whose query encoder --reference-free uses")
    p.add_argument("--nj", type=_positive, default=1,
                   help="worker processes, each scoring batches of 8 items (default 1); "
                        "the results do not depend on it")
    p.set_defaults(func=run)
    return p


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of jobs, at least 1, "
                                         f"got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args) -> int:
    import sys

    from tqdm import tqdm
    from bisep.outdir import check_writable

    if args.reference_free and not args.model:
        raise CliError("--reference-free scores with the model's query encoder: add --model "
                       "EXP_DIR (a model.pth, its folder or a model folder).")
    if args.model and not args.reference_free:
        raise CliError("--model is used only with --reference-free.")
    items = _collect(args)
    if args.out_dir:  # before the work, not after it
        check_writable(args.out_dir, option="--out-dir")
    # A progress bar only on a terminal: logs and tests get the summary alone.
    with tqdm(total=len(items), desc="scoring", unit="item",
              disable=not sys.stderr.isatty()) as bar:
        if args.reference_free:
            from bisep.apps.reference_free import score_reference_free
            from bisep.inference import Separator

            encoder = Separator.from_pretrained(args.model).conditioner
            report = score_reference_free(encoder, items, progress=bar.update)
        else:
            from bisep.metrics.report import score_files

            report = score_files(items, backend=args.backend, mono=args.mono, trim=args.trim,
                                 nj=args.nj, progress=bar.update)
    written = report.write(args.out_dir) if args.out_dir else []
    print(report.table())
    for path in written:
        print(f"wrote {path}")
    if not report.rows:
        print(f"bisep score: error: no item could be scored "
              f"({report.summary['items']['skipped']} skipped; reasons in the summary).",
              file=sys.stderr)
        return 1
    return 0


def _collect(args):
    """The items named on the command line (folders or --list, not both)."""
    from bisep.metrics.files import items_from_dirs, items_from_list

    folders = [args.ref_dir, args.est_dir, args.mix_dir]
    if args.list:
        if any(folders):
            raise CliError("give either --list or --ref-dir/--est-dir[/--mix-dir], not both.")
        return items_from_list(args.list)
    if args.reference_free:
        raise CliError("--reference-free reads --list items.jsonl (with \"mixture\", "
                       "\"estimates\" and \"queries\"), as `bisep separate --list` writes it.")
    if not (args.ref_dir and args.est_dir):
        raise CliError("give --ref-dir and --est-dir (optionally --mix-dir), or --list "
                       "items.jsonl. See `bisep score --help`.")
    return items_from_dirs(args.ref_dir, args.est_dir, args.mix_dir)
