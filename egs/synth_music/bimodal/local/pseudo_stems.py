#!/usr/bin/env python3
"""Pseudo-stems: a trained separator's outputs as the single-source targets of a student.

Self-training without single-source audio. A teacher (a model trained by this recipe, e.g.
the mix-and-separate baseline) separates every clip of the training and validation
manifests with one text query per label (`bisep separate --list`). The outputs become the
clips' ``stems`` in a new data folder, and a student trains on them in the supervised mode
(stage 2 with ``--supervised_fraction 1.0``, stage 4 with a supervised config). The real
stems are never read: the validation clips' pseudo-stems choose the student's checkpoint.

With ``--keep`` below 1 the query encoder judges every output: its *margin* is the cosine
with its own label's query text minus the largest cosine with another label's of the clip
("is this the violin, and not the clip's flute?"). Only the clips whose worst output has a
margin in the top ``--keep`` fraction stay in the training manifest: the judge picks the
pseudo-stems to learn from. The validation manifest is not filtered.

    local/pseudo_stems.py --teacher exp/unsup_long_j2 --out_dir data_pseudo
    local/pseudo_stems.py --teacher exp/unsup_long_j2 --out_dir data_pseudo_f75 --keep 0.75
    ./run.sh --stage 2 --stop_stage 2 --data_dir data_pseudo_f75 --dump_dir dump_pseudo_f75 \\
        --supervised_fraction 1.0
    ./run.sh --stage 4 --stop_stage 6 --data_dir data_pseudo_f75 --dump_dir dump_pseudo_f75 \\
        --train_configs conf/train_sup_snr.yaml --tag_suffix _pseudo_f75

Written to ``--out_dir``: ``sep_train/`` and ``sep_valid/`` (the teacher's outputs; a
re-run separates only the clips not done yet), ``train.jsonl`` and ``valid.jsonl`` (audio:
the original clips; stems: the outputs), every other manifest of ``--data_dir`` with its
paths rewritten (``test.jsonl``: stage 5 separates it and stage 6 scores against its real
stems), ``meta.json``, and with ``--keep`` below 1 ``margins.jsonl`` (every clip's margins).
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bisep.atomic import write_text_atomic
from bisep.audio import read
from bisep.conditioners.mini_clap import MiniClapConditioner
from bisep.data.manifest import item_phrases, read_manifest, write_manifest

SPLITS = ("train", "valid")


def separate(teacher: Path, manifest: Path, out: Path) -> dict[str, dict[str, Path]]:
    """The teacher's output file of every clip and label: ``{id: {label: path}}``."""
    subprocess.run([sys.executable, "-m", "bisep", "separate", str(teacher), "--list",
                    str(manifest), "-o", str(out), "--no-progress"], check=True)
    outputs = {}
    for line in (out / "items.jsonl").read_text().splitlines():
        entry = json.loads(line)
        outputs[entry["id"]] = {label: (out / path).resolve()
                                for label, path in entry["estimates"].items()}
    return outputs


@torch.no_grad()
def margins(encoder, items: list[dict], batch: int = 32) -> dict[str, dict[str, float]]:
    """``{id: {label: margin}}`` of the stems of ``items`` (clips with one label: none),
    each label judged by its query text (the manifest's ``phrases``, or the label's phrase)."""
    texts = {item["id"]: dict(zip(item["labels"], item_phrases(item))) for item in items}
    unique = sorted({text for by_label in texts.values() for text in by_label.values()})
    index = {text: i for i, text in enumerate(unique)}
    text_emb = F.normalize(encoder.embed_text(unique), dim=-1)
    judged = [item for item in items if len(item["labels"]) > 1]
    found = {item["id"]: {} for item in items}
    for start in range(0, len(judged), batch):
        chunk = judged[start:start + batch]
        outputs = [(item, label) for item in chunk for label in item["labels"]]
        wavs = torch.stack([torch.as_tensor(read(item["stems"][label], encoder.sample_rate,
                                                 mono=True)[0][0])
                            for item, label in outputs])
        cos = F.normalize(encoder.embed_audio(wavs), dim=-1) @ text_emb.T
        for row, (item, label) in enumerate(outputs):
            own = texts[item["id"]]
            others = [index[text] for other, text in own.items() if other != label]
            found[item["id"]][label] = float(cos[row, index[own[label]]] - cos[row, others].max())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True,
                        help="the teacher's experiment folder (holding model.pth)")
    parser.add_argument("--data_dir", type=Path, default=Path("data"))
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--keep", type=float, default=1.0,
                        help="share of the training clips kept, by their worst output's "
                             "margin (default 1: all, no judge)")
    parser.add_argument("--clap_checkpoint", type=Path, default=Path("exp/mini_clap/mini_clap.pth"),
                        help="the judge for --keep below 1")
    args = parser.parse_args()

    def stop(message: str) -> int:
        print(f"pseudo_stems: {message}", file=sys.stderr)
        return 1

    if not 0.0 < args.keep <= 1.0:
        return stop(f"--keep must be in (0, 1], got {args.keep}")
    if not (args.teacher / "model.pth").is_file():
        return stop(f"--teacher {args.teacher} has no model.pth: train it first (stage 4)")
    for split in SPLITS:
        if not (args.data_dir / f"{split}.jsonl").is_file():
            return stop(f"--data_dir {args.data_dir} has no {split}.jsonl (stage 1)")
    if args.out_dir.resolve() == args.data_dir.resolve():
        return stop("--out_dir must be a new folder, not --data_dir")
    if args.keep < 1.0 and not args.clap_checkpoint.is_file():
        return stop(f"--keep {args.keep} needs the judge: {args.clap_checkpoint} is missing "
                    f"(stage 3, or give --clap_checkpoint)")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    manifests = {}
    for split in SPLITS:
        items = read_manifest(args.data_dir / f"{split}.jsonl")
        outputs = separate(args.teacher, args.data_dir / f"{split}.jsonl",
                           args.out_dir / f"sep_{split}")
        for item in items:
            item["stems"] = {label: outputs[item["id"]][label] for label in item["labels"]}
        manifests[split] = items
    if args.keep < 1.0:
        encoder = MiniClapConditioner(checkpoint=str(args.clap_checkpoint)).eval()
        found = margins(encoder, manifests["train"])
        write_text_atomic(args.out_dir / "margins.jsonl", "".join(
            json.dumps({"id": key, "margins": value}) + "\n" for key, value in found.items()))
        worst = {key: min(value.values(), default=np.inf) for key, value in found.items()}
        cut = np.quantile([w for w in worst.values() if np.isfinite(w)], 1.0 - args.keep)
        manifests["train"] = [item for item in manifests["train"] if worst[item["id"]] >= cut]
        print(f"pseudo_stems: kept {len(manifests['train'])} of {len(worst)} training clips "
              f"(worst margin >= {cut:.3f})")
    for split, items in manifests.items():
        print(f"wrote {write_manifest(args.out_dir / f'{split}.jsonl', items)}")
    for other in sorted(args.data_dir.glob("*.jsonl")):
        if other.stem not in SPLITS:
            write_manifest(args.out_dir / other.name, read_manifest(other))
    if (args.data_dir / "meta.json").is_file():
        shutil.copyfile(args.data_dir / "meta.json", args.out_dir / "meta.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
