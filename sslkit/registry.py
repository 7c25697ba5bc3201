"""Plugin discovery: every distribution's ``sslkit`` entry points, loaded through pluggy.

The core never imports a plugin by name: the built-ins are found the same way as a third party's package.
A plugin that fails to import, raises inside a hook or returns malformed items is recorded as broken and the
others keep working; a name offered twice is an error that names both providers.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import inspect
import traceback
import types
import typing
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
    "selector": "sslkit_selectors",
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
class Option:
    """One option of a component: its default and the type its values must have (from the factory's hints)."""

    name: str
    default: Any
    type: Any = Any

    def describe(self) -> str:
        return f"{self.name}={self.default!r}"


# positional parameters each kind's factory takes before its options
_POSITIONAL: dict[Kind, int] = {"dataset": 2, "encoder": 2, "pretext": 2, "evaluator": 0, "selector": 0}


def factory_options(kind: Kind, component: Component) -> dict[str, Option]:
    """A component's options, derived from its factory's signature; ``component.options`` adds what a
    ``**kwargs`` factory accepts. Raises TypeError when the declaration and the signature disagree."""
    factory = component.factory
    signature = inspect.signature(factory)
    try:
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except Exception:  # hints naming what the module cannot resolve: fall back to the defaults' types
        hints = {}
    params = list(signature.parameters.values())
    fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][: _POSITIONAL[kind]]
    options: dict[str, Option] = {}
    for p in params:
        if p in fixed or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise TypeError(f"factory parameter {p.name!r} has no default; every option needs one")
        options[p.name] = Option(p.name, p.default, hints.get(p.name, _type_of(p.default)))
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params)
    for name, default in component.options.items():
        if name in options:
            if options[name].default != default:
                raise TypeError(
                    f"option {name!r} is declared with default {default!r} but the factory's default is "
                    f"{options[name].default!r}"
                )
        elif takes_any:
            options[name] = Option(name, default, _type_of(default))
        else:
            raise TypeError(f"declared option {name!r} is not a parameter of the factory")
    if component.prefix_option and component.prefix_option not in options:
        raise TypeError(f"prefix_option {component.prefix_option!r} is not an option of the factory")
    for name in component.offline_options:
        if name not in options:
            raise TypeError(f"offline option {name!r} is not an option of the factory")
    return options


def _type_of(default: Any) -> Any:
    return Any if default is None else type(default)


@dataclass(frozen=True)
class Entry:
    kind: Kind
    component: Component
    provider: Provider
    options: dict[str, Option] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.component.name


