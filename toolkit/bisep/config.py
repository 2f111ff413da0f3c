"""YAML experiment configs in ESPnet's shape, validated with messages that name the fix.

A config names each component by its registered plugin name and passes its keyword
arguments in the matching ``*_conf`` mapping::

    separator: cond_unet
    separator_conf: {preset: small}
    conditioner: mini_clap
    conditioner_conf: {checkpoint: exp/mini_clap/model.pth}
    criterions:
      - {name: clap_contrastive, weight: 0.5}
      - {name: consistency_reconstruction, weight: 5.0}
    optim: adam
    optim_conf: {lr: 1.0e-4}

:func:`resolve` fills every default (the component's own signature defaults included),
which is what ``--print_config`` shows. Errors are :class:`ConfigError` and say
``file:line: what is wrong; what would be right``.
"""
from __future__ import annotations

import copy
import difflib
import inspect
from pathlib import Path
from typing import Any, Callable

import yaml

from bisep.errors import UserError


class ConfigError(ValueError, UserError):
    """A config that cannot be used as written."""


# Top-level keys: expected type(s) and default. ``*_conf`` mappings are checked against
# the signature of the component they configure.
_COMPONENTS = {"separator": "separator", "conditioner": "conditioner"}
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
}
SECTIONS = {"data": DATA_KEYS, "trainer": TRAINER_KEYS}
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
# Keys that say how a run uses the machine, not what it computes: a run may resume with
# other values, and runs that differ only in them are the same experiment.
RESOURCE_KEYS = (("data", "num_workers"), ("data", "cache_audio"), ("trainer", "num_threads"),
                 ("trainer", "progress_bar"))
CRITERION_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "name": ((str,), None),
    "conf": ((dict,), {}),
    "weight": ((int, float), 1.0),
    # Warm-up: the term is off before start_step, then its weight rises linearly to
    # `weight` over ramp_steps (validation always uses the full weight).
    "start_step": ((int,), 0),
    "ramp_steps": ((int,), 0),
}
QUERY_SOURCES = ("text", "audio")
# torch.optim / torch.optim.lr_scheduler classes by the names configs use.
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
SCHEDULERS = {"steplr": "StepLR", "cosineannealinglr": "CosineAnnealingLR",
              "exponentiallr": "ExponentialLR", "multisteplr": "MultiStepLR"}


class LineMap:
    """Line numbers of the keys and items of a YAML document, for error messages."""

    def __init__(self, path: str | None, text: str | None = None):
        self.path = path or "<config>"
        self._lines: dict[tuple, int] = {}
        if text is not None:
            self._walk(yaml.compose(text, Loader=yaml.SafeLoader), ())

    def _walk(self, node, prefix: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = prefix + (key_node.value,)
                self._lines[key] = key_node.start_mark.line + 1
                self._walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._lines[prefix + (i,)] = item.start_mark.line + 1
                self._walk(item, prefix + (i,))

    def where(self, *key) -> str:
        for end in range(len(key), 0, -1):
            line = self._lines.get(tuple(key[:end]))
            if line is not None:
                return f"{self.path}:{line}"
        return self.path


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", dict: "a mapping",
             list: "a list", bool: "true/false", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _is_instance(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:  # YAML true is not an integer here
        return False
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def _unknown_key(where: str, key: str, section: str, valid) -> ConfigError:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"{where}: unknown key '{key}' in {section}.{hint} "
                       f"Valid keys: {', '.join(valid)}.")


# Aliases let a few lines of YAML stand for an exponential number of nodes ("billion
# laughs"): whatever walks the loaded data (LineMap, deepcopy, a dump) would never finish.
MAX_YAML_NODES = 100_000


def safe_load(text: str, source: str = "<config>") -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand beyond
    :data:`MAX_YAML_NODES` nodes.

    Raises:
        yaml.YAMLError: malformed YAML.
        ConfigError: too many nodes once aliases are expanded.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_YAML_NODES:
            raise ConfigError(f"{source}: the YAML expands to over {MAX_YAML_NODES} nodes "
                              f"through its aliases (*name); write the values out instead.")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node, memo: dict) -> int:
    """How many nodes ``node`` stands for with every alias expanded. An alias is the same
    node object as its anchor, so the memo keeps this linear in the text."""
    key = id(node)
    if key not in memo:
        memo[key] = 1  # a recursive alias counts once instead of looping
        children = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        memo[key] = 1 + sum(_expanded_size(child, memo) for child in children)
    return memo[key]


