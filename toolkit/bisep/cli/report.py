"""``bisep report``: the recipe's results page (stage 7).

::

    bisep report --exp-dir exp [--tags weak unsup] [-o exp/RESULTS.md]

writes ``RESULTS.md`` (per-instrument and mean SDR/SIR/SAR/SDRi, SI-SDR, SNR and energy
ratio per experiment, the mixture baseline, the paper's headline ratios beside ours) and
``RESULTS.png`` next to it (spectrograms of test items, training curves), and prints the
summary and ratio tables. The logic is in :mod:`bisep.report`; ``--claims`` replaces
the paper's ratios with a recipe's own (:mod:`bisep.report.claims`).
"""
from __future__ import annotations

from bisep.cli.errors import CliError


def add_parser(sub):
    p = sub.add_parser("report", help="tables and figure of a recipe's scored experiments",
                       description="Collect <exp-dir>/<tag>/scores/summary.json of every "
                                   "scored experiment (or the --tags given) into RESULTS.md "
                                   "and a figure of spectrograms and training curves.")
    p.add_argument("--exp-dir", required=True, help="the recipe's exp folder (holds <tag>/)")
    p.add_argument("--tags", nargs="+", metavar="TAG",
                   help="experiments to report, in this order (default: every folder of "
                        "--exp-dir with scores/summary.json, ordered by mode)")
    p.add_argument("-o", "--out", help="the markdown file (default <exp-dir>/RESULTS.md)")
    p.add_argument("--figure", help="the figure (default: the markdown file with .png)")
    p.add_argument("--no-figure", action="store_true", help="write the tables only")
    p.add_argument("--figure-items", type=int, default=2, metavar="N",
                   help="test items shown as spectrograms (default 2)")
    p.add_argument("--claims", metavar="YAML",
                   help="the ratios to put beside ours: a YAML file with a 'claims' list of "
                        "{numerator, denominator, paper} (default: the paper's three "
                        "headline ratios, bisep.report.PAPER_CLAIMS)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from pathlib import Path
    from bisep.report import PAPER_CLAIMS, read_claims, write_report

    out = Path(args.out) if args.out else Path(args.exp_dir) / "RESULTS.md"
    figure = None if args.no_figure else (args.figure or out.with_suffix(".png"))
    if args.figure_items < 0:
        raise CliError(f"--figure-items must be >= 0, got {args.figure_items}")
    claims = read_claims(args.claims) if args.claims else PAPER_CLAIMS
    headline, written = write_report(args.exp_dir, out, args.tags, figure, args.figure_items,
                                     claims)
    print(headline)
    for path in written:
        print(f"wrote {path}")
    return 0
