"""The Hugging Face Hub: push a model folder, pull a snapshot, resolve a name to a folder.

Every byte goes through ``huggingface_hub`` (``HfApi``, ``snapshot_download``).
The endpoint is ``endpoint=``, else ``zoo --endpoint``, else ``$HF_ENDPOINT``
read at call time, else the library's default (huggingface.co); the token
follows the library's own rules (``HF_TOKEN``, ``hf auth login``) unless one is
given. Offline mode (``local_files_only=True``, ``zoo --offline`` or
``HF_HUB_OFFLINE=1``, read at call time) uses the local cache only.

Every failure becomes one :class:`~zoo.core.errors.HubError` line. Importing this
module imports neither torch nor ``huggingface_hub``.

Measured with huggingface_hub 2.4 against a closed port: ``model_info``,
``create_repo`` and ``snapshot_download`` fail at once, while
``hf_hub_download`` and paginated listings retry a connection error for about
23 s (1+2+4+8+8 s; ``max_retries`` is an argument, no setting changes it). So
loading asks ``model_info`` first and listing asks for one page at a time, once.

Timeouts: the library's shared client has none, and ``model_info`` and listings
pass ``timeout=None``, so a server that accepts a connection and never answers
hangs them for ever. While a genzoo Hub call runs (:func:`hub_errors`), every
request the library makes waits at most :func:`hub_timeout` seconds to connect
and for each answer or chunk (``ZOO_HUB_TIMEOUT``, default 10; the library's
``HF_HUB_ETAG_TIMEOUT`` and ``HF_HUB_DOWNLOAD_TIMEOUT`` apply when lower). A
cached model answers from the cache when the Hub times out or fails (5xx), as when it
is down; a refusal (401, 403) is reported.
A request the library itself retries (a file's metadata when nothing is cached,
an upload's ``preupload``) may still take six timeouts and 23 s of back-off.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.core.errors import ArtifactError, HubError, UnknownNameError
from zoo.core.settings import seconds_from_env
from zoo.core.spec import is_repo_id

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from zoo.core.spec import Spec

#: What loading needs from a repo (``training_state/`` stays on the Hub unless pulled).
LOAD_FILES = ["config.json", "model.safetensors", "README.md", "metrics.json", "*.png"]
#: Files without which a repo holds no genzoo model.
REQUIRED = ("config.json", "model.safetensors")
LIBRARY = "genzoo"
GENERIC_TAGS = {"genzoo", "image-generation", "safetensors", "unconditional-image-generation"}
COMMIT = re.compile(r"[0-9a-f]{40}")
#: Seconds to wait for the Hub (to connect, for each answer or chunk) unless ZOO_HUB_TIMEOUT.
DEFAULT_TIMEOUT = 10.0
#: The longest ZOO_HUB_TIMEOUT accepted (one day; far longer overflows the socket timeout).
MAX_TIMEOUT = 86400.0
#: ``scheme://user:password@`` in a URL: never shown in a message.
CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")

#: Set by the ``zoo --endpoint/--offline`` options for one command (see zoo.cli).
CLI_OPTIONS: dict[str, Any] = {"endpoint": None, "offline": False}


@dataclass(frozen=True)
class Resolved:
    """Where a model lives on disk, and where it came from."""

    path: Path
    repo_id: str | None = None
    revision: str | None = None  # as asked (branch, tag or commit); None: the default branch
    commit: str | None = None  # the commit the files are from

    @property
    def label(self) -> str:
        """``ns/name@commit`` for a Hub model, the folder otherwise."""
        if self.repo_id is None:
            return str(self.path)
        return f"{self.repo_id}@{(self.commit or self.revision or 'main')[:12]}"


@dataclass(frozen=True)
class PushResult:
    """What ``push`` made: the commit (or pull request) on the Hub."""

    repo_id: str
    revision: str
    commit: str
    commit_url: str
    pr_url: str | None = None
    skipped: list[str] = field(default_factory=list)  # files not uploaded (not model files)


# --------------------------------------------------------------------------- settings


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def endpoint_url(explicit: str | None = None) -> str:
    """The Hub URL: ``explicit``, ``zoo --endpoint``, ``$HF_ENDPOINT`` (now), the default."""
    from huggingface_hub import constants

    url = explicit or CLI_OPTIONS["endpoint"] or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    return url.rstrip("/")


def is_offline(local_files_only: bool = False) -> bool:
    """True when only the local cache may be used."""
    from huggingface_hub import constants

    return bool(local_files_only or CLI_OPTIONS["offline"] or constants.HF_HUB_OFFLINE
                or _truthy(os.environ.get("HF_HUB_OFFLINE")))


def cache_folder(explicit: str | Path | None = None) -> str:
    """The Hub cache: ``explicit``, ``$HF_HUB_CACHE`` or ``$HF_HOME/hub`` (read now), default."""
    from huggingface_hub import constants

    if explicit is not None:
        return str(explicit)
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return constants.HF_HUB_CACHE


def downloaded(folder: Path, repo_id: str | None = None) -> bool:
    """Whether a model folder's files came from the Hub: loaded by Hub id (``repo_id``),
    inside the Hub cache (or a snapshot of any cache: ``models--NS--NAME/snapshots/REV``,
    e.g. one made with ``cache_dir=``), or pulled with ``zoo pull --local-dir``
    (huggingface_hub leaves ``.cache/huggingface/`` there)."""
    folder = Path(folder).resolve()
    return (repo_id is not None or (folder / ".cache" / "huggingface").is_dir()
            or folder.is_relative_to(Path(cache_folder()).resolve())
            or any(p.name == "snapshots" and p.parent.name.startswith("models--")
                   for p in folder.parents))


def check_data_path(spec: Spec, folder: Path, repo_id: str | None, give: str) -> None:
    """Refuse to read local files at the ``data.path`` of a model that came from the Hub.

    A downloaded spec was written on someone else's machine: its paths must
    never direct what is read here, so the user names the data (``give``).
    The ``data.path`` of a folder built here is followed as written.
    """
    named = (("data.path", spec.data.path) if spec.data.path is not None
             else ("data.source", spec.data.source) if names_files(spec.data.source)
             else None)
    if named and downloaded(folder, repo_id):
        raise ArtifactError(
            f"{repo_id or folder} came from the Hub and its spec sets {named[0]} = "
            f"{named[1]!r}; the data paths of a downloaded model are never followed: "
            f"{give}")


def names_files(source: str) -> bool:
    """Whether a ``data.source`` itself names files or servers: ``wds:`` shards (paths or
    URLs), an ``hf:`` data set given as a path (absolute, relative, ``~``, or one that
    exists here). ``hf:user/name`` (a Hub data set) and the built-in names do not."""
    kind, _, rest = source.partition(":")
    if kind == "wds":
        return True
    if kind != "hf" or not rest:
        return False
    return rest.startswith(("/", ".", "~", "\\")) or Path(rest).expanduser().exists()


def hub_timeout() -> float:
    """Seconds to wait for the Hub: ``$ZOO_HUB_TIMEOUT`` (read now, at most a day), else 10."""
    return seconds_from_env("ZOO_HUB_TIMEOUT", DEFAULT_TIMEOUT, MAX_TIMEOUT, HubError)


def redact(text: str) -> str:
    """``text`` with credentials written into URLs (``http://user:pw@host``) replaced by ``***``."""
    return CREDENTIALS.sub(r"\1***@", text)


def _api(url: str, token: str | bool | None) -> HfApi:
    from huggingface_hub import HfApi

    from zoo.core.plugins import dist_version

    return HfApi(endpoint=url, token=token, library_name=LIBRARY,
                 library_version=dist_version())


# --------------------------------------------------------------------------- timeouts

#: Genzoo Hub calls in progress and the timeout they set (see :func:`timeouts`).
_TIMEOUT: dict[str, Any] = {"calls": 0, "seconds": DEFAULT_TIMEOUT, "installed": False,
                            "level": logging.NOTSET}
_TIMEOUT_LOCK = threading.Lock()
_PARTS = ("connect", "read", "write", "pool")


def _cap_timeout(request: Any) -> None:
    """An ``httpx`` request hook: while a genzoo call runs, wait at most its timeout."""
    if _TIMEOUT["calls"]:
        limit = _TIMEOUT["seconds"]
        given = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            part: limit if given.get(part) is None else min(given[part], limit) for part in _PARTS}


