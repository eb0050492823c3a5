"""Families, data sources and named models: one place to look names up.

Named models come from ``registry.toml`` (family, spec overrides, description,
hub repo and revision). Listing is one pure function behind both the API and
the CLI; unknown names get a "did you mean" and, for families known to live in
another distribution, an install hint. Never imports torch.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.core.errors import PluginError, SpecError, UnknownNameError
from zoo.core.plugins import (
    describe,
    load_plugins,
    mark_broken,
    on_reset,
    plugin_info,
    torch_watch,
)
from zoo.core.records import DatasetRecord, FamilyRecord, FeatureRecord, MetricRecord
from zoo.core.spec import show


@dataclass(frozen=True)
class NamedModel:
    """A named recipe in ``registry.toml``: a family plus spec overrides."""

    name: str
    family: str
    description: str
    spec: dict[str, Any] = field(default_factory=dict)
    hub_repo: str | None = None
    hub_revision: str | None = None


@dataclass(frozen=True)
class Registry:
    """Everything the loaded plugins and ``registry.toml`` provide."""

    families: dict[str, FamilyRecord]
    datasets: dict[str, DatasetRecord]
    metrics: dict[str, MetricRecord]
    features: dict[str, FeatureRecord]
    models: dict[str, NamedModel]
    external: dict[str, str]  # family name -> distribution that provides it
    provided: dict[str, dict[str, list[str]]]  # plugin name -> kind -> names it registered


def registry_path() -> Path:
    """``$ZOO_REGISTRY`` if set, else the ``registry.toml`` shipped with genzoo."""
    override = os.environ.get("ZOO_REGISTRY")
    if override:
        return Path(override)
    return Path(str(resources.files("zoo.core") / "registry.toml"))


@functools.cache
def get_registry() -> Registry:
    """Collect every plugin's registrations and the named models (cached).

    A plugin that fails while registering, or registers a name another plugin
    registers too, is skipped as a whole (see :func:`_resolve`); the others'
    registrations stand.
    """
    pm = load_plugins()
    broken: dict[str, str] = {}
    calls = [call for hook_name, kind in HOOKS.items()
             for call in _calls(getattr(pm.hook, hook_name), kind, broken)]
    records, provided = _resolve(calls, broken)
    models, external = _read_registry_file(registry_path())
    return Registry(records["family"], records["data set"], records["metric"],
                    records["feature network"], models, external, provided)


on_reset(get_registry.cache_clear)


#: Registration hook -> what it registers (in messages); RECORDS: the record type of each.
HOOKS = {"register_families": "family", "register_datasets": "data set",
         "register_metrics": "metric", "register_features": "feature network"}
RECORDS: dict[str, type] = {"family": FamilyRecord, "data set": DatasetRecord,
                            "metric": MetricRecord, "feature network": FeatureRecord}
Call = tuple[str, str, Any]  # (plugin name, kind, record)
#: What a family, data source or metric may be called: it becomes a command-line word,
#: a spec's ``family``, a folder name under ``runs/`` and a key in metrics.json.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _calls(hook: Any, kind: str, broken: dict[str, str]) -> list[Call]:
    """Call one registration hook plugin by plugin (in registration order), so each
    record knows its owner; a plugin that raises, registers something that is not a
    record, or one name twice goes into ``broken`` with the reason."""
    calls: list[Call] = []
    record_type = RECORDS[kind]
    for impl in hook.get_hookimpls():
        plugin = impl.plugin_name
        got: list[Any] = []

        def register(record: Any, got: list[Any] = got) -> None:
            if not isinstance(record, record_type):
                raise PluginError(f"register() takes a zoo.{record_type.__name__}, got "
                                  f"{type(record).__name__}")
            if not (isinstance(record.name, str) and NAME.fullmatch(record.name)):
                raise PluginError(f"{kind} name {show(record.name)!r} is not a name: letters, "
                                  "digits, '-', '_' and '.', starting with a letter or digit, "
                                  "at most 64 characters")
            if any(r.name == record.name for r in got):
                raise PluginError(f"it registers {kind} {record.name!r} twice")
            got.append(record)

        info = plugin_info(plugin)
        try:
            with torch_watch(info):
                returned = impl.function(register=register)
            if returned is not None:  # a generator's body never ran; a list registers nothing
                raise PluginError(f"{impl.function.__name__}() returned a "
                                  f"{type(returned).__name__}; it must call register(record) "
                                  "for each record and return nothing")
        except (Exception, SystemExit) as exc:
            broken.setdefault(plugin, f"{info.label} failed while registering a {kind}: "
                              f"{describe(exc)}")
            continue
        calls += [(plugin, kind, record) for record in got]
    return calls


def _resolve(calls: list[Call], broken: dict[str, str]
             ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list[str]]]]:
    """Records by kind and name, and what each plugin provided, without broken plugins.

    When plugins register the same name, a built-in one keeps it and the
    third-party ones are skipped as a whole; among third-party plugins all of
    them are skipped, so no name silently depends on which plugin loaded
    first. Two built-ins registering one name is a bug in genzoo: an error.
    Each skipped plugin goes through :func:`zoo.core.plugins.mark_broken` (one
    warning line; an error with ``ZOO_STRICT_PLUGINS=1``).
    """
    owners: dict[tuple[str, str], list[str]] = {}
    for plugin, kind, record in calls:
        owners.setdefault((kind, record.name), []).append(plugin)
    for (kind, name), plugins in owners.items():
        if len(plugins) < 2:
            continue
        labels = " and by ".join(plugin_info(p).label for p in sorted(plugins))
        reason = f"{kind} {name!r} is registered twice: by {labels}"
        builtin = [p for p in plugins if plugin_info(p).builtin]
        if len(builtin) > 1:
            raise PluginError(reason)
        if builtin:
            reason += f"; {plugin_info(builtin[0]).distribution}'s built-in one stays"
        for plugin in plugins:
            if plugin not in builtin:
                broken.setdefault(plugin, reason)
    for plugin, reason in broken.items():
        mark_broken(plugin, reason)
    records: dict[str, dict[str, Any]] = {kind: {} for kind in RECORDS}
    provided: dict[str, dict[str, list[str]]] = {}
    for plugin, kind, record in calls:
        if plugin not in broken:
            records[kind][record.name] = replace(record, plugin=plugin_info(plugin).distribution)
            provided.setdefault(plugin, {}).setdefault(kind, []).append(record.name)
    return records, provided


def _collect(hook: Any, kind: str, provided: dict[str, dict[str, list[str]]] | None = None
             ) -> dict[str, Any]:
    """The records of one registration hook, by name (see :func:`_resolve`)."""
    broken: dict[str, str] = {}
    records, mine = _resolve(_calls(hook, kind, broken), broken)
    for plugin, kinds in mine.items():
        (provided if provided is not None else {}).setdefault(plugin, {}).update(kinds)
    return records[kind]


def _read_registry_file(path: Path) -> tuple[dict[str, NamedModel], dict[str, str]]:
    """Named models and external families from ``registry.toml``; anything malformed
    (not UTF-8 TOML, a table that is a value, a family that is not a name) is one
    ``SpecError`` line naming the file and the entry."""
    from zoo.core.spec import read_document

    if not path.is_file():
        return {}, {}
    doc = read_document(path)
    where = show(str(path), 300)

    def table(value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: {what} must be a table, not {type(value).__name__}")
        return value

    def text(value: Any, what: str, optional: bool = True) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise SpecError(f"{where}: {what} must be a string, not {type(value).__name__}")
        return value

    models = {}
    for name, entry in table(doc.get("models", {}), "models").items():
        entry = table(entry, f"model {show(name)!r}")
        if "family" not in entry:
            raise SpecError(f"{where}: model {show(name)!r} needs a family")
        hub = table(entry.get("hub", {}), f"model {show(name)!r} hub")
        models[name] = NamedModel(
            name=name,
            family=text(entry["family"], f"model {show(name)!r} family", optional=False),
            description=text(entry.get("description", ""), f"model {show(name)!r} "
                             "description", optional=False),
            spec=table(entry.get("spec", {}), f"model {show(name)!r} spec"),
            hub_repo=text(hub.get("repo_id"), f"model {show(name)!r} hub.repo_id"),
            hub_revision=text(hub.get("revision"), f"model {show(name)!r} hub.revision"),
        )
    external = {name: text(dist, f"external {show(name)!r}", optional=False)
                for name, dist in table(doc.get("external", {}), "external").items()}
    return models, external


# --------------------------------------------------------------------------- lookups


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``vae2`` before ``vae10``."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name.lower())]


def filter_names(
    names: Iterable[str], include: str | Iterable[str] = "*", exclude: Iterable[str] = ()
) -> list[str]:
    """Names matching any include wildcard and no exclude wildcard, naturally sorted."""
    includes = [include] if isinstance(include, str) else list(include) or ["*"]
    excludes = list(exclude)
    keep = {
        n
        for n in names
        if any(fnmatch.fnmatchcase(n, p) for p in includes)
        and not any(fnmatch.fnmatchcase(n, p) for p in excludes)
    }
    return sorted(keep, key=natural_key)


def list_models(include: str | Iterable[str] = "*", exclude: Iterable[str] = ()) -> list[str]:
    """Family names and named models matching the wildcards, naturally sorted."""
    reg = get_registry()
    return filter_names([*reg.families, *reg.models], include, exclude)


def _unknown(kind: str, name: str, known: Iterable[str], extra: str = "") -> UnknownNameError:
    from zoo.core.spec import show

    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} {show(name)!r}{hint}{extra}")


def get_family(name: str) -> FamilyRecord:
    """The family record called ``name``; unknown names get suggestions or an install hint."""
    reg = get_registry()
    if name in reg.families:
        return reg.families[name]
    if name in reg.external:
        dist = reg.external[name]
        raise UnknownNameError(
            f"family {name!r} is provided by {dist}: pip install {dist}"
        )
    raise _unknown("family", name, [*reg.families, *reg.models])


def resolve_name(name: str) -> tuple[FamilyRecord, dict[str, Any], NamedModel | None]:
    """Resolve a family or named model to (family, base spec document, named model).

    The base document is complete: the family's default spec, every key, with
    the named model's overrides merged onto it key by key.
    """
    from zoo.core.spec import default_document, merge

    reg = get_registry()
    if name in reg.models:
        named = reg.models[name]
        family = get_family(named.family)
        if not isinstance(named.spec, dict):
            raise SpecError(f"named model {name!r}: its spec must be a table of sections")
        return family, merge(default_document(family.spec, family.name), named.spec), named
    if name in reg.families or name in reg.external:
        family = get_family(name)
        return family, default_document(family.spec, family.name), None
    raise _unknown("family or model", name, [*reg.families, *reg.models])


def get_dataset(source: str) -> DatasetRecord:
    """The data-source record answering ``source`` (``torchvision:MNIST`` matches a prefix)."""
    reg = get_registry()
    if source in reg.datasets and not reg.datasets[source].prefix:
        return reg.datasets[source]
    prefix, sep, _ = source.partition(":")
    if sep and prefix in reg.datasets and reg.datasets[prefix].prefix:
        return reg.datasets[prefix]
    names = [f"{n}:<name>" if r.prefix else n for n, r in reg.datasets.items()]
    raise _unknown("data source", source, names)


def get_features(name: str) -> FeatureRecord:
    """The feature-network record called ``name`` (``zoo eval --features NAME``)."""
    reg = get_registry()
    if name in reg.features:
        return reg.features[name]
    raise _unknown("feature network", name, reg.features,
                   f" (installed: {', '.join(sorted(reg.features)) or 'none'})")


def default_features(source: str) -> str:
    """The feature network ``zoo eval`` uses for a model trained on ``source``: the first
    one (by name) that names the source among its ``sources``, else ``inception``."""
    reg = get_registry()
    return next((name for name in sorted(reg.features) if source in reg.features[name].sources),
                "inception")


def dataset_loader(source: str) -> Callable[..., Any]:
    """Import and return the loader function of a data source."""
    from zoo.core.records import import_ref

    return import_ref(get_dataset(source).load)
