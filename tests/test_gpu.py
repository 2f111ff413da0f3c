"""Training and separation on a CUDA GPU, run for real where one is present (skipped
elsewhere, CI included): `bisep train` on one GPU, alone and through DDP (the NCCL process
group, at world size 1), the weak mode's losses against the CPU's, and `bisep separate
--device cuda` against `--device cpu` on the GPU-trained model.

One GPU cannot test two NCCL ranks (NCCL refuses two ranks on one device); the
multi-process logic itself is `tests/test_ddp.py`'s, on CPU with gloo.
"""
import copy
import re
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import run_cli
from test_ddp import plans  # noqa: F401  (the tiny data with 8 training MoMs: a fixture)
from test_train import TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU = ["trainer.accelerator=gpu", "trainer.devices=1"]


def train(plans, exp, *overrides):  # noqa: F811
    data, dump = plans
    return run_cli("train", "--config", TINY / "train_weak.yaml", "--data-dir", data,
                   "--dump-dir", dump, "--exp-dir", exp, *GPU, *overrides, check=True,
                   timeout=600)


@pytest.fixture(scope="module")
def gpu_model(plans, tmp_path_factory):  # noqa: F811
    exp = tmp_path_factory.mktemp("gpu") / "exp"
    out = train(plans, exp)
    return exp, out.stdout + out.stderr


def test_training_on_one_gpu_writes_the_model(gpu_model):
    exp, output = gpu_model
    # Lightning's device summary: the run really used the GPU.
    assert re.search(r"GPU available: True \(cuda\), used: True", output), output[-3000:]
    for name in ("model.pth", "config.yaml", "logs/metrics.csv"):
        assert (exp / name).is_file(), name


def test_ddp_on_one_gpu_uses_nccl(plans, tmp_path):  # noqa: F811
    out = train(plans, tmp_path / "exp", "trainer.strategy=ddp", "trainer.max_steps=2")
    output = out.stdout + out.stderr
    assert "distributed_backend=nccl" in output, output[-3000:]
    assert "global batch 2 MoMs" in output
    assert (tmp_path / "exp" / "model.pth").is_file()


def test_weak_losses_on_gpu_match_the_cpu(plans, monkeypatch):  # noqa: F811
    from bisep.config import load_config
    from bisep.train.datamodule import MoMDataModule
    from bisep.train.module import SeparationModule

    # TF32 would round the GPU's convolutions to 10-bit mantissas; plain float32 on both.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    data, dump = plans
    config = load_config(TINY / "train_weak.yaml", [])
    torch.manual_seed(config["seed"])
    with warnings.catch_warnings():  # mini_clap with a random audio tower, as in the config
        warnings.filterwarnings("ignore", message="mini_clap was built without a checkpoint")
        cpu = SeparationModule(config)
    gpu = copy.deepcopy(cpu).cuda()
    datamodule = MoMDataModule(data, dump, config["data"], sources="none",
                               sample_rate=cpu.separator.sample_rate, seed=config["seed"])
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    on_gpu = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
    total_cpu, parts_cpu = cpu.compute_losses(batch)
    total_gpu, parts_gpu = gpu.compute_losses(on_gpu)
    assert total_gpu.is_cuda and sorted(parts_gpu) == sorted(parts_cpu)
    assert len(parts_cpu) == 3  # contrastive, consistency-reconstruction, mix-separate
    for name, value in parts_cpu.items():
        torch.testing.assert_close(parts_gpu[name].cpu(), value, rtol=1e-4, atol=1e-5,
                                   msg=name)
    torch.testing.assert_close(total_gpu.cpu(), total_cpu, rtol=1e-4, atol=1e-5)


def test_separation_on_gpu_matches_the_cpu(gpu_model, plans, tmp_path):  # noqa: F811
    exp, _ = gpu_model
    data, _ = plans
    mixture = data / "wav" / "test" / "test_000000.wav"  # cello and tuba
    outputs = {}
    for device in ("cuda", "cpu"):
        out_dir = tmp_path / device
        run_cli("separate", exp, mixture, "--query", "cello", "-o", out_dir,
                "--device", device, "--no-progress", check=True, timeout=300)
        (wav,) = sorted(out_dir.glob("*.wav"))
        outputs[device], _ = sf.read(wav, dtype="float64")
    reference, gpu = outputs["cpu"], outputs["cuda"]
    assert gpu.shape == reference.shape and np.abs(reference).max() > 0
    # TF32 convolutions on the GPU: agreement to 40 dB, not to the last bit.
    error = 10 * np.log10(np.sum(reference ** 2) / max(np.sum((gpu - reference) ** 2), 1e-30))
    assert error > 40, error