def _install_timeouts() -> None:
    """Give the clients ``huggingface_hub`` makes the :func:`_cap_timeout` hook (once).

    Through the library's own ``set_client_factory``, wrapping the factory in use,
    so its client (headers, redirects, proxies) stays as it is otherwise.
    """
    from huggingface_hub.utils import _http, set_client_factory

    with _TIMEOUT_LOCK:
        if _TIMEOUT["installed"]:
            return
        inner = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)

        def factory() -> Any:
            client = inner()
            client.event_hooks["request"].append(_cap_timeout)
            return client

        set_client_factory(factory)
        _TIMEOUT["installed"] = True


@contextlib.contextmanager
def timeouts(seconds: float | None = None) -> Iterator[float]:
    """Within the block, every request ``huggingface_hub`` makes waits at most ``seconds``
    (default :func:`hub_timeout`) to connect and for each answer or chunk of one.

    The library's log lines are silenced meanwhile: its warnings ("Retrying in 2s",
    "Error while downloading from URL", one per file and retry) repeat the full URL,
    credentials included, and a genzoo call ends in one line of its own.
    """
    seconds = hub_timeout() if seconds is None else seconds
    _install_timeouts()
    library = logging.getLogger("huggingface_hub")  # every module's logger is below it
    with _TIMEOUT_LOCK:
        previous = _TIMEOUT["seconds"]
        if not _TIMEOUT["calls"]:
            _TIMEOUT["level"] = library.level
            library.setLevel(logging.CRITICAL + 1)
        _TIMEOUT["calls"] += 1
        _TIMEOUT["seconds"] = seconds
    try:
        yield seconds
    finally:
        with _TIMEOUT_LOCK:
            _TIMEOUT["calls"] -= 1
            _TIMEOUT["seconds"] = previous
            if not _TIMEOUT["calls"]:
                library.setLevel(_TIMEOUT["level"])


