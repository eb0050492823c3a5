"""The model folder: written atomically, loaded strictly, never unpickled.

Layout (DESIGN.md "Model folder")::

    config.json          resolved spec, spec hash, genzoo and plugin versions
    model.safetensors    the sampling module; header metadata: format, family, spec hash
    README.md            model card
    samples.png          sample grid
    metrics.json         training and evaluation metrics
    training_state/      state.safetensors + state.json, for --resume
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ArtifactError, SpecError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.records import FamilyRecord
    from zoo.spec import Spec

FORMAT = "genzoo/1"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
SAMPLES = "samples.png"
METRICS = "metrics.json"
TRAINING_STATE = "training_state"


# --------------------------------------------------------------------------- writing


def atomic_folder(target: Path, fill: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Create ``target`` by filling a temporary sibling and renaming it into place.

    A crash or error inside ``fill`` leaves ``target`` untouched and no temporary
    folder behind, nor any parent folder made for ``target`` (a process killed
    outright leaves temporaries named after its pid, which :func:`tidy_leftovers`
    removes later). ``overwrite`` replaces only genzoo folders (a model folder or
    a checkpoint) or empty ones, never anything else. Without ``overwrite``, a
    ``target`` that appeared while ``fill`` ran is not replaced: the new folder
    is kept as ``NAME.new-PID`` beside it and an :class:`ArtifactError` says so.
    """
    target = Path(target).resolve()
    if target.exists():
        if not overwrite:
            raise ArtifactError(f"{target} already exists; pass --force to replace it")
        if not replaceable(target):
            raise ArtifactError(f"refusing to replace {target}: not a genzoo model folder")
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]  # deepest first
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target, "tmp")
    done = False
    try:
        tmp.mkdir()
        fill(tmp)
        if target.exists() and not (overwrite and replaceable(target)):
            kept = target.with_name(f"{target.name}.new-{os.getpid()}")
            os.replace(tmp, kept)
            raise ArtifactError(f"{target} appeared while it was being written; the new one is "
                                f"in {kept}")
        if target.exists():
            old = temp_sibling(target, "old")  # a crash right after this: tidy_leftovers
            os.replace(target, old)            # renames it back
            try:
                os.replace(tmp, target)
            except OSError:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        done = True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        for parent in [] if done else made:  # a failure leaves no folders it made either
            with contextlib.suppress(OSError):
                parent.rmdir()  # only if still empty
    return target


