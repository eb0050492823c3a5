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
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.errors import PluginError, SpecError, UnknownNameError
from zoo.plugins import load_plugins, plugin_info
from zoo.records import DatasetRecord, FamilyRecord, MetricRecord


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
    models: dict[str, NamedModel]
    external: dict[str, str]  # family name -> distribution that provides it
    provided: dict[str, dict[str, list[str]]]  # plugin name -> kind -> names it registered


def registry_path() -> Path:
    """``$ZOO_REGISTRY`` if set, else the ``registry.toml`` shipped with genzoo."""
    override = os.environ.get("ZOO_REGISTRY")
    if override:
        return Path(override)
    return Path(str(resources.files("zoo") / "registry.toml"))


@functools.cache
def get_registry() -> Registry:
    """Collect every plugin's registrations and the named models (cached)."""
    pm = load_plugins()
    provided: dict[str, dict[str, list[str]]] = {}
    families: dict[str, FamilyRecord] = _collect(pm.hook.register_families, "family", provided)
    datasets: dict[str, DatasetRecord] = _collect(pm.hook.register_datasets, "data set", provided)
    metrics: dict[str, MetricRecord] = _collect(pm.hook.register_metrics, "metric", provided)
    models, external = _read_registry_file(registry_path())
    return Registry(families, datasets, metrics, models, external, provided)


def _collect(hook: Any, kind: str, provided: dict[str, dict[str, list[str]]] | None = None
             ) -> dict[str, Any]:
    """Call one registration hook plugin by plugin, so each record knows its owner."""
    records: dict[str, Any] = {}
    provided = {} if provided is None else provided
    owners: dict[str, str] = {}
    for impl in reversed(hook.get_hookimpls()):  # registration order
        info = plugin_info(impl.plugin_name)
        owner = f"plugin {info.name!r} ({info.distribution} {info.version})"
        names = provided.setdefault(impl.plugin_name, {}).setdefault(kind, [])

        def register(record: Any, info=info, owner: str = owner, names: list[str] = names
                     ) -> None:
            if record.name in records:
                raise PluginError(f"{kind} {record.name!r} is registered twice: by "
                                  f"{owners[record.name]} and by {owner}")
            records[record.name] = replace(record, plugin=info.distribution)
            owners[record.name] = owner
            names.append(record.name)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"{owner} failed while registering a {kind}: {exc}") from None
    return records


def _read_registry_file(path: Path) -> tuple[dict[str, NamedModel], dict[str, str]]:
    if not path.is_file():
        return {}, {}
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    models = {}
    for name, entry in doc.get("models", {}).items():
        hub = entry.get("hub", {})
        if not isinstance(entry, dict) or "family" not in entry:
            raise SpecError(f"{path}: model {name!r} needs a family")
        models[name] = NamedModel(
            name=name,
            family=entry["family"],
            description=entry.get("description", ""),
            spec=entry.get("spec", {}),
            hub_repo=hub.get("repo_id"),
            hub_revision=hub.get("revision"),
        )
    return models, dict(doc.get("external", {}))


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
    from zoo.spec import show

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
    from zoo.spec import default_document, merge

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


def dataset_loader(source: str) -> Callable[..., Any]:
    """Import and return the loader function of a data source."""
    from zoo.records import import_ref

    return import_ref(get_dataset(source).load)