@dataclass
class Registry:
    """Name -> component tables for each kind, plus what failed to load."""

    tables: dict[Kind, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    broken: list[Broken] = field(default_factory=list)
    conflicts: dict[tuple[Kind, str], list[Provider]] = field(default_factory=dict)

    def names(self, kind: Kind) -> list[str]:
        return sorted(self.tables[kind])

    def get(self, kind: Kind, name: str) -> Entry:
        table = self.tables[kind]
        if name in table:
            return table[name]
        prefix, colon, _ = name.partition(":")
        if colon and prefix in table and table[prefix].component.prefix_option:
            return table[prefix]
        providers = self.conflicts.get((kind, name))
        if providers:
            raise UsageError(conflict_message(kind, name, providers))
        available = ", ".join(self.names(kind)) or "none"
        lowered = {n.lower(): n for n in table}
        hint = (
            [lowered[name.lower()]]
            if name.lower() in lowered
            else difflib.get_close_matches(name, table, n=1)
        )
        msg = f"unknown {kind} {name!r}; available: {available}"
        if hint:
            msg += f" (did you mean {hint[0]!r}?)"
        hidden = [f"{k} {n!r}" for (k, n) in self.conflicts if k == kind]
        if hidden:
            msg += f"; hidden by a name conflict: {', '.join(hidden)} (see `sslkit plugins`)"
        if self.broken:
            msg += f"; broken plugins (see `sslkit plugins --debug`): {', '.join(str(b.provider) for b in self.broken)}"
        raise UsageError(msg)

    def check_options(self, kind: Kind, name: str, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` checked against the component's options: unknown keys and wrong types are one-line errors;
        returns the values the factory will receive (ints given for float options become floats)."""
        entry = self.get(kind, name)
        out: dict[str, Any] = {}
        for key, value in given.items():
            if key not in entry.options:
                known = ", ".join(sorted(entry.options)) or "none"
                hint = difflib.get_close_matches(key, entry.options, n=1)
                mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise UsageError(f"{kind} {entry.name!r} has no option {key!r}{mean}; its options: {known}")
            out[key] = check_value(value, entry.options[key].type, f"{kind} option {entry.name}.{key}")
        return out

    def settings(self, kind: Kind, name: str, given: dict[str, Any]) -> dict[str, Any]:
        """Every option ``kind``/``name`` is built with: its defaults, then ``given`` (checked), as a run's record
        keeps them (so that a later change of a default shows between two runs)."""
        defaults = {key: option.default for key, option in self.get(kind, name).options.items()}
        return {**defaults, **self.arguments(kind, name, given)}

    def arguments(self, kind: Kind, name: str, given: dict[str, Any]) -> dict[str, Any]:
        """The options the factory of ``kind``/``name`` receives: ``given``, checked, and the part of a prefixed
        name after its colon (``timm:resnet18``) as the component's ``prefix_option``."""
        entry = self.get(kind, name)
        opts = self.check_options(kind, name, given)
        if entry.component.prefix_option and name != entry.name:
            opts[entry.component.prefix_option] = name.partition(":")[2]
        return opts

    def build(self, kind: Kind, name: str, *args: Any, options: dict[str, Any] | None = None) -> Any:
        """Call the factory of ``kind``/``name`` with checked ``options``."""
        entry = self.get(kind, name)
        opts = self.arguments(kind, name, options or {})
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


@dataclass(frozen=True)
class Broken:
    """A plugin that could not be used: why, in one line, and the traceback for ``--debug``."""

    provider: Provider
    error: str
    traceback: str = ""


def conflict_message(kind: Kind, name: str, providers: list[Provider]) -> str:
    builtin = [p for p in providers if p.distribution == "sslkit"]
    hidden = f"; it hides the built-in {kind} {name!r}" if builtin else ""
    return (
        f"{kind} {name!r} is provided twice: by {providers[0]} and by {providers[1]}{hidden}; "
        "uninstall one of them (every other name keeps working)"
    )


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_value(value: Any, expected: Any, what: str) -> Any:
    """``value`` if it has the ``expected`` type (int accepted for float, as float; None for Optional); else a
    one-line UsageError. Nothing is coerced from strings: the command line parses values as TOML."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any or expected is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return check_value(value, option, what)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(
            errors[0] if len(errors) == 1 else f"{what} must be one of {_type_names(args)}, got {value!r}"
        )
    if origin is typing.Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise UsageError(f"{what} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if expected in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{what} must be a list (e.g. [1, 2]), got {value!r}")
        item = args[0] if args else Any
        return (origin or expected)(check_value(v, item, what + " item") for v in value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected in _NAMES:
        if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
            return value
        raise UsageError(f"{what} must be {_NAMES[expected]}, got {value!r}")
    if inspect.isclass(expected) and not isinstance(value, expected):
        raise UsageError(f"{what} must be {expected.__name__}, got {value!r}")
    return value


def _type_names(args: tuple[Any, ...]) -> str:
    def name(a: Any) -> str:
        if typing.get_origin(a) is typing.Literal:
            return " or ".join(map(repr, typing.get_args(a)))
        return _NAMES.get(a, "none" if a is type(None) else getattr(a, "__name__", str(a)))

    return " or ".join(map(name, args))


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
            registry.broken.append(_broken(provider, f"import failed: {type(exc).__name__}: {exc}"))
            continue
        plugins.append((plugin, provider))
    plugins.extend(extra_plugins)
    for plugin, provider in plugins:
        if pm.is_registered(plugin):
            continue
        try:
            name = pm.register(plugin, name=provider.plugin if provider.plugin not in providers else None)
        except Exception as exc:
            registry.broken.append(_broken(provider, f"registration failed: {exc}"))
            continue
        providers[name] = provider

    for kind, hook_name in _HOOKS.items():
        table = registry.tables[kind]
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            provider = providers[impl.plugin_name]
            try:
                items = impl.function()
                _validate(items, kind)
            except Exception as exc:
                registry.broken.append(_broken(provider, f"{hook_name} failed: {type(exc).__name__}: {exc}"))
                continue
            for comp in items:
                try:
                    options = factory_options(kind, comp)
                except (TypeError, ValueError) as exc:
                    registry.broken.append(_broken(provider, f"{kind} {comp.name!r}: {exc}"))
                    continue
                key = (kind, comp.name)
                if key in registry.conflicts:
                    registry.conflicts[key].append(provider)
                elif comp.name in table:  # a conflicting name is unusable: refuse it rather than pick one
                    registry.conflicts[key] = [table.pop(comp.name).provider, provider]
                else:
                    table[comp.name] = Entry(kind, comp, provider, options)
    return registry


def _broken(provider: Provider, error: str) -> Broken:
    return Broken(provider, error, traceback.format_exc())


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
