"""Inception-v3 pool3 features (``--features inception``): torch-fidelity's port of the
TF Inception 2015-12-05 graph that published FIDs use, fed weights genzoo read safely.

torch-fidelity unpickles its weights file (it loads with ``weights_only`` off); genzoo
never lets it. The weights are read here, a ``.pth`` only with torch's weights-only
loader (``torch.load(..., weights_only=True)``: tensors, no code), converted once into
a safetensors cache, checked (exactly the network's tensors, shapes, float32), and
handed to torch-fidelity's constructor through its ``load_state_dict_from_url``,
patched for the construction.

Where the weights come from, first found wins:

1. ``$ZOO_INCEPTION_WEIGHTS``: a ``.pth`` or ``.safetensors`` file (used as is, not cached);
2. ``$ZOO_HOME/cache/features/inception-2015-12-05.safetensors``: the converted copy;
3. ``$ZOO_HOME/cache/features/weights-inception-2015-12-05-6726825d.pth``: placed by hand;
4. torch-fidelity's own cache, ``<torch.hub.get_dir()>/checkpoints/`` (same name);
5. a download from ``$ZOO_INCEPTION_URL`` or torch-fidelity's release URL (unless
   ``HF_HUB_OFFLINE=1`` or ``ZOO_OFFLINE=1``), waiting at most ``$ZOO_DOWNLOAD_TIMEOUT``
   seconds (default 60) for each answer or chunk.

A failure is one line naming the file, the URL and where to put the file; nothing is
left behind (no partial download, no folder made for nothing).
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import torch

from zoo.core.errors import WeightsError
from zoo.core.features import FeatureExtractor
from zoo.core.home import zoo_home
from zoo.core.settings import seconds_from_env

#: torch-fidelity's name for the network, and the features genzoo takes from it.
NAME, FEATURE = "inception-v3-compat", "2048"
#: The file torch-fidelity downloads; its sha256 starts with the hex digits in its name.
WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256_PREFIX = "6726825d"
#: genzoo's converted copy (safetensors; metadata ``source_sha256``: the .pth's digest).
CACHE_NAME = "inception-2015-12-05.safetensors"
#: Seconds to wait for each answer or chunk of a download unless ZOO_DOWNLOAD_TIMEOUT.
DEFAULT_TIMEOUT, MAX_TIMEOUT = 60.0, 86_400.0
CHUNK = 1 << 20
#: torch.hub's convention: a file name carrying the first hex digits of its sha256.
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.")


def features_dir() -> Path:
    """Where genzoo keeps feature networks' weights: ``$ZOO_HOME/cache/features``."""
    return zoo_home() / "cache" / "features"


def torch_hub_checkpoints() -> Path:
    """torch-fidelity's own cache (torch.hub's): ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def download_url() -> str:
    """``$ZOO_INCEPTION_URL``, else torch-fidelity's release URL."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return os.environ.get("ZOO_INCEPTION_URL", "").strip() or URL_INCEPTION_V3


