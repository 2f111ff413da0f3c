"""Real-time factor of the separators on CPU, against an Asteroid Conv-TasNet, and the
cost of extra queries.

    python benchmarks/separator_rtf.py                 # 60 s of audio, 2 threads
    python benchmarks/separator_rtf.py --seconds 20 --skip-paper
    python benchmarks/separator_rtf.py --seconds 16.38 --rtf-only   # paper preset vs before
    python benchmarks/separator_rtf.py --seconds 8.19 --rtf-only --compile   # + torch.compile
    python benchmarks/separator_rtf.py --smoke          # tiny sizes: checks the script
    python benchmarks/separator_rtf.py --device cuda    # on a GPU

Every model separates the same audio in 131,070-sample chunks (the paper's clip size,
as its demo does) with one query, in inference mode. The reference is a Conv-TasNet
(``asteroid.models.ConvTasNet``, one output, 16 kHz) with ``n_blocks`` x ``n_repeats``
chosen so that its parameter count is closest to ``cond_unet``'s small preset. RTF is
processing time / audio duration (below 1: faster than real time). Timings on a shared
machine drift and burst, so each time is the median of ``--repeats`` interleaved runs,
also given as CPU time (less sensitive to other jobs than wall time) and as a ratio to the
reference measured in the same run, and the load average is printed.

``cond_unet`` before its inference path was tuned is kept here as a frozen copy
(:func:`reference_masks`, a plain function of the model's parameters) and timed on the same
weights, interleaved with the tuned model: the paper preset, or in ``--smoke`` mode the
small preset with one SCA level. The line after the first table gives the ratio.

The second table times one chunk: ``encode`` (once per mixture) against
``predict_masks`` for 1 and 6 queries, and what 6 queries cost compared with 6 separate
single-query runs (what sharing the query-independent part buys). The third times a
training step of the separator alone (8 mixtures x 6 queries of 3 s, forward and
backward; no conditioner, no loss), which is what decides whether a preset trains on CPU.

With ``--device cuda`` every model, input and query lives on the GPU and each timer waits
for the GPU's queued work (``torch.cuda.synchronize``); the CPU-time column then only says
how busy the launching thread was.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bisep.separators.base import Conditioning
from bisep.separators.cond_unet import CondUNet
from bisep.separators.film_masknet import FiLMMaskNet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import wall_clock  # noqa: E402

CHUNK = 131070
SR = 16000
DEVICE = torch.device("cpu")  # set by --device


def now() -> float:
    """Wall seconds, after the GPU's queued work (if any) is done."""
    return wall_clock(DEVICE)


# -- cond_unet as it was before its speed work (frozen copy) ---------------------------
# The masks of CondUNet in eval mode exactly as the code computed them before the
# inference path was tuned: a plain function of the model's parameters, so that later
# changes to the module cannot change it. `tests/test_separators.py` checks the tuned
# model against it; main() times both, interleaved.
def _ref_bn(norm, x):
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                        False, 0.0, norm.eps)


def _ref_res(res, x):
    return F.leaky_relu(_ref_bn(res.norm, F.conv2d(x, res.conv.weight, res.conv.bias,
                                                   padding=1)) + x, 0.2)


def _ref_down(down, x):
    conv, norm, _, res = down
    x = F.leaky_relu(_ref_bn(norm, F.conv2d(x, conv.weight, stride=2, padding=1)), 0.2)
    return _ref_res(res, x)


def _ref_up(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def _ref_out(up, x):
    if isinstance(up.out, torch.nn.Conv2d):
        return F.conv2d(x, up.out.weight, up.out.bias, padding=1)
    conv, norm, _ = up.out
    return F.relu(_ref_bn(norm, F.conv2d(x, conv.weight, padding=1)))


def _ref_split(res, lead, partial, x):
    batch, c_lead = lead.shape[:2]
    y = F.conv2d(x, res.conv.weight[:, c_lead:].contiguous(), res.conv.bias, padding=1)
    y = (y.unflatten(0, (batch, -1)) + partial.unsqueeze(1)).flatten(0, 1)
    y = _ref_bn(res.norm, y)
    y_lead = (y[:, :c_lead].unflatten(0, (batch, -1)) + lead.unsqueeze(1)).flatten(0, 1)
    return F.leaky_relu(torch.cat([y_lead, y[:, c_lead:] + x], dim=1), 0.2)


def _ref_block(block, x, context, key_mask):
    h = F.layer_norm(x, x.shape[-1:], block.norm1.weight, block.norm1.bias, block.norm1.eps)
    attn = block.attn
    context = context if block.cross else h
    q = F.linear(h, attn.q.weight, attn.q.bias).unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)
    k, v = F.linear(context, attn.kv.weight, attn.kv.bias).unflatten(
        -1, (2, attn.num_heads, -1)).permute(2, 0, 3, 1, 4)
    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    x = x + F.linear(out.transpose(1, 2).flatten(2), attn.proj.weight, attn.proj.bias)
    h = F.layer_norm(x, x.shape[-1:], block.norm2.weight, block.norm2.bias, block.norm2.eps)
    first, _, second = block.mlp
    return x + F.linear(F.gelu(F.linear(h, first.weight, first.bias)), second.weight, second.bias)