def load_yaml(path: str | Path) -> tuple[dict, LineMap]:
    """Read a YAML mapping, raising :class:`ConfigError` that names the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found. Check the path "
                          f"(recipes keep theirs in conf/).") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as a YAML text file ({exc}).") from None
    try:
        data = safe_load(text, str(path))
        lines = LineMap(str(path), text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: malformed YAML: {problem}. Fix the syntax at that line "
                          f"(indentation, a missing ':' or an unclosed bracket).") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping of keys to values, "
                          f"not {type(data).__name__}.")
    return data, lines


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"separator_conf.ngf=32"`` -> ``(["separator_conf", "ngf"], 32)``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' must look like key.subkey=value")
    try:
        parsed = safe_load(value, f"override '{text}'")
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': the value is not valid YAML ({exc})") from None
    return key.strip().split("."), parsed


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """Return a copy of ``cfg`` with dotted ``key=value`` overrides applied."""
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        keys, value = parse_override(text)
        node = cfg
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{key}' is not a mapping")
        node[keys[-1]] = value
    return cfg


def check_top_level(cfg: dict, lines: LineMap) -> None:
    """Known keys with the right types; criterions well-formed."""
    for key, value in cfg.items():
        if key not in TOP_LEVEL:
            raise _unknown_key(lines.where(key), key, "the top level", TOP_LEVEL)
        types, _ = TOP_LEVEL[key]
        if value is not None and not _is_instance(value, types):
            raise ConfigError(f"{lines.where(key)}: '{key}' must be {_type_names(types)}, "
                              f"got {type(value).__name__} {value!r}.")
    if cfg.get("mode") is not None and cfg["mode"] not in MODES:
        raise ConfigError(f"{lines.where('mode')}: unknown mode '{cfg['mode']}'; valid modes: "
                          f"{', '.join(MODES)}.")
    for section, table in SECTIONS.items():
        for key, value in (cfg.get(section) or {}).items():
            if key not in table:
                raise _unknown_key(lines.where(section, key), key, section, table)
            types, _ = table[key]
            if not _is_instance(value, types):
                raise ConfigError(f"{lines.where(section, key)}: '{section}.{key}' must be "
                                  f"{_type_names(types)}, got {type(value).__name__} {value!r}.")
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
                raise _unknown_key(lines.where("criterions", i, key), key,
                                   f"criterions[{i}]", CRITERION_KEYS)
            types, _ = CRITERION_KEYS[key]
            if not _is_instance(value, types):
                raise ConfigError(f"{lines.where('criterions', i, key)}: 'criterions[{i}].{key}' "
                                  f"must be {_type_names(types)}, got {value!r}.")
        if "name" not in item:
            raise ConfigError(f"{lines.where('criterions', i)}: criterions[{i}] has no 'name'.")
        for key in ("start_step", "ramp_steps"):
            if item.get(key, 0) < 0:
                raise ConfigError(f"{lines.where('criterions', i, key)}: 'criterions[{i}].{key}' "
                                  f"must be >= 0, got {item[key]!r}.")


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


def check_builds(cfg: dict, lines: LineMap, registry) -> None:
    """Build what is cheap to build, so that a value its constructor refuses (an unknown
    ``separator_conf.preset``, a negative ``optim_conf.lr``, a bad loss setting) fails here,
    naming the section, and not at the start of training. The conditioner is not built: it
    reads its files, which may live on another machine."""
    import torch

    def build(section: str, make: Callable, what: str):
        try:
            return make()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{lines.where(section)}: {section} is not accepted by "
                              f"{what}: {exc}") from None

    if cfg["separator"] is not None:
        build("separator_conf", lambda: registry.build("separator", cfg["separator"],
                                                       **cfg["separator_conf"]),
              f"separator '{cfg['separator']}'")
    for i, item in enumerate(cfg["criterions"]):
        build(f"criterions[{i}].conf",
              lambda item=item: registry.build("loss", item["name"], **item["conf"]),
              f"loss '{item['name']}'")
    lr = cfg["optim_conf"].get("lr")
    if isinstance(lr, (int, float)) and not lr > 0:
        raise ConfigError(f"{lines.where('optim_conf', 'lr')}: 'optim_conf.lr' must be > 0, "
                          f"got {lr!r}.")
    optim_cls = _torch_class("optim", cfg["optim"], OPTIMIZERS, lines.where("optim"))
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build("optim_conf", lambda: optim_cls([param], **cfg["optim_conf"]),
                      f"optimizer '{cfg['optim']}'")
    if cfg["scheduler"] is not None:
        sched_cls = _torch_class("scheduler", cfg["scheduler"], SCHEDULERS,
                                 lines.where("scheduler"))
        build("scheduler_conf", lambda: sched_cls(optimizer, **cfg["scheduler_conf"]),
              f"scheduler '{cfg['scheduler']}'")


def signature_defaults(factory: Callable) -> tuple[dict[str, Any], bool]:
    """Keyword defaults of a factory (a class's ``__init__``) and whether it takes **kwargs.

    Parameters without a default map to :data:`inspect.Parameter.empty`.
    """
    sig = inspect.signature(factory)
    defaults, var_kw = {}, False
    for param in sig.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            var_kw = True
        elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            defaults[param.name] = param.default
    return defaults, var_kw


def resolve_conf(factory: Callable, conf: dict, where: Callable[..., str], section: str,
                 component: str, bound: tuple[str, ...] = (), lenient_numbers: bool = False,
                 ) -> dict:
    """Check ``conf`` against ``factory``'s signature and fill in its defaults.

    ``bound`` names arguments the caller supplies itself (an optimizer's ``params``).
    ``lenient_numbers`` accepts a float where the default is an integer (torch writes
    ``weight_decay=0``).
    """
    defaults, var_kw = signature_defaults(factory)
    for name in bound:
        defaults.pop(name, None)
    for key, value in conf.items():
        if key not in defaults:
            if var_kw:
                continue
            raise _unknown_key(where(key), key, f"{section} (for {component})", defaults)
        default = defaults[key]
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        expected = (float,) if isinstance(default, float) else (type(default),)
        if lenient_numbers and type(default) is int:
            expected = (float,)
        if isinstance(default, (list, tuple)):
            expected = (list, tuple)
        if not _is_instance(value, expected):
            raise ConfigError(f"{where(key)}: '{section}.{key}' must be {_type_names(expected)} "
                              f"(the default is {default!r}), got {value!r}.")
    missing = [k for k, d in defaults.items() if d is inspect.Parameter.empty and k not in conf]
    if missing:
        raise ConfigError(f"{where()}: {section} for {component} needs "
                          f"{', '.join(missing)}.")
    resolved = {k: copy.deepcopy(d) for k, d in defaults.items()
                if d is not inspect.Parameter.empty}
    resolved.update(conf)
    return resolved


def _torch_class(kind: str, name: str, table: dict[str, str], where: str):
    import torch

    module = torch.optim if kind == "optim" else torch.optim.lr_scheduler
    cls_name = table.get(name.lower())
    if cls_name is None:
        close = difflib.get_close_matches(name.lower(), table, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{where}: unknown {kind} '{name}'.{hint} "
                          f"Valid: {', '.join(sorted(table))}.")
    return getattr(module, cls_name)


def resolve(cfg: dict, lines: LineMap | None = None, registry=None) -> dict:
    """Validate ``cfg`` and return it with every default filled in.

    Components are looked up in the plugin registry, and each ``*_conf`` is checked
    against (and completed from) the component's own signature.
    """
    from bisep.registry import PluginError, get_registry

    lines = lines or LineMap(None)
    registry = registry or get_registry()
    check_top_level(cfg, lines)
    out = {key: copy.deepcopy(cfg.get(key, default)) for key, (_, default) in TOP_LEVEL.items()}
    for key, value in out.items():
        if value is None and TOP_LEVEL[key][1] is not None:
            out[key] = copy.deepcopy(TOP_LEVEL[key][1])
    for section, table in SECTIONS.items():
        out[section] = {**{k: copy.deepcopy(d) for k, (_, d) in table.items()}, **out[section]}

    def fail_plugin(exc, *key):
        return ConfigError(f"{lines.where(*key)}: {exc}")

    for key, kind in _COMPONENTS.items():
        name = out[key]
        if name is None:
            continue
        try:
            factory = registry.factory(kind, name)
        except PluginError as exc:
            raise fail_plugin(exc, key) from None
        out[f"{key}_conf"] = resolve_conf(
            factory, out[f"{key}_conf"], lambda *k, key=key: lines.where(f"{key}_conf", *k),
            f"{key}_conf", f"{kind} '{name}'")
    criterions = []
    for i, item in enumerate(out["criterions"]):
        try:
            factory = registry.factory("loss", item["name"])
        except PluginError as exc:
            raise fail_plugin(exc, "criterions", i, "name") from None
        conf = resolve_conf(factory, item.get("conf") or {},
                            lambda *k, i=i: lines.where("criterions", i, "conf", *k),
                            f"criterions[{i}].conf", f"loss '{item['name']}'")
        criterion = {"name": item["name"], "conf": conf, "weight": float(item.get("weight", 1.0))}
        # The warm-up keys appear only when used, so configs written before they existed
        # resolve as before (a run resumes, and runs group into the same arm).
        criterion.update({key: int(item[key]) for key in ("start_step", "ramp_steps")
                          if item.get(key, 0)})
        criterions.append(criterion)
    out["criterions"] = criterions
    optim_cls = _torch_class("optim", out["optim"], OPTIMIZERS, lines.where("optim"))
    out["optim_conf"] = resolve_conf(optim_cls, out["optim_conf"],
                                     lambda *k: lines.where("optim_conf", *k),
                                     "optim_conf", f"optimizer '{out['optim']}'",
                                     bound=("params",), lenient_numbers=True)
    if out["scheduler"] is not None:
        sched_cls = _torch_class("scheduler", out["scheduler"], SCHEDULERS,
                                 lines.where("scheduler"))
        out["scheduler_conf"] = resolve_conf(sched_cls, out["scheduler_conf"],
                                             lambda *k: lines.where("scheduler_conf", *k),
                                             "scheduler_conf", f"scheduler '{out['scheduler']}'",
                                             bound=("optimizer",), lenient_numbers=True)
    check_monitor(out, lines)
    check_builds(out, lines, registry)
    return _plain(out)


def _plain(value: Any) -> Any:
    """Tuples to lists, so the resolved config dumps as plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_config(path: str | Path, overrides: list[str] | None = None, registry=None) -> dict:
    """Read, override, validate and resolve a config file."""
    cfg, lines = load_yaml(path)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return resolve(cfg, lines, registry)


# Section keys added after configs were first written: a recorded config.yaml without one
# meant its default, so comparing runs fills it in (a run resumes, runs group into arms).
LATER_KEYS = (("data", "query_source"),)


def experiment_part(cfg: dict, drop: tuple[str, ...] = ()) -> dict:
    """``cfg`` without :data:`RESOURCE_KEYS` and without the top-level keys ``drop``:
    what makes two runs the same experiment (``drop=("seed",)``: the same arm)."""
    out = {key: value for key, value in cfg.items() if key not in drop}
    for section, key in LATER_KEYS:
        if isinstance(out.get(section), dict) and key not in out[section]:
            out[section] = {**out[section], key: SECTIONS[section][key][1]}
    for section, key in RESOURCE_KEYS:
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k != key}
    return out


def dump(cfg: dict) -> str:
    """The YAML text of a (resolved) config, keys in schema order."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)
