"""The conformance kit: one battery of checks any family must pass.

``check_family(family)`` (a name or a ``FamilyRecord``) builds a tiny model and
returns one :class:`Check` per property; ``assert_conforms`` raises with one
line per failure. ``zoo plugin check FAMILY...`` runs the same battery.

The checks: the default spec validates and round-trips through TOML; the spec
module imports without torch; the family class loads (it keeps the contract:
:meth:`zoo.Family.contract_errors`); a tiny build trains and writes a model folder;
the sampler's raw output has the right shape, dtype and range; image i
depends only on (seed, i), for any number of images and any batch size; two
builds with one seed give bitwise-equal weights (CPU, fp32); save -> load is a
bitwise round trip; strict loading rejects tampered weights; a family with the
``latent`` capability draws codes per sample and decodes them
deterministically; a family with a ``label`` option samples other images for
another label (or refuses it in one line); the model card renders with Hub front matter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.core.records import FamilyRecord

#: Keys of the shared spec sections that make any build tiny (applied when the family's spec
#: has them); a family adds its own in its class's ``tiny`` (e.g. ``model.timesteps``).
TINY = {"train.max_steps": 2, "train.batch_size": 8, "data.limit": 64, "sample.n": 4,
        "train.precision": "fp32"}
#: How far image i may move between chunk sizes (float rounding of batched kernels): sampling
#: n images runs chunks of min(n, batch_size), so n and the batch size both change them.
BATCH_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Check:
    """The outcome of one property check."""

    name: str
    ok: bool
    detail: str = ""


def tiny_overrides(family: FamilyRecord, extra: Iterable[str] = ()) -> list[str]:
    """``TINY`` restricted to the keys the family's default spec has, then the family's own
    ``tiny`` overrides, then ``extra``."""
    from zoo.core.spec import validate

    doc = validate(family.spec, {"family": family.name}).model_dump(mode="json")

    def has(path: str) -> bool:
        node: Any = doc
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    own = [f"{k}={_value(v)}" for k, v in family.load().tiny.items()]
    return [f"{k}={v}" for k, v in TINY.items() if has(k)] + own + list(extra)


def _value(value: Any) -> str:
    """A ``tiny`` value as ``--set`` reads it (TOML for lists and strings)."""
    import json

    return value if isinstance(value, str) else json.dumps(value)


def check_family(family: FamilyRecord | str, overrides: Iterable[str] = (),
                 workdir: str | Path | None = None) -> list[Check]:
    """Run the battery on ``family``; ``overrides`` (``a.b=v``) shrink or adapt the build.

    The kit works in a temporary folder inside ``workdir`` (created if missing;
    default: the system's temporary folder) and deletes it, with the model
    folders it built, when it is done.
    """
    from zoo.core.registry import get_family

    record = get_family(family) if isinstance(family, str) else family
    checks: list[Check] = []
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zoo-check-", dir=workdir) as tmp:
        state: dict[str, Any] = {"tmp": Path(tmp), "extra": list(overrides)}
        for name, run in BATTERY:
            try:
                detail = run(record, state)
                checks.append(Check(name, True, detail or ""))
            except _Skip as skip:
                checks.append(Check(name, False, f"not run: {skip}"))
            except Exception as exc:  # a check failing is the result, not an error
                checks.append(Check(name, False, f"{type(exc).__name__}: {exc}".strip()))
    return checks


def assert_conforms(family: FamilyRecord | str, overrides: Iterable[str] = ()) -> None:
    """Raise ``AssertionError`` with one line per failed check (for plugin test suites)."""
    failed = [c for c in check_family(family, overrides) if not c.ok]
    if failed:
        name = family if isinstance(family, str) else family.name
        raise AssertionError(f"family {name!r} fails the conformance kit:\n" + "\n".join(
            f"  {c.name}: {c.detail}" for c in failed))


class _Skip(Exception):
    """An earlier check this one needs did not pass."""


# --------------------------------------------------------------------------- checks


def _spec_round_trip(family: FamilyRecord, state: dict[str, Any]) -> str:
    import tomllib

    from zoo.core.spec import to_toml, validate

    spec = validate(family.spec, {"family": family.name})
    again = validate(family.spec, tomllib.loads(to_toml(spec)))
    if again != spec:
        raise AssertionError("the default spec changes after a TOML round trip")
    return "default spec validates and round-trips through TOML"


def _spec_without_torch(family: FamilyRecord, state: dict[str, Any]) -> str:
    module = family.spec.__module__
    probe = (f"import sys; import {module}; "
             "sys.exit(3 if 'torch' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if proc.returncode == 3:
        raise AssertionError(f"importing the spec module {module} imports torch")
    if proc.returncode:
        raise AssertionError(f"importing {module} failed: {proc.stderr.strip().splitlines()[-1]}")
    return f"{module} imports without torch"


def _family_class(family: FamilyRecord, state: dict[str, Any]) -> str:
    family.load()  # a class that breaks the contract: one PluginError line
    state["loads"] = True
    return f"{family.impl} loads; capabilities: {', '.join(sorted(family.capabilities))}"


def _build(family: FamilyRecord, state: dict[str, Any]) -> str:
    from zoo.model import resolve_spec
    from zoo.training.loop import fit

    if "loads" not in state:
        raise _Skip("the family class does not load")
    state["overrides"] = tiny_overrides(family, state["extra"])
    _, spec = resolve_spec(family.name, overrides=state["overrides"])
    out = fit(family, spec, state["tmp"] / "model", progress=False)
    state["folder"] = out
    return f"tiny build ({', '.join(state['overrides'])}) wrote {out.name}/"


def _loaded(state: dict[str, Any]) -> Any:
    if "folder" not in state:
        raise _Skip("the tiny build failed")
    from zoo.model import from_pretrained

    return from_pretrained(state["folder"])


def _output(family: FamilyRecord, state: dict[str, Any]) -> str:
    import torch

    from zoo.data import num_channels
    from zoo.sampling.sample import PerSampleNoise

    model = _loaded(state)
    with torch.inference_mode():
        out = family.load().sample(model.module, PerSampleNoise(0, range(4)), model.spec,
                                   family.sampling_options())
    images = out[0] if isinstance(out, tuple) else out
    size, channels = model.spec.data.image_size, num_channels(model.spec.data)
    if tuple(images.shape) != (4, channels, size, size):
        raise AssertionError(f"sample() gave shape {tuple(images.shape)}, expected "
                             f"{(4, channels, size, size)}")
    if not images.dtype.is_floating_point:
        raise AssertionError(f"sample() gave dtype {images.dtype}, expected a float dtype")
    low, high = float(images.min()), float(images.max())
    if not torch.isfinite(images).all() or low < -1e-4 or high > 1 + 1e-4:
        raise AssertionError(f"sample() values outside [0, 1]: min {low:.4g}, max {high:.4g}")
    return f"shape {tuple(images.shape)}, {images.dtype}, values in [{low:.3g}, {high:.3g}]"


def _determinism(family: FamilyRecord, state: dict[str, Any]) -> str:
    import torch

    model = _loaded(state)
    five = model.sample(5, seed=3, batch_size=4)
    if not torch.equal(five, model.sample(5, seed=3, batch_size=4)):
        raise AssertionError("the same seed gave different images")
    # chunks are not padded: n = 3 runs one chunk of 3, n = 5 chunks of 4 and 1; a sampler
    # seeded per chunk passes the checks above (every chunk starts where it did)
    exact = family.load().independent_samples
    allowed = 0.0 if exact else BATCH_TOLERANCE
    kind = "bitwise (independent_samples = True)" if exact else f"to {allowed:g}"
    for what, theirs, mine in (("number of images asked for", five[:3],
                                model.sample(3, seed=3, batch_size=4)),
                               ("batch size", five, model.sample(5, seed=3, batch_size=2))):
        worst = (theirs - mine).abs().flatten(1).amax(1)
        moved = [i for i, d in enumerate(worst.tolist()) if d > allowed]
        if moved:
            raise AssertionError(f"image i changed with the {what}: images {moved} differ "
                                 f"by up to {float(worst.max()):.3g}, expected the same {kind}")
    if torch.equal(five, model.sample(5, seed=4, batch_size=4)):
        raise AssertionError("different seeds gave the same images")
    return ("image i depends only on (seed, i), not on N or the batch size"
            + (" (bitwise)" if exact else f" (to {BATCH_TOLERANCE:g})"))


def _reproducible(family: FamilyRecord, state: dict[str, Any]) -> str:
    from safetensors.torch import load_file

    from zoo.artifact import WEIGHTS, read_metrics
    from zoo.model import resolve_spec
    from zoo.training.loop import fit

    if "folder" not in state:
        raise _Skip("the tiny build failed")
    first = state["folder"]
    _, spec = resolve_spec(family.name, overrides=[*state["overrides"], "run.device=cpu",
                                                   "train.precision=fp32"])
    ran = read_metrics(first).get("train", {})
    if (ran.get("device"), ran.get("precision")) != ("cpu", "fp32"):  # e.g. built on a GPU
        first = fit(family, spec, state["tmp"] / "cpu-build", progress=False)
    again = fit(family, spec, state["tmp"] / "cpu-build-again", progress=False)
    mine, theirs = load_file(str(first / WEIGHTS)), load_file(str(again / WEIGHTS))
    if mine.keys() != theirs.keys():
        raise AssertionError(f"two builds with train.seed = {spec.train.seed} wrote different "
                             f"tensors: {sorted(mine.keys() ^ theirs.keys())[:3]}")
    differ = sorted(k for k in mine if not bitwise_equal(mine[k], theirs[k]))
    if differ:
        raise AssertionError(
            f"two builds with train.seed = {spec.train.seed} gave different weights on CPU "
            f"fp32: {len(differ)} of {len(mine)} tensors differ (first: {differ[0]}); draw "
            "every random number from the seeded generators (the trainer's rng, the global "
            "torch RNG the loop seeds), never from the clock or the OS")
    return f"two CPU fp32 builds gave bitwise-equal weights ({len(mine)} tensors)"


def bitwise_equal(a: Any, b: Any) -> bool:
    """Whether two tensors have the same shape, dtype and bytes (NaNs included)."""
    def raw(t: Any) -> Any:
        import torch

        return t.reshape(-1).contiguous().view(torch.uint8)

    return a.shape == b.shape and a.dtype == b.dtype and bool(raw(a).equal(raw(b)))


def _round_trip(family: FamilyRecord, state: dict[str, Any]) -> str:
    import torch

    from zoo.folder.write import write_model_folder
    from zoo.model import from_pretrained

    model = _loaded(state)
    again_dir = write_model_folder(state["tmp"] / "again", family, model.spec, model.module,
                                   {})
    again = from_pretrained(again_dir)
    mine, theirs = model.module.state_dict(), again.module.state_dict()
    if mine.keys() != theirs.keys() or not all(torch.equal(mine[k], theirs[k]) for k in mine):
        raise AssertionError("weights differ after save -> load")
    first = model.sample(4, seed=1)
    if not torch.equal(first, model.sample(4, seed=1)):  # "seeding" reports that fault
        return f"{len(mine)} tensors bitwise equal after save -> load"
    if not torch.equal(first, again.sample(4, seed=1)):
        raise AssertionError("samples differ after save -> load")
    return f"{len(mine)} tensors and the samples are bitwise equal after save -> load"


def _tampering(family: FamilyRecord, state: dict[str, Any]) -> str:
    from safetensors.torch import load_file, save_file

    from zoo.artifact import weights_header
    from zoo.core.errors import ZooError
    from zoo.model import from_pretrained

    _loaded(state)
    folder = state["folder"]
    metadata, _ = weights_header(folder / "model.safetensors")
    tensors = load_file(str(folder / "model.safetensors"))
    first = sorted(tensors)[0]
    tampered = {
        "a missing tensor": ({k: v for k, v in tensors.items() if k != first}, metadata),
        "an extra tensor": ({**tensors, "extra.weight": tensors[first].clone()}, metadata),
        "a wrong shape": ({**tensors, first: tensors[first].flatten()[:1].clone()}, metadata),
        "another spec hash": (tensors, {**metadata, "spec_hash": "0" * 16}),
        "a truncated file": None,
    }
    for what, content in tampered.items():
        bad = state["tmp"] / "tampered"
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(folder, bad)
        weights = bad / "model.safetensors"
        if content is None:
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        else:
            save_file({k: v.contiguous() for k, v in content[0].items()}, str(weights),
                      metadata=content[1])
        try:
            from_pretrained(bad)
        except ZooError:
            continue
        raise AssertionError(f"strict loading accepted weights with {what}")
    return "rejected: " + ", ".join(tampered)


def _latent(family: FamilyRecord, state: dict[str, Any]) -> str:
    import torch

    from zoo.data import num_channels
    from zoo.sampling.sample import PerSampleNoise

    model = _loaded(state)
    if "latent" not in family.capabilities:
        return "no latent capability"
    impl = family.load()
    with torch.inference_mode():
        codes = impl.latent(model.module, PerSampleNoise(5, range(3)), model.spec)
        alone = impl.latent(model.module, PerSampleNoise(5, [1]), model.spec)
        if len(codes) != 3 or not torch.equal(codes[1:2], alone):
            raise AssertionError("latent(): row i must be one code from sample i's noise alone")
        options = family.sampling_options()
        images = impl.generate(model.module, codes, model.spec, options)
        again = impl.generate(model.module, codes, model.spec, options)
    size, channels = model.spec.data.image_size, num_channels(model.spec.data)
    if tuple(images.shape) != (3, channels, size, size):
        raise AssertionError(f"generate() gave shape {tuple(images.shape)}, expected "
                             f"{(3, channels, size, size)}")
    if not torch.isfinite(images).all() or images.min() < -1e-4 or images.max() > 1 + 1e-4:
        raise AssertionError("generate() values outside [0, 1]")
    if not torch.equal(images, again):
        raise AssertionError("generate() gave different images for the same codes")
    return f"codes {tuple(codes.shape[1:])} -> images, deterministic"


def _features(family: FamilyRecord, state: dict[str, Any]) -> str:
    import torch

    from zoo.data import num_channels
    from zoo.training.trained import TrainedModules, fresh_modules

    model = _loaded(state)
    if "features" not in family.capabilities:
        return "no features capability"
    impl, spec = family.load(), model.spec
    size = spec.data.image_size
    images = torch.rand(3, num_channels(spec.data), size, size,
                        generator=torch.Generator().manual_seed(0))
    trained = TrainedModules(model, "the conformance kit")
    fresh, modules = fresh_modules(impl, spec, 0)
    with torch.no_grad():
        features = impl.features(model.module, images, spec, trained)
        again = impl.features(model.module, images, spec, trained)
        alone = impl.features(model.module, images[1:2], spec, trained)
        untrained = impl.features(fresh, images, spec, modules)
    if features.dim() != 2 or len(features) != 3 or not features.dtype.is_floating_point:
        raise AssertionError(f"features() gave {tuple(features.shape)} {features.dtype}, "
                             "expected float (3, F)")
    if not torch.isfinite(features).all():
        raise AssertionError("features() gave values that are not finite")
    if not torch.equal(features, again):
        raise AssertionError("features() gave different features for the same images")
    if not torch.allclose(alone, features[1:2], rtol=1e-3, atol=1e-3):
        raise AssertionError("features(): row i must depend on image i alone")
    if untrained.shape != features.shape:
        raise AssertionError(f"features() of a freshly built model gave "
                             f"{tuple(untrained.shape)}, the trained one {tuple(features.shape)}")
    return f"features {tuple(features.shape)}, deterministic, row i from image i"


def _label(family: FamilyRecord, state: dict[str, Any]) -> str:
    import torch

    from zoo.core.errors import ZooError
    from zoo.sampling.sample import sample_images

    model = _loaded(state)
    if "conditional" not in family.capabilities:
        return "no label option"

    def by_label(label: int) -> torch.Tensor:
        return sample_images(family, model.module, model.spec, 3, seed=2, label=label)

    try:
        zero, one = by_label(0), by_label(1)
    except ZooError as exc:  # e.g. a tiny model built unconditional
        return f"this model refuses a label in one line ({exc})"
    if torch.equal(zero, one):
        raise AssertionError("label 0 and label 1 gave the same images: the sampler ignores "
                             "its label option (a family with a label option is conditional)")
    return "label 0 and label 1 give different images"


def _card(family: FamilyRecord, state: dict[str, Any]) -> str:
    from huggingface_hub import ModelCard

    _loaded(state)
    card = ModelCard.load(state["folder"] / "README.md")
    data = card.data.to_dict()
    if data.get("library_name") != "genzoo" or family.name not in data.get("tags", []):
        raise AssertionError(f"card front matter lacks library_name genzoo or tag "
                             f"{family.name!r}: {data}")
    return "README.md parses as a Hub model card"


BATTERY: list[tuple[str, Callable[[FamilyRecord, dict[str, Any]], str]]] = [
    ("spec round trip", _spec_round_trip),
    ("spec without torch", _spec_without_torch),
    ("family class", _family_class),
    ("tiny build", _build),
    ("output", _output),
    ("seeding", _determinism),
    ("reproducible training", _reproducible),
    ("save/load", _round_trip),
    ("strict loading", _tampering),
    ("latent codes", _latent),
    ("features", _features),
    ("label", _label),
    ("model card", _card),
]