def _ref_sca(sca, x, context, key_mask):
    n, c, h, w = x.shape
    seq = _ref_block(sca.self_block, x.flatten(2).transpose(1, 2), None, None)
    seq = _ref_block(sca.cross_block, seq, context, key_mask)
    return seq.transpose(1, 2).reshape(n, c, h, w)


def _ref_decode(model, skips, x):
    x = _ref_out(model.ups[-1], _ref_res(model.ups[-1].res, _ref_up(x)))
    for i in range(len(model.ups) - 2, -1, -1):
        up, skip = model.ups[i], skips[i]
        if isinstance(skip, tuple):
            x = _ref_out(up, _ref_split(up.res, *skip, _ref_up(x)))
        else:
            x = _ref_out(up, _ref_res(up.res, _ref_up(torch.cat([skip, x], dim=1))))
    return x


def _ref_head(head, maps, embedding):
    q = torch.sigmoid(F.linear(embedding, head.proj.weight, head.proj.bias)) * head.scale
    if maps.shape[1] == 1:
        logits = torch.einsum("bqc,bcft->bqft", q, maps[:, 0])
    else:
        logits = torch.einsum("bqc,bqcft->bqft", q, maps)
    return torch.sigmoid(logits + head.bias)


def reference_masks(model: CondUNet, mag: torch.Tensor, query: Conditioning) -> torch.Tensor:
    """``model.predict_masks(model.encode(mag), query)`` of an eval-mode CondUNet as
    computed before the speed work (query-independent levels once per mixture, the skip
    half of each shared up level's first conv precomputed in encode).

    Shape:
        - mag: ``(B, F, T)``; query: ``(B, Q, ...)``; output: ``(B, Q, F, T)``.
    """
    n_freq, n_frames = mag.shape[-2:]
    multiple = 2 ** model.conf["num_downs"]
    mag = F.pad(mag, (0, -n_frames % multiple, 0, -n_freq % multiple))
    x = _ref_bn(model.input_norm, torch.log1p(mag).unsqueeze(1))
    skips = []
    for down in model.downs[:model.first_cond]:
        x = _ref_down(down, x)
        skips.append(x)
    if model.first_cond == len(model.downs):
        maps = _ref_decode(model, skips[:-1], x)[..., :n_freq, :n_frames].unsqueeze(1)
        return _ref_head(model.head, maps, query.embedding)
    shared = []
    for i, skip in enumerate(skips):
        up = _ref_up(skip)
        res = model.ups[i].res
        shared.append((up, F.conv2d(up, res.conv.weight[:, :up.shape[1]].contiguous(),
                                    padding=1)))
    x = _ref_down(model.downs[model.first_cond], x)
    if query.tokens is None:
        context = F.linear(query.embedding.flatten(0, 1), model.embedding_token.weight,
                           model.embedding_token.bias).unsqueeze(1)
        key_mask = None
    else:
        context = query.tokens.flatten(0, 1)
        key_mask = (None if query.token_mask is None
                    else query.token_mask.flatten(0, 1).bool())
    x = x.repeat_interleave(query.num_queries, dim=0)
    for j, sca in enumerate(model.sca):
        if j:
            x = _ref_down(model.downs[model.first_cond + j], x)
        x = _ref_sca(sca, x, context, key_mask)
        shared.append(x)
    maps = _ref_decode(model, shared, shared.pop())[..., :n_freq, :n_frames]
    return _ref_head(model.head, maps.unflatten(0, (mag.shape[0], -1)), query.embedding)


