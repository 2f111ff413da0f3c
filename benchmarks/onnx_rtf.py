"""Speed of the ONNX mask predictor under onnxruntime against the same separator in torch
eager mode, on CPU at 1 and 2 threads.

    python benchmarks/onnx_rtf.py                  # 10 s of audio, film_masknet + cond_unet small
    python benchmarks/onnx_rtf.py --seconds 30 --paper
    python benchmarks/onnx_rtf.py --smoke          # tiny sizes: checks the script

Each model's mask predictor (:class:`bisep.export.onnx.MaskPredictor`: ``encode`` then
``predict_masks``, one query, query_dim 384 as with mini_clap) is exported with
:func:`bisep.export.onnx.export_onnx` and run on the magnitude of ``--seconds`` of 16 kHz
audio. The STFT and its inverse are not timed: they are the same torch code either way.
Torch runs under ``inference_mode`` with ``torch.set_num_threads(n)``; onnxruntime with
``intra_op_num_threads=n`` (one inter-op thread, sequential execution). Each time is the best
of ``--repeats`` interleaved runs after one warm-up, since a shared machine drifts and
bursts. The last column is torch's time over onnxruntime's (above 1: onnxruntime is faster),
both measured in the same run; the masks' max abs difference is printed too.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _timing import best_time  # benchmarks/_timing.py

from bisep.export.onnx import MaskPredictor, export_onnx
from bisep.separators.cond_unet import CondUNet
from bisep.separators.film_masknet import FiLMMaskNet

SR = 16000
QUERY_DIM = 384


def models(smoke: bool, paper: bool) -> dict[str, torch.nn.Module]:
    if smoke:
        return {"film_masknet:tiny": FiLMMaskNet(preset="small", query_dim=QUERY_DIM,
                                                 bn_chan=16, hid_chan=32, n_blocks=2,
                                                 n_repeats=1, num_film_blocks=1),
                "cond_unet:tiny": CondUNet(preset="small", query_dim=QUERY_DIM, ngf=4,
                                           num_downs=3)}
    found = {"film_masknet:small": FiLMMaskNet(preset="small", query_dim=QUERY_DIM),
             "cond_unet:small": CondUNet(preset="small", query_dim=QUERY_DIM)}
    if paper:  # conditioned on the embedding alone (no token states): see bisep.export.onnx
        found["cond_unet:paper"] = CondUNet(preset="paper", query_dim=QUERY_DIM)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs, best kept")
    parser.add_argument("--paper", action="store_true",
                        help="also cond_unet's paper preset (slow on CPU)")
    parser.add_argument("--smoke", action="store_true", help="tiny models, 1 s, 1 repeat")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.repeats = 1.0, 1

    import onnxruntime

    torch.manual_seed(0)
    print(f"CPU, {args.seconds:g} s of {SR} Hz audio, 1 query, best of {args.repeats}; "
          f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'model':<20} {'threads':>7} {'torch (s)':>10} {'ort (s)':>10} {'max |diff|':>11} "
          f"{'torch/ort':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models(args.smoke, args.paper).items():
            model.eval()
            path = export_onnx(model, Path(tmp) / f"{name.replace(':', '_')}.onnx")
            frames = int(args.seconds * SR) // model.stft.config.hop_length + 1
            g = torch.Generator().manual_seed(1)
            mag = torch.rand(1, model.stft.config.n_freq, frames, generator=g)
            emb = F.normalize(torch.randn(1, 1, QUERY_DIM, generator=g), dim=-1)
            feeds = {"magnitude": mag.numpy(), "query_embedding": emb.numpy()}
            predictor = MaskPredictor(model).eval()
            for threads in (1, 2):
                torch.set_num_threads(threads)
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(str(path), options,
                                                       providers=["CPUExecutionProvider"])
                with torch.inference_mode():
                    expected = predictor(mag, emb).numpy()
                    t_torch = best_time(lambda: predictor(mag, emb), args.repeats)
                t_ort = best_time(lambda: session.run(None, feeds), args.repeats)
                diff = float(np.abs(session.run(None, feeds)[0] - expected).max())
                print(f"{name:<20} {threads:>7} {t_torch:>10.4f} {t_ort:>10.4f} {diff:>11.1e} "
                      f"{t_torch / t_ort:>9.2f}x")


if __name__ == "__main__":
    main()
