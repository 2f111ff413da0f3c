"""Config files as YAML: loaded safely (no alias bomb), the line of each key kept for
messages (``file:line: what is wrong``), and ``key.subkey=value`` overrides from a command
line. Every config bisep reads goes through here: training, train-clap, a dataset's
``prepare`` config and a paper's claims."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from bisep.config.checks import ConfigError


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


def dump(cfg: dict) -> str:
    """The YAML text of a (resolved) config, keys in schema order."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)
