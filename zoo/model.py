"""Models from Python: resolve a spec, build, load back strictly, sample and push.

The layer under the tools that work on a model (evaluation, visualisation, the
conformance kit); :mod:`zoo.api` re-exports all of it with the rest of the public
API. Importing this module does not import torch; functions that need it import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.core.errors import SpecError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.core.records import FamilyRecord
    from zoo.core.spec import Spec
    from zoo.hub import PushResult


def resolve_spec(
    name: str | None = None,
    spec_file: str | Path | None = None,
    overrides: Iterable[str] = (),
) -> tuple[FamilyRecord, Spec]:
    """Resolve a family or named model, a spec file and ``a.b=v`` overrides to a valid spec.

    Precedence: family defaults < named model (``registry.toml``) < spec file < overrides.
    """
    from zoo.core.registry import get_family, resolve_name
    from zoo.core.spec import apply_overrides, merge, migrate, read_document, show, validate

    where = show(str(spec_file), 300) if spec_file is not None else "spec"
    # an older spec_version is migrated before it is merged onto the current defaults
    file_doc = migrate(read_document(spec_file), where) if spec_file is not None else {}
    if name is None:
        name = file_doc.get("family")
        if not isinstance(name, str):
            raise SpecError(f"{where}: no family given and the spec names none")
    family, base, _ = resolve_name(name)
    if "family" in file_doc and file_doc["family"] != family.name:
        raise SpecError(
            f"{where}: spec is for family {show(file_doc['family'])!r}, not {family.name!r}"
        )
    # key by key: every key that the file and --set leave alone keeps the family's
    # (or the named model's) value, not the shared section's default
    doc = apply_overrides(merge(base, file_doc), overrides)
    if doc.get("family") != family.name:
        raise SpecError(f"--set family={show(doc.get('family'))!r} cannot change the family "
                        f"{family.name!r}")
    source = where if spec_file is not None else name
    return get_family(family.name), validate(family.spec, doc, source=source)


def default_out(name: str | None, family: FamilyRecord) -> Path:
    """Where a build goes without ``--out``: ``runs/<model or family name>``."""
    return Path("runs") / (name or family.name)


def build(
    name: str | None = None,
    spec_file: str | Path | None = None,
    overrides: Iterable[str] = (),
    out: str | Path | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Train a model from a family/named model + spec file + overrides; return its folder."""
    from zoo.training.loop import fit

    family, spec = resolve_spec(name, spec_file, overrides)
    out = Path(out) if out is not None else default_out(name, family)
    return fit(family, spec, out, resume=resume, force=force, progress=progress)


