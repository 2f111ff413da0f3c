"""A `bisep train` config resolved: checked against :mod:`bisep.config.schema`, each
component's ``*_conf`` completed from its signature (:mod:`bisep.config.signatures`), and what
is cheap to build built, so a bad value fails now and names its line, not mid-training.
:func:`load_config` is the whole path from a file and overrides."""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Callable

from bisep.config.checks import ConfigError
from bisep.config.schema import (COMPONENTS, OPTIMIZERS, SCHEDULE_KEYS, SCHEDULERS, SECTIONS,
                                 TOP_LEVEL, check_monitor, check_top_level)
from bisep.config.signatures import resolve_conf
from bisep.config.yaml_files import LineMap, apply_overrides, load_yaml


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
    if out["init_from"] is None:  # configs written before the key resolve as before
        del out["init_from"]
    for section, table in SECTIONS.items():
        out[section] = {**{k: copy.deepcopy(d) for k, (_, d) in table.items()}, **out[section]}

    def fail_plugin(exc, *key):
        return ConfigError(f"{lines.where(*key)}: {exc}")

    for key, kind in COMPONENTS.items():
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
        # The schedule keys appear only when used, so configs written before they existed
        # resolve as before (a run resumes, and runs group into the same arm).
        criterion.update({key: int(item[key]) for key in SCHEDULE_KEYS if item.get(key, 0)})
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
