"""What a `bisep train` config may hold: its keys, their types, defaults, ranges and
choices, the training modes, the metrics a run logs (``trainer.monitor``), and the optimizer
and scheduler names; :func:`check_top_level` and :func:`check_monitor` apply them."""
from __future__ import annotations

from typing import Any

from bisep.config.checks import ConfigError, is_instance, type_names, unknown_key
from bisep.config.yaml_files import LineMap

# Top-level keys: expected type(s) and default. ``*_conf`` mappings are checked against
# the signature of the component they configure.
COMPONENTS = {"separator": "separator", "conditioner": "conditioner"}
TOP_LEVEL: dict[str, tuple[tuple[type, ...], Any]] = {
    "mode": ((str, type(None)), None),
    "seed": ((int,), 1234),
    "separator": ((str,), None),
    "separator_conf": ((dict,), {}),
    "conditioner": ((str,), None),
    "conditioner_conf": ((dict,), {}),
    "criterions": ((list,), []),
    "optim": ((str,), "adam"),
    "optim_conf": ((dict,), {}),
    "scheduler": ((str, type(None)), None),
    "scheduler_conf": ((dict,), {}),
    "data": ((dict,), {}),
    "trainer": ((dict,), {}),
    "judge_update": ((dict,), {}),
    # A bisep model checkpoint (model.pth or its folder) whose separator weights start the
    # run instead of a random initialisation (ESPnet's --init_param): fine-tuning, or a
    # student that starts from its teacher. Resolved configs hold it only when set.
    "init_from": ((str, type(None)), None),
}
# The training modes, in the order reports list them (bisep.train checks the
# criterions against the mode).
MODES = ("unsupervised", "weak", "supervised", "semi")
# The sections `bisep train` reads; defaults sized for 2 CPU cores.
DATA_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "batch_size": ((int,), 8),
    "num_workers": ((int,), 0),
    # Keep decoded training clips in RAM (about 260 kB per 8 s clip): false for corpora
    # whose clips do not fit (VGGSound: ~40 GB), which are then read from disk each time.
    "cache_audio": ((bool,), True),
    "num_phrases": ((int,), 4),
    # What the mixture-level queries of L_UNS are: the captions' text embeddings, or the
    # query encoder's embedding of the mixture audio itself (CLIPSep-style training that
    # needs no text; tested with text queries all the same).
    "query_source": ((str,), "text"),
    "valid_batch_size": ((int,), 16),
    "max_valid_items": ((int, type(None)), None),
}
TRAINER_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "max_steps": ((int,), 2000),
    "val_check_interval": ((int,), 250),
    "checkpoint_every_n_steps": ((int,), 100),
    "save_top_k": ((int,), 2),
    "monitor": ((str,), "val_loss"),
    "log_every_n_steps": ((int,), 10),
    "accelerator": ((str,), "auto"),
    "devices": ((int, str, list), "auto"),
    "strategy": ((str,), "auto"),
    "num_nodes": ((int,), 1),
    "precision": ((str, int), "32-true"),
    "gradient_clip_val": ((float, type(None)), None),
    "num_threads": ((int, type(None)), None),
    "scheduler_interval": ((str,), "step"),
    "progress_bar": ((bool,), True),
    # glibc's malloc keeps freed memory for the next step (bisep.train.allocator).
    "keep_freed_memory": ((bool,), True),
}
# Beyond the paper: a judge that keeps learning during weak training
# (bisep.train.judge_update). every: 0 keeps the query encoder frozen, as the paper does.
JUDGE_UPDATE_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "every": ((int,), 0),
    "steps": ((int,), 10),
    "outputs": ((int,), 32),
    "per_batch": ((int,), 32),
    "lr": ((int, float), 3.0e-4),
    "judge_conf": ((dict,), {}),
}
SECTIONS = {"data": DATA_KEYS, "trainer": TRAINER_KEYS, "judge_update": JUDGE_UPDATE_KEYS}
# The smallest value of each numeric key `bisep train` reads: a smaller one fails later, in
# the middle of the run (val_check_interval 0: a division by zero; batch_size 0: the data
# loader), or runs without end (max_steps -1). ``None`` stays allowed where the type allows it.
MINIMUMS: dict[tuple[str, str], tuple[int | float, str]] = {
    ("data", "batch_size"): (1, ""),
    ("data", "num_workers"): (0, ""),
    ("data", "num_phrases"): (1, ""),
    ("data", "valid_batch_size"): (1, ""),
    ("data", "max_valid_items"): (1, " (null: all)"),
    ("trainer", "max_steps"): (1, " (a training run must end: -1 would train without end)"),
    ("trainer", "val_check_interval"): (1, " (steps between validations)"),
    ("trainer", "checkpoint_every_n_steps"): (1, ""),
    ("trainer", "save_top_k"): (-1, " (-1: keep every checkpoint, 0: none)"),
    ("trainer", "log_every_n_steps"): (1, ""),
    ("trainer", "num_nodes"): (1, ""),
    ("trainer", "gradient_clip_val"): (0, " (null: no clipping)"),
    ("trainer", "num_threads"): (1, " (null: torch's default)"),
    ("judge_update", "every"): (0, " (0: the judge stays frozen)"),
    ("judge_update", "steps"): (1, ""),
    ("judge_update", "outputs"): (1, ""),
    ("judge_update", "per_batch"): (1, ""),
    ("judge_update", "lr"): (0, ""),
}
CHOICES: dict[tuple[str, str], tuple] = {
    ("trainer", "scheduler_interval"): ("step", "epoch"),
    # Lightning's precision names (lightning_fabric.connector._PRECISION_INPUT).
    ("trainer", "precision"): ("32-true", "32", 32, "16-mixed", "16-true", "16", 16,
                               "bf16-mixed", "bf16-true", "bf16", "64-true", "64", 64,
                               "transformer-engine", "transformer-engine-float16"),
}
SEED_RANGE = (0, 2**32 - 1)  # what numpy's and Lightning's seeding accept
# What `trainer.monitor` may name: the metrics bisep.train.module logs (and per loss term
# "train/<name>" and "val/<name>"); ModelCheckpoint fails at the first validation otherwise.
MONITORS = ("val_loss", "val_si_sdr", "val_si_sdri", "train_loss")
# The monitors where higher is better; every other one (the losses and each loss term's
# "train/<name>", "val/<name>") is minimised.
MAXIMISED_MONITORS = ("val_si_sdr", "val_si_sdri")


