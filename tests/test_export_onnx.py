"""ONNX export of the mask predictors: onnxruntime's masks against torch's (max abs
difference <= 1e-4) at shapes other than the exported ones, and the refusals."""
import numpy as np
import pytest
import torch

from bisep.export.onnx import OnnxExportError, example_inputs, export_onnx
from bisep.separators.base import BaseSeparator, Conditioning
from bisep.separators.cond_unet import CondUNet
from bisep.separators.film_masknet import FiLMMaskNet

onnxruntime = pytest.importorskip("onnxruntime")

TINY = {
    "film_masknet": lambda: FiLMMaskNet(preset="small", query_dim=16, bn_chan=16, hid_chan=32,
                                        n_blocks=2, n_repeats=2, num_film_blocks=2),
    "cond_unet:small": lambda: CondUNet(preset="small", query_dim=16, ngf=4, num_downs=3),
    # The paper preset's SCA levels, attending to the embedding (no token states given).
    "cond_unet:paper": lambda: CondUNet(preset="paper", n_fft=254, query_dim=16, ngf=4,
                                        num_downs=4, num_cond_levels=2, num_heads=2,
                                        token_dim=16),
}


def trained_looking(model: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm statistics and FiLM weights: at initialisation BN is the identity
    and FiLM is zero, which would hide errors in both."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5, generator=g)
                module.running_var.uniform_(0.5, 2.0, generator=g)
            if type(module).__name__ == "FiLM":
                module.proj.weight.normal_(0.0, 0.1, generator=g)
    return model.eval()


@pytest.mark.parametrize("name", sorted(TINY))
def test_onnxruntime_masks_match_torch(name, tmp_path):
    model = trained_looking(TINY[name]())
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    # Other frames (not multiples of the U-Net's), queries and batch than the export's.
    for batch, queries, frames in [(1, 1, 32), (2, 3, 77), (1, 2, 130)]:
        mag, _ = example_inputs(model, frames=frames)
        mag = mag.expand(batch, -1, -1) * torch.linspace(0.5, 2.0, batch)[:, None, None]
        emb = torch.nn.functional.normalize(torch.randn(batch, queries, 16), dim=-1)
        with torch.no_grad():
            expected = model.predict_masks(model.encode(mag), Conditioning(emb)).numpy()
        got, = session.run(None, {"magnitude": mag.numpy(), "query_embedding": emb.numpy()})
        assert got.shape == expected.shape == (batch, queries, mag.shape[1], frames)
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst <= 1e-4, f"{name}: max abs difference {worst:.2e}"


def test_a_separator_reading_token_states_is_refused(tmp_path):
    model = TINY["cond_unet:paper"]()
    with pytest.raises(OnnxExportError, match="CondUNet reads text token states"):
        export_onnx(model, tmp_path / "x.onnx", token_states=True)
    assert not (tmp_path / "x.onnx").exists()


def test_something_that_is_not_a_mask_separator_is_refused(tmp_path):
    with pytest.raises(OnnxExportError, match="Linear is not a mask separator"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")


class EigSeparator(BaseSeparator):
    """Masks through an eigendecomposition, which the ONNX exporter has no operator for."""

    def __init__(self):
        super().__init__(n_fft=30, hop_length=8, query_dim=4)

    def encode(self, mag):
        return mag

    def predict_masks(self, features, query):
        gram = features @ features.transpose(1, 2)
        scale = torch.linalg.eigvalsh(gram)[..., -1:, None].sigmoid()
        return (features.unsqueeze(1) * scale.unsqueeze(1)).sigmoid().expand(
            -1, query.num_queries, -1, -1)


def test_an_unsupported_operator_is_reported(tmp_path):
    with pytest.raises(OnnxExportError, match="EigSeparator could not be exported.*linalg_eigvalsh"):
        export_onnx(EigSeparator(), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
