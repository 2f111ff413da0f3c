"""The plugin manager and the name -> component registry built from it.

Start-up follows pytest and tox:

1. every entry point of the ``bisep`` group is considered, the built-in one included;
2. names in ``BISEP_BLOCK_PLUGINS`` (comma-separated entry-point or distribution
   names) are skipped;
3. with ``BISEP_DISABLE_PLUGIN_AUTOLOAD=1`` only the built-ins (entry points of the
   ``bisep`` distribution itself) and the names listed in ``BISEP_PLUGINS`` load;
4. a plugin that fails to import is reported (distribution, entry point, error) and
   skipped; the others still load.

``BISEP_TRACE_PLUGINS=1`` prints every hook implementation call (and what it returned)
to stderr.

Names are resolved lazily: a lookup of an unknown name lists the available ones and the
closest match; a name registered by two plugins is an error naming both distributions,
raised when that name is used, so one clash does not break unrelated components.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata as metadata
import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pluggy

from bisep import hookspecs
from bisep.errors import UserError

BUILTIN_DISTRIBUTION = "bisep"


class PluginError(UserError):
    """Base class of the errors raised while loading or looking up plugins."""


class UnknownNameError(PluginError, LookupError):
    """A config or command asked for a name that no plugin registers."""

    def __str__(self):  # LookupError would quote the message as a repr
        return self.args[0]


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for the same kind."""


class PluginLoadWarning(UserWarning):
    """A plugin could not be imported; it was skipped."""


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin came from (for listings and error messages)."""

    plugin_name: str
    distribution: str
    version: str

    def describe(self) -> str:
        return f"plugin '{self.plugin_name}' from distribution {self.distribution} {self.version}"


@dataclass
class Entry:
    """One registered component: a kind, a name, and a (lazily imported) factory."""

    kind: str
    name: str
    target: Any
    source: PluginSource

    def load(self) -> Callable[..., Any]:
        """Return the factory, importing ``"module:attr"`` targets on first use."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.kind} '{self.name}' ({self.source.describe()}) points at "
                f"'{self.target}', which cannot be imported: {exc}. Install the "
                f"dependencies of {self.source.distribution}, or block it with "
                f"BISEP_BLOCK_PLUGINS={self.source.plugin_name}."
            ) from exc
        self.target = obj
        return obj


@dataclass
class LoadFailure:
    """A plugin entry point that could not be imported."""

    entry_point: str
    distribution: str
    error: str


@dataclass
class PluginInfo:
    """One row of ``bisep plugins``."""

    source: PluginSource
    names: dict = field(default_factory=dict)  # kind -> sorted names


def _split_env(var: str) -> set[str]:
    return {item.strip() for item in os.environ.get(var, "").split(",") if item.strip()}


def _entry_point_distribution(ep) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown>", "?"
    return dist.metadata["Name"], dist.version


