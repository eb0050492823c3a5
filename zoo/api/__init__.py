"""The public Python API: everything the ``zoo`` command does, callable from Python.

Models (:mod:`zoo.model`): :func:`resolve_spec`, :func:`build`, :func:`from_pretrained`
(a :class:`ZooModel`: ``sample``, ``write_samples``, ``encode``, ...),
:func:`write_samples`, :func:`with_label`, :func:`push`, :func:`list_models`. What is installed
(:mod:`zoo.api.catalog`): :func:`list_entries`, :func:`spec_text`, :func:`plugins`,
:func:`parse_options`. Model folders (:mod:`zoo.api.folders`): :func:`info`,
:func:`plan_build`, :func:`launch_build`. Data (:mod:`zoo.api.data`): :func:`pack_data`,
:func:`index_data`. The Hub (:mod:`zoo.api.remote`):
:func:`list_remote`, :func:`pull`, :func:`set_hub_options`. Tools
(:mod:`zoo.api.tools`): :func:`evaluate`, :func:`probe`, :func:`visualize`,
:func:`check_families`. The demo (:mod:`zoo.api.demo`): :func:`demo`, :func:`export_demo`.

Importing this package does not import torch; the functions that need it import it.
The CLI (:mod:`zoo.cli`) calls nothing else (an import-linter contract keeps it so).
"""

from zoo.api.catalog import list_entries, load_registry, parse_options, plugins, spec_text
from zoo.api.data import PackResult, index_data, pack_data
from zoo.api.demo import demo, export_demo
from zoo.api.folders import BuildPlan, info, launch_build, plan_build
from zoo.api.remote import list_remote, pull, set_hub_options
from zoo.api.tools import check_families, evaluate, precompute_reference, probe, visualize
from zoo.model import (
    ZooModel,
    build,
    default_out,
    from_pretrained,
    list_models,
    push,
    resolve_spec,
    with_label,
    write_samples,
)

__all__ = [
    "BuildPlan",
    "PackResult",
    "ZooModel",
    "build",
    "check_families",
    "default_out",
    "demo",
    "evaluate",
    "export_demo",
    "from_pretrained",
    "index_data",
    "info",
    "launch_build",
    "list_entries",
    "list_models",
    "list_remote",
    "load_registry",
    "pack_data",
    "parse_options",
    "plan_build",
    "plugins",
    "precompute_reference",
    "probe",
    "pull",
    "push",
    "resolve_spec",
    "set_hub_options",
    "spec_text",
    "visualize",
    "with_label",
    "write_samples",
]
