"""The Hugging Face Hub: push a model folder, pull a snapshot, resolve a name to a folder.

Every byte goes through ``huggingface_hub`` (``HfApi``, ``snapshot_download``).
The endpoint is ``endpoint=``, else ``zoo --endpoint``, else ``$HF_ENDPOINT``
read at call time, else the library's default (huggingface.co); the token
follows the library's own rules (``HF_TOKEN``, ``hf auth login``) unless one is
given. Offline mode (``local_files_only=True``, ``zoo --offline`` or
``HF_HUB_OFFLINE=1``, read at call time) uses the local cache only.

Every failure becomes one :class:`~zoo.errors.HubError` line. Importing this
module imports neither torch nor ``huggingface_hub``.

Measured with huggingface_hub 2.4 against a closed port: ``model_info``,
``create_repo`` and ``snapshot_download`` fail at once, while
``hf_hub_download`` and paginated listings retry a connection error for about
23 s (1+2+4+8+8 s; ``max_retries`` is an argument, no setting changes it). So
loading asks ``model_info`` first and listing checks that the endpoint answers.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ArtifactError, HubError, UnknownNameError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

#: What loading needs from a repo (``training_state/`` stays on the Hub unless pulled).
LOAD_FILES = ["config.json", "model.safetensors", "README.md", "metrics.json", "*.png"]
#: Files without which a repo holds no genzoo model.
REQUIRED = ("config.json", "model.safetensors")
LIBRARY = "genzoo"
GENERIC_TAGS = {"genzoo", "image-generation", "safetensors", "unconditional-image-generation"}
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
COMMIT = re.compile(r"[0-9a-f]{40}")

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


def _api(url: str, token: str | bool | None) -> HfApi:
    from huggingface_hub import HfApi

    from zoo.plugins import dist_version

    return HfApi(endpoint=url, token=token, library_name=LIBRARY,
                 library_version=dist_version())


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


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None, url: str, action: str = "read",
               offline_mode: bool = False) -> Iterator[None]:
    """Turn ``huggingface_hub`` and network exceptions into one-line ``HubError``s."""
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
            access = "read" if action == "read" else "write"
            raise HubError(f"not authorised to {action} {repo_id} on {url} "
                           f"({status}: {_reason(exc)}): {login} to a token with {access} "
                           f"access", "auth") from None
        raise HubError(f"the Hub at {url} refused to {action} {repo_id} "
                       f"({status}: {_reason(exc)})") from None
    except LocalEntryNotFoundError as exc:
        if not offline_mode:  # the Hub failed half way and the cache cannot make up for it
            raise HubError(f"cannot download {repo_id}@{revision or 'main'} from {url}, and the "
                           f"cache does not hold it ({_reason(exc)})", "network") from None
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
        raise HubError(f"cannot reach the Hub at {url} ({_reason(exc)}){hint}",
                       "network") from None
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


def is_repo_id(name: str) -> bool:
    """Whether ``name`` is shaped like a Hub model id ``namespace/name``."""
    return bool(REPO_ID.fullmatch(name)) and ".." not in name and not name.endswith(".git")


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
    from zoo.registry import _unknown, get_registry

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
    from zoo.artifact import CONFIG, FORMAT, MAX_CONFIG_BYTES, read_json

    try:
        config = read_json(folder / CONFIG, MAX_CONFIG_BYTES)
    except ArtifactError:
        config = None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
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
        _check_config(path, where)
        return Resolved(path, repo_id, revision, path.name)
    api = _api(url, token)
    import httpx2

    with hub_errors(repo_id, revision, url):
        try:
            info = api.model_info(repo_id, revision=revision)
        except httpx2.TransportError as exc:  # unreachable: the cache may still answer
            if local_dir is None:
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
    ``local_dir`` is replaced only if it is a genzoo model folder or empty).
    """
    repo_id, revision = repo_and_revision(ref, revision)
    if not is_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a Hub model id (namespace/name)")
    options = {"local_files_only": local_files_only, "cache_dir": cache_dir,
               "endpoint": endpoint, "token": token, "files": None}
    if local_dir is None:
        return download(repo_id, revision, **options)
    from zoo.artifact import atomic_folder

    result: list[Resolved] = []
    target = atomic_folder(Path(local_dir), lambda tmp: result.append(
        download(repo_id, revision, local_dir=tmp, **options)), overwrite=True)
    return Resolved(target, repo_id, revision, result[0].commit)