def remove_folder(folder: Path) -> None:
    """Delete ``folder`` (if present) so that a crash midway leaves no half of it under its name.

    It is renamed to a ``.NAME.del-PID-…`` sibling first, which a crash may
    leave behind for :func:`tidy_leftovers`.
    """
    folder = Path(folder)
    doomed = temp_sibling(folder, "del")
    try:
        os.replace(folder, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


# --------------------------------------------------------------------------- temporaries

#: Kinds of hidden siblings a writer makes: ``tmp`` (being filled), ``old`` (the previous
#: folder during an overwrite, restored if the new one never arrived), ``del`` (being deleted).
TEMP_KINDS = ("tmp", "old", "del")
_TEMP_NAME = re.compile(rf"({'|'.join(TEMP_KINDS)})-(\d+)-[0-9a-f]{{8}}")


def temp_sibling(target: Path, kind: str) -> Path:
    """A fresh hidden sibling ``.NAME.KIND-PID-RANDOM`` of ``target``: the name says who made it."""
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@dataclass(frozen=True)
class Leftover:
    """A temporary sibling of a target folder: its path, kind and the pid that made it."""

    path: Path
    kind: str
    pid: int


def leftovers(target: Path) -> list[Leftover]:
    """The temporary siblings of ``target`` (see :func:`temp_sibling`), any owner."""
    target = Path(target)
    prefix = f".{target.name}."
    try:
        names = [p.name for p in target.parent.iterdir() if p.name.startswith(prefix)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in sorted(names):
        match = _TEMP_NAME.fullmatch(name[len(prefix):])
        if match:
            found.append(Leftover(target.with_name(name), match[1], int(match[2])))
    return found


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (a zombie counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; a pid beyond any
        return False
    except PermissionError:  # another user's process
        return True
    return pid > 0


def tidy_leftovers(target: Path, report: Callable[[str], None]) -> None:
    """Clean up after writers of ``target`` that died: call only while holding its build lock.

    Temporaries whose pid no longer runs are removed, except that when
    ``target`` is missing and such a writer left the previous folder (a model
    folder or checkpoint) as ``old``, killed between the two renames of an
    overwrite, that folder is renamed back to ``target``. ``report`` gets one line per action.
    """
    target = Path(target)
    stale = [t for t in leftovers(target) if not pid_alive(t.pid)]
    olds = [t for t in stale if t.kind == "old" and not t.path.is_symlink()
            and replaceable(t.path) and any(t.path.iterdir())]
    if olds and not target.exists():
        newest = max(olds, key=lambda t: t.path.stat().st_mtime)
        os.replace(newest.path, target)
        stale.remove(newest)
        report(f"note: restored {target} from {newest.path.name}, left by a build (pid "
               f"{newest.pid}) that was killed while replacing it")
    for t in stale:
        size = _size(t.path)
        if t.path.is_dir() and not t.path.is_symlink():
            shutil.rmtree(t.path, ignore_errors=True)
        else:
            t.path.unlink(missing_ok=True)
        report(f"note: removed {t.path.name} ({size / 1024:.0f} KB), left by a build (pid "
               f"{t.pid}) that is no longer running")


def _size(path: Path) -> int:
    if path.is_symlink():
        return 0
    if not path.is_dir():
        return path.stat().st_size if path.exists() else 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def replaceable(folder: Path) -> bool:
    """True for an empty folder, a model folder or a training checkpoint."""
    if not folder.is_dir():
        return False
    return (not any(folder.iterdir()) or (folder / CONFIG).is_file()
            or (folder / "state.json").is_file())


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file via a uniquely named temporary sibling and rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write pretty, key-sorted JSON with a trailing newline, atomically."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def weights_metadata(family: str, spec_hash: str) -> dict[str, str]:
    """The safetensors header metadata that ties weights to their spec."""
    return {"format": FORMAT, "family": family, "spec_hash": spec_hash}


def save_weights(module: nn.Module, path: Path, family: str, spec_hash: str) -> None:
    """Save a module's state dict as safetensors with genzoo metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata=weights_metadata(family, spec_hash))


# --------------------------------------------------------------------------- reading


def read_json(path: Path) -> Any:
    """The parsed JSON file at ``path``; a one-line ArtifactError when it is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None


def read_config(folder: Path) -> dict[str, Any]:
    """Read and sanity-check ``config.json`` of a model folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"no model folder at {folder}")
    path = folder / CONFIG
    if not path.is_file():
        raise ArtifactError(f"{folder} is not a genzoo model folder (no {CONFIG})")
    config = read_json(path)
    if (not isinstance(config, dict) or config.get("format") != FORMAT
            or not isinstance(config.get("spec"), dict)):
        raise ArtifactError(f"{path}: not a {FORMAT} model config")
    return config


def read_metrics(folder: Path) -> dict[str, Any]:
    """``metrics.json`` of a model folder, or an empty dict."""
    path = Path(folder) / METRICS
    return read_json(path) if path.is_file() else {}


def load_spec(folder: Path) -> tuple[FamilyRecord, Spec, dict[str, Any]]:
    """The family, validated spec and raw config of a model folder (no torch)."""
    from zoo.registry import get_family
    from zoo.spec import document_hash, validate

    config = read_config(folder)
    family = get_family(config["spec"].get("family", ""))
    try:
        spec = validate(family.spec, config["spec"], source=str(Path(folder) / CONFIG))
    except SpecError as exc:
        raise ArtifactError(str(exc)) from None
    if config.get("spec_hash") != document_hash(config["spec"]):
        raise ArtifactError(f"{folder / CONFIG}: spec_hash does not match the spec it holds")
    return family, spec, config


def weights_header(path: Path) -> tuple[dict[str, str], dict[str, tuple[str, list[int]]]]:
    """Metadata and ``{key: (dtype, shape)}`` of a safetensors file, reading only its header."""
    if not path.is_file():
        raise ArtifactError(f"weights file missing: {path}")
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n <= 0 or 8 + n > size:
                raise ValueError("header length out of range")
            header = json.loads(fh.read(n))
        metadata = header.pop("__metadata__", None) or {}
        tensors = {k: (v["dtype"], list(v["shape"])) for k, v in header.items()}
        end = max((v["data_offsets"][1] for v in header.values()), default=0)
        if 8 + n + end != size:
            raise ValueError(f"expected {8 + n + end} bytes, file has {size}")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"corrupt or truncated safetensors file {path}: {exc}") from None
    return metadata, tensors


def check_keys(path: Path, expected: Mapping[str, Any], found: Mapping[str, Any]) -> None:
    """Raise one line listing missing, unexpected and mis-shaped tensors, if any."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(
        f"{k} {found[k][1]} vs {list(expected[k].shape)}"
        for k in set(expected) & set(found)
        if list(expected[k].shape) != found[k][1]
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            shown = ", ".join(items[:6]) + (f", … ({len(items)} in all)" if len(items) > 6 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ArtifactError(f"{path} does not match its spec; " + "; ".join(problems))


@contextlib.contextmanager
def initialisers_skipped() -> Iterator[None]:
    """Within the block, ``torch.nn.init``'s in-place initialisers return their tensor as is.

    Loading builds the module only to assign every tensor from the file right
    after (strict keys), so drawing initial weights, even on the meta device,
    is wasted work: about half of the load time of a 250-tensor UNet.
    """
    import torch.nn.init as init

    names = [n for n in vars(init) if n.endswith("_") and not n.startswith("_")
             and callable(getattr(init, n))]
    saved = {n: getattr(init, n) for n in names}
    try:
        for name in names:
            setattr(init, name, _unchanged)
        yield
    finally:
        for name, function in saved.items():
            setattr(init, name, function)


def _unchanged(tensor: Any, *args: Any, **kwargs: Any) -> Any:
    return tensor


def load_module(
    family: FamilyRecord, spec: Spec, path: Path, device: str | torch.device = "cpu",
    expected_hash: str | None = None,
) -> nn.Module:
    """Build the family's module on the meta device and assign the safetensors weights.

    ``expected_hash`` is the ``spec_hash`` recorded in ``config.json`` (default:
    the hash of ``spec``); the weights file must carry the same one.
    """
    import torch
    from safetensors.torch import load_file

    from zoo.spec import spec_hash

    metadata, tensors = weights_header(path)
    if metadata.get("format") != FORMAT:
        found = metadata.get("format")
        raise ArtifactError(f"{path}: not a genzoo weights file (format {found!r})")
    if metadata.get("family") != family.name:
        raise ArtifactError(
            f"{path} holds {metadata.get('family')!r} weights, but the spec is {family.name!r}"
        )
    impl = family.load()  # import outside the meta context: module-level tensors stay real
    with torch.device("meta"), initialisers_skipped():
        module = impl.build(spec)
    check_keys(path, module.state_dict(), tensors)
    expected_hash = expected_hash or spec_hash(spec)
    if metadata.get("spec_hash") != expected_hash:
        raise ArtifactError(
            f"{path} was trained with another spec (hash {metadata.get('spec_hash')}, "
            f"config has {expected_hash})"
        )
    try:
        state = load_file(str(path), device=str(device))
    except (RuntimeError, ValueError, OSError) as exc:  # safetensors and device errors
        raise ArtifactError(f"cannot load {path} onto {device}: {exc}") from None
    module.load_state_dict(state, strict=True, assign=True)
    still_meta = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if still_meta:
        raise ArtifactError(f"{path}: tensors not stored in the file: {', '.join(still_meta)}")
    return module.eval()
