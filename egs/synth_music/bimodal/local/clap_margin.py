"""How clearly the query encoder hears the queried instrument in separated test outputs.

For each 2-source test item and each of its sources, the audio is embedded with mini_clap
and compared with the two sources' phrases ("the sound of a violin"). The *margin* is
cos(audio, queried phrase) - cos(audio, other phrase); ``p`` is the softmax over the two
phrases at the encoder's own logit scale, i.e. what the contrastive loss L_CNT sees. Rows:
the reference stems (an upper bound), the mixture (0 by construction), and each
experiment's estimates. An experiment whose estimates score a higher margin than another's
while their SDR is lower has learnt to please the encoder rather than to separate.

    local/clap_margin.py --exp_dir exp --tags unsup weak sup_snr [--items 150]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bisep.audio import read
from bisep.conditioners.mini_clap import MiniClapConditioner
from bisep.data.prompts import phrase


def margins(encoder, items_file: Path, limit: int) -> dict[str, list[float]]:
    """Margins of the references, mixtures and estimates listed in ``items_file``."""
    root = items_file.parent
    out = {"reference": [], "mixture": [], "estimate": []}
    lines = [json.loads(line) for line in items_file.read_text().splitlines() if line.strip()]
    for item in lines[:limit]:
        labels = sorted(item["sources"])
        if len(labels) != 2:
            continue
        text = F.normalize(encoder.embed_text([phrase(lab) for lab in labels]), dim=-1)
        for index, label in enumerate(labels):
            for kind, path in (("reference", item["sources"][label]),
                               ("mixture", item["mixture"]),
                               ("estimate", item["estimates"][label])):
                wav, rate = read(root / path, encoder.sample_rate, mono=True)
                with torch.no_grad():
                    audio = F.normalize(encoder.embed_audio(torch.as_tensor(wav)), dim=-1)[0]
                cos = text @ audio
                out[kind].append(float(cos[index] - cos[1 - index]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", type=Path, default=Path("exp"))
    parser.add_argument("--tags", nargs="+", required=True)
    parser.add_argument("--clap_checkpoint", type=Path, default=None,
                        help="default: <exp_dir>/mini_clap/mini_clap.pth")
    parser.add_argument("--items", type=int, default=150, help="test items per experiment")
    args = parser.parse_args()
    checkpoint = args.clap_checkpoint or args.exp_dir / "mini_clap" / "mini_clap.pth"
    for path in [checkpoint] + [args.exp_dir / t / "separated" / "items.jsonl" for t in args.tags]:
        if not path.is_file():
            print(f"{sys.argv[0]}: {path} is missing: run the recipe's stages 3-5 first",
                  file=sys.stderr)
            return 1
    encoder = MiniClapConditioner(checkpoint=str(checkpoint)).eval()
    scale = float(encoder.logit_scale)
    print(f"| audio | margin (cos) | p(queried phrase), scale {scale:.1f} | SDR (dB) |")
    print("|---|---:|---:|---:|")
    for n, tag in enumerate(args.tags):
        found = margins(encoder, args.exp_dir / tag / "separated" / "items.jsonl", args.items)
        summary = json.loads((args.exp_dir / tag / "scores" / "summary.json").read_text())
        rows = [("estimate", f"{tag} estimates", f"{summary['metrics']['sdr']['mean']:.2f}")]
        if n == 0:
            rows = [("reference", "reference stems", "-"), ("mixture", "mixture", "-")] + rows
        for kind, name, sdr in rows:
            values = np.array(found[kind])
            p = np.mean(1 / (1 + np.exp(-scale * values)))
            print(f"| {name} | {values.mean():.3f} | {p:.3f} | {sdr} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
