"""`bisep train-clap`'s step after its speed-up trains on the very batches of the step before
it and gives the same losses up to float rounding.

The step before the speed-up is kept in benchmarks/train_clap_step.py, which times the two
against each other: ``reference_masked_outputs`` (every source row transformed) and the
audio tower in contiguous (NCHW) memory.
"""
import importlib.util
import warnings
from pathlib import Path

import pytest
import torch

from bisep.train.clap_batches import MASK_CHUNK, masked_outputs
from bisep.train.clap_config import load_train_config
from test_mini_clap import write_tiny_data

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "train_clap_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_clap_step", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_masked_outputs_keep_the_reference_bits(bench):
    g = torch.Generator().manual_seed(0)
    n = MASK_CHUNK + 3  # a chunk and a part of one
    parts = torch.randn(n, 3, 4000, generator=g) * torch.rand(n, 3, 1, generator=g)
    parts[::2, 2] = 0  # 2-source items beside 3-source ones
    parts[1, 1:] = 0   # a source alone
    parts[3, 0] = 0    # no source 0: the ratio mask is 0
    sharpness = torch.exp(torch.rand(n, generator=g) * 2 - 0.7)
    blend = torch.rand(n, generator=g)
    out, masked = masked_outputs(parts, sharpness, blend, torch.Generator().manual_seed(1))
    ref_out, ref_masked = bench.reference_masked_outputs(parts, sharpness, blend,
                                                         torch.Generator().manual_seed(1))
    assert torch.equal(out, ref_out) and torch.equal(masked, ref_masked)
    assert not masked[::2, 2].any() and not masked[3, 0].any()


def test_train_step_gives_the_reference_batches_and_losses(bench, tmp_path):
    write_tiny_data(tmp_path)
    conf = load_train_config(bench.CONF, bench.SMOKE_OVERRIDES + ["three_fraction=0.5"])
    pool = bench.load_pool(tmp_path, conf)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="mini_clap was built without a checkpoint")
        optimised, reference = (bench.build(conf, pool, reference=flag) for flag in (False, True))
    blocks = optimised["conditioner"].audio.blocks
    assert blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    for number in range(3):
        new, old = bench.step(optimised), bench.step(reference)
        assert bench.same_batch(new["batch"], old["batch"]), number
        assert any(len(labels) == 3 for labels in new["batch"].labels)
        assert new["loss"] == pytest.approx(old["loss"], rel=1e-5), number
    # What a checkpoint stores does not depend on the layout the tower trained in.
    state = optimised["conditioner"].audio_state_dict()
    assert all(value.is_contiguous() for value in state.values())
