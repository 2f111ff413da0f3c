"""Every script in benchmarks/ runs in its --smoke mode and prints its ratio line.

Only tests/test_separators.py reads one of them (the frozen pre-tuning cond_unet kept in
separator_rtf.py), so without this they rot unnoticed (an import of a renamed class once
kept separator_rtf.py from starting at all).
"""
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# The line that carries each script's comparison measured in the same run.
RATIO_LINES = {
    "chunked_inference.py": r"^file stats / chunk stats time \d+\.\d\dx$",
    "corpus_extract.py": r"^mp4\s+2\s.*\d\.\d\dx\s+\d+\.\d\dx$",
    "demo_request.py": r"^page / separation \d+\.\d\dx$",
    "judge_backward.py": r"^  judge forward\+backward reference / optimised: \d+\.\d\dx$",
    "inference_memory.py": r"^film_masknet:small\s+-?\d+\.\d\d\s+-?\d+\.\d\d$",
    "losses.py": r"^multisrc_neg_sisdr .*\d\.\dx$",
    "mix_plan.py": r"^audiocaps .*\d\.\dx",
    "onnx_rtf.py": r"^film_masknet:\w+\s+2\s+\d+\.\d{4}\s+\d+\.\d{4}\s+\S+\s+\d+\.\d\dx$",
    "reference_free.py": r"^  time ratio reference-free / BSS-Eval: \d+\.\d\dx$",
    "scoring.py": r"^  speed ratio mir_eval / fast: \d+\.\dx$",
    "separator_rtf.py": r"^ConvTasNet \(\d+x\d+ blocks\)\s.*1\.00$",
    "stft_mask.py": r"^\s+\d+\s+\d+ fwd\s+triton\s.*1\.00$",
    "train_clap_step.py": r"^  step time reference / optimised: wall \d+\.\d\dx, "
                          r"CPU \d+\.\d\dx$",
    "train_step.py": r"^  shared / once per query\s+\d+\.\d\d$",
}
# Longest first, so that the two workers finish close together.
ORDER = ["inference_memory.py", "chunked_inference.py", "train_step.py", "train_clap_step.py",
         "separator_rtf.py", "stft_mask.py", "corpus_extract.py", "scoring.py", "onnx_rtf.py",
         "demo_request.py", "reference_free.py", "judge_backward.py", "losses.py", "mix_plan.py"]


def run_smoke(name: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("TRITON_INTERPRET", None)  # stft_mask.py sets it itself, before importing Triton
    return subprocess.run([sys.executable, str(BENCHMARKS / name), "--smoke"],
                          capture_output=True, text=True, env=env, timeout=600)


def test_every_benchmark_is_listed():
    # benchmarks/_*.py are helpers the scripts share, not benchmarks.
    scripts = [p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")]
    assert sorted(scripts) == sorted(RATIO_LINES)
    assert sorted(ORDER) == sorted(RATIO_LINES)


@pytest.fixture(scope="module")
def smoke_runs():
    # Two at a time: most of a smoke run is interpreter start-up and model loading.
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(ORDER, pool.map(run_smoke, ORDER)))


@pytest.mark.parametrize("name", sorted(RATIO_LINES))
def test_benchmark_smoke_run_prints_its_ratio(smoke_runs, name):
    proc = smoke_runs[name]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert re.search(RATIO_LINES[name], proc.stdout, re.MULTILINE), proc.stdout[-3000:]
