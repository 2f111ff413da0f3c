#!/usr/bin/env python3
"""How good the judge's energy shares are as level targets (the ``judged_level`` loss).

For each clip of a manifest with stems and at least two instruments, the query encoder
embeds the clip and gives each of its instruments' phrases ("the sound of a violin") a
share of the clip's energy with ``bisep.losses.judged_shares``, the function the
``judged_level`` loss uses in training. The stems give the true shares. Printed:
the absolute error in dB of the judge's shares and of equal shares (``1 / instruments``,
the baseline the judge has to beat), and the Spearman correlation of the log shares.

    local/judge_shares.py --list data/train.jsonl --clap_checkpoint exp/mini_clap/mini_clap.pth
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bisep.audio import read
from bisep.conditioners.mini_clap import MiniClapConditioner
from bisep.data.manifest import read_manifest
from bisep.data.prompts import phrase
from bisep.losses import judged_shares
from bisep.train.clap_eval import spearman


def share_errors(encoder, items: list[dict]) -> dict:
    """The figures of the module docstring over ``items`` (manifest entries with stems)."""
    judged, equal, true_log, judged_log = [], [], [], []
    with torch.no_grad():
        for item in items:
            labels = item["labels"]
            audio, _ = read(item["audio"], encoder.sample_rate, mono=True)
            energy = np.array([np.square(read(item["stems"][lab], encoder.sample_rate,
                                              mono=True)[0]).sum() for lab in labels])
            true = energy / energy.sum()
            # One mixture (B = N = 1) whose phrases are all its own instruments.
            audio_emb = encoder.embed_audio(torch.from_numpy(audio))[None]          # (1, 1, D)
            text_emb = encoder.embed_text([phrase(x) for x in labels])[None, None]  # (1, 1, K, D)
            valid = torch.ones(text_emb.shape[:3], dtype=torch.bool)
            share = judged_shares(audio_emb, text_emb, encoder.logit_scale,
                                  valid)[0, 0].double().numpy()
            judged += list(np.abs(10 * np.log10(share / true)))
            equal += list(np.abs(10 * np.log10(1 / len(labels) / true)))
            true_log += list(np.log(true))
            judged_log += list(np.log(share))

    def summary(errors):
        return {"median_db": float(np.median(errors)), "mean_db": float(np.mean(errors)),
                "p90_db": float(np.percentile(errors, 90))}

    return {"clips": len(items), "parts": len(judged), "judge": summary(judged),
            "equal_shares": summary(equal), "spearman_log_share": spearman(true_log, judged_log)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True, help="a manifest with stems")
    parser.add_argument("--clap_checkpoint", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=300, help="the first N clips with stems "
                        "and at least two instruments")
    args = parser.parse_args()
    if not args.clap_checkpoint.is_file():
        sys.exit(f"judge_shares.py: --clap_checkpoint {args.clap_checkpoint} does not exist; "
                 f"train the judge first (run.sh --stage 3)")
    items = [it for it in read_manifest(args.list)
             if it.get("stems") and len(it["labels"]) >= 2][:args.limit]
    if not items:
        sys.exit(f"judge_shares.py: {args.list} has no clip with stems and two or more "
                 f"instruments; give a training manifest (data/train.jsonl)")
    torch.set_num_threads(1)
    encoder = MiniClapConditioner(checkpoint=str(args.clap_checkpoint)).eval()
    print(json.dumps(share_errors(encoder, items), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
