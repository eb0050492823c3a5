"""Model folders from the API: what a folder holds, and where a build goes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.core.records import FamilyRecord
    from zoo.core.spec import Spec

__all__ = ["BuildPlan", "info", "launch_build", "plan_build"]


@dataclass(frozen=True)
class BuildPlan:
    """A build checked before any work: its family, resolved spec and model folder."""

    family: FamilyRecord
    spec: Spec
    out: Path

    def toml(self, header: str = "") -> str:
        """The resolved spec as commented TOML (under ``header``), as ``zoo spec`` writes."""
        from zoo.core.spec import to_toml

        return to_toml(self.spec, header)

    def run(self, *, resume: bool = False, force: bool = False, progress: bool = False) -> Path:
        """Train the planned model and write its folder (:func:`zoo.api.build` for a plan
        already resolved and checked); return the folder."""
        from zoo.training.loop import fit

        return fit(self.family, self.spec, self.out, resume=resume, force=force,
                   progress=progress)


def plan_build(name: str | None = None, spec_file: str | Path | None = None,
               overrides: Iterable[str] = (), out: str | Path | None = None) -> BuildPlan:
    """Resolve a build's spec (as :func:`zoo.api.build` does) and check that ``out``
    (default ``runs/<name>``) can be written, without training: ``zoo build --dry-run``."""
    from zoo import model
    from zoo.artifact import resolvable

    family, spec = model.resolve_spec(name, spec_file, overrides)
    folder = Path(out) if out is not None else model.default_out(name, family)
    resolvable(folder, "--out")
    return BuildPlan(family, spec, folder)


def launch_build(processes: int, batch_size: int, out: Path, *, resume: bool = False,
                 force: bool = False, argv: list[str] | None = None) -> int:
    """Run this process's ``zoo build`` command line (``argv``, default ``sys.argv[1:]``)
    under torchrun with ``processes`` local processes; return its exit status.
    See :func:`zoo.training.launch.launch_build`."""
    from zoo.training.launch import launch_build as _launch

    return _launch(processes, batch_size, out, resume=resume, force=force, argv=argv)


def info(name: str | Path, verify: bool = False) -> dict[str, Any]:
    """A model's description after checking it as loading does (spec, weights metadata,
    keys, shapes, dtypes; ``verify``: also the sha256 of every weights file): what
    ``zoo info --json`` prints.

    Keys: ``path``, ``repo_id``, ``commit``, ``family``, ``summary``, ``parameters``,
    ``tensors``, ``spec_hash``, ``genzoo_version``, ``sha256`` (``"verified"``,
    ``"recorded"`` or ``"unverified"``), ``spec``, ``metrics``, ``files`` and
    ``visualizations`` (``path`` and ``caption`` each).
    """
    from zoo.artifact import (
        CHECKSUMS,
        WEIGHTS,
        check_weights,
        load_spec,
        read_metrics,
        verify_folder,
        weights_header,
    )
    from zoo.folder.gallery import listing
    from zoo.hub import resolve

    where = resolve(name)
    path = where.path
    family, spec, config = load_spec(path)
    meta = check_weights(family, spec, path / WEIGHTS, config["spec_hash"])
    if verify:
        verify_folder(path)
    _, tensors = weights_header(path / WEIGHTS)
    checksums = ("verified" if verify else "recorded") if CHECKSUMS in config else "unverified"
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                   if p.is_file() and not p.relative_to(path).as_posix().startswith("."))
    return {"path": str(path), "repo_id": where.repo_id, "commit": where.commit,
            "family": family.name, "summary": family.summary,
            "parameters": sum(p.numel() for p in meta.parameters()), "tensors": len(tensors),
            "spec_hash": config.get("spec_hash"), "genzoo_version": config.get("genzoo_version"),
            "sha256": checksums,
            "spec": spec.model_dump(mode="json"), "metrics": read_metrics(path), "files": files,
            "visualizations": [{"path": p, "caption": c} for p, c in listing(path)]}
