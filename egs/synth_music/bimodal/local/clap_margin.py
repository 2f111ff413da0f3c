"""How well the query encoder judges separated outputs: its margin against their SDR.

For each 2-source item separated by each experiment and each of its sources, the estimate
is embedded with the query encoder and compared with the two sources' phrases ("the sound
of a violin"). The *margin* is cos(audio, queried phrase) - cos(audio, other phrase); ``p``
is the softmax over the two phrases at the encoder's own logit scale, i.e. what the
contrastive loss L_CNT sees. The table has the reference stems (an upper bound), the
mixture (0 by construction) and each experiment's estimates, then the Spearman rank
correlation between margin and SDR over the outputs of every listed experiment together
(``bisep.train.clap_eval.margin_sdr_correlation``): the judge's bar. An encoder that
gives a higher margin to worse outputs teaches a separator to please it, not to separate.

    local/clap_margin.py --exp_dir exp --tags unsup weak sup_snr             # test outputs
    local/clap_margin.py --tags unsup weak sup_snr --separated separated_valid \\
        --scores scores_valid --write_eval exp/mini_clap/eval.json            # validation

``--write_eval`` records the figures under ``separated_outputs.<--separated>`` in the
encoder's eval.json.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bisep.atomic import write_text_atomic
from bisep.conditioners.mini_clap import MiniClapConditioner
from bisep.train.clap_eval import margin_sdr_correlation, source_margins, two_source_items


def reference_margins(encoder, items_file: Path, limit: int) -> dict[str, list[float]]:
    """Margins of the reference stems and of the mixtures listed in ``items_file``."""
    root = items_file.parent
    out = {"reference": [], "mixture": []}
    for item, names in two_source_items(items_file, limit):
        out["reference"] += source_margins(encoder, [root / item["sources"][x] for x in names],
                                           names)
        out["mixture"] += source_margins(encoder, [root / item["mixture"]] * 2, names)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", type=Path, default=Path("exp"))
    parser.add_argument("--tags", nargs="+", required=True)
    parser.add_argument("--clap_checkpoint", type=Path, default=None,
                        help="default: <exp_dir>/mini_clap/mini_clap.pth")
    parser.add_argument("--separated", default="separated",
                        help="folder of each experiment with the separated items.jsonl")
    parser.add_argument("--scores", default="scores",
                        help="folder of each experiment with bisep score's per_item.csv")
    parser.add_argument("--items", type=int, default=None, help="items per experiment "
                                                                "(default: all)")
    parser.add_argument("--write_eval", type=Path, default=None,
                        help="record the figures in this eval.json")
    args = parser.parse_args()
    checkpoint = args.clap_checkpoint or args.exp_dir / "mini_clap" / "mini_clap.pth"
    runs = {tag: (args.exp_dir / tag / args.separated / "items.jsonl",
                  args.exp_dir / tag / args.scores / "per_item.csv") for tag in args.tags}
    for path in [checkpoint] + [p for pair in runs.values() for p in pair]:
        if not path.is_file():
            print(f"{sys.argv[0]}: {path} is missing: run the recipe's stages 3-6 first",
                  file=sys.stderr)
            return 1
    encoder = MiniClapConditioner(checkpoint=str(checkpoint)).eval()
    scale = float(encoder.logit_scale)
    found = margin_sdr_correlation(encoder, runs, limit=args.items)
    refs = reference_margins(encoder, next(iter(runs.values()))[0], args.items)
    print(f"| audio | margin (cos) | p(queried phrase), scale {scale:.1f} | SDR (dB) | "
          f"Spearman(margin, SDR) |")
    print("|---|---:|---:|---:|---:|")
    for name, values in (("reference stems", refs["reference"]), ("mixture", refs["mixture"])):
        values = np.array(values)
        p = np.mean(1 / (1 + np.exp(-scale * values)))
        print(f"| {name} | {values.mean():.3f} | {p:.3f} | - | - |")
    for tag, run in found["runs"].items():
        # p at the mean margin: the per-output margins are not kept.
        p = 1 / (1 + np.exp(-scale * run["mean_margin"]))
        print(f"| {tag} estimates | {run['mean_margin']:.3f} | {p:.3f} | "
              f"{run['mean_sdr']:.2f} | {run['spearman']:.2f} |")
    print(f"\nSpearman(margin, SDR) over all {found['outputs']} outputs: "
          f"{found['spearman']:.3f}")
    if args.write_eval is not None:
        report = json.loads(args.write_eval.read_text()) if args.write_eval.is_file() else {}
        report.setdefault("separated_outputs", {})[args.separated] = {
            "checkpoint": str(checkpoint), **found}
        write_text_atomic(args.write_eval, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.write_eval}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
