"""``bisep export-onnx MODEL_DIR OUT.onnx``: a separator's mask predictor as ONNX.

    bisep export-onnx exp/weak/hf_model exp/weak/masks.onnx

The graph takes ``magnitude (B, F, T)`` and ``query_embedding (B, Q, D)`` and returns
``masks (B, Q, F, T)``; batch, queries and frames are dynamic. STFT, masking, inverse STFT
and the query encoder stay outside (see :mod:`bisep.export.onnx`). A separator that reads
text token states is refused with the reason.
"""
from __future__ import annotations

from bisep.cli.errors import CliError


def add_parser(sub):
    p = sub.add_parser("export-onnx", help="export a separator's mask predictor to ONNX",
                       description="Export the mask predictor of a model folder (or a "
                                   "model.pth) to ONNX: magnitude spectrogram and query "
                                   "embedding in, masks out. See docs/inference.md.")
    p.add_argument("model", metavar="MODEL_DIR",
                   help="a model folder from `bisep export-model`, or a model.pth / training "
                        "folder")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.onnx if it exists")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from pathlib import Path

    if Path(args.out).exists() and not args.overwrite:
        raise CliError(f"{args.out} already exists; choose another OUT.onnx or pass "
                       f"--overwrite to replace it.")
    from bisep.export.onnx import export_model_onnx

    print(export_model_onnx(args.model, args.out))
    return 0
