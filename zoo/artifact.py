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
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.core.errors import ArtifactError, SpecError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.core.records import FamilyRecord
    from zoo.core.spec import Spec

FORMAT = "genzoo/1"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
SAMPLES = "samples.png"
METRICS = "metrics.json"
TRAINING_STATE = "training_state"
#: ``config.json`` key: ``{path in the folder: sha256}`` of every safetensors file.
CHECKSUMS = "sha256"
#: Caps on what reading trusts: config.json, other JSON files, a safetensors header
#: (safetensors allows 100 MB; genzoo's own need well under 1 MB) and how deeply JSON may nest.
MAX_CONFIG_BYTES = 1 << 20
#: ``index.json``'s format in a folder of shards (zoo.data.wds.SHARDS_FORMAT).
SHARDS_FORMAT = "genzoo-shards/1"
MAX_JSON_BYTES = 16 << 20
MAX_HEADER_BYTES = 16 << 20
MAX_JSON_DEPTH = 64
#: Bytes per element of each safetensors dtype.
DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
               "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission
        for parent in made:
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise ArtifactError(f"cannot create {target.parent}: {exc.strerror or exc}") from None
    tmp = temp_sibling(target, "tmp")
    done = False
    try:
        try:
            tmp.mkdir()
        except OSError as exc:
            raise ArtifactError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
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


def resolvable(path: Path, option: str) -> Path:
    """``path`` made absolute with symbolic links resolved, or one line (exit 2) when a loop
    of links is in the way (``Path.resolve`` raises ``RuntimeError`` there, or ``OSError``
    on newer Pythons). ``option`` names the path in the message, e.g. ``--out``."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:
        why = getattr(exc, "strerror", None) or "a loop of symbolic links"
        raise ArtifactError(f"{option} {path}: cannot follow its symbolic links ({why})"
                            ) from None


def remove_folder(folder: Path) -> None:
    """Delete ``folder`` (if present) so that a crash midway leaves no half of it under its name
    (a symbolic link is removed, not what it points to).

    It is renamed to a ``.NAME.del-PID-…`` sibling first, which a crash may
    leave behind for :func:`tidy_leftovers`.
    """
    folder = Path(folder)
    if folder.is_symlink():  # a link the user made (OUT.ckpt -> elsewhere): only the link goes
        folder.unlink()
        return
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


def started_after(pid: int, when: float) -> bool:
    """Whether process ``pid`` started after time ``when`` (seconds since the epoch), so that
    it cannot have made a file last changed then: its pid was reused. Linux (``/proc``)
    only; False wherever that cannot be told."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        ticks = int(stat.rpartition(")")[2].split()[19])  # field 22: start time, in ticks
        return boot + ticks / os.sysconf("SC_CLK_TCK") > when + 60  # slack for clock steps
    except (OSError, ValueError, IndexError, StopIteration):
        return False


def _stale(leftover: Leftover) -> bool:
    """A leftover whose writer is gone: no process has its pid, or the one that has it now
    started after the leftover last changed (a reused pid)."""
    if not pid_alive(leftover.pid):
        return True
    try:
        changed = leftover.path.lstat().st_mtime
    except OSError:
        return False
    return leftover.pid != os.getpid() and started_after(leftover.pid, changed)


def tidy_leftovers(target: Path, report: Callable[[str], None]) -> None:
    """Clean up after writers of ``target`` that died: call only while holding its build lock.

    Temporaries whose pid no longer runs (or now belongs to a process that
    started after they last changed) are removed, except that when
    ``target`` is missing and such a writer left the previous folder (a model
    folder or checkpoint) as ``old``, killed between the two renames of an
    overwrite, that folder is renamed back to ``target``. ``report`` gets one line per action.
    """
    target = Path(target)
    stale = [t for t in leftovers(target) if _stale(t)]
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


