"""The pluggy plugin manager: built-ins plus entry points in the ``zoo`` group.

Loading is explicit and idempotent (:func:`load_plugins`), never a side effect
of ``import zoo``. Built-in families are entry points of the ``genzoo``
distribution itself, loaded exactly like a third party's.

One broken plugin never stops the others: a plugin that fails to import, has
an invalid or unknown hook, fails while registering, or registers a name
another plugin has (see :mod:`zoo.core.registry`) is skipped as a whole. One
warning line on stderr names it, its distribution and how to disable it, and
``zoo plugins`` lists it as broken.

Environment:
  ``ZOO_LOAD_PLUGINS``    comma-separated allow-list of third-party distributions
                          (set but empty: none); built-ins always load.
  ``ZOO_DISABLE_PLUGINS`` comma-separated deny-list: distributions, or entry-point
                          names (``ddpm`` turns a built-in family plugin off too).
  ``ZOO_STRICT_PLUGINS``  ``1``: a broken plugin is fatal (one error line), not skipped.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from zoo.core import hookspecs
from zoo.core.errors import PluginError

GROUP = "zoo"
HOST_DISTRIBUTION = "genzoo"
#: Core modules that implement hooks themselves (the built-in data sources and feature
#: networks).
CORE_PLUGINS = ("zoo.data", "zoo.evaluation.builtin")
#: What ``PluginInfo.status`` can be.
LOADED, BROKEN, DISABLED, NOT_ALLOWED = "loaded", "broken", "disabled", "not allowed"


@dataclass(frozen=True)
class PluginInfo:
    """One plugin: its name, the distribution that ships it, its version and its status.

    ``status`` is ``"loaded"``, ``"broken"`` (skipped: ``reason`` says why),
    ``"disabled"`` (named in ``ZOO_DISABLE_PLUGINS``) or ``"not allowed"`` (a
    third-party distribution missing from ``ZOO_LOAD_PLUGINS``).
    """

    name: str
    distribution: str
    version: str
    builtin: bool
    status: str = LOADED
    reason: str = ""

    @property
    def label(self) -> str:
        """``plugin 'name' (distribution version)``, as messages name a plugin."""
        return f"plugin {self.name!r} ({self.distribution} {self.version})"

    @property
    def disable_hint(self) -> str:
        """How a user turns this plugin off."""
        if self.builtin:
            return f"disable it with ZOO_DISABLE_PLUGINS={self.name}"
        return (f"disable it with ZOO_DISABLE_PLUGINS={self.distribution} or "
                f"pip uninstall {self.distribution}")


_manager: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}  # every plugin seen, loaded or not, in load order
_warned: set[str] = set()


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_version(distribution: str = HOST_DISTRIBUTION) -> str:
    """The installed version of a distribution (genzoo by default), or ``"?"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except (PackageNotFoundError, ValueError):
        return "?"


def hook_names() -> list[str]:
    """The names of the hooks a plugin may implement (the specs in ``zoo.core.hookspecs``)."""
    return sorted(name for name, value in vars(hookspecs).items()
                  if callable(value) and hasattr(value, f"{GROUP}_spec"))


def strict() -> bool:
    """Whether ``ZOO_STRICT_PLUGINS`` makes a broken plugin fatal."""
    return os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0")


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr, once per process."""
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def _names(variable: str) -> list[str] | None:
    value = os.environ.get(variable)
    return None if value is None else [n.strip() for n in value.split(",") if n.strip()]


def _warn_unknown(variable: str, names: list[str], known: dict[str, str]) -> None:
    """One warning per name in ``variable`` that matches no installed plugin."""
    for name in names:
        if normalise(name) in known:
            continue
        close = difflib.get_close_matches(normalise(name), list(known), n=1, cutoff=0.6)
        if close:
            hint = f"; did you mean {known[close[0]]!r}?"
        elif known:
            hint = f" (installed: {', '.join(sorted(set(known.values())))})"
        else:
            hint = " (no plugin distribution is installed)"
        warn(f"{variable} names {name!r}, which matches no installed plugin{hint}")


def describe(exc: BaseException) -> str:
    """An exception as a plugin's failure reason (``SystemExit`` says so)."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return str(exc) or type(exc).__name__


def _entry_point_info(ep: EntryPoint) -> PluginInfo:
    dist = ep.dist.name if ep.dist is not None else "unknown"
    version = ep.dist.version if ep.dist is not None else "?"
    return PluginInfo(ep.name, dist, version, normalise(dist) == HOST_DISTRIBUTION)


