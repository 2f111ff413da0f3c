"""A component's ``*_conf`` checked against its constructor: unknown keys named with a
did-you-mean, values of the default's type, required arguments present, and every default
filled in. Used for separators, conditioners, losses, optimizers, schedulers, datasets and
mini_clap's audio tower."""
from __future__ import annotations

import copy
import inspect
from typing import Any, Callable

from bisep.config.checks import ConfigError, is_instance, type_names, unknown_key


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
            raise unknown_key(where(key), key, f"{section} (for {component})", defaults)
        default = defaults[key]
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        expected = (float,) if isinstance(default, float) else (type(default),)
        if lenient_numbers and type(default) is int:
            expected = (float,)
        if isinstance(default, (list, tuple)):
            expected = (list, tuple)
        if not is_instance(value, expected):
            raise ConfigError(f"{where(key)}: '{section}.{key}' must be {type_names(expected)} "
                              f"(the default is {default!r}), got {value!r}.")
    missing = [k for k, d in defaults.items() if d is inspect.Parameter.empty and k not in conf]
    if missing:
        raise ConfigError(f"{where()}: {section} for {component} needs "
                          f"{', '.join(missing)}.")
    resolved = {k: copy.deepcopy(d) for k, d in defaults.items()
                if d is not inspect.Parameter.empty}
    resolved.update(conf)
    return resolved