# --------------------------------------------------------------------------- upload


def _local_files(folder: Path) -> list[str]:
    """Files of a model folder as repo paths, leaving out hidden files and folders."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            found.append(rel.as_posix())
    return found


def push(
    path: str | Path, repo_id: str | None = None, *, revision: str | None = None,
    private: bool | None = None, message: str | None = None, create_pr: bool = False,
    endpoint: str | None = None, token: str | bool | None = None,
) -> PushResult:
    """Validate a model folder (a strict load), then upload it to a Hub repo in one commit.

    The repo is created if missing (``private`` applies then), a missing branch
    ``revision`` is created from ``main``, and files on the branch that the
    folder no longer has are deleted in the same commit. The model card is
    rendered for ``repo_id``. A folder that fails validation uploads nothing.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    from zoo.api import from_pretrained
    from zoo.artifact import CARD
    from zoo.plugins import dist_version
    from zoo.write import card_text

    folder = Path(path)
    model = from_pretrained(folder)  # strict: raises before anything leaves the machine
    repo_id = repo_id or model.spec.hub.repo_id
    if not repo_id:
        raise HubError(f"no repo id: pass one, or set hub.repo_id in the spec of {folder}")
    if not is_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a Hub model id (namespace/name)")
    revision = revision or (None if create_pr else model.spec.hub.revision)
    if revision is not None and COMMIT.fullmatch(revision):
        raise HubError(f"push to a branch, not to a commit ({revision})")
    if create_pr and revision not in (None, "main"):
        raise HubError("--create-pr opens a pull request against main; drop --revision")
    url = endpoint_url(endpoint)
    if is_offline():
        raise HubError(f"offline mode is on (--offline or HF_HUB_OFFLINE=1): cannot push to "
                       f"{repo_id}")
    files = _local_files(folder)
    card = card_text(folder, repo_id=repo_id, revision=revision).encode("utf-8")
    additions = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f))
                 for f in files if f != CARD]
    additions.append(CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=card))
    message = message or (f"Upload {model.family.name} model ({model.num_parameters:,} "
                          f"parameters) with genzoo {dist_version()}")
    api = _api(url, token)
    with hub_errors(repo_id, revision, url, action="push to"):
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        remote = api.list_repo_files(repo_id, revision=revision)
        keep = {*files, CARD, ".gitattributes"}
        deletions = [CommitOperationDelete(path_in_repo=f) for f in remote if f not in keep]
        info = api.create_commit(repo_id, [*deletions, *additions], commit_message=message,
                                 revision=revision, create_pr=create_pr)
    return PushResult(repo_id, revision or "main", info.oid, info.commit_url, info.pr_url)


# --------------------------------------------------------------------------- listing


def _family(tags: list[str], known: set[str]) -> str:
    """The family among a remote model's tags (a known family first)."""
    for tag in tags:
        if tag in known:
            return tag
    return next((t for t in tags if t not in GENERIC_TAGS and ":" not in t), "")


def list_remote(
    patterns: list[str] | None = None, *, endpoint: str | None = None,
    token: str | bool | None = None, limit: int | None = None,
) -> list[dict[str, Any]]:
    """genzoo models on the Hub (library ``genzoo``), optionally filtered by wildcards on the id.

    Each row: ``id``, ``family``, ``downloads``, ``last_modified``, ``private``.
    """
    import httpx2
    from huggingface_hub.utils import get_session

    from zoo.registry import get_registry

    url = endpoint_url(endpoint)
    if is_offline():
        raise HubError("offline mode is on (--offline or HF_HUB_OFFLINE=1): cannot list the Hub")
    try:  # listing retries a dead endpoint for ~23 s; ask once first
        get_session().head(url, timeout=10)
    except httpx2.TransportError as exc:
        raise HubError(f"cannot reach the Hub at {url} ({_reason(exc)})", "network") from None
    known = set(get_registry().families)
    rows = []
    with hub_errors("models", None, url, action="list"):
        for info in _api(url, token).list_models(filter=LIBRARY, limit=limit):
            if patterns and not any(fnmatch.fnmatchcase(info.id, p)
                                    or fnmatch.fnmatchcase(info.id.split("/")[-1], p)
                                    for p in patterns):
                continue
            rows.append({"id": info.id, "family": _family(info.tags or [], known),
                         "downloads": info.downloads, "private": info.private,
                         "last_modified": info.last_modified.isoformat()
                         if info.last_modified else None})
    return rows