def _selection(eps: list[EntryPoint]) -> dict[str, tuple[str, str]]:
    """Entry-point name -> (status, reason) before loading: loaded, disabled, not allowed."""
    allowed, denied = _names("ZOO_LOAD_PLUGINS"), _names("ZOO_DISABLE_PLUGINS") or []
    dists = {normalise(_entry_point_info(ep).distribution): _entry_point_info(ep).distribution
             for ep in eps}
    third_party = {k: v for k, v in dists.items() if k != HOST_DISTRIBUTION}
    _warn_unknown("ZOO_LOAD_PLUGINS", allowed or [], {**third_party, HOST_DISTRIBUTION:
                                                      HOST_DISTRIBUTION})
    _warn_unknown("ZOO_DISABLE_PLUGINS", denied,
                  {**third_party, **{normalise(ep.name): ep.name for ep in eps},
                   HOST_DISTRIBUTION: HOST_DISTRIBUTION})
    if HOST_DISTRIBUTION in {normalise(n) for n in denied}:
        builtins = sorted(ep.name for ep in eps if _entry_point_info(ep).builtin)
        warn(f"ZOO_DISABLE_PLUGINS names {HOST_DISTRIBUTION}: its built-in plugins always "
             f"load; disable them by name ({', '.join(builtins)})")
    allowed_set = None if allowed is None else {normalise(n) for n in allowed}
    denied_set = {normalise(n) for n in denied}
    status = {}
    for ep in eps:
        info = _entry_point_info(ep)
        dist = normalise(info.distribution)
        if normalise(ep.name) in denied_set or (dist in denied_set and not info.builtin):
            status[ep.name] = DISABLED, "named in ZOO_DISABLE_PLUGINS"
        elif not info.builtin and allowed_set is not None and dist not in allowed_set:
            status[ep.name] = NOT_ALLOWED, "its distribution is not in ZOO_LOAD_PLUGINS"
        else:
            status[ep.name] = LOADED, ""
    return status


def load_plugins() -> pluggy.PluginManager:
    """Load core, built-in and allowed third-party plugins once; return the manager.

    A broken plugin is skipped with one warning line (fatal with
    ``ZOO_STRICT_PLUGINS=1``); the others load.
    """
    global _manager
    if _manager is not None:
        return _manager
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    _infos.clear()
    for module_name in CORE_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        _infos[module_name] = PluginInfo(module_name, HOST_DISTRIBUTION, dist_version(), True)
    eps = sorted(entry_points(group=GROUP), key=lambda e: e.name)
    selection = _selection(eps)
    for ep in eps:
        status, reason = selection[ep.name]
        info = replace(_entry_point_info(ep), status=status, reason=reason)
        if ep.name in _infos:  # two distributions, one entry-point name: the first one wins
            info = replace(info, name=f"{ep.name} ({info.distribution})")
            _infos[info.name] = info
            if info.status == LOADED:
                _broken(info.name, f"plugin {ep.name!r} from {info.distribution} has the name "
                        f"of {_infos[ep.name].label}")
            continue
        _infos[ep.name] = info
        if info.status != LOADED:
            continue
        try:
            with torch_watch(info):
                module = ep.load()
        except (Exception, SystemExit) as exc:  # a plugin cannot end the command either
            _broken(ep.name, f"plugin {ep.name!r} from {info.distribution} failed to import: "
                    f"{describe(exc)}")
            continue
        if pm.is_registered(module):
            continue
        try:
            pm.register(module, name=ep.name)
        except pluggy.PluginValidationError as exc:
            _broken(ep.name, f"plugin {ep.name!r} from {info.distribution} has an invalid "
                    f"hook: {exc}")
    _check_hooks(pm)
    _manager = pm
    return pm