# --------------------------------------------------------------------------- errors


def _reason(exc: BaseException) -> str:
    """The server's one-line reason, or the exception's first line."""
    response = getattr(exc, "response", None)
    if response is not None:
        message = response.headers.get("X-Error-Message")
        if message:
            return message
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``exc`` or an exception it was raised from or during is a ``kind``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None, url: str, action: str = "read",
               offline_mode: bool = False) -> Iterator[None]:
    """Run Hub calls with :func:`timeouts`, and turn ``huggingface_hub`` and network
    exceptions into one-line ``HubError``s with no credentials in them.

    ``action`` is a verb phrase (``"read"``, ``"list"``, ``"push to"``): reading
    and listing need read access, anything else write access.
    """
    try:
        with timeouts() as seconds, _translate(repo_id, revision, url, action, offline_mode,
                                               seconds):
            yield
    except HubError as exc:
        message = redact(str(exc))
        if message == str(exc):
            raise
        raise HubError(message, exc.kind) from None


@contextlib.contextmanager
def _translate(repo_id: str, revision: str | None, url: str, action: str, offline_mode: bool,
               seconds: float) -> Iterator[None]:
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    login = "log in with `hf auth login` or set HF_TOKEN"
    try:
        yield
    except RevisionNotFoundError:
        raise HubError(f"revision {revision!r} not found in {repo_id} on {url}",
                       "revision") from None
    except RemoteEntryNotFoundError as exc:
        raise HubError(f"file missing from {repo_id}@{revision or 'main'}: "
                       f"{_reason(exc)}", "file") from None
    except GatedRepoError:
        raise HubError(f"{repo_id} on {url} is gated: request access on its page, then "
                       f"{login}", "auth") from None
    except RepositoryNotFoundError as exc:
        if action != "read" and exc.response is not None and exc.response.status_code == 401:
            raise HubError(f"not authorised to {action} {repo_id} on {url}: {login}",
                           "auth") from None
        raise HubError(f"repo not found: {repo_id} on {url} (a private repo needs a token: "
                       f"{login})", "repo") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            access = "read" if action in ("read", "list") else "write"
            raise HubError(f"not authorised to {action} {repo_id} on {url} "
                           f"({status}: {_reason(exc)}): {login} to a token with {access} "
                           f"access", "auth") from None
        raise HubError(f"the Hub at {url} refused to {action} {repo_id} "
                       f"({status}: {_reason(exc)})") from None
    except LocalEntryNotFoundError as exc:
        if not offline_mode:  # the Hub failed half way and the cache cannot make up for it
            why = (f"the Hub did not answer within {seconds:g} s; set ZOO_HUB_TIMEOUT to wait "
                   f"longer" if _caused_by(exc, httpx2.TimeoutException) else _reason(exc))
            raise HubError(f"cannot download {repo_id}@{revision or 'main'} from {url}, and the "
                           f"cache does not hold it ({why})", "network") from None
        raise HubError(f"{repo_id}@{revision or 'main'} is not in the Hub cache and offline mode "
                       f"is on (--offline or HF_HUB_OFFLINE=1): load it once online first",
                       "offline") from None
    except OfflineModeIsEnabled:
        raise HubError(f"{repo_id}@{revision or 'main'} is not in the Hub cache and offline mode "
                       f"is on (--offline or HF_HUB_OFFLINE=1): load it once online first",
                       "offline") from None
    except httpx2.TransportError as exc:
        hint = ("; to use models you loaded before, pass --offline or set HF_HUB_OFFLINE=1"
                if action == "read" else "")
        if isinstance(exc, httpx2.TimeoutException):
            raise HubError(f"the Hub at {url} did not answer within {seconds:g} s (set "
                           f"ZOO_HUB_TIMEOUT to wait longer){hint}", "network") from None
        raise HubError(f"cannot reach the Hub at {url} ({_reason(exc)}){hint}",
                       "network") from None
    except UnicodeEncodeError:  # HTTP headers are ASCII: a token pasted with a stray character
        raise HubError(f"cannot {action} {repo_id}: a request header holds a character that is "
                       f"not ASCII (check HF_TOKEN or the token passed)", "auth") from None
    except ValueError as exc:  # the client refusing input, e.g. README metadata
        raise HubError(f"cannot {action} {repo_id}: {' '.join(str(exc).split())}") from None


