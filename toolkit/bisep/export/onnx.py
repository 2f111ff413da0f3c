"""A separator's mask predictor as an ONNX graph: magnitude and query embedding in, masks out.

::

    magnitude (B, F, T) ─┐
                         ├─ encode ─ predict_masks ─► masks (B, Q, F, T) in [0, 1]
    query_embedding (B, Q, D)

The STFT, the masking and the inverse STFT stay outside the graph (torch or numpy; the
graph's metadata records ``n_fft``, ``hop_length`` and ``sample_rate``), and so does the
query encoder: the caller embeds the query and feeds the embedding. Batch, queries and
frames are dynamic axes. A separator whose masks depend on more than the embedding (one
that cross-attends to text token states) cannot be exported this way and is refused.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from bisep.errors import UserError
from bisep.separators.base import BaseSeparator, Conditioning

log = logging.getLogger(__name__)

OPSET = 17
INPUTS = ("magnitude", "query_embedding")
OUTPUT = "masks"
DYNAMIC_AXES = {"magnitude": {0: "batch", 2: "frames"},
                "query_embedding": {0: "batch", 1: "queries"},
                "masks": {0: "batch", 1: "queries", 3: "frames"}}


class OnnxExportError(ValueError, UserError):
    """A separator that cannot be exported to ONNX; the message names the reason."""


class MaskPredictor(torch.nn.Module):
    """``encode`` then ``predict_masks`` of a separator, conditioned on the embedding only.

    Shape:
        - magnitude: ``(B, F, T)``; query_embedding: ``(B, Q, D)``.
        - output: ``(B, Q, F, T)``.
    """

    def __init__(self, separator: BaseSeparator):
        super().__init__()
        self.separator = separator

    def forward(self, magnitude: torch.Tensor, query_embedding: torch.Tensor) -> torch.Tensor:
        features = self.separator.encode(magnitude)
        return self.separator.predict_masks(features, Conditioning(query_embedding))


def check_exportable(separator, token_states: bool) -> None:
    """Refuse a separator whose masks are not a function of magnitude and embedding.

    Args:
        separator: the separator.
        token_states: whether its query encoder gives text token states (then a
            separator with ``uses_tokens`` reads them at inference).
    """
    name = type(separator).__name__
    if not isinstance(separator, BaseSeparator):
        raise OnnxExportError(f"{name} is not a mask separator (bisep.separators.base."
                              f"BaseSeparator): there is no encode/predict_masks to export.")
    if separator.uses_tokens and token_states:
        raise OnnxExportError(
            f"{name} reads text token states (cross-attention on the query encoder's "
            f"per-token outputs), which the ONNX graph does not take as an input: only "
            f"separators conditioned on the query embedding alone can be exported (e.g. "
            f"film_masknet, or cond_unet with num_cond_levels=0 as in its small preset).")


def example_inputs(separator: BaseSeparator, frames: int = 32,
                   queries: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A random magnitude and query embedding of the right sizes.

    Shape:
        output: ``(1, F, frames)`` and ``(1, queries, query_dim)``.
    """
    g = torch.Generator().manual_seed(0)
    n_freq = separator.stft.config.n_freq
    return (torch.rand(1, n_freq, frames, generator=g),
            torch.nn.functional.normalize(torch.randn(1, queries, separator.query_dim,
                                                      generator=g), dim=-1))


def export_onnx(separator: BaseSeparator, out_path: str | Path, token_states: bool = False,
                metadata: dict | None = None) -> Path:
    """Write ``separator``'s mask predictor to ``out_path`` (atomically).

    Args:
        separator: the separator (switched to eval mode).
        out_path: the ``.onnx`` file to write.
        token_states: whether its query encoder gives token states (see
            :func:`check_exportable`).
        metadata: extra ``key: value`` strings for the graph's metadata.

    Raises:
        OnnxExportError: the separator cannot be exported, or the exporter failed (the
            message carries its reason, e.g. an unsupported operator).
    """
    import onnx

    from bisep.atomic import atomic_path

    check_exportable(separator, token_states)
    separator.eval()
    # Shapes this small still cover every level: a U-Net pads frames to its multiple.
    wrapper = MaskPredictor(separator).eval()
    args = example_inputs(separator)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        try:
            # The tracer warns that the separators' input checks become constants in the
            # graph (they only raise on bad shapes, which the dynamic axes leave free), and
            # on failure it prints the whole traced graph: the reason below is what matters.
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(wrapper, args, str(tmp), input_names=list(INPUTS),
                                  output_names=[OUTPUT], dynamic_axes=DYNAMIC_AXES,
                                  opset_version=OPSET, dynamo=False)
        except Exception as exc:  # the exporter raises many types; all mean "cannot export"
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise OnnxExportError(f"{type(separator).__name__} could not be exported to ONNX "
                                  f"({type(exc).__name__}: {reason})") from None
        finally:
            # export switches the wrapper back to the mode it found, which was eval.
            separator.eval()
        model = onnx.load(str(tmp))
        info = {"bisep_separator": type(separator).__name__,
                "sample_rate": separator.sample_rate, "query_dim": separator.query_dim,
                "n_fft": separator.stft.config.n_fft,
                "hop_length": separator.stft.config.hop_length, **(metadata or {})}
        for key, value in info.items():
            model.metadata_props.add(key=key, value=str(value))
        onnx.save(model, str(tmp))
    log.info("wrote %s (%s mask predictor, opset %d)", out_path, type(separator).__name__, OPSET)
    return out_path


def export_model_onnx(model: str | Path, out_path: str | Path, registry=None) -> Path:
    """Export the mask predictor of a model folder (or a ``model.pth``) to ``out_path``.

    The query encoder decides whether token states are read (see :func:`check_exportable`).
    """
    from bisep.inference import Separator

    out_path = Path(out_path)
    if out_path.suffix != ".onnx":
        raise OnnxExportError(f"{out_path}: the output must end in .onnx")
    sep = Separator.from_pretrained(model, registry=registry)
    return export_onnx(sep.separator, out_path,
                       token_states=sep.conditioner.token_dim is not None,
                       metadata={"source": Path(model).name})
