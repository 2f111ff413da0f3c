"""``bisep train-clap``: train mini_clap's audio tower (recipe stage 3).

::

    bisep train-clap --data-dir data --out-dir exp/mini_clap [--conf conf/mini_clap.yaml] [k=v ...]

reads ``<data-dir>/clap_pool.jsonl`` (training) and ``<data-dir>/clap_heldout.jsonl``
(evaluation) and writes, each atomically, ``<out-dir>/mini_clap.pth`` (the audio tower, for
``conditioner_conf.checkpoint``), ``<out-dir>/eval.json`` (zero-shot accuracy, top-2 recall on
mixtures, leakage check, timings) and ``<out-dir>/config.yaml`` (the resolved config), with
the training state ``<out-dir>/checkpoints/last.pth`` (a re-run continues from it) and
``<out-dir>/logs/metrics.csv``. See
:mod:`bisep.train.mini_clap` and ``docs/conditioners.md``.
"""
from __future__ import annotations

from bisep.cli.errors import CliError


def add_parser(sub):
    p = sub.add_parser("train-clap", help="train the mini_clap audio-text model",
                       description="Train mini_clap's audio tower against the frozen MiniLM "
                                   "text tower on <data-dir>/clap_pool.jsonl, evaluate it on "
                                   "<data-dir>/clap_heldout.jsonl, and write mini_clap.pth, "
                                   "eval.json and config.yaml to --out-dir.")
    p.add_argument("--data-dir",
                   help="data folder of stage 1 (holds clap_pool.jsonl, clap_heldout.jsonl)")
    p.add_argument("--out-dir", help="where to write the outputs")
    p.add_argument("--conf", help="YAML training config (default: built-in defaults)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config and exit")
    p.add_argument("--evaluate", metavar="CHECKPOINT",
                   help="train nothing: evaluate this mini_clap.pth on <data-dir>'s held-out "
                        "clips and write <out-dir>/eval.json")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. steps=100 audio_conf.n_mels=64")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import json

    import yaml

    from bisep.outdir import prepare
    from bisep.train.clap_config import load_train_config
    from bisep.train.mini_clap import evaluate_checkpoint, train

    conf = load_train_config(args.conf, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(conf, sort_keys=False), end="")
        return 0
    if not (args.data_dir and args.out_dir):
        raise CliError("give --data-dir (the data folder of stage 1) and --out-dir, e.g. "
                       "`bisep train-clap --data-dir data --out-dir exp/mini_clap`")
    # Checked writable and locked, as bisep train's experiment folder (bisep.outdir).
    with prepare(args.out_dir, option="--out-dir"):
        if args.evaluate:
            return _evaluate_only(args, evaluate_checkpoint)
        report = train(args.data_dir, args.out_dir, conf)
    summary = {"clean": {k: report["clean"][k] for k in
                         ("accuracy_train_templates_mean", "accuracy_heldout_template",
                          "accuracy_phrase")},
               "mixtures": report.get("mixtures"), "targets": report["targets"],
               "train_seconds": report["train"]["seconds"],
               "embed_audio_ms_per_clip": report["embed_audio_ms_per_clip"]}
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out_dir}/mini_clap.pth and {args.out_dir}/eval.json")
    return 0


def _evaluate_only(args, evaluate_checkpoint) -> int:
    import json
    from pathlib import Path

    from bisep.atomic import write_text_atomic

    report = evaluate_checkpoint(args.evaluate, args.data_dir)
    out = Path(args.out_dir) / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("clean", "leakage_curve", "masked_outputs")},
                     indent=2))
    print(f"wrote {out}")
    return 0