# --------------------------------------------------------------------------- names


def split_revision(ref: str) -> tuple[str, str | None]:
    """``'ns/name@rev'`` -> ``('ns/name', 'rev')``; no ``@``: ``(ref, None)``."""
    name, sep, revision = ref.partition("@")
    if sep and not revision:
        raise HubError(f"{ref!r}: empty revision after '@'")
    return name, (revision if sep else None)


def repo_and_revision(ref: str, revision: str | None) -> tuple[str, str | None]:
    """The repo and revision that ``ref`` (``ns/name[@rev]`` or a named model) and an
    explicit ``revision`` ask for; a named model brings its pinned revision."""
    repo_id, at = split_revision(ref)
    if at is not None and revision is not None and at != revision:
        raise HubError(f"{ref!r} names revision {at!r} but revision={revision!r} was given")
    revision = at if at is not None else revision
    if "/" not in repo_id:
        repo_id, pinned = named_model_repo(repo_id)
        revision = revision if revision is not None else pinned
    return repo_id, revision


def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or "\\" in name or name.count("/") > 1


def resolve(
    name: str | Path, revision: str | None = None, *, local_files_only: bool = False,
    cache_dir: str | Path | None = None, endpoint: str | None = None,
    token: str | bool | None = None,
) -> Resolved:
    """A local model folder, a Hub id (``ns/name`` or ``ns/name@rev``) or a named model
    from ``registry.toml`` -> the folder holding its files (downloaded if needed).

    A local folder wins over a Hub id of the same spelling.
    """
    if isinstance(name, Path) or Path(name).expanduser().exists() or _looks_local(str(name)):
        if revision is not None:
            raise HubError(f"revision={revision!r} applies to Hub ids, not to the local "
                           f"folder {name}")
        return Resolved(Path(name).expanduser())
    ref, revision = repo_and_revision(str(name), revision)
    if not is_repo_id(ref):
        raise ArtifactError(f"no model folder at {name}, and {ref!r} is not a Hub id "
                            f"(namespace/name)")
    try:
        return download(ref, revision, local_files_only=local_files_only, cache_dir=cache_dir,
                        endpoint=endpoint, token=token)
    except HubError as exc:
        if exc.kind in ("repo", "network", "offline") and ref == str(name):
            raise HubError(f"{exc}; no local folder {name} either", exc.kind) from None
        raise


