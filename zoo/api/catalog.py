"""What is installed: families and named models, plugins, default specs. No torch import."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from zoo.core.spec import parse_options

__all__ = ["list_entries", "load_registry", "parse_options", "plugins", "spec_text"]


def load_registry() -> None:
    """Collect the plugins' registrations and read ``registry.toml`` now.

    A plugin that registers a name another plugin has is marked broken here, so
    that :func:`zoo.core.plugins.add_commands` skips its commands. Raises
    ``SpecError`` for a bad ``registry.toml``.
    """
    from zoo.core.registry import get_registry

    get_registry()


def list_entries(patterns: Iterable[str] = ("*",), exclude: Iterable[str] = ()
                 ) -> list[dict[str, str]]:
    """Families and named models matching the wildcards, in natural order.

    One dict each: ``name``, ``kind`` (``"family"`` or ``"model"``), ``family``,
    ``description`` and ``plugin`` (the plugin that registers the family).
    """
    from zoo.core.registry import get_registry, list_models

    reg = get_registry()
    rows = []
    for name in list_models(list(patterns) or ["*"], list(exclude)):
        if name in reg.families:
            rec = reg.families[name]
            rows.append({"name": name, "kind": "family", "family": name,
                         "description": rec.summary, "plugin": rec.plugin})
        else:
            m = reg.models[name]
            rows.append({"name": name, "kind": "model", "family": m.family,
                         "description": m.description,
                         "plugin": getattr(reg.families.get(m.family), "plugin", "")})
    return rows


def spec_text(name: str, overrides: Iterable[str] = (), schema: bool = False) -> str:
    """The complete default spec of a family or named model (with ``a.b=v`` overrides).

    As commented TOML followed by the family's sampling options and their
    defaults, or (``schema=True``) as the JSON Schema of the spec with the
    sampling options' schema under ``"x-sampling-options"``.
    """
    from zoo import model
    from zoo.core.spec import json_schema, options_toml, to_toml

    family, spec = model.resolve_spec(name, None, overrides)
    if schema:
        return json.dumps({**json_schema(family.spec),
                           "x-sampling-options": family.options.model_json_schema()},
                          indent=2) + "\n"
    header = (f"genzoo spec: {name} ({family.summary})\n{family.paper}\n"
              f"Build it with: zoo build {family.name} --spec THIS_FILE")
    return to_toml(spec, header) + "\n" + options_toml(family.options)


def plugins() -> list[dict[str, Any]]:
    """Installed plugins: ``name``, ``distribution``, ``version``, ``builtin``, ``status``,
    ``reason`` (why a broken one was skipped) and the ``families``, ``datasets``,
    ``metrics`` and ``features`` (feature networks for ``zoo eval --features``) each
    registers."""
    from zoo.core.plugins import plugin_infos
    from zoo.core.registry import get_registry

    reg = get_registry()
    rows = []
    for info in plugin_infos():
        provided = reg.provided.get(info.name, {})
        rows.append({
            "name": info.name, "distribution": info.distribution, "version": info.version,
            "builtin": info.builtin, "status": info.status, "reason": info.reason,
            "families": sorted(provided.get("family", [])),
            "datasets": sorted(provided.get("data set", [])),
            "metrics": sorted(provided.get("metric", [])),
            "features": sorted(provided.get("feature network", [])),
        })
    return rows