def monitor_mode(monitor: str) -> str:
    """``"max"`` for a monitor where higher is better, else ``"min"`` (ModelCheckpoint's
    ``mode``)."""
    return "max" if monitor in MAXIMISED_MONITORS else "min"
CRITERION_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "name": ((str,), None),
    "conf": ((dict,), {}),
    "weight": ((int, float), 1.0),
    # Warm-up: the term is off before start_step, then its weight rises linearly to
    # `weight` over ramp_steps. Cool-down: the term is off from stop_step on (0: never),
    # its weight falling linearly to zero over the fade_steps before it. Validation always
    # uses the full weight.
    "start_step": ((int,), 0),
    "ramp_steps": ((int,), 0),
    "stop_step": ((int,), 0),
    "fade_steps": ((int,), 0),
}
SCHEDULE_KEYS = ("start_step", "ramp_steps", "stop_step", "fade_steps")
QUERY_SOURCES = ("text", "audio")
# torch.optim / torch.optim.lr_scheduler classes by the names configs use.
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
SCHEDULERS = {"steplr": "StepLR", "cosineannealinglr": "CosineAnnealingLR",
              "exponentiallr": "ExponentialLR", "multisteplr": "MultiStepLR"}


def check_top_level(cfg: dict, lines: LineMap) -> None:
    """Known keys with the right types; criterions well-formed."""
    for key, value in cfg.items():
        if key not in TOP_LEVEL:
            raise unknown_key(lines.where(key), key, "the top level", TOP_LEVEL)
        types, _ = TOP_LEVEL[key]
        if value is not None and not is_instance(value, types):
            raise ConfigError(f"{lines.where(key)}: '{key}' must be {type_names(types)}, "
                              f"got {type(value).__name__} {value!r}.")
    if cfg.get("mode") is not None and cfg["mode"] not in MODES:
        raise ConfigError(f"{lines.where('mode')}: unknown mode '{cfg['mode']}'; valid modes: "
                          f"{', '.join(MODES)}.")
    for section, table in SECTIONS.items():
        for key, value in (cfg.get(section) or {}).items():
            if key not in table:
                raise unknown_key(lines.where(section, key), key, section, table)
            types, _ = table[key]
            if not is_instance(value, types):
                raise ConfigError(f"{lines.where(section, key)}: '{section}.{key}' must be "
                                  f"{type_names(types)}, got {type(value).__name__} {value!r}.")
            _check_range(section, key, value, lines)
    seed = cfg.get("seed")
    if isinstance(seed, int) and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ConfigError(f"{lines.where('seed')}: 'seed' must be in [{SEED_RANGE[0]}, "
                          f"{SEED_RANGE[1]}], got {seed}.")
    query_source = (cfg.get("data") or {}).get("query_source", "text")
    if query_source not in QUERY_SOURCES:
        raise ConfigError(f"{lines.where('data', 'query_source')}: data.query_source must be "
                          f"one of {', '.join(QUERY_SOURCES)}, got {query_source!r}.")
    for i, item in enumerate(cfg.get("criterions") or []):
        if not isinstance(item, dict):
            raise ConfigError(f"{lines.where('criterions', i)}: each criterion must be a mapping "
                              f"like {{name: clap_contrastive, weight: 0.5}}, got {item!r}.")
        for key, value in item.items():
            if key not in CRITERION_KEYS:
                raise unknown_key(lines.where("criterions", i, key), key,
                                   f"criterions[{i}]", CRITERION_KEYS)
            types, _ = CRITERION_KEYS[key]
            if not is_instance(value, types):
                raise ConfigError(f"{lines.where('criterions', i, key)}: 'criterions[{i}].{key}' "
                                  f"must be {type_names(types)}, got {value!r}.")
        if "name" not in item:
            raise ConfigError(f"{lines.where('criterions', i)}: criterions[{i}] has no 'name'.")
        for key in SCHEDULE_KEYS:
            if item.get(key, 0) < 0:
                raise ConfigError(f"{lines.where('criterions', i, key)}: 'criterions[{i}].{key}' "
                                  f"must be >= 0, got {item[key]!r}.")
        _check_schedule(item, i, lines)