def named_model_repo(name: str) -> tuple[str, str | None]:
    """The Hub repo and pinned revision ``registry.toml`` gives a named model."""
    from zoo.core.registry import _unknown, get_registry

    reg = get_registry()
    if name in reg.models:
        model = reg.models[name]
        if not model.hub_repo:
            raise HubError(f"named model {name!r} is not published (no [models.{name}.hub] "
                           f"repo_id in the registry); build it with: zoo build {name}, "
                           f"then load runs/{name}")
        return model.hub_repo, model.hub_revision
    if name in reg.families:
        raise UnknownNameError(f"{name!r} is a family, not a model: build one with "
                               f"zoo build {name}, or load a folder or a Hub id (namespace/name)")
    published = [n for n, m in reg.models.items() if m.hub_repo]
    raise _unknown("model folder, named model or Hub id", name, published)


# --------------------------------------------------------------------------- download


def _check_repo(info: Any, where: str) -> None:
    """Refuse a repo holding another library's model or lacking the model files."""
    library = info.library_name
    if library and library != LIBRARY:
        raise HubError(f"{where} holds a {library} model, not a genzoo model "
                       f"(library_name: {library} in its card)", "library")
    names = sorted(s.rfilename for s in info.siblings or [])
    missing = [f for f in REQUIRED if f not in names]
    if missing:
        raise HubError(f"file missing from {where}: {', '.join(missing)} "
                       f"(the repo has: {', '.join(names) or 'no files'})", "file")


def _check_config(folder: Path, where: str) -> None:
    from zoo.artifact import CONFIG, FORMAT, MAX_CONFIG_BYTES, is_genzoo_config, read_json

    try:
        config = read_json(folder / CONFIG, MAX_CONFIG_BYTES)
    except ArtifactError:
        config = None
    if not is_genzoo_config(config):
        raise HubError(f"{where} holds no genzoo model: its {CONFIG} is not a {FORMAT} config",
                       "library")


def download(
    repo_id: str, revision: str | None = None, *, local_files_only: bool = False,
    cache_dir: str | Path | None = None, endpoint: str | None = None,
    token: str | bool | None = None, files: list[str] | None = LOAD_FILES,
    local_dir: str | Path | None = None,
) -> Resolved:
    """Download (or find in the cache) the files of a genzoo model repo at a revision.

    ``files`` are patterns (default: what loading needs; ``None``: everything).
    Offline, or when the Hub cannot be reached, the cache answers if it can.
    """
    from huggingface_hub import snapshot_download

    url, cache = endpoint_url(endpoint), cache_folder(cache_dir)
    where = f"{repo_id}@{revision}" if revision else repo_id
    kwargs: dict[str, Any] = {"revision": revision, "cache_dir": cache, "endpoint": url,
                              "token": token, "allow_patterns": files, "library_name": LIBRARY}
    if is_offline(local_files_only):
        if local_dir is not None:
            raise HubError("--local-dir needs the Hub; offline, load from the cache instead")
        with hub_errors(repo_id, revision, url, offline_mode=True):
            path = Path(snapshot_download(repo_id, local_files_only=True, **kwargs))
        missing = [f for f in REQUIRED if not (path / f).is_file()]
        if missing:
            raise HubError(f"{repo_id}@{revision or 'main'} is only partly in the Hub cache "
                           f"({', '.join(missing)} missing) and offline mode is on "
                           f"(--offline or HF_HUB_OFFLINE=1): load it once online first",
                           "offline")
        _check_config(path, where)
        return Resolved(path, repo_id, revision, path.name)
    api = _api(url, token)
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    with hub_errors(repo_id, revision, url):
        try:
            info = api.model_info(repo_id, revision=revision)
        except (httpx2.TransportError, HfHubHTTPError) as exc:
            # unreachable or failing (5xx): the cache may still answer, as huggingface_hub's
            # own downloads do; a refusal (401, 403, 404) is reported, not worked around
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if local_dir is None and (status is None or status >= 500):
                with contextlib.suppress(HubError):
                    return download(repo_id, revision, local_files_only=True, cache_dir=cache,
                                    endpoint=url, token=token, files=files)
            raise exc
        _check_repo(info, f"{repo_id}@{revision or 'main'}")
        path = Path(snapshot_download(repo_id, local_dir=local_dir, **kwargs))
    _check_config(path, where)
    return Resolved(path, repo_id, revision, info.sha)


