"""Extraction throughput of the corpus recipes' stage 1 (``bisep prepare vggsound``):
WAV against MP4/AAC sources, one worker against two.

    python benchmarks/corpus_extract.py                 # 40 clips of 10 s, about 20 s of CPU
    python benchmarks/corpus_extract.py --clips 20 --repeats 1
    python benchmarks/corpus_extract.py --smoke           # 2 clips: checks the script

Builds ``--clips`` synthetic clips (``--seconds`` long, 44.1 kHz stereo: a tone with
vibrato plus noise, as ``tests/corpus_fakes.py`` writes them) twice, as WAV and as MP4 with
an AAC stream, each copy with its own ``vggsound.csv``. Then runs the ``vggsound`` plugin's
extraction (:func:`bisep.data.extract.extract_all`: decode the 8.19 s crop at 4.5 s, average
the channels, resample to 16 kHz, write 16-bit WAVs and the journal) into a fresh folder
with ``nj`` 1 and 2 worker processes, each the best of ``--repeats`` runs, interleaved.
Compositions and manifests (the rest of ``prepare``) are not timed.

Prints clips/s, seconds of source audio decoded per second of wall time, and the ratios
measured in the same run: the cost of an MP4 clip against a WAV clip, and the speed-up of
two workers over one (bounded by the free cores: the load average is printed).
A profile of one worker (``--profile``) shows where a clip's time goes.
"""
from __future__ import annotations

import argparse
import cProfile
import csv
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from corpus_fakes import signal, write_mp4, write_wav  # noqa: E402

from bisep.data.extract import extract_all  # noqa: E402
from bisep.data.vggsound import VGGSound  # noqa: E402

RATE = 44100


def build(root: Path, clips: int, seconds: float, suffix: str) -> None:
    """``clips`` stereo clips under ``root/video`` named like VGGSound's, and the csv."""
    rows = []
    for index in range(clips):
        video = f"clip{index:04d}"
        audio = signal(index, seconds, RATE, channels=2)
        path = root / "video" / f"{video}_000000{suffix}"
        write_mp4(path, audio, RATE) if suffix == ".mp4" else write_wav(path, audio, RATE)
        rows.append([video, 0, f"class {index % 10}", "train"])
    with open(root / "vggsound.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def extract(root: Path, nj: int, work: Path) -> float:
    """Seconds to extract every clip of ``root`` into a fresh data folder."""
    dataset = VGGSound(root=str(root), nj=nj)
    data_dir = work / f"data_nj{nj}_{root.name}"
    shutil.rmtree(data_dir, ignore_errors=True)
    sources = sorted(dataset.sources(), key=lambda s: s.id)
    start = time.perf_counter()
    results, _ = extract_all(sources, data_dir, dataset.settings, nj, dataset.name)
    seconds = time.perf_counter() - start
    failed = [r for r in results.values() if "clips" not in r]
    if failed:
        raise SystemExit(f"extraction failed: {failed[:3]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", action="store_true",
                        help="also profile one nj=1 run of each format")
    parser.add_argument("--smoke", action="store_true",
                        help="2 clips, one repeat: checks the script, the times mean "
                             "little")
    args = parser.parse_args()
    if args.smoke:
        args.clips, args.repeats = 2, 1
    with tempfile.TemporaryDirectory(prefix="bisep_extract_") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        roots = {}
        for name, suffix in (("wav", ".wav"), ("mp4", ".mp4")):
            roots[name] = work / name
            build(roots[name], args.clips, args.seconds, suffix)
        print(f"{args.clips} clips of {args.seconds:g} s, {RATE} Hz stereo, built in "
              f"{time.perf_counter() - start:.1f} s; load average {os.getloadavg()[0]:.2f}")
        for name in roots:  # warm-up: imports, the first torch resample, page cache
            extract(roots[name], 1, work)
        best: dict[tuple[str, int], float] = {}
        for _ in range(args.repeats):
            for nj in (1, 2):
                for name, root in roots.items():
                    seconds = extract(root, nj, work)
                    best[name, nj] = min(best.get((name, nj), float("inf")), seconds)
        audio = args.clips * args.seconds
        print(f"{'format':<8}{'nj':>4}{'seconds':>10}{'clips/s':>10}{'audio s/s':>11}"
              f"{'ms/clip':>10}{'vs WAV':>9}{'vs nj=1':>9}")
        for name in roots:
            for nj in (1, 2):
                seconds = best[name, nj]
                print(f"{name:<8}{nj:>4}{seconds:>10.2f}{args.clips / seconds:>10.1f}"
                      f"{audio / seconds:>11.0f}{1e3 * seconds / args.clips:>10.1f}"
                      f"{seconds / best['wav', nj]:>8.2f}x{best[name, 1] / seconds:>8.2f}x")
        if args.profile:
            for name, root in roots.items():
                profile = cProfile.Profile()
                profile.enable()
                extract(root, 1, work)
                profile.disable()
                print(f"\nprofile, {name}, nj=1 (top 12 by own time)")
                pstats.Stats(profile).sort_stats("tottime").print_stats(12)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
