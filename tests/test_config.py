"""YAML configs: resolution with defaults, and messages that name the file, line and fix."""
import textwrap

import pytest
import yaml

from bisep import config
from bisep.config import ConfigError
from conftest import assert_mentions, run_cli


def write(tmp_path, text, name="conf.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_resolve_fills_component_and_optimizer_defaults(tmp_path):
    path = write(tmp_path, """
        criterions:
          - {name: clap_contrastive, weight: 0.5}
          - name: consistency_reconstruction
            weight: 5
        optim: adam
        optim_conf: {lr: 1.0e-4, weight_decay: 1.0e-4}
        scheduler: steplr
        scheduler_conf: {step_size: 15, gamma: 0.1}
    """)
    cfg = config.load_config(path)
    assert cfg["seed"] == 1234
    assert cfg["criterions"][0] == {"name": "clap_contrastive", "weight": 0.5,
                                    "conf": {"temperature": None, "symmetric": False,
                                             "pool_mixtures": False}}
    assert cfg["criterions"][1]["weight"] == 5.0
    assert cfg["optim_conf"]["lr"] == 1e-4 and cfg["optim_conf"]["betas"] == [0.9, 0.999]
    assert "params" not in cfg["optim_conf"]
    assert cfg["scheduler_conf"]["step_size"] == 15 and "optimizer" not in cfg["scheduler_conf"]
    # The dump is plain YAML that resolves to itself.
    again = config.resolve(yaml.safe_load(config.dump(cfg)))
    assert again == cfg


def test_third_party_component_usable_by_name(tmp_path, use_plugins, plugin_sites):
    path = write(tmp_path, """
        separator: example_gain
        separator_conf: {query_dim: 16}
        criterions: [{name: example_l2, conf: {scale: 2.0}}]
    """)
    cfg = config.load_config(path, registry=use_plugins("example"))
    assert cfg["separator_conf"] == {"n_fft": 62, "hop_length": 16, "query_dim": 16,
                                     "sample_rate": 8000}
    out = run_cli("config", path, "separator_conf.n_fft=126", pythonpath=[plugin_sites["example"]],
                  check=True)
    printed = yaml.safe_load(out.stdout)
    assert printed["separator"] == "example_gain"
    assert printed["separator_conf"]["n_fft"] == 126


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, """
        seed: 1
        separator_conf:
          ngf: [16, 32
        optim: adam
    """)
    with pytest.raises(ConfigError) as err:
        config.load_config(path)
    assert str(err.value).startswith(f"{path}:5:")
    assert "malformed YAML" in str(err.value)


def test_unknown_top_level_key_names_key_line_and_valid_keys(tmp_path):
    path = write(tmp_path, """
        seed: 1
        separator_cnf: {}
    """)
    with pytest.raises(ConfigError) as err:
        config.load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3:"), message
    assert_mentions(message, "unknown key 'separator_cnf'", "top level",
                    "Did you mean 'separator_conf'?", "conditioner, conditioner_conf, criterions")


def test_unknown_key_in_component_conf_lists_the_signature(tmp_path):
    path = write(tmp_path, """
        criterions:
          - name: clap_contrastive
            conf:
              temprature: 0.07
    """)
    with pytest.raises(ConfigError) as err:
        config.load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:5:"), message
    assert_mentions(message, "unknown key 'temprature'", "criterions[0].conf",
                    "loss 'clap_contrastive'", "Did you mean 'temperature'?",
                    "pool_mixtures, symmetric, temperature")


@pytest.mark.parametrize("text, tokens", [
    ("seed: abc\n", ["conf.yaml:1:", "'seed'", "integer", "str 'abc'"]),
    ("seed: true\n", ["'seed'", "integer", "bool True"]),
    ("criterions: {name: x}\n", ["'criterions'", "list", "dict"]),
    ("criterions:\n  - {name: mix_separate, weight: heavy}\n",
     ["conf.yaml:2:", "'criterions[0].weight'", "integer", "number", "'heavy'"]),
    ("criterions:\n  - {name: clap_contrastive, conf: {symmetric: 3}}\n",
     ["'criterions[0].conf.symmetric'", "true/false", "default is False", "got 3"]),
    ("optim_conf: {lr: fast}\n", ["'optim_conf.lr'", "number", "default is 0.001", "'fast'"]),
])
def test_wrong_type_names_key_and_expected_type(tmp_path, text, tokens):
    with pytest.raises(ConfigError) as err:
        config.load_config(write(tmp_path, text))
    assert_mentions(str(err.value), *tokens)


def test_unknown_component_name_in_config(tmp_path):
    path = write(tmp_path, "seed: 3\ncriterions:\n  - name: mix_seperate\n")
    with pytest.raises(ConfigError) as err:
        config.load_config(path)
    assert str(err.value).startswith(f"{path}:3:"), err.value
    assert_mentions(str(err.value), "unknown loss 'mix_seperate'", "Did you mean 'mix_separate'?")


def test_unknown_optimizer_suggests(tmp_path):
    with pytest.raises(ConfigError) as err:
        config.load_config(write(tmp_path, "optim: adamm\n"))
    assert_mentions(str(err.value), "optim 'adamm'", "Did you mean 'adam'?")


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        config.load_config(write(tmp_path, "- a\n- b\n"))