def pull(
    ref: str, revision: str | None = None, *, local_dir: str | Path | None = None,
    local_files_only: bool = False, cache_dir: str | Path | None = None,
    endpoint: str | None = None, token: str | bool | None = None,
) -> Resolved:
    """Download a whole model repo snapshot (``training_state/`` too) and return where it is.

    Into the Hub cache by default; with ``local_dir``, into that folder, written
    beside it and renamed so a failed download leaves nothing there (an existing
    ``local_dir`` is replaced only if it is empty or an earlier pull: never a model
    built here, whose training state may exist nowhere else).
    """
    repo_id, revision = repo_and_revision(ref, revision)
    if not is_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a Hub model id (namespace/name)")
    options = {"local_files_only": local_files_only, "cache_dir": cache_dir,
               "endpoint": endpoint, "token": token, "files": None}
    if local_dir is None:
        return download(repo_id, revision, **options)
    from zoo.artifact import atomic_folder

    target = Path(local_dir)
    if (target.is_dir() and any(target.iterdir())
            and not (target / ".cache" / "huggingface").is_dir()):
        raise ArtifactError(f"refusing to replace {target}: it is not a folder zoo pull made "
                            f"(a model built here?); pull into a new or empty folder")
    result: list[Resolved] = []
    target = atomic_folder(Path(local_dir), lambda tmp: result.append(
        download(repo_id, revision, local_dir=tmp, **options)), overwrite=True)
    return Resolved(target, repo_id, revision, result[0].commit)


# --------------------------------------------------------------------------- upload


#: What a model folder holds, as repo paths (``*`` stays within one folder): all that
#: ``build``, ``eval`` and ``visualize`` write there, including a family's card images
#: (top-level PNGs such as LAPGAN's ``pyramid.png``). ``push`` uploads these and nothing else.
MODEL_FILES = ("config.json", "model.safetensors", "README.md", "metrics.json", "*.png",
               "visualize/*.png", "visualize/index.json", "training_state/state.safetensors",
               "training_state/state.json")
_MODEL_DIRS = {p.split("/")[0] for p in MODEL_FILES if "/" in p}
#: Files that may sit in a repo that holds no model yet (what the Hub puts in a new repo).
EMPTY_REPO = {".gitattributes", "README.md"}


def is_model_file(path: str) -> bool:
    """Whether a repo path is one of a model folder's own files (see ``MODEL_FILES``)."""
    return any(fnmatch.fnmatchcase(path, pattern) and path.count("/") == pattern.count("/")
               for pattern in MODEL_FILES)


def _local_files(folder: Path) -> tuple[list[str], list[str]]:
    """(the model folder's own files, other files), sorted repo paths; hidden files and
    folders (e.g. ``.cache/`` of ``pull --local-dir``) are neither. A symbolic link or a
    special file among its own files is refused: push publishes nothing outside the folder."""
    own, other = [], []
    for root, dirs, names in os.walk(folder):  # never into linked folders
        linked = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in linked]
        for name in [*names, *linked]:
            rel, path = (Path(root).relative_to(folder) / name).as_posix(), Path(root) / name
            if name.startswith("."):
                continue
            if not (is_model_file(rel) or (rel in _MODEL_DIRS and path.is_symlink())):
                other.append(rel)
            elif path.is_symlink():
                raise ArtifactError(f"refusing to push {folder}: {rel} is a symbolic link (push "
                                    f"uploads only files inside the model folder; copy the file "
                                    f"in instead)")
            elif not path.is_file():
                raise ArtifactError(f"refusing to push {folder}: {rel} is not a regular file")
            else:
                own.append(rel)
    return sorted(own), sorted(other)


def _check_local(folder: Path, files: list[str]) -> None:
    """Before anything is sent: the folder checked as loading does plus the sha256 of
    every safetensors file (:func:`zoo.artifact.verify_folder`, training state too),
    every JSON file parseable, and the training state whole or absent; raises a
    one-line ``ArtifactError``."""
    from zoo.artifact import read_json, verify_folder

    verify_folder(folder)
    for name in files:
        if name.endswith(".json"):
            read_json(folder / name)
    state = [f for f in MODEL_FILES if f.startswith("training_state/")]
    missing = [f for f in state if f not in files]
    if len(missing) == 1:  # half a checkpoint resumes nothing
        raise ArtifactError(f"refusing to push {folder}: its training state is incomplete "
                            f"({missing[0]} missing); delete training_state/ to publish the "
                            f"model without it")