class ReferenceCondUNet(torch.nn.Module):
    """``wav -> separated`` through :func:`reference_masks` (same STFT and synthesis)."""

    def __init__(self, model: CondUNet):
        super().__init__()
        self.model = model

    def forward(self, wav: torch.Tensor, query: Conditioning) -> torch.Tensor:
        spec, mag = self.model.analyze(wav)
        return self.model.synthesize(spec, reference_masks(self.model, mag, query),
                                     wav.shape[-1])


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_conditioning(model, queries: int, seed: int = 0) -> Conditioning:
    """Random unit-norm embeddings, plus CLAP-like token states (77 tokens, 768-d, about
    a third real) for a model that cross-attends to them."""
    g = torch.Generator().manual_seed(seed)
    emb = F.normalize(torch.randn(1, queries, model.query_dim, generator=g), dim=-1)
    if not getattr(model, "sca", None):
        return Conditioning(emb.to(DEVICE))
    tokens = torch.randn(1, queries, 77, model.token_dim, generator=g)
    mask = (torch.arange(77) < 25).expand(1, queries, 77)
    return Conditioning(emb.to(DEVICE), tokens.to(DEVICE), mask.to(DEVICE))


def tasnet_like(target: int, max_blocks: int = 8, max_repeats: int = 4):
    """The Asteroid Conv-TasNet whose parameter count is closest to ``target``."""
    from asteroid.models import ConvTasNet

    best = None
    for n_blocks in range(1, max_blocks + 1):
        for n_repeats in range(1, max_repeats + 1):
            model = ConvTasNet(n_src=1, n_blocks=n_blocks, n_repeats=n_repeats, sample_rate=SR)
            if best is None or abs(n_params(model) - target) < abs(n_params(best[0]) - target):
                best = (model, n_blocks, n_repeats)
    return best


def one_query(model, run=None):
    """``wav -> separated`` with a fixed single query, through ``run`` (default: the model)."""
    query = make_conditioning(model, 1)
    run = model if run is None else run
    return lambda wav: run(wav, query)


@torch.inference_mode()
def run_chunked(separate, wav: torch.Tensor, chunk: int = CHUNK) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) to separate ``wav`` (1, L) chunk by chunk, as the
    paper's demo does."""
    length = wav.shape[-1]
    padded = F.pad(wav, (0, -length % chunk))
    start, cpu = now(), time.process_time()
    outs = [separate(piece) for piece in padded.split(chunk, dim=-1)]
    torch.cat(outs, dim=-1)[..., :length]
    return now() - start, time.process_time() - cpu