def test_overrides_parse_yaml_values():
    cfg = config.apply_overrides({"optim_conf": {"lr": 1}}, ["optim_conf.lr=2.5e-4", "trainer.max_steps=10"])
    assert cfg == {"optim_conf": {"lr": 2.5e-4}, "trainer": {"max_steps": 10}}
    with pytest.raises(ConfigError, match="must look like key.subkey=value"):
        config.apply_overrides({}, ["nonsense"])


def test_config_cli_reports_errors_without_traceback(tmp_path):
    out = run_cli("config", write(tmp_path, "sed: 1\n"))
    assert out.returncode == 2
    assert "bisep config: error:" in out.stderr and "unknown key 'sed'" in out.stderr
    assert "Traceback" not in out.stderr


def test_experiment_part_drops_resources_and_the_given_keys():
    from bisep.config import experiment_part

    cfg = {"seed": 3, "mode": "weak", "data": {"batch_size": 8, "num_workers": 2},
           "trainer": {"max_steps": 10, "num_threads": 1, "progress_bar": False}}
    frozen = {"every": 0, "steps": 10, "outputs": 32, "per_batch": 32, "lr": 3.0e-4,
              "judge_conf": {}}
    assert experiment_part(cfg) == {"seed": 3, "mode": "weak",
                                    "data": {"batch_size": 8, "query_source": "text"},
                                    "trainer": {"max_steps": 10}, "judge_update": frozen}
    # A config.yaml written before judge_update existed is the same experiment as one that
    # spells out its defaults, and not one that updates the judge.
    assert experiment_part({**cfg, "judge_update": frozen}) == experiment_part(cfg)
    assert experiment_part({**cfg, "judge_update": {**frozen, "every": 5}}) != \
        experiment_part(cfg)
    assert "seed" not in experiment_part(cfg, drop=("seed",))
    assert cfg["trainer"]["num_threads"] == 1  # the input is left as it was
    assert "query_source" not in cfg["data"]
    # A config recorded before data.query_source existed is the same experiment as today's
    # default, and not the same as an audio-query run.
    today = {**cfg, "data": {**cfg["data"], "query_source": "text"}}
    assert experiment_part(today) == experiment_part(cfg)
    audio = {**cfg, "data": {**cfg["data"], "query_source": "audio"}}
    assert experiment_part(audio) != experiment_part(cfg)
    # A criterion written with its defaults spelled out is the same loss as one without.
    terse = {**cfg, "criterions": [{"name": "mix_separate", "weight": 5.0}]}
    spelled = {**cfg, "criterions": [{"name": "mix_separate", "weight": 5.0, "conf": {},
                                      "start_step": 0, "ramp_steps": 0}]}
    assert experiment_part(terse) == experiment_part(spelled)
    later = {**cfg, "criterions": [{"name": "mix_separate", "weight": 5.0, "start_step": 9}]}
    assert experiment_part(later) != experiment_part(terse)


@pytest.mark.parametrize("text, tokens", [
    ("data: {batch_size: 0}", ["data.batch_size", ">= 1", "0"]),
    ("trainer: {val_check_interval: 0}", ["trainer.val_check_interval", ">= 1"]),
    ("trainer: {max_steps: -5}", ["trainer.max_steps", ">= 1", "-5"]),
    ("trainer: {max_steps: -1}", ["trainer.max_steps", "without end"]),
    ("trainer: {precision: 8-bit}", ["trainer.precision", "'32-true'", "8-bit"]),
    ("trainer: {monitor: val_sdr}", ["trainer.monitor", "val_si_sdr", "val_sdr"]),
    ("seed: -3", ["'seed'", "-3"]),
    ("optim_conf: {lr: -0.1}", ["optim_conf.lr", "> 0", "-0.1"]),
    ("optim_conf: {betas: [0.9, 1.5]}", ["optim_conf", "optimizer 'adam'", "beta"]),
    ("separator: cond_unet\nseparator_conf: {preset: tiny}",
     ["separator_conf", "cond_unet", "unknown preset 'tiny'"]),
])
def test_values_that_would_fail_in_training_are_refused(tmp_path, text, tokens):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message  # file:line
    for token in tokens:
        assert token in message, message


def test_bisep_config_and_train_refuse_them_without_a_traceback(tmp_path):
    path = write(tmp_path, "trainer: {val_check_interval: 0}")
    for command in (["config", path], ["train", "--config", path, "--data-dir", tmp_path,
                                        "--dump-dir", tmp_path, "--exp-dir", tmp_path / "exp"]):
        out = run_cli(*command)
        assert out.returncode == 2 and "trainer.val_check_interval" in out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "exp").exists()


def test_alias_bombs_are_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, "
              f"*a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 9)]  # 10**9 nodes
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        config.load_yaml(path)
    assert_mentions(str(err.value), f"{path}:", "100000 nodes")
    with pytest.raises(ConfigError, match="over 100000 nodes"):
        config.parse_override("trainer=" + "{" + ", ".join(lines) + "}")
    # A few anchors, as configs use them, are fine.
    ok = write(tmp_path, "x: &w {lr: 0.1}\noptim_conf: *w\n", name="ok.yaml")
    assert config.load_yaml(ok)[0]["optim_conf"] == {"lr": 0.1}


def test_checkpoints_maximise_only_the_separation_scores():
    assert config.monitor_mode("val_si_sdr") == config.monitor_mode("val_si_sdri") == "max"
    for monitor in ("val_loss", "train_loss", "val/mix_separate", "train/clap_contrastive"):
        assert config.monitor_mode(monitor) == "min"