def offline() -> bool:
    """Whether downloads are off: ``HF_HUB_OFFLINE`` or ``ZOO_OFFLINE`` (read now) or
    ``zoo --offline``."""
    from zoo.hub import CLI_OPTIONS

    if CLI_OPTIONS.get("offline"):
        return True
    return any((os.environ.get(name) or "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for name in ("HF_HUB_OFFLINE", "ZOO_OFFLINE"))


def download_timeout() -> float:
    """Seconds a download waits for each answer or chunk: ``$ZOO_DOWNLOAD_TIMEOUT``, else 60."""
    return seconds_from_env("ZOO_DOWNLOAD_TIMEOUT", DEFAULT_TIMEOUT, MAX_TIMEOUT, WeightsError)


def _line(exc: BaseException) -> str:
    """An exception as one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def refusal(exc: BaseException) -> str:
    """Why torch's weights-only loader refused a file, without torch's advice to turn that
    mode off (which would run any code the file holds)."""
    text = str(exc)
    reason = text.partition("WeightsUnpickler error:")[2].split("Check the documentation")[0]
    return _line(RuntimeError(reason)) if reason.strip() else _line(exc).split(". ")[0]


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the network


@contextmanager
def _weights_given(state: dict[str, torch.Tensor]) -> Iterator[None]:
    """torch-fidelity's constructor, while this runs, "downloads" ``state`` (nothing else)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    with mock.patch.object(tfi, "load_state_dict_from_url", lambda *args, **kwargs: state):
        yield


def build(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` (features "2048") with ``state``
    loaded (strictly), never reading a file itself."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with _weights_given(state):
        return FeatureExtractorInceptionV3(NAME, [FEATURE], feature_extractor_weights_path=None)


@functools.cache
def expected_tensors() -> dict[str, tuple[int, ...]]:
    """The network's tensors (name -> shape) as a weights file holds them: its state dict
    without BatchNorm's ``num_batches_tracked`` counters (472 float32 tensors)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    # The skeleton on the meta device (no memory), its own loading skipped.
    with torch.device("meta"), _weights_given({}), mock.patch.object(
            FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None):
        skeleton = FeatureExtractorInceptionV3(NAME, [FEATURE])
    return {key: tuple(value.shape) for key, value in skeleton.state_dict().items()
            if not key.endswith("num_batches_tracked")}


def check_state(state: object, where: str) -> dict[str, torch.Tensor]:
    """``state`` if it is exactly the network's tensors (names, shapes, float32); BatchNorm
    counters are dropped. Anything else is a one-line ``WeightsError`` naming ``where``."""
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsError(f"{where} is not a state dict of tensors (name -> tensor)")
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    expected = expected_tensors()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        what = (f"{len(missing)} missing (e.g. {missing[0]})" if missing else "") + \
            ("; " if missing and extra else "") + \
            (f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "")
        raise WeightsError(f"{where} does not hold torch-fidelity's Inception-v3 weights: "
                           f"{what} of {len(expected)} tensors")
    for key, shape in expected.items():
        value = state[key]
        if tuple(value.shape) != shape:
            raise WeightsError(f"{where}: tensor {key} has shape {tuple(value.shape)}, "
                               f"expected {shape}")
        if value.dtype != torch.float32:
            raise WeightsError(f"{where}: tensor {key} is {value.dtype}, expected torch.float32")
    return state


# --------------------------------------------------------------------------- reading files


def read_pth(path: Path) -> dict[str, torch.Tensor]:
    """A ``.pth`` state dict read with ``torch.load(..., weights_only=True)`` (no code runs);
    one-line ``WeightsError`` for anything else."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch's notes on the file's protocol version
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a refusal (code in the file), a corrupt file
        raise WeightsError(f"cannot read {path} as plain tensors (torch's weights-only "
                           f"loader refused it: {refusal(exc)}); it is not a weights file "
                           "genzoo can read safely") from None
    return check_state(state, str(path))


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """A safetensors file's tensors (checked) and the digest that identifies them: the
    original .pth's (metadata ``source_sha256``) for a converted copy, else the file's own."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:
        raise WeightsError(f"cannot read {path} as safetensors: {_line(exc)}") from None
    digest = metadata.get("source_sha256", "")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        digest = sha256_file(path)
    return check_state(state, str(path)), digest


def convert(pth: Path, cache: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Read ``pth`` safely and write it as safetensors at ``cache`` (atomically), recording
    its sha256; returns the tensors and that digest."""
    from safetensors.torch import save

    from zoo.artifact import atomic_write

    state = read_pth(pth)
    digest = sha256_file(pth)
    data = save({k: v.contiguous() for k, v in state.items()},
                metadata={"source": pth.name, "source_sha256": digest})
    made = _make_dirs(cache.parent)
    try:
        atomic_write(cache, data)
    except OSError as exc:
        _remove_dirs(made)
        raise WeightsError(f"cannot write {cache}: {exc.strerror or exc}") from None
    return state, digest


def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those made, deepest first."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return made


def _remove_dirs(made: list[Path]) -> None:
    """Remove folders :func:`_make_dirs` made, if still empty."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break


# --------------------------------------------------------------------------- download


def _fetch(url: str, path: Path, seconds: float) -> str:
    """Write what ``url`` answers into ``path``; return its sha256. A short answer (fewer
    bytes than its Content-Length) is an ``OSError``."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=seconds) as answer, open(path, "wb") as out:
        length = answer.headers.get("Content-Length")
        size = f" ({int(length) / 1e6:.1f} MB)" if length and length.strip().isdigit() else ""
        # said once the server answers: an unreachable one leaves just the error line
        print(f"downloading the Inception weights{size} from {url} into {path.parent}",
              file=sys.stderr, flush=True)
        got = 0
        for block in iter(lambda: answer.read(CHUNK), b""):
            out.write(block)
            digest.update(block)
            got += len(block)
    if length is not None and length.strip().isdigit() and got != int(length):
        raise OSError(f"truncated: {got} of {length.strip()} bytes")
    return digest.hexdigest()


def _remedy(url: str) -> str:
    """What the user can do instead: fetch the file by hand and put it where it is found."""
    return (f"download {url} and put it in {features_dir()} as {WEIGHTS_NAME} (or set "
            f"ZOO_INCEPTION_WEIGHTS to its path)")


def download(url: str, cache: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Download the .pth at ``url`` into a temporary file beside ``cache``, check the sha256
    prefix its name carries, convert it into ``cache`` and remove it. Any failure is one
    line; nothing is left behind."""
    name = Path(urllib.parse.urlparse(url).path).name or WEIGHTS_NAME
    if offline():
        raise WeightsError(f"Inception weights not found and offline mode is on "
                           f"(zoo --offline, HF_HUB_OFFLINE or ZOO_OFFLINE): {_remedy(url)}")
    seconds = download_timeout()
    folder = cache.parent
    made: list[Path] = []
    tmp = folder / f".{name}.part-{os.getpid()}"
    try:
        made = _make_dirs(folder)
        try:
            sha = _fetch(url, tmp, seconds)
            expected = HASH_IN_NAME.search(name)
            if expected and not sha.startswith(expected.group(1)):
                raise OSError(f"its sha256 {sha[:16]}… does not start with {expected.group(1)} "
                              "as its name says (a corrupt or different file)")
            state, source_sha = convert(tmp, cache)
        finally:
            tmp.unlink(missing_ok=True)
    except WeightsError as exc:
        raise WeightsError(f"cannot use the Inception weights {name} downloaded from {url} "
                           f"({exc}); {_remedy(url)}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts: OSError
        reason = getattr(exc, "reason", None)
        if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
            why = f"no answer within {seconds:g} s (set ZOO_DOWNLOAD_TIMEOUT to wait longer)"
        else:
            why = _line(reason if isinstance(reason, BaseException) else exc)
        raise WeightsError(f"cannot download the Inception weights {name} from {url}: {why}; "
                           f"{_remedy(url)}") from None
    finally:  # whatever stopped it (an error, Ctrl-C): no folder made for nothing
        if not cache.exists():
            _remove_dirs(made)
    return state, source_sha


# --------------------------------------------------------------------------- lookup


def find_weights() -> tuple[dict[str, torch.Tensor], str, str]:
    """The Inception weights (checked tensors), the sha256 identifying them, and where they
    came from, in the order the module docstring gives."""
    explicit = os.environ.get("ZOO_INCEPTION_WEIGHTS", "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(f"ZOO_INCEPTION_WEIGHTS={explicit}: no such file")
        if path.suffix == ".safetensors":
            state, sha = read_safetensors(path)
            return state, sha, str(path)
        return read_pth(path), sha256_file(path), str(path)
    cache = features_dir() / CACHE_NAME
    if cache.is_file():
        try:
            state, sha = read_safetensors(cache)
            return state, sha, str(cache)
        except WeightsError:  # genzoo's own cache entry, damaged: converted again below
            cache.unlink(missing_ok=True)
    for pth in (features_dir() / WEIGHTS_NAME, torch_hub_checkpoints() / WEIGHTS_NAME):
        if pth.is_file():
            state, sha = convert(pth, cache)
            return state, sha, str(pth)
    state, sha = download(download_url(), cache)
    return state, sha, download_url()


class InceptionFeatures(FeatureExtractor):
    """torch-fidelity's Inception-v3 (``inception-v3-compat``) pool3 features, 2048-d."""

    dims = 2048
    batch_size = 50

    def __init__(self, net: torch.nn.Module, sha256: str, device: torch.device) -> None:
        import torch_fidelity

        self.net, self.device = net, device
        self.sha256 = sha256
        self.identity = f"{NAME}-{sha256[:16]}"
        self.official = sha256.startswith(OFFICIAL_SHA256_PREFIX)
        weights = (f"official weights (sha256 {sha256[:16]}…)" if self.official else
                   f"unofficial weights sha256 {sha256[:16]}…: not comparable with published "
                   "FIDs")
        self.convention = (f"torch-fidelity {torch_fidelity.__version__} {NAME}: TF Inception "
                           "2015-12-05 pool3 2048-d features; uint8 RGB, TF-1 bilinear resize "
                           f"to 299x299 without antialiasing, (x-128)/128; {weights}")

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W (CPU) -> float32 N×2048 (CPU)."""
        (features,) = self.net(images.to(self.device))
        return features.float().cpu()


def load_inception(warn: Callable[[str], None] | None = None) -> InceptionFeatures:
    """Inception-v3 pool3 features as a ``zoo.FeatureExtractor`` (on CUDA when available).

    Missing or unusable weights are a one-line ``WeightsError``; weights that are not the
    official ones are used with one ``warning:`` line on stderr (``warn``, if given).
    """
    state, sha, origin = find_weights()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = build(state).to(device)
    extractor = InceptionFeatures(net, sha, device)
    if not extractor.official:
        message = (f"warning: the Inception weights from {origin} (sha256 {sha[:16]}…) are not "
                   f"the official ones ({OFFICIAL_SHA256_PREFIX}…): FID/KID are not comparable "
                   "with published figures")
        (warn or (lambda line: print(line, file=sys.stderr)))(message)
    return extractor
