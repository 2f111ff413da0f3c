"""``bisep export-model EXP_DIR OUT_DIR``: a trained model as a portable model folder.

    bisep export-model exp/weak exp/weak/hf_model
    bisep export-model exp/weak/model.pth out/ --overwrite --clap-checkpoint exp/mini_clap/mini_clap.pth

Writes ``config.json``, ``model.safetensors``, ``query_encoder.safetensors``, ``README.md``
(the model card, with the speed and peak memory of one 10 s separation measured here) and
``checksums.sha256`` (see :mod:`bisep.export.model_folder`).
``Separator.from_pretrained(OUT_DIR)`` loads the folder, from any place it is copied to.
"""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("export-model", help="write a portable model folder (safetensors, "
                                            "model card, checksums)",
                       description="Write a trained model as a self-contained folder in the "
                                   "Hugging Face layout: config.json, model.safetensors, the "
                                   "query encoder's weights, README.md (model card) and "
                                   "checksums.sha256. See docs/inference.md.")
    p.add_argument("exp_dir", metavar="EXP_DIR",
                   help="a training run's folder (holding model.pth) or a model.pth file")
    p.add_argument("out_dir", metavar="OUT_DIR", help="the folder to write")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT_DIR if it exists and is not empty")
    p.add_argument("--clap-checkpoint", metavar="PATH",
                   help="the mini_clap checkpoint, when the path in the training config "
                        "does not resolve from here")
    p.add_argument("--skip-unportable", action="store_true",
                   help="a model whose query encoder cannot travel in a folder (not "
                        "mini_clap) is reported and skipped with exit status 0 instead of "
                        "refused (the recipe's stage 6)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import sys

    from bisep.export.model_folder import UnportableModelError, check_out_dir, export_model

    check_out_dir(args.out_dir, args.overwrite)  # before loading anything
    try:
        out = export_model(args.exp_dir, args.out_dir, overwrite=args.overwrite,
                           clap_checkpoint=args.clap_checkpoint)
    except UnportableModelError as exc:
        if not args.skip_unportable:
            raise
        print(f"bisep export-model: skipped {args.exp_dir}: {exc}", file=sys.stderr)
        return 0
    print(out)
    return 0