def _remote_is_genzoo(api: HfApi, repo_id: str, commit: str) -> bool:
    """Whether the repo's ``config.json`` at ``commit`` is a genzoo model config."""
    import tempfile

    from zoo.artifact import CONFIG, MAX_CONFIG_BYTES, is_genzoo_config, read_json

    sizes = [getattr(e, "size", None) for e in api.get_paths_info(repo_id, [CONFIG],
                                                                 revision=commit)]
    if not sizes or sizes[0] is None or sizes[0] > MAX_CONFIG_BYTES:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(api.hf_hub_download(repo_id, CONFIG, revision=commit, local_dir=tmp))
        try:
            return is_genzoo_config(read_json(path, MAX_CONFIG_BYTES))
        except ArtifactError:  # not JSON, too large or too deep
            return False


def _check_pushable(api: HfApi, repo_id: str, info: Any, where: str) -> None:
    """Refuse a repo that holds anything but a genzoo model (or nothing yet).

    Pushable: a repo whose ``config.json`` is a genzoo/1 config, or one holding no
    more than ``.gitattributes`` and a README.md; never one whose card names another
    library. A card's ``library_name: genzoo`` alone is not enough (a card is easily
    copied; a repo without the config holds no genzoo model).
    """
    from zoo.artifact import CONFIG

    library = info.library_name
    if library and library != LIBRARY:
        raise HubError(f"refusing to push to {where}: it holds a {library} model, not a genzoo "
                       f"model (library_name: {library} in its card); push to another repo",
                       "library")
    names = sorted(s.rfilename for s in info.siblings or [])
    if CONFIG in names:
        if not _remote_is_genzoo(api, repo_id, info.sha):
            raise HubError(f"refusing to push to {where}: its {CONFIG} is not a genzoo model "
                           f"config (the repo holds another model); push to another repo",
                           "library")
        return
    foreign = [n for n in names if n not in EMPTY_REPO]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f", … ({len(foreign)} in all)" if len(foreign) > 5
                                          else "")
        raise HubError(f"refusing to push to {where}: it holds files that are not a genzoo "
                       f"model ({shown}); push to a new or empty repo", "library")