def is_genzoo_config(doc: Any) -> bool:
    """Whether a parsed ``config.json`` (or checkpoint ``state.json``) is genzoo's format."""
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def replaceable(folder: Path) -> bool:
    """True for an empty folder, a model folder, a training checkpoint or shards written by
    ``zoo data pack`` (``index.json`` of format ``genzoo-shards/1``).

    A genzoo folder is one whose ``config.json`` (model folder) or ``state.json``
    (checkpoint) says ``"format": "genzoo/1"``, or, when that file is damaged,
    one that also holds the weights file genzoo writes beside it. Any other
    folder with a ``config.json`` (most projects have one) is not genzoo's to
    replace.
    """
    if not folder.is_dir() or folder.is_symlink():
        return False
    if not any(folder.iterdir()):
        return True
    if (folder / "index.json").is_file():  # WebDataset shards written by zoo data pack
        try:
            doc = read_json(folder / "index.json")
        except ArtifactError:
            doc = None
        if isinstance(doc, dict) and doc.get("format") == SHARDS_FORMAT:
            return True
    for meta, weights in ((CONFIG, WEIGHTS), ("state.json", "state.safetensors")):
        if not (folder / meta).is_file():
            continue
        try:
            doc = read_json(folder / meta)
        except ArtifactError:  # damaged: a genzoo folder if it has genzoo's layout
            if (folder / weights).is_file():
                return True
            continue
        if is_genzoo_config(doc):
            return True
    return False


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file via a uniquely named temporary sibling and rename it into place."""
    path = Path(path)
    tmp = temp_sibling(path, "tmp")
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


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """The parsed JSON file at ``path``; a one-line ArtifactError when it is not JSON,
    larger than ``limit`` bytes or nested deeper than :data:`MAX_JSON_DEPTH`."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ArtifactError(f"{path}: larger than the {limit:,} bytes a genzoo JSON file may have")
    return parse_json(data, str(path))


def json_depth(value: Any, stop: int = MAX_JSON_DEPTH) -> int:
    """How deeply the arrays and objects of parsed JSON nest, found level by level without
    recursion (counting stops past ``stop``): ``1`` -> 0, ``[1]`` -> 1, ``{"a": [1]}`` -> 2."""
    depth, level = 0, [value] if isinstance(value, dict | list) else []
    while level and depth <= stop:
        depth += 1
        below = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, dict | list):
                    below.append(child)
        level = below
    return depth


def parse_json(data: bytes, where: str) -> Any:
    """Parse UTF-8 JSON text; one-line ArtifactError naming ``where`` if it is not JSON or
    nests deeper than :data:`MAX_JSON_DEPTH` (the parser's own recursion limit included)."""
    too_deep = f"{where}: JSON nested more than {MAX_JSON_DEPTH} levels deep"
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ArtifactError(too_deep) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ArtifactError(f"{where}: not valid JSON ({exc})") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ArtifactError(too_deep)
    return value


