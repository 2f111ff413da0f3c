""":class:`ConfigError` and the checks every config reader shares: a value against the
types its key takes, written as YAML writes them, and an unknown key with a did-you-mean."""
from __future__ import annotations

import difflib
from typing import Any

from bisep.errors import UserError


class ConfigError(ValueError, UserError):
    """A config that cannot be used as written."""


def type_names(types: tuple[type, ...]) -> str:
    """``(int, type(None))`` as a message says it: ``an integer or null``."""
    names = {int: "an integer", float: "a number", str: "a string", dict: "a mapping",
             list: "a list", bool: "true/false", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def is_instance(value: Any, types: tuple[type, ...]) -> bool:
    """``isinstance`` as a config means it: an integer is a number, YAML's ``true`` is not."""
    if isinstance(value, bool) and bool not in types:  # YAML true is not an integer here
        return False
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def unknown_key(where: str, key: str, section: str, valid) -> ConfigError:
    """The error for ``key`` in ``section``: the closest valid key, then all of them."""
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"{where}: unknown key '{key}' in {section}.{hint} "
                       f"Valid keys: {', '.join(valid)}.")
