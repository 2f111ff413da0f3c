"""Checkpoints: Asteroid's layout, atomic writes, weights_only loads, clear errors."""
import pytest
import torch

from bisep import checkpoint
from bisep.checkpoint import CheckpointError
from bisep.separators.base import Conditioning
from conftest import assert_mentions


@pytest.fixture
def gain_model(use_plugins):
    registry = use_plugins("example")
    torch.manual_seed(0)
    model = registry.build("separator", "example_gain", query_dim=4)
    return registry, model


def test_round_trip_through_the_registry(tmp_path, gain_model):
    registry, model = gain_model
    path = checkpoint.save(checkpoint.serialize(model, config={"separator": "example_gain"}),
                           tmp_path / "exp" / "model.pth")
    package = checkpoint.load(path)
    assert package["model_name"] == "example_gain"
    assert package["model_args"]["query_dim"] == 4
    assert package["infos"]["software_versions"]["torch"] == torch.__version__
    assert package["infos"]["config"] == {"separator": "example_gain"}
    again = checkpoint.from_pretrained(tmp_path / "exp", registry=registry)  # a model dir
    wav, query = torch.randn(2, 800), Conditioning(torch.randn(2, 3, 4))
    assert torch.equal(model(wav, query), again(wav, query))


def test_keyword_overrides_and_mismatched_weights(tmp_path, gain_model):
    registry, model = gain_model
    path = checkpoint.save(checkpoint.serialize(model), tmp_path / "m.pth")
    rebuilt = checkpoint.from_pretrained(path, registry=registry, sample_rate=16000)
    assert rebuilt.sample_rate == 16000
    with pytest.raises(CheckpointError) as err:
        checkpoint.from_pretrained(path, registry=registry, query_dim=5)
    assert_mentions(str(err.value), f"{path}:", "weights", "do not fit", "'example_gain'")


def test_unregistered_model_cannot_be_serialized_silently(gain_model):
    class Local(torch.nn.Module):
        def get_model_args(self):
            return {}

    with pytest.raises(CheckpointError) as err:
        checkpoint.serialize(Local())
    assert_mentions(str(err.value), "Local", "not registered", "separator plugin",
                    "bisep_register_separators", "model_name")


def test_save_is_atomic(tmp_path, gain_model, monkeypatch):
    _, model = gain_model
    path = checkpoint.save(checkpoint.serialize(model), tmp_path / "model.pth")
    before = path.read_bytes()

    def dies_halfway(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # as if killed while writing

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save({"x": 1}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]


def test_truncated_file_names_the_file(tmp_path, gain_model):
    _, model = gain_model
    path = checkpoint.save(checkpoint.serialize(model), tmp_path / "model.pth")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    assert_mentions(str(err.value), f"{path}:", "cannot be read", "torch checkpoint", "truncated")


def test_foreign_and_unsafe_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(foreign)
    assert_mentions(str(err.value), f"{foreign}:", "not a bisep model checkpoint", "model_name",
                    "model_args", "state_dict", "['weights']")
    lightning = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6"}, lightning)
    with pytest.raises(CheckpointError, match="Lightning training checkpoint"):
        checkpoint.load(lightning)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"model_name": "x", "model_args": {}, "state_dict": {}, "obj": object()}, unsafe)
    with pytest.raises(CheckpointError, match="unsafe.pth: cannot be read"):
        checkpoint.load(unsafe)  # weights_only=True refuses arbitrary pickled objects
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(text)
    assert_mentions(str(err.value), f"{text}:", "cannot be read", "torch checkpoint")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        checkpoint.load(tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="must hold model.pth or best_model.pth"):
        checkpoint.load(tmp_path)


def test_another_architectures_arguments_name_the_file(tmp_path, gain_model):
    from bisep.registry import get_registry

    film = get_registry().build("separator", "film_masknet", preset="small", query_dim=4)
    package = checkpoint.serialize(film)
    package["model_name"] = "cond_unet"  # film_masknet's bn_chan, hid_chan, ... do not fit
    path = checkpoint.save(package, tmp_path / "model.pth")
    with pytest.raises(CheckpointError) as err:
        checkpoint.from_pretrained(path)
    assert_mentions(str(err.value), f"{path}:", "model_args", "'cond_unet'", "bn_chan")


def test_a_query_encoder_of_another_width_is_found_at_load(tmp_path, gain_model):
    from bisep.inference import Separator

    registry, model = gain_model  # query_dim 4; example_hash embeds in 8 dimensions
    config = {"separator": "example_gain", "conditioner": "example_hash", "conditioner_conf": {}}
    path = checkpoint.save(checkpoint.serialize(model, config=config), tmp_path / "m.pth")
    with pytest.raises(CheckpointError) as err:
        Separator.from_pretrained(path, registry=registry)
    assert_mentions(str(err.value), f"{path}:", "separator takes 4-d", "query encoder", "8-d")