@dataclass
class ZooModel:
    """A loaded model: its family, spec, torch module and folder (and Hub repo and commit)."""

    family: FamilyRecord
    spec: Spec
    module: nn.Module
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    repo_id: str | None = None
    commit: str | None = None

    @property
    def num_parameters(self) -> int:
        """Number of parameters of the sampling module."""
        return sum(p.numel() for p in self.module.parameters())

    @property
    def metrics(self) -> dict[str, Any]:
        """The folder's ``metrics.json``."""
        from zoo.artifact import read_metrics

        return read_metrics(self.path)

    def sample(self, n: int, seed: int = 0, batch_size: int = 64, *, precision: str = "fp32",
               **options: Any) -> torch.Tensor:
        """``n`` images as float32 ``N×C×H×W`` in [0, 1]; image i depends only on (seed, i).
        ``precision="bf16"`` samples under bf16 autocast."""
        from zoo.sampling.sample import sample_images

        return sample_images(self.family, self.module, self.spec, n, seed, batch_size,
                             precision=precision, **options)

    def write_samples(self, output: str | Path, n: int = 64, seed: int = 0,
                      batch_size: int = 64, nrow: int | None = None, *,
                      precision: str = "fp32", **options: Any) -> str:
        """Sample ``n`` images into ``output`` with the family's sampling ``options`` (as
        :meth:`sample` takes them); return its kind. See :func:`write_samples`."""
        return write_samples(self, output, n, seed, batch_size, nrow, options=options,
                             precision=precision)

    def _call(self, capability: str, batch: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """The family's ``capability`` on ``batch``: a one-line ``PluginError`` unless it
        returns a float tensor with one row per input row."""
        import torch

        from zoo.core.errors import PluginError

        self.family.require(capability)
        with torch.inference_mode():
            out = getattr(self.family.load(), capability)(self.module, batch, *args, **kwargs)
        if not (isinstance(out, torch.Tensor) and out.is_floating_point() and out.dim() >= 1
                and len(out) == len(batch)):
            got = (f"shape {tuple(out.shape)}, {out.dtype}" if isinstance(out, torch.Tensor)
                   else f"a {type(out).__name__}")
            raise PluginError(f"family {self.family.name!r}: {capability}() gave {got} for "
                              f"{len(batch)} inputs, expected a float tensor with one row each")
        return out

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Codes (N, k) of images in [0, 1] (families with ``encode``)."""
        return self._call("encode", images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from codes (families with ``decode``)."""
        return self._call("decode", codes)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstructions in [0, 1] of images in [0, 1] (families with ``reconstruct``)."""
        return self._call("reconstruct", images)

    def log_likelihood(self, images: torch.Tensor, k: int = 1000, seed: int = 0) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) in nats per image (``log_likelihood``)."""
        import torch

        from zoo.sampling.sample import module_device

        generator = torch.Generator(device=module_device(self.module))
        return self._call("log_likelihood", images, k=k, spec=self.spec,
                          generator=generator.manual_seed(seed))

    def to(self, device: str | torch.device) -> ZooModel:
        """Move the module to ``device``; returns self."""
        self.module.to(device)
        return self


def from_pretrained(
    name_or_path: str | Path,
    revision: str | None = None,
    local_files_only: bool = False,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> ZooModel:
    """Load a model strictly from safetensors (nothing is unpickled), on ``device``.

    ``name_or_path``: a local model folder, a Hub id (``"me/dcgan-mnist"``, or
    ``"me/dcgan-mnist@v1"``) or a named model of ``registry.toml`` that is
    published (its Hub repo at its pinned revision). ``revision``: branch, tag
    or commit on the Hub. ``local_files_only`` (or ``HF_HUB_OFFLINE=1``): use
    the Hub cache only. ``cache_dir``: the Hub cache (default: the
    ``huggingface_hub`` one). ``endpoint``/``token``: see :mod:`zoo.hub`.

    Checks the config (size, nesting, spec, spec hash) and the weights' header
    (dtypes, byte ranges, metadata, every tensor's name, shape and dtype) before
    reading any tensor; a failure is a one-line ``ArtifactError``. The sha256 of
    the weights is left to :func:`zoo.artifact.verify_folder` (``zoo info
    --verify``, ``zoo eval``, ``zoo push``): on load it would add 4-11 % to the
    load time (``bench/load_verify.py``).
    """
    from zoo.artifact import load_folder
    from zoo.hub import resolve

    where = resolve(name_or_path, revision, local_files_only=local_files_only,
                    cache_dir=cache_dir, endpoint=endpoint, token=token)
    family, spec, config, module = load_folder(where.path, device=device)
    return ZooModel(family, spec, module, where.path, config, where.repo_id, where.commit)


def write_samples(
    model: ZooModel | str | Path,
    output: str | Path,
    n: int = 64,
    seed: int = 0,
    batch_size: int = 64,
    nrow: int | None = None,
    *,
    label: int | None = None,
    options: Mapping[str, Any] | None = None,
    precision: str = "fp32",
) -> str:
    """Sample ``n`` images of ``model`` (loaded, or loaded here by :func:`from_pretrained`)
    into ``output`` and return its kind: ``"grid"`` (``FILE.png``, one grid of ``nrow``
    images a row), ``"folder"`` (a new folder: one PNG per image) or the suffix of a
    tensor file (``"npy"``, ``"npz"``, ``"safetensors"``: one uint8 N×C×H×W tensor).

    ``output`` is checked before the model is loaded; folders and tensor files are
    written as the images are made. ``options``: the family's sampling options (``zoo
    spec FAMILY`` lists them); ``label``: the class of every image, the ``label`` option
    of a conditional family, checked to be one first (``zoo sample --label``);
    ``precision``: ``"fp32"`` or ``"bf16"`` (autocast). Image i depends only on (seed, i),
    as in :meth:`ZooModel.sample`.
    """
    from zoo.sampling.sample import iter_samples, precision_context
    from zoo.sampling.sinks import check_output
    from zoo.sampling.sinks import write_samples as write_chunks

    output = Path(output)
    check_output(output, n)
    precision_context(precision)  # checked before the model is loaded
    options = with_label(options, label)
    source = str(model.repo_id or model.path) if isinstance(model, ZooModel) else str(model)
    if not isinstance(model, ZooModel):
        model = from_pretrained(model)
    if label is not None:
        model.family.require("conditional")
    chunks = iter_samples(model.family, model.module, model.spec, n, seed, batch_size,
                          precision=precision, **options)
    return write_chunks(chunks, output, n, nrow=nrow,
                        metadata={"format": "genzoo-samples", "model": source,
                                  "seed": str(seed), "family": model.family.name,
                                  "precision": precision})


def with_label(options: Mapping[str, Any] | None, label: int | None) -> dict[str, Any]:
    """``options`` with ``label`` set (``--label N`` is ``--opt label=N``); a different
    ``label`` in ``options`` is a one-line ``SpecError``."""
    options = dict(options or {})
    if label is not None:
        if options.get("label", label) != label:
            raise SpecError(f"--label {label} and --opt label={options['label']} disagree; "
                            "give one")
        options["label"] = label
    return options


def push(
    path: str | Path,
    repo_id: str | None = None,
    *,
    revision: str | None = None,
    private: bool | None = None,
    message: str | None = None,
    create_pr: bool = False,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> PushResult:
    """Validate a model folder (strict load) and upload it to a Hub repo in one commit.

    Creates the repo if missing and the branch ``revision`` if missing; the
    model card is rendered for ``repo_id`` (default: the spec's
    ``hub.repo_id``). Returns the commit; nothing is uploaded for a folder
    that fails validation. See :func:`zoo.hub.push`.
    """
    from zoo.hub import push as _push

    return _push(path, repo_id, revision=revision, private=private, message=message,
                 create_pr=create_pr, endpoint=endpoint, token=token)


def list_models(include: str | Iterable[str] = "*", exclude: Iterable[str] = ()) -> list[str]:
    """Families and named models matching wildcards (``list_models('dc*')``)."""
    from zoo.core.registry import list_models as _list

    return _list(include, exclude)