def _check_hooks(pm: pluggy.PluginManager) -> None:
    """Skip each plugin with a ``@hookimpl`` that is no hook, suggesting the nearest one."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            unknown = sorted(hook for hook, caller in vars(pm.hook).items()
                             if not caller.has_spec() and any(
                                 impl.plugin is exc.plugin and not impl.optionalhook
                                 for impl in caller.get_hookimpls()))
            hooks = hook_names()
            parts = []
            for hook in unknown:
                close = difflib.get_close_matches(hook, hooks, n=1, cutoff=0.6)
                parts.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            what = ", ".join(parts) or str(exc)
            reason = f"plugin {name!r} implements an unknown hook {what} (known hooks: "
            if not strict():
                pm.unregister(exc.plugin)  # by object: check_pending must not meet it again
            _broken(name, reason + f"{', '.join(hooks)})")


def _broken(name: str, reason: str, pm: pluggy.PluginManager | None = None) -> None:
    """Record plugin ``name`` as broken, unregister it and warn (raise when strict)."""
    reason = " ".join(reason.split())  # one line, whatever the exception said
    if strict():
        raise PluginError(reason)
    info = _infos.get(name) or PluginInfo(name, "unknown", "?", False)
    if pm is not None and pm.get_plugin(name) is not None:
        pm.unregister(name=name)
    _infos[name] = replace(info, status=BROKEN, reason=reason)
    who = "" if reason.startswith(f"plugin {name!r}") else f"{info.label}: "
    warn(f"skipping {who}{reason}; {info.disable_hint}")


def mark_broken(name: str, reason: str) -> None:
    """Skip the loaded plugin ``name`` as a whole (its registrations are inconsistent).

    Unregisters it, so none of its hooks run again; prints one warning line
    naming its distribution and how to disable it. ``ZOO_STRICT_PLUGINS=1``:
    raises :class:`PluginError` with ``reason`` instead.
    """
    _broken(name, reason, load_plugins())


def add_commands(pm: pluggy.PluginManager, app: Any) -> None:
    """Let each plugin add its sub-commands to the typer ``app`` (``register_commands``).

    A plugin that raises there, or adds a command or group whose name the
    command line already has (``build``, or another plugin's), is skipped as a
    whole (:func:`mark_broken`): its commands are taken out again, and the
    others' stay. No plugin can replace a command silently.
    """
    impls = pm.hook.register_commands.get_hookimpls()
    if not hasattr(app, "zoo_plugins_added"):
        app.zoo_plugins_added = set()  # main() may run twice in one process (tests)
    # built-in plugins first, so that a third-party one can never take their commands
    for impl in sorted(impls, key=lambda i: not plugin_info(i.plugin_name).builtin):
        name = impl.plugin_name
        if (name, id(impl.plugin)) in app.zoo_plugins_added:
            continue
        known = command_names(app)
        before = len(app.registered_commands), len(app.registered_groups)
        try:
            impl.function(cli=app)
            added = command_names(app, *before)
            taken = sorted(set(added) & set(known)) + sorted(
                {n for n in added if added.count(n) > 1})
            if taken:
                raise PluginError(f"its command {taken[0]!r} has the name of one the command "
                                  "line already has")
            app.zoo_plugins_added.add((name, id(impl.plugin)))
        except (Exception, SystemExit) as exc:
            del app.registered_commands[before[0]:]
            del app.registered_groups[before[1]:]
            reason = describe(exc) if isinstance(exc, PluginError) else \
                f"{type(exc).__name__}: {describe(exc)}"
            mark_broken(name, f"{plugin_info(name).label} failed while adding commands: "
                        f"{reason}")


def command_names(app: Any, commands: int = 0, groups: int = 0) -> list[str]:
    """The names of ``app``'s sub-commands and groups (from the ``commands``-th and
    ``groups``-th on), as the command line spells them."""
    names = [info.name or info.callback.__name__.lower().replace("_", "-")
             for info in app.registered_commands[commands:] if info.callback or info.name]
    for info in app.registered_groups[groups:]:
        name = info.name or getattr(info.typer_instance.info, "name", None)
        if isinstance(name, str):
            names.append(name)
    return names


@contextlib.contextmanager
def torch_watch(info: PluginInfo) -> Iterator[None]:
    """Warn, naming the plugin, when the block (its import or registration) imports torch."""
    before = "torch" in sys.modules
    try:
        yield
    finally:
        if not before and "torch" in sys.modules:
            warn(f"{info.label} imports torch when it loads, which adds seconds to every zoo "
                 "command (even zoo list); it should import torch inside the functions that "
                 "need it")


def plugin_infos() -> list[PluginInfo]:
    """Every plugin seen, loaded or not, in load order (see ``PluginInfo.status``)."""
    load_plugins()
    return list(_infos.values())


def plugin_info(name: str) -> PluginInfo:
    """Information about the plugin registered under ``name``."""
    load_plugins()
    return _infos.get(name, PluginInfo(name, "unknown", "?", False))


def reset_plugins() -> None:
    """Forget loaded plugins (tests, or after installing a plugin in-process)."""
    global _manager
    _manager = None
    _infos.clear()
    _warned.clear()
    for forget in _on_reset:
        forget()


#: What :func:`reset_plugins` also clears (caches built from the plugins, such as the
#: registry's); filled by :func:`on_reset`, so this module imports none of them.
_on_reset: list[Callable[[], None]] = []


def on_reset(forget: Callable[[], None]) -> None:
    """Call ``forget`` whenever :func:`reset_plugins` runs (once per function)."""
    if forget not in _on_reset:
        _on_reset.append(forget)
