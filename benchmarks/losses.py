"""Forward+backward time of each bisep loss against a naive per-item reference.

The references compute the same numbers one item / source / row at a time (the obvious
way to write them); the ratio is what vectorising buys. Both run in the same process on
the same inputs, and each pair is checked to agree before it is timed.

    python benchmarks/losses.py [--repeats 10] [--threads 2]
    python benchmarks/losses.py --smoke     # tiny shapes, one repeat: checks the script
"""
from __future__ import annotations

import argparse
import time

import torch

import bisep.losses as L


def naive_weighted_l1(masks, mix, targets):
    total = 0.0
    for b in range(masks.shape[0]):
        for s in range(masks.shape[1]):
            w = torch.log1p(mix[b].detach()).clamp(1e-3, 10)
            total = total + (w * (masks[b, s] * mix[b] - targets[b, s]).abs()).mean()
    return total / masks.shape[0]


def naive_consistency(masks, mix, mixtures):
    total = 0.0
    for b in range(masks.shape[0]):
        for n in range(masks.shape[1]):
            summed = sum(masks[b, n, k] for k in range(masks.shape[2]))
            w = torch.log1p(mixtures[b, n].detach()).clamp(1e-3, 10)
            total = total + (w * (summed * mix[b] - mixtures[b, n]).abs()).mean()
    return total / masks.shape[0]


def naive_containment(masks, mix, mixtures):
    total = 0.0
    for b in range(masks.shape[0]):
        w = torch.log1p(mix[b].detach()).clamp(1e-3, 10)
        for n in range(masks.shape[1]):
            for k in range(masks.shape[2]):
                total = total + (w * torch.relu(masks[b, n, k] * mix[b] - mixtures[b, n])).mean()
    return total / masks.shape[0]


def naive_judged_level(masks, mix, mixtures, mixture_emb, phrase_emb, scale):
    total = 0.0
    for b in range(masks.shape[0]):
        per_item = []
        for n in range(masks.shape[1]):
            a = mixture_emb[b, n] / mixture_emb[b, n].norm()
            logits = torch.stack([scale * (a @ (t / t.norm())) for t in phrase_emb[b, n]])
            shares = logits.softmax(0).detach()
            energy = (mixtures[b, n] ** 2).sum()
            floor = 1e-6 * energy + torch.finfo(energy.dtype).tiny
            for k in range(masks.shape[2]):
                out = ((masks[b, n, k] * mix[b]) ** 2).sum()
                per_item.append(((out + floor).log() - (shares[k] * energy + floor).log()).abs())
        total = total + torch.stack(per_item).mean()
    return total / masks.shape[0]


def naive_contrastive(audio, text, scale):
    rows = []
    for i in range(audio.shape[0]):
        a = audio[i] / audio[i].norm()
        logits = torch.stack([scale * (a @ (text[j] / text[j].norm())) for j in range(text.shape[0])])
        rows.append(torch.logsumexp(logits, 0) - logits[i])
    return torch.stack(rows).mean()


def naive_sisdr(est, ref):
    vals = []
    for b in range(est.shape[0]):
        for s in range(est.shape[1]):
            e = est[b, s] - est[b, s].mean()
            r = ref[b, s] - ref[b, s].mean()
            proj = (e @ r) / (r @ r + 1e-8) * r
            noise = e - proj
            vals.append(-10 * torch.log10((proj @ proj) / (noise @ noise + 1e-8) + 1e-8))
    return torch.stack(vals).mean()


def timed(fn, leaf, repeats):
    fn().backward()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        leaf.grad = None
        fn().backward()
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny shapes, one repeat: checks the script, the times mean little")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    B, N, K, F, T = 8, 2, 2, 256, 256  # small-preset spectrogram, batch of 8 mixtures of mixtures
    seconds = 4
    if args.smoke:
        B, F, T, seconds, args.repeats = 2, 32, 32, 0.25, 1
    mix = torch.rand(B, F, T, generator=g) * 2
    mixtures = torch.rand(B, N, F, T, generator=g)
    mixture_masks = torch.rand(B, N, F, T, generator=g).requires_grad_()
    phrase_masks = torch.rand(B, N, K, F, T, generator=g).requires_grad_()
    audio = torch.randn(B * K, 512, generator=g).requires_grad_()
    text = torch.randn(B * K, 512, generator=g)
    mixture_emb = torch.randn(B, N, 384, generator=g)
    phrase_emb = torch.randn(B, N, K, 384, generator=g)
    phrase_valid = torch.ones(B, N, K, dtype=torch.bool)
    scale = torch.tensor(23.0)
    est = torch.randn(B, 2, int(seconds * 16000), generator=g).requires_grad_()
    ref = torch.randn(B, 2, int(seconds * 16000), generator=g)

    cases = [
        ("mix_separate (L_UNS)", lambda: L.mix_separate_loss(mixture_masks, mix, mixtures),
         lambda: naive_weighted_l1(mixture_masks, mix, mixtures), mixture_masks),
        ("consistency (L_CRL)", lambda: L.consistency_reconstruction_loss(phrase_masks, mix, mixtures),
         lambda: naive_consistency(phrase_masks, mix, mixtures), phrase_masks),
        ("containment", lambda: L.containment_loss(phrase_masks, mix, mixtures),
         lambda: naive_containment(phrase_masks, mix, mixtures), phrase_masks),
        ("judged_level", lambda: L.judged_level_loss(phrase_masks, mix, mixtures, mixture_emb,
                                                     phrase_emb, scale, phrase_valid),
         lambda: naive_judged_level(phrase_masks, mix, mixtures, mixture_emb, phrase_emb, scale),
         phrase_masks),
        ("clap_contrastive (L_CNT)", lambda: L.bimodal_contrastive_loss(audio, text, 30.0),
         lambda: naive_contrastive(audio, text, 30.0), audio),
        (f"multisrc_neg_sisdr {seconds:g} s", lambda: L.multisrc_neg_sisdr(est, ref).mean(),
         lambda: naive_sisdr(est, ref), est),
    ]
    print(f"threads={args.threads} repeats={args.repeats} B={B} N={N} K={K} F={F} T={T}")
    print(f"{'loss':<26}{'bisep ms':>10}{'naive ms':>10}{'speed-up':>10}")
    for name, fast, slow, leaf in cases:
        diff = abs(fast().item() - slow().item())
        assert diff < 1e-3 * max(1.0, abs(slow().item())), (name, diff)
        t_fast, t_slow = timed(fast, leaf, args.repeats), timed(slow, leaf, args.repeats)
        print(f"{name:<26}{t_fast * 1e3:>10.2f}{t_slow * 1e3:>10.2f}{t_slow / t_fast:>9.1f}x")


if __name__ == "__main__":
    main()