def read_config(folder: Path) -> dict[str, Any]:
    """Read and sanity-check ``config.json`` of a model folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"no model folder at {folder}")
    path = folder / CONFIG
    if not path.is_file():
        raise ArtifactError(f"{folder} is not a genzoo model folder (no {CONFIG})")
    config = read_json(path, MAX_CONFIG_BYTES)
    if (not isinstance(config, dict) or config.get("format") != FORMAT
            or not isinstance(config.get("spec"), dict)):
        raise ArtifactError(f"{path}: not a {FORMAT} model config")
    return config


def read_metrics(folder: Path) -> dict[str, Any]:
    """``metrics.json`` of a model folder, or an empty dict."""
    path = Path(folder) / METRICS
    metrics = read_json(path) if path.is_file() else {}
    if not isinstance(metrics, dict):
        raise ArtifactError(f"{path}: not a JSON object of metrics")
    return metrics


def load_spec(folder: Path) -> tuple[FamilyRecord, Spec, dict[str, Any]]:
    """The family, validated spec and raw config of a model folder (no torch)."""
    from zoo.core.registry import get_family
    from zoo.core.spec import document_hash, validate

    config = read_config(folder)
    family = get_family(config["spec"].get("family", ""))
    try:
        spec = validate(family.spec, config["spec"], source=str(Path(folder) / CONFIG))
    except SpecError as exc:
        raise ArtifactError(str(exc)) from None
    spec = legacy_split(spec, config["spec"])
    if config.get("spec_hash") != document_hash(config["spec"]):
        raise ArtifactError(f"{folder / CONFIG}: spec_hash does not match the spec it holds")
    parameters = config.get("parameters", 0)  # shown by info and the card: checked up front
    if type(parameters) is not int or parameters < 0:
        raise ArtifactError(f"{folder / CONFIG}: 'parameters' is not a number of parameters")
    return family, spec, config


def legacy_split(spec: Spec, doc: dict[str, Any]) -> Spec:
    """``spec`` as a stored document means it: a folder model written before ``data.split``
    existed was trained against the seeded 90/10 split of its folder, so it keeps
    ``data.split = "seeded"`` (``zoo eval`` scores the images it held out). New documents
    store ``data.split`` explicitly."""
    data = doc.get("data")
    stored = data if isinstance(data, dict) else {}
    if "split" in stored or getattr(spec.data, "source", None) != "folder":
        return spec
    return spec.model_copy(update={"data": spec.data.model_copy(update={"split": "seeded"})})


def weights_header(path: Path) -> tuple[dict[str, str], dict[str, tuple[str, list[int]]]]:
    """Metadata and ``{key: (dtype, shape)}`` of a safetensors file, reading only its header.

    Checks what the safetensors library would otherwise report later, or not at
    all: the header's size and nesting, known dtypes, and tensors whose byte
    ranges match their shapes and tile the data without gaps or overlaps.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"weights file missing: {path}")
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n <= 0 or 8 + n > size:
                raise ValueError("header length out of range")
            if n > MAX_HEADER_BYTES:
                raise ValueError(f"header of {n:,} bytes, more than {MAX_HEADER_BYTES:,}")
            header = parse_json(fh.read(n), "header")
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(
                isinstance(v, str) for v in metadata.values()):
            raise ValueError("__metadata__ is not a string-to-string map")
        tensors = {k: _tensor_entry(k, v) for k, v in header.items()}
        position = 0
        ranges = sorted((header[k]["data_offsets"], k) for k in tensors)
        for (begin, end), key in ranges:
            if begin != position:
                raise ValueError(f"tensor {key!r} starts at byte {begin}, expected {position}")
            position = end
        if 8 + n + position != size:
            raise ValueError(f"expected {8 + n + position} bytes, file has {size}")
    except ArtifactError as exc:
        raise ArtifactError(f"corrupt safetensors file {path}: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"corrupt or truncated safetensors file {path}: {exc}") from None
    return metadata, tensors


def _tensor_entry(key: str, entry: Any) -> tuple[str, list[int]]:
    """(dtype, shape) of one header entry, after checking it fits its byte range."""
    if not isinstance(entry, dict):
        raise ValueError(f"tensor {key!r}: entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise ValueError(f"tensor {key!r} has unknown dtype {dtype!r}")
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise ValueError(f"tensor {key!r} has a bad shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1]):
        raise ValueError(f"tensor {key!r} has bad data_offsets {offsets!r}")
    count = 1
    for d in shape:  # as the safetensors library counts: in 64 bits, a product that overflows
        count *= d   # is an error even if a later dimension is 0
        if count >= 1 << 64:
            raise ValueError(f"tensor {key!r}: shape {shape!r} overflows 64 bits")
    if offsets[1] >= 1 << 64:
        raise ValueError(f"tensor {key!r}: data_offsets {offsets!r} overflow 64 bits")
    if offsets[1] - offsets[0] != count * DTYPE_SIZES[dtype]:
        raise ValueError(f"tensor {key!r}: data_offsets {offsets} do not hold {dtype} {shape}")
    return dtype, list(shape)


def safetensors_dtype(tensor: torch.Tensor) -> str:
    """The safetensors name of a tensor's dtype (``torch.float32`` -> ``F32``)."""
    name = str(tensor.dtype).removeprefix("torch.")
    return {"bool": "BOOL", "uint8": "U8", "int8": "I8", "float8_e5m2": "F8_E5M2",
            "float8_e4m3fn": "F8_E4M3", "int16": "I16", "uint16": "U16", "float16": "F16",
            "bfloat16": "BF16", "int32": "I32", "uint32": "U32", "float32": "F32",
            "int64": "I64", "uint64": "U64", "float64": "F64"}.get(name, name)


def check_keys(path: Path, expected: Mapping[str, Any], found: Mapping[str, Any]) -> None:
    """Raise one line listing missing, unexpected, mis-shaped and mis-typed tensors, if any."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    common = sorted(set(expected) & set(found))
    shapes = [f"{k} {found[k][1]} vs {list(expected[k].shape)}" for k in common
              if list(expected[k].shape) != found[k][1]]
    dtypes = [f"{k} {found[k][0]} vs {safetensors_dtype(expected[k])}" for k in common
              if safetensors_dtype(expected[k]) != found[k][0]]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected),
                         ("wrong shape", shapes), ("wrong dtype", dtypes)):
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


def check_weights(
    family: FamilyRecord, spec: Spec, path: Path, expected_hash: str | None = None,
) -> nn.Module:
    """Check a weights file against its spec without reading the tensors; return the
    module built on the meta device.

    Header sanity, genzoo metadata (format, family, spec hash), strict keys,
    shapes and dtypes. ``expected_hash`` is the ``spec_hash`` recorded in
    ``config.json`` (default: the hash of ``spec``); the weights file must
    carry the same one.
    """
    import torch

    from zoo.core.spec import spec_hash

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
    return module


def load_module(
    family: FamilyRecord, spec: Spec, path: Path, device: str | torch.device = "cpu",
    expected_hash: str | None = None,
) -> nn.Module:
    """Build the family's module on the meta device and assign the safetensors weights,
    after :func:`check_weights`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    module = check_weights(family, spec, path, expected_hash)
    try:
        state = load_file(str(path), device=str(device))
    except (RuntimeError, ValueError, OSError, SafetensorError) as exc:  # file, device errors
        raise ArtifactError(f"cannot load {path} onto {device}: {exc}") from None
    module.load_state_dict(state, strict=True, assign=True)
    still_meta = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if still_meta:
        raise ArtifactError(f"{path}: tensors not stored in the file: {', '.join(still_meta)}")
    return module.eval()


def load_folder(folder: Path, device: str | torch.device = "cpu"
                ) -> tuple[FamilyRecord, Spec, dict[str, Any], nn.Module]:
    """Strictly load a local model folder: its family, spec, config and weights, every
    check of :func:`load_spec` and :func:`load_module` passed (a one-line ``ArtifactError``
    otherwise)."""
    family, spec, config = load_spec(folder)
    module = load_module(family, spec, Path(folder) / WEIGHTS, device=device,
                         expected_hash=config["spec_hash"])
    return family, spec, config, module


def nonfinite_tensors(module: nn.Module) -> list[str]:
    """Names of the module's floating-point parameters and buffers holding NaN or inf."""
    import torch

    with torch.no_grad():
        return [name for name, t in [*module.named_parameters(), *module.named_buffers()]
                if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def check_finite(module: nn.Module, where: Path | str) -> None:
    """Raise a one-line ArtifactError if any weight of the module is NaN or infinite."""
    bad = nonfinite_tensors(module)
    if bad:
        more = f", … ({len(bad)} in all)" if len(bad) > 6 else ""
        raise ArtifactError(f"{where}: non-finite weights (NaN or inf) in "
                            f"{', '.join(bad[:6])}{more}")


# --------------------------------------------------------------------------- checksums


def weight_files(folder: Path) -> list[str]:
    """Paths (relative, POSIX) of the safetensors files of a model folder that exist."""
    folder = Path(folder)
    names = [WEIGHTS] if (folder / WEIGHTS).is_file() else []
    return names + sorted(f"{TRAINING_STATE}/{p.name}"
                          for p in (folder / TRAINING_STATE).glob("*.safetensors") if p.is_file())


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def record_checksums(folder: Path) -> None:
    """Add the sha256 of every safetensors file to the folder's ``config.json`` (the last
    step of writing a model folder)."""
    path = Path(folder) / CONFIG
    config = read_json(path, MAX_CONFIG_BYTES)
    config[CHECKSUMS] = {name: file_sha256(folder / name) for name in weight_files(folder)}
    write_json(path, config)


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_RECORDABLE = re.compile(rf"{re.escape(WEIGHTS)}|{TRAINING_STATE}/[\w.-]+\.safetensors")


def check_checksums(folder: Path, recorded: Any) -> None:
    """Compare each safetensors file with the sha256 ``config.json`` records for it.

    Every safetensors file present must be recorded and match; a recorded
    ``training_state/`` file may be absent (a Hub download leaves it on the Hub).
    """
    folder = Path(folder)
    where = folder / CONFIG
    if not (isinstance(recorded, dict) and all(
            isinstance(k, str) and _RECORDABLE.fullmatch(k) and ".." not in k
            and isinstance(v, str) and _SHA256.fullmatch(v) for k, v in recorded.items())):
        raise ArtifactError(f"{where}: {CHECKSUMS!r} is not a map of weights files to sha256")
    if WEIGHTS not in recorded:
        raise ArtifactError(f"{where}: no sha256 recorded for {WEIGHTS}")
    unrecorded = [n for n in weight_files(folder) if n not in recorded]
    if unrecorded:
        raise ArtifactError(f"{folder / unrecorded[0]}: not among the files whose sha256 "
                            f"{CONFIG} records")
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file() and name != WEIGHTS:
            continue
        if file_sha256(path) != digest.lower():
            raise ArtifactError(f"{path}: contents do not match the sha256 recorded in "
                                f"{CONFIG} (damaged or changed after it was written)")


def verify_folder(folder: Path) -> None:
    """Check a model folder as loading does, and every byte of its weights.

    ``config.json`` and the spec, ``model.safetensors`` against the spec
    (metadata, keys, shapes, dtypes; the module is built on the meta device
    only), the headers of ``training_state/*.safetensors``, and the sha256 of
    each safetensors file against what ``config.json`` records (a folder
    written before checksums were recorded, without ``"sha256"`` in its
    config, passes unverified). Raises a one-line ``ArtifactError``.
    """
    folder = Path(folder)
    family, spec, config = load_spec(folder)
    check_weights(family, spec, folder / WEIGHTS, config["spec_hash"])
    for name in weight_files(folder):
        if name != WEIGHTS:
            weights_header(folder / name)
    if CHECKSUMS in config:
        check_checksums(folder, config[CHECKSUMS])

