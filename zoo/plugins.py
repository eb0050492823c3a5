"""The pluggy plugin manager: built-ins plus entry points in the ``zoo`` group.

Loading is explicit and idempotent (:func:`load_plugins`), never a side effect
of ``import zoo``. Built-in families are entry points of the ``genzoo``
distribution itself, loaded exactly like a third party's.

Environment:
  ``ZOO_LOAD_PLUGINS``   comma-separated allow-list of third-party distributions
                         (set but empty: none); built-ins always load.
  ``ZOO_STRICT_PLUGINS`` ``1``: a plugin that fails to import is fatal, not skipped.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from zoo import hookspecs
from zoo.errors import PluginError

GROUP = "zoo"
HOST_DISTRIBUTION = "genzoo"
#: Core modules that implement hooks themselves (the built-in data sources).
CORE_PLUGINS = ("zoo.data",)


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin: its name, the distribution that ships it and its version."""

    name: str
    distribution: str
    version: str
    builtin: bool


_manager: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}


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
    """The names of the hooks a plugin may implement (the specs in ``zoo.hookspecs``)."""
    return sorted(name for name, value in vars(hookspecs).items()
                  if callable(value) and hasattr(value, f"{GROUP}_spec"))


def load_plugins() -> pluggy.PluginManager:
    """Load core, built-in and allowed third-party plugins once; return the manager."""
    global _manager
    if _manager is not None:
        return _manager
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    for module_name in CORE_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        infos[module_name] = PluginInfo(module_name, HOST_DISTRIBUTION, dist_version(), True)

    allow = os.environ.get("ZOO_LOAD_PLUGINS")
    allowed = None if allow is None else {normalise(d) for d in allow.split(",") if d.strip()}
    strict = os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0")
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        builtin = normalise(dist) == HOST_DISTRIBUTION
        if not builtin and allowed is not None and normalise(dist) not in allowed:
            continue
        try:
            module = ep.load()
        except Exception as exc:
            message = f"plugin {ep.name!r} from {dist} failed to import: {exc}"
            if strict:
                raise PluginError(message) from None
            print(f"warning: skipping {message}", file=sys.stderr)
            continue
        if pm.is_registered(module):
            continue
        try:
            pm.register(module, name=ep.name)
        except pluggy.PluginValidationError as exc:
            message = f"plugin {ep.name!r} from {dist} has an invalid hook: {exc}"
            if strict:
                raise PluginError(message) from None
            print(f"warning: skipping {message}", file=sys.stderr)
            continue
        version = ep.dist.version if ep.dist is not None else "?"
        infos[ep.name] = PluginInfo(ep.name, dist, version, builtin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        known = ", ".join(hook_names())
        raise PluginError(f"plugin {name!r} implements an unknown hook: {exc} "
                          f"(known hooks: {known})") from None
    _manager = pm
    _infos.clear()
    _infos.update(infos)
    return pm


def plugin_infos() -> list[PluginInfo]:
    """The loaded plugins, in load order."""
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
    from zoo import registry

    registry.get_registry.cache_clear()