def _check_schedule(item: dict, i: int, lines: LineMap) -> None:
    """A term's cool-down must begin after its warm-up has ended."""
    stop, fade = item.get("stop_step", 0), item.get("fade_steps", 0)
    if fade and not stop:
        raise ConfigError(f"{lines.where('criterions', i, 'fade_steps')}: "
                          f"'criterions[{i}].fade_steps' needs 'criterions[{i}].stop_step' "
                          f"(the step the term is off from).")
    warm = item.get("start_step", 0) + item.get("ramp_steps", 0)
    if stop and stop - fade < warm:
        raise ConfigError(f"{lines.where('criterions', i, 'stop_step')}: "
                          f"'criterions[{i}].stop_step' - fade_steps = {stop - fade} is before "
                          f"the end of the warm-up (start_step + ramp_steps = {warm}); "
                          f"fade the term out after it has warmed up.")


def _check_range(section: str, key: str, value: Any, lines: LineMap) -> None:
    """Refuse a value of the right type that `bisep train` would still fail on."""
    where, name = lines.where(section, key), f"'{section}.{key}'"
    if (section, key) in MINIMUMS and isinstance(value, (int, float)):
        low, why = MINIMUMS[section, key]
        if value < low:
            raise ConfigError(f"{where}: {name} must be >= {low}{why}, got {value!r}.")
    if (section, key) in CHOICES and value not in CHOICES[section, key]:
        valid = ", ".join(map(repr, CHOICES[section, key]))
        raise ConfigError(f"{where}: {name} must be one of {valid}, got {value!r}.")


def check_monitor(cfg: dict, lines: LineMap) -> None:
    """``trainer.monitor`` names a metric that training logs (:data:`MONITORS`)."""
    terms = [item["name"] for item in cfg["criterions"]]
    valid = [*MONITORS, *(f"{split}/{t}" for split in ("train", "val") for t in terms)]
    monitor = cfg["trainer"]["monitor"]
    if monitor not in valid:
        raise ConfigError(f"{lines.where('trainer', 'monitor')}: 'trainer.monitor' must name "
                          f"a logged metric, one of {', '.join(valid)}; got {monitor!r}.")
