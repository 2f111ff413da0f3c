"""The frozen judge's forward and backward in the weak training step, against the same
computation as it ran before its speed-up, both measured in this run on the same clips.

    python benchmarks/judge_backward.py                 # ~20 s on 2 idle cores
    python benchmarks/judge_backward.py --clips 64 --repeats 9
    python benchmarks/judge_backward.py --smoke         # 2 clips of 0.5 s, 1 repeat

The weak step embeds every separated phrase output with mini_clap's audio tower (frozen, in
eval mode) and differentiates the embeddings with respect to the audio. What is timed is
that: ``tower(wav)``, then the gradient of the summed embeddings with respect to ``wav``
(``--clips`` clips of ``--seconds`` s, about what one weak batch sends; a random tower of the
default size, whose weights do not change the cost). Two implementations:

- *optimised*: :class:`bisep.conditioners.audio_tower.AudioTower` as it is (the power
  spectrum by :func:`bisep.dsp.stft_power`, each BatchNorm folded into its convolution);
- *reference*: the same tower run the way it ran before: torchaudio's STFT with autograd's
  backward through the complex spectrum (``X·X̄``), then the layers one by one.

The embeddings and gradients of both must agree (1e-5 relative); the table gives the best
of ``--repeats`` timings of each, the power spectrum step alone too, and the reference /
optimised ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402


def reference_power(logmel, wav: torch.Tensor) -> torch.Tensor:
    """The log-mel's power spectrum before :func:`bisep.dsp.stft_power`: torchaudio's
    complex STFT and ``X·X̄``, differentiated by autograd."""
    from torchaudio.functional import spectrogram

    conf = logmel.mel.spectrogram
    stft = spectrogram(wav, conf.pad, conf.window, conf.n_fft, conf.hop_length,
                       conf.win_length, None, conf.normalized, conf.center, conf.pad_mode,
                       conf.onesided)
    return (stft * stft.conj()).real


def reference_tower(tower, wav: torch.Tensor) -> torch.Tensor:
    """The eval-mode tower before the speed-up: that power spectrum, then every layer (each
    BatchNorm its own layer) in turn."""
    logmel = torch.log(tower.logmel.mel.mel_scale(reference_power(tower.logmel, wav)) + 1e-10)
    x = (logmel - logmel.mean(dim=(1, 2), keepdim=True)).unsqueeze(1)
    x = tower.temporal(tower.blocks(tower.input_norm(x)).flatten(1, 2))
    x = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1)
    return F.normalize(tower.proj(x), dim=-1)


def forward_backward(embed, wav: torch.Tensor):
    """Embeddings and the gradient of their sum with respect to ``wav``."""
    clip = wav.detach().requires_grad_()
    emb = embed(clip)
    (grad,) = torch.autograd.grad(emb.sum(), clip)
    return emb.detach(), grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=42,
                        help="clips per call (default 42: the distinct phrase outputs of a "
                             "weak batch of 8 MoMs on synth_music)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true",
                        help="2 clips of 0.5 s, 1 repeat: checks the script, the times mean "
                             "little")
    args = parser.parse_args()
    if args.smoke:
        args.clips, args.seconds, args.repeats = 2, 0.5, 1
    torch.set_num_threads(args.threads)
    from bisep.conditioners.audio_tower import AudioTower

    torch.manual_seed(0)
    tower = AudioTower()
    with torch.no_grad():  # running statistics that are not the initial 0 and 1
        tower.train()(torch.randn(8, int(args.seconds * 16000)))
    tower.eval().requires_grad_(False)
    wav = torch.randn(args.clips, int(args.seconds * 16000))

    emb, grad = forward_backward(tower, wav)
    ref_emb, ref_grad = forward_backward(lambda x: reference_tower(tower, x), wav)
    emb_err = ((emb - ref_emb).norm() / ref_emb.norm()).item()
    grad_err = ((grad - ref_grad).norm() / ref_grad.norm()).item()
    if emb_err > 1e-5 or grad_err > 1e-5:
        raise SystemExit(f"the two implementations disagree: embeddings {emb_err:.1e}, "
                         f"gradients {grad_err:.1e} (relative)")

    power_weights = torch.rand_like(reference_power(tower.logmel, wav))
    rows = {
        "power spectrum": (
            lambda: forward_backward(lambda x: (tower.logmel.power(x) * power_weights).sum(
                dim=(1, 2), keepdim=True).flatten(1), wav),
            lambda: forward_backward(lambda x: (reference_power(tower.logmel, x)
                                                * power_weights).sum(dim=(1, 2),
                                                                     keepdim=True).flatten(1),
                                     wav)),
        "tower": (lambda: forward_backward(tower, wav),
                  lambda: forward_backward(lambda x: reference_tower(tower, x), wav)),
    }
    print(f"torch {torch.__version__}, {args.threads} threads; {args.clips} clips of "
          f"{args.seconds:g} s, forward + backward to the audio, best of {args.repeats}; "
          f"agreement: embeddings {emb_err:.1e}, gradients {grad_err:.1e}")
    print(f"{'stage':16s} {'optimised s':>12s} {'reference s':>12s} {'ratio':>7s}")
    for name, (optimised, reference) in rows.items():
        # Interleaved, so that load from other processes hits both alike.
        fast = min(best_time(optimised, args.repeats) for _ in range(2))
        slow = min(best_time(reference, args.repeats) for _ in range(2))
        print(f"{name:16s} {fast:12.4f} {slow:12.4f} {slow / fast:6.2f}x")
    print(f"  judge forward+backward reference / optimised: {slow / fast:.2f}x")


if __name__ == "__main__":
    main()