class Registry:
    """Components registered by the loaded plugins, looked up by kind and name."""

    def __init__(self, pm: pluggy.PluginManager, sources: dict[int, PluginSource],
                 failures: list[LoadFailure]):
        self.pm = pm
        self._sources = sources  # id(plugin object) -> where it came from
        self.failures = failures
        self._entries: dict[str, dict[str, list[Entry]]] | None = None
        self.trace = bool(os.environ.get("BISEP_TRACE_PLUGINS"))

    # -- building ---------------------------------------------------------------------
    def register(self, plugin: Any, name: str, distribution: str = "<local>",
                 version: str = "-") -> None:
        """Register a plugin object directly (tests, notebooks, inline plugins)."""
        self.pm.register(plugin, name=name)
        self._sources[id(plugin)] = PluginSource(name, distribution, version)
        self._entries = None

    def unregister(self, name: str) -> None:
        plugin = self.pm.unregister(name=name)
        self._sources.pop(id(plugin), None)
        self._entries = None

    @contextmanager
    def temporary_plugin(self, plugin: Any, name: str) -> Iterator[None]:
        """Register ``plugin`` for the duration of a ``with`` block."""
        self.register(plugin, name)
        try:
            yield
        finally:
            self.unregister(name)

    def _collect(self) -> dict[str, dict[str, list[Entry]]]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, dict[str, list[Entry]]] = {kind: {} for kind in hookspecs.KINDS}
        for kind, hook_name in hookspecs.KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                source = self._sources.get(
                    id(impl.plugin), PluginSource(impl.plugin_name, "<unknown>", "?"))
                # Each implementation is called on its own (not through the hook caller) so
                # that one raising plugin cannot hide the others' components.
                try:
                    mapping = impl.function() or {}
                    if self.trace:
                        print(f"bisep: {source.plugin_name}.{hook_name}() -> "
                              f"{sorted(mapping) if isinstance(mapping, dict) else mapping!r}",
                              file=sys.stderr)
                except Exception as exc:  # a broken plugin must not take the others down
                    self.failures.append(LoadFailure(
                        f"{source.plugin_name}.{hook_name}", source.distribution,
                        f"{type(exc).__name__}: {exc}"))
                    continue
                if not isinstance(mapping, dict):
                    self.failures.append(LoadFailure(
                        f"{source.plugin_name}.{hook_name}", source.distribution,
                        f"returned {type(mapping).__name__}, expected a dict name -> factory"))
                    continue
                for name, target in mapping.items():
                    entries[kind].setdefault(name, []).append(Entry(kind, name, target, source))
        self._entries = entries
        return entries

    # -- lookup -----------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        return sorted(self._collect()[self._check_kind(kind)])

    def get(self, kind: str, name: str) -> Entry:
        """The entry registered as ``name`` for ``kind``; clear errors otherwise."""
        table = self._collect()[self._check_kind(kind)]
        found = table.get(name)
        if not found:
            raise UnknownNameError(self._unknown_message(kind, name, sorted(table)))
        if len(found) > 1:
            who = " and ".join(entry.source.describe() for entry in found)
            raise DuplicateNameError(
                f"{kind} '{name}' is registered twice: by {who}. Uninstall one of them, "
                f"or block one with BISEP_BLOCK_PLUGINS=<plugin name>.")
        return found[0]

    def factory(self, kind: str, name: str) -> Callable[..., Any]:
        return self.get(kind, name).load()

    def build(self, kind: str, name: str, /, **conf: Any) -> Any:
        """Look up ``name`` and call its factory with ``conf``."""
        return self.factory(kind, name)(**conf)

    def plugins(self) -> list[PluginInfo]:
        """Every registered plugin with the names it contributes, per kind."""
        infos: dict[str, PluginInfo] = {}
        for plugin_name, plugin in self.pm.list_name_plugin():
            source = self._sources.get(id(plugin), PluginSource(plugin_name, "<unknown>", "?"))
            infos[plugin_name] = PluginInfo(source)
        for kind, table in self._collect().items():
            for name, found in table.items():
                for entry in found:
                    info = infos.setdefault(entry.source.plugin_name, PluginInfo(entry.source))
                    info.names.setdefault(kind, []).append(name)
        for info in infos.values():
            for kind in info.names:
                info.names[kind].sort()
        return sorted(infos.values(), key=lambda i: (i.source.distribution != BUILTIN_DISTRIBUTION,
                                                     i.source.plugin_name))

    def duplicates(self) -> dict[str, dict[str, list[PluginSource]]]:
        """``{kind: {name: [sources]}}`` for every name registered more than once."""
        return {kind: {name: [e.source for e in found] for name, found in table.items()
                       if len(found) > 1}
                for kind, table in self._collect().items()}

    @staticmethod
    def _check_kind(kind: str) -> str:
        if kind not in hookspecs.KINDS:
            raise UnknownNameError(
                f"unknown component kind '{kind}'; kinds are: {', '.join(hookspecs.KINDS)}")
        return kind

    def _unknown_message(self, kind: str, name: str, available: list[str]) -> str:
        if not available:
            return (f"no {kind} is registered at all (asked for '{name}'). Is bisep installed "
                    f"(`pip install -e .` or tools/install.sh), and is its built-in plugin "
                    f"blocked by BISEP_BLOCK_PLUGINS?")
        close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return (f"unknown {kind} '{name}'.{hint} Available {kind}s: {', '.join(available)}. "
                f"`bisep plugins` lists every plugin and what it registers.")


def load_plugin_manager() -> tuple[pluggy.PluginManager, dict[int, PluginSource], list[LoadFailure]]:
    """Create the plugin manager and load the ``bisep`` entry points (see module doc)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    blocked = _split_env("BISEP_BLOCK_PLUGINS")
    allowed = _split_env("BISEP_PLUGINS")
    autoload = os.environ.get("BISEP_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() not in {
        "1", "true", "yes"}
    sources: dict[int, PluginSource] = {}
    failures: list[LoadFailure] = []
    seen: set[tuple[str, str]] = set()
    for ep in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        dist_name, version = _entry_point_distribution(ep)
        if (ep.name, ep.value) in seen:  # the same dist on sys.path twice
            continue
        seen.add((ep.name, ep.value))
        if ep.name in blocked or dist_name in blocked:
            continue
        if not autoload and dist_name != BUILTIN_DISTRIBUTION and not (
                ep.name in allowed or dist_name in allowed):
            continue
        if pm.get_plugin(ep.name) is not None:
            failures.append(LoadFailure(
                f"{ep.name} = {ep.value}", dist_name,
                f"an entry point named '{ep.name}' is already loaded from "
                f"{sources[id(pm.get_plugin(ep.name))].distribution}; rename one of them"))
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # report, skip, keep the others
            failures.append(LoadFailure(f"{ep.name} = {ep.value}", dist_name,
                                        f"{type(exc).__name__}: {exc}"))
            warnings.warn(
                f"bisep plugin '{ep.name}' ({ep.value}) from distribution {dist_name} "
                f"{version} failed to import and was skipped: {type(exc).__name__}: {exc}",
                PluginLoadWarning, stacklevel=2)
            continue
        pm.register(plugin, name=ep.name)
        sources[id(plugin)] = PluginSource(ep.name, dist_name, version)
    return pm, sources, failures


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry(*load_plugin_manager())
    return _REGISTRY


def reset_registry() -> None:
    """Forget the registry so the next :func:`get_registry` reloads the entry points."""
    global _REGISTRY
    _REGISTRY = None


def build(kind: str, name: str, /, **conf: Any) -> Any:
    """Shortcut for ``get_registry().build(kind, name, **conf)``."""
    return get_registry().build(kind, name, **conf)