@torch.inference_mode()
def query_costs(model, wav: torch.Tensor, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds of analyze+encode, predict_masks (Q=1, Q=6), synthesize."""
    def best(fn):
        times = []
        for _ in range(repeats):
            start = now()
            out = fn()
            times.append(now() - start)
        return min(times), out

    def encode():
        spec, mag = model.analyze(wav)
        return spec, model.encode(mag)

    t_enc, (spec, features) = best(encode)
    result = {"encode": t_enc}
    for q in (1, 6):
        query = make_conditioning(model, q)
        result[f"predict_{q}"], masks = best(lambda: model.predict_masks(features, query))
        result[f"synth_{q}"], _ = best(lambda: model.synthesize(spec, masks, wav.shape[-1]))
    return result


def train_step_seconds(model, repeats: int, batch: int = 8, queries: int = 6,
                       seconds: float = 3.0) -> float:
    """Best-of-``repeats`` seconds of one separator forward + backward in train mode (a
    weak-supervision step's separator share: ``batch`` mixtures, ``queries`` each)."""
    model.train()
    wav = 0.1 * torch.randn(batch, int(seconds * SR),
                            generator=torch.Generator().manual_seed(2)).to(DEVICE)
    query = make_conditioning(model, queries)
    query = Conditioning(*(None if t is None else t.expand(batch, *t.shape[1:])
                    for t in (query.embedding, query.tokens, query.token_mask)))
    times = []
    for _ in range(repeats):
        start = now()
        _, mag = model.analyze(wav)
        model.predict_masks(model.encode(mag), query).mean().backward()
        times.append(now() - start)
        model.zero_grad(set_to_none=True)
    model.eval()
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length (default 60)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per model, interleaved; the median is reported")
    parser.add_argument("--skip-paper", action="store_true",
                        help="leave out the paper-size cond_unet (slow on CPU)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of the tuned cond_unet (compiled at the "
                             "warm-up; its convolutions are oneDNN's, not Winograd)")
    parser.add_argument("--rtf-only", action="store_true",
                        help="stop after the first table (speeds and the pre-tuning ratio)")
    parser.add_argument("--smoke", action="store_true",
                        help="small presets only, 1 s in 16384-sample chunks, one repeat, a "
                             "tiny training step: checks the script, the times mean little")
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"),
                        help="where the models run: cpu (default) or cuda[:N]")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    chunk, step = CHUNK, {}
    if args.smoke:
        args.seconds, args.repeats, args.skip_paper = 1.0, 1, True
        chunk, step = 16384, {"batch": 1, "queries": 2, "seconds": 0.5}

    models = {}
    if not args.skip_paper:
        models["cond_unet (paper)"] = CondUNet()
    models["cond_unet (small)"] = CondUNet(preset="small")
    models["cond_unet (small, 1 SCA)"] = CondUNet(preset="small", num_cond_levels=1)
    if not args.smoke:
        models["film_masknet (default)"] = FiLMMaskNet()
    models["film_masknet (small)"] = FiLMMaskNet(preset="small")
    # The pre-tuning code on the same weights (the paper preset's, or in smoke mode the
    # smallest cond_unet with an SCA level), timed interleaved with the tuned one.
    tuned = "cond_unet (small, 1 SCA)" if args.skip_paper else "cond_unet (paper)"
    before = f"{tuned[:-1]}, pre-tuning)"
    reference, n_blocks, n_repeats = tasnet_like(n_params(models["cond_unet (small)"]),
                                                 *((2, 1) if args.smoke else ()))
    ref_name = f"ConvTasNet ({n_blocks}x{n_repeats} blocks)"
    for model in (*models.values(), reference):
        model.to(DEVICE).eval()

    wav = 0.1 * torch.randn(1, int(args.seconds * SR),
                            generator=torch.Generator().manual_seed(1)).to(DEVICE)
    duration = wav.shape[-1] / SR
    gpu = f" on {torch.cuda.get_device_name(DEVICE)}" if DEVICE.type == "cuda" else ""
    print(f"torch {torch.__version__}, {args.threads} threads{gpu}, {duration:.1f} s of audio in "
          f"{chunk}-sample chunks; load average {os.getloadavg()[0]:.2f}")

    separators = {name: one_query(model) for name, model in models.items()}
    separators[before] = one_query(models[tuned], ReferenceCondUNet(models[tuned]))
    compiled = f"{tuned[:-1]}, torch.compile)"
    if args.compile:
        separators[compiled] = one_query(models[tuned], torch.compile(models[tuned]))
    separators[ref_name] = reference
    for fn in separators.values():  # warm-up: allocator, oneDNN kernels
        run_chunked(fn, wav[:, :SR], chunk)
    # Medians of the repeats, interleaved so that a burst of load elsewhere hits one
    # repeat of every model rather than all repeats of one.
    runs = {name: [] for name in separators}
    for repeat in range(args.repeats):
        for name, fn in separators.items():
            runs[name].append(run_chunked(fn, wav, chunk))
    times = {name: statistics.median(wall for wall, _ in r) for name, r in runs.items()}
    cpu = {name: statistics.median(c for _, c in r) for name, r in runs.items()}

    print(f"\nmedian of {args.repeats} interleaved runs; CPU: seconds of all threads")
    print(f"{'model':36s} {'params':>11s} {'seconds':>9s} {'CPU s':>8s} {'RTF':>7s} "
          f"{'x ref':>7s}")
    for name, seconds in times.items():
        model = models.get(name, models[tuned] if name in (before, compiled) else reference)
        print(f"{name:36s} {n_params(model):11,d} {seconds:9.2f} {cpu[name]:8.2f} "
              f"{seconds / duration:7.3f} {seconds / times[ref_name]:7.2f}")
    print(f"\n{tuned} against its pre-tuning code: {times[before] / times[tuned]:.2f}x as "
          f"fast ({cpu[before] / cpu[tuned]:.2f}x in CPU time)")

    if args.rtf_only:
        return
    print(f"\nper-query cost on one {chunk / SR:.2f} s chunk, seconds (best of {args.repeats}; "
          f"paper preset: 1 run)")
    print(f"{'model':28s} {'encode':>8s} {'pred Q=1':>9s} {'pred Q=6':>9s} "
          f"{'Q=6 / 6 runs of Q=1':>20s}")
    piece = wav[:, :chunk] if wav.shape[-1] >= chunk else F.pad(wav, (0, chunk - wav.shape[-1]))
    for name, model in models.items():
        c = query_costs(model, piece, repeats=1 if "paper" in name else args.repeats)
        one = c["encode"] + c["predict_1"] + c["synth_1"]
        six = c["encode"] + c["predict_6"] + c["synth_6"]
        print(f"{name:28s} {c['encode']:8.3f} {c['predict_1']:9.3f} {c['predict_6']:9.3f} "
              f"{six / (6 * one):20.2f}")

    sizes = {"batch": 8, "queries": 6, "seconds": 3.0, **step}
    print(f"\ntraining step, separator only (forward + backward, {sizes['batch']} mixtures x "
          f"{sizes['queries']} queries, {sizes['seconds']:g} s), seconds (best of "
          f"{args.repeats})")
    for name, model in models.items():
        if "paper" not in name:
            print(f"{name:28s} {train_step_seconds(model, args.repeats, **sizes):8.2f}")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