def push(
    path: str | Path, repo_id: str | None = None, *, revision: str | None = None,
    private: bool | None = None, message: str | None = None, create_pr: bool = False,
    endpoint: str | None = None, token: str | bool | None = None,
) -> PushResult:
    """Validate a model folder, then upload its own files to a Hub repo in one commit.

    Uploads only the model folder's files (``MODEL_FILES``; others are skipped with
    a warning on stderr) and refuses symbolic links among them. Before anything is
    sent: a strict load, every safetensors file whole, every JSON file parseable. The
    repo is created if missing (``private`` applies then); an existing one must hold
    a genzoo model or nothing (``_check_pushable``), and the token must be able to
    write to it (a pull request needs no write access). A missing branch ``revision``
    is created from ``main``. Model-folder files on the branch that the folder no
    longer has are deleted in the same commit; other files there (a user's notes, a
    LICENSE) are kept. The model card is rendered for ``repo_id``.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.errors import RevisionNotFoundError

    from zoo.artifact import CARD, load_folder
    from zoo.core.plugins import dist_version
    from zoo.folder.write import card_text

    folder = Path(path)
    files, skipped = _local_files(folder) if folder.is_dir() else ([], [])
    family, spec, _, module = load_folder(folder)  # strict: raises before anything leaves
    _check_local(folder, files)
    repo_id = repo_id or spec.hub.repo_id
    if not repo_id:
        raise HubError(f"no repo id: pass one, or set hub.repo_id in the spec of {folder}")
    if not is_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a Hub model id (namespace/name)")
    revision = revision or (None if create_pr else spec.hub.revision)
    if revision is not None and COMMIT.fullmatch(revision):
        raise HubError(f"push to a branch, not to a commit ({revision})")
    if create_pr and revision not in (None, "main"):
        raise HubError("--create-pr opens a pull request against main; drop --revision")
    url = endpoint_url(endpoint)
    if is_offline():
        raise HubError(f"offline mode is on (--offline or HF_HUB_OFFLINE=1): cannot push to "
                       f"{repo_id}")
    card = card_text(folder, repo_id=repo_id, revision=revision).encode("utf-8")
    additions = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f))
                 for f in files if f != CARD]
    additions.append(CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=card))
    if skipped:
        shown = ", ".join(skipped[:5]) + (f", … ({len(skipped)} in all)" if len(skipped) > 5
                                          else "")
        print(f"warning: not uploading files that are not part of a genzoo model folder: "
              f"{shown}", file=sys.stderr)
    parameters = sum(p.numel() for p in module.parameters())
    message = message or (f"Upload {family.name} model ({parameters:,} "
                          f"parameters) with genzoo {dist_version()}")
    branch = revision if revision not in (None, "main") else None
    api = _api(url, token)
    with hub_errors(repo_id, revision, url, action="push to"):
        api.create_repo(repo_id, private=private, exist_ok=True)
        if not create_pr:  # a pull request needs no write access on the Hub
            api.auth_check(repo_id, write=True)  # before judging the repo's files
        try:
            info = api.model_info(repo_id, revision=branch)
            new_branch = False
        except RevisionNotFoundError:
            info, new_branch = api.model_info(repo_id), True
        base = branch if branch and not new_branch else "main"
        _check_pushable(api, repo_id, info, f"{repo_id}@{base}")
        if new_branch:
            api.create_branch(repo_id, branch=branch, revision=info.sha, exist_ok=True)
        keep = {*files, CARD}
        deletions = [CommitOperationDelete(path_in_repo=s.rfilename) for s in info.siblings or []
                     if is_model_file(s.rfilename) and s.rfilename not in keep]
        commit = api.create_commit(repo_id, [*deletions, *additions], commit_message=message,
                                   revision=revision, create_pr=create_pr, parent_commit=info.sha)
    return PushResult(repo_id, revision or "main", commit.oid, commit.commit_url, commit.pr_url,
                      skipped)


# --------------------------------------------------------------------------- listing


def _family(tags: list[str], known: set[str]) -> str:
    """The family among a remote model's tags (a known family first)."""
    for tag in tags:
        if tag in known:
            return tag
    return next((t for t in tags if t not in GENERIC_TAGS and ":" not in t), "")


def _genzoo_models(url: str, token: str | bool | None, limit: int | None) -> Iterator[Any]:
    """``ModelInfo``s of the Hub's genzoo models, asking for each page once.

    ``HfApi.list_models`` retries a 5xx answer or a dead endpoint five times
    (about 23 s, a warning line each), and no argument turns that off.
    """
    from huggingface_hub import ModelInfo
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    from zoo.core.plugins import dist_version

    headers = build_hf_headers(token=token, library_name=LIBRARY,
                               library_version=dist_version())
    page: str | None = f"{url}/api/models"
    params: dict[str, Any] | None = {"filter": LIBRARY, **({"limit": limit} if limit else {})}
    count = 0
    while page is not None:
        response = get_session().get(page, params=params, headers=headers)
        hf_raise_for_status(response)
        for item in response.json():
            item.setdefault("siblings", None)
            yield ModelInfo(**item)
            count += 1
            if limit is not None and count >= limit:
                return
        page, params = response.links.get("next", {}).get("url"), None  # the link has them


def list_remote(
    patterns: list[str] | None = None, *, endpoint: str | None = None,
    token: str | bool | None = None, limit: int | None = None,
) -> list[dict[str, Any]]:
    """genzoo models on the Hub (library ``genzoo``), optionally filtered by wildcards on the id.

    Each row: ``id``, ``family``, ``downloads``, ``last_modified``, ``private``.
    """
    from zoo.core.registry import get_registry

    url = endpoint_url(endpoint)
    if is_offline():
        raise HubError("offline mode is on (--offline or HF_HUB_OFFLINE=1): cannot list the Hub")
    known = set(get_registry().families)
    rows = []
    with hub_errors("models", None, url, action="list"):
        for info in _genzoo_models(url, token, limit):
            if patterns and not any(fnmatch.fnmatchcase(info.id, p)
                                    or fnmatch.fnmatchcase(info.id.split("/")[-1], p)
                                    for p in patterns):
                continue
            rows.append({"id": info.id, "family": _family(info.tags or [], known),
                         "downloads": info.downloads, "private": info.private,
                         "last_modified": info.last_modified.isoformat()
                         if info.last_modified else None})
    return rows
