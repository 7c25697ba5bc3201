"""Plugin discovery: every distribution's ``sslkit`` entry points, loaded through pluggy.

The core never imports a plugin by name: the built-ins are found the same way as a third party's package.
A plugin that fails to import, raises inside a hook or returns malformed items is recorded as broken and the
others keep working; a name offered twice is an error that names both providers.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from sslkit import hookspecs
from sslkit.errors import UsageError
from sslkit.interfaces import KINDS, Component, Kind

GROUP = "sslkit"
_HOOKS: dict[Kind, str] = {
    "dataset": "sslkit_datasets",
    "encoder": "sslkit_encoders",
    "pretext": "sslkit_pretexts",
    "evaluator": "sslkit_evaluators",
}


@dataclass(frozen=True)
class Provider:
    """Where a plugin came from: the entry point's name and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} ({self.plugin})"


@dataclass(frozen=True)
class Entry:
    kind: Kind
    component: Component
    provider: Provider

    @property
    def name(self) -> str:
        return self.component.name


@dataclass
class Registry:
    """Name -> component tables for each kind, plus what failed to load."""

    tables: dict[Kind, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    broken: list[tuple[Provider, str]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def names(self, kind: Kind) -> list[str]:
        return sorted(self.tables[kind])

    def get(self, kind: Kind, name: str) -> Entry:
        table = self.tables[kind]
        if name in table:
            return table[name]
        if kind == "encoder" and name.startswith("timm:") and "timm" in table:
            return table["timm"]
        for conflict in self.conflicts:
            if f"{kind} {name!r}" in conflict:
                raise UsageError(conflict)
        available = ", ".join(self.names(kind)) or "none"
        hint = difflib.get_close_matches(name, table, n=1)
        msg = f"unknown {kind} {name!r}; available: {available}"
        if hint:
            msg += f" (did you mean {hint[0]!r}?)"
        broken = [str(p) for p, _ in self.broken]
        if broken:
            msg += f"; broken plugins (see `sslkit plugins`): {', '.join(broken)}"
        raise UsageError(msg)

    def build(self, kind: Kind, name: str, *args: Any, options: dict[str, Any] | None = None) -> Any:
        """Call the factory of ``kind``/``name`` with validated ``options``."""
        entry = self.get(kind, name)
        opts = check_options(entry, options or {})
        if kind == "encoder" and name.startswith("timm:"):
            opts["model_name"] = name.removeprefix("timm:")
        try:
            return entry.component.factory(*args, **opts)
        except (ValueError, RuntimeError) as exc:
            if not options:  # the defaults failing is the plugin's bug: keep the traceback
                raise
            given = ", ".join(f"{k}={v!r}" for k, v in options.items())
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"{kind} {name!r} rejected its options ({given}): {first}") from exc

    def entries(self) -> Iterable[Entry]:
        for kind in KINDS:
            yield from (self.tables[kind][n] for n in self.names(kind))


def check_options(entry: Entry, given: dict[str, Any]) -> dict[str, Any]:
    """Unknown keys and wrong types become one-line errors; values are cast to the default's type."""
    declared = entry.component.options
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise UsageError(f"{entry.kind} {entry.name!r} has no option {key!r}; its options: {known}")
        out[key] = coerce(value, declared[key], f"{entry.kind} option {entry.name}.{key}")
    return out


def coerce(value: Any, default: Any, what: str) -> Any:
    """Cast ``value`` to the type of ``default`` (None defaults accept anything)."""
    if default is None or isinstance(value, type(default)):
        if isinstance(default, bool) and not isinstance(value, bool):
            raise UsageError(f"{what} must be true or false, got {value!r}")
        return value
    try:
        if isinstance(default, bool):
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if isinstance(default, (int, float)) and isinstance(value, bool):
            raise ValueError
        if isinstance(default, (list, tuple)):
            items = value.split(",") if isinstance(value, str) else list(value)
            return type(default)(items)
        return type(default)(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be {type(default).__name__}, got {value!r}") from None


def _provider(ep: md.EntryPoint) -> Provider:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return Provider(ep.name, "unknown", "?")
    return Provider(ep.name, dist.metadata["Name"], dist.version)


def _entry_points() -> list[md.EntryPoint]:
    seen: set[tuple[str, str]] = set()
    eps = []
    for ep in md.entry_points(group=GROUP):
        key = (ep.name, ep.value)
        if key not in seen:  # a package both installed and on sys.path shows up twice
            seen.add(key)
            eps.append(ep)
    return eps


def load_registry(extra_plugins: Iterable[tuple[object, Provider]] = ()) -> Registry:
    """Discover the ``sslkit`` entry points of every installed distribution and build the tables.

    This is pluggy's ``load_setuptools_entrypoints`` with one difference: an entry point that fails to import is
    recorded instead of aborting discovery, so one broken third-party package never hides the others.
    ``extra_plugins`` registers modules directly (tests, notebooks).
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    providers: dict[str, Provider] = {}
    plugins: list[tuple[object, Provider]] = []
    for ep in _entry_points():
        provider = _provider(ep)
        try:
            plugin = ep.load()
        except Exception as exc:
            registry.broken.append((provider, f"import failed: {type(exc).__name__}: {exc}"))
            continue
        plugins.append((plugin, provider))
    plugins.extend(extra_plugins)
    for plugin, provider in plugins:
        if pm.is_registered(plugin):
            continue
        try:
            name = pm.register(plugin, name=provider.plugin if provider.plugin not in providers else None)
        except Exception as exc:
            registry.broken.append((provider, f"registration failed: {exc}"))
            continue
        providers[name] = provider

    for kind, hook_name in _HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            provider = providers[impl.plugin_name]
            try:
                items = impl.function()
                _validate(items, kind)
            except Exception as exc:
                registry.broken.append((provider, f"{hook_name} failed: {type(exc).__name__}: {exc}"))
                continue
            for comp in items:
                table = registry.tables[kind]
                if comp.name in table:
                    other = table[comp.name].provider
                    registry.conflicts.append(
                        f"{kind} {comp.name!r} is provided twice: by {other} and by {provider}; "
                        "uninstall one of them"
                    )
                    continue
                table[comp.name] = Entry(kind, comp, provider)
    # a conflicting name is unusable: refuse it rather than silently pick one
    for conflict in registry.conflicts:
        for kind in KINDS:
            for name in list(registry.tables[kind]):
                if conflict.startswith(f"{kind} {name!r} "):
                    del registry.tables[kind][name]
    return registry


def _validate(items: Any, kind: Kind) -> None:
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"hook must return a list of Component, got {type(items).__name__}")
    for comp in items:
        if not isinstance(comp, Component):
            raise TypeError(f"hook returned {comp!r}, not a Component")
        if not comp.name or not isinstance(comp.name, str) or not callable(comp.factory):
            raise TypeError(f"malformed Component {comp!r}: needs a name and a callable factory")
        if kind != "evaluator" and not inspect.isclass(comp.factory) and not callable(comp.factory):
            raise TypeError(f"factory of {comp.name!r} is not callable")
