"""A loopback Hugging Face Hub: the part of the Hub protocol ``huggingface_hub`` speaks.

For tests without internet. Start it, point the client at ``server.url``
(``endpoint=`` or ``HF_ENDPOINT`` set before ``huggingface_hub`` is imported),
and ``HfApi``, ``snapshot_download`` and ``hf_hub_download`` create repos,
commit, branch, tag, list and download exactly as against huggingface.co::

    with HubServer(tmp_path / "hub", tokens={"hf_me": "me"}) as hub:
        HfApi(endpoint=hub.url, token="hf_me").create_repo("me/x")

State lives in one folder: file contents by git blob id (``blobs/``), commits
as JSON holding their parent and every path -> blob (``commits/``), and one
JSON file per repo with its branches, tags and pull requests, so every branch
has a real commit history. Model repos only; every upload is "regular" (inline
base64, no LFS). ``requests`` records each (method, path) the server answered,
so a test can check what a client did or did not do. Not fast, not secure:
127.0.0.1 and tests only.

Faults: :meth:`HubServer.inject` makes matching requests fail, to test how a
client behaves when the Hub misbehaves. ``"stall"`` reads the request and never
answers (until the server stops: a client without a timeout hangs), a status
such as ``500``, ``503``, ``401`` or ``403`` answers that error instead of
serving the request::

    hub.inject("stall")                                  # every request hangs
    hub.inject(503, path="/api/models$", count=2)        # listing fails twice
    hub.inject(401, path=r"/resolve/", method="GET")     # downloads need a login
    hub.clear_faults()

A stalled or failed request is still recorded in ``requests``; ``Fault.hits``
counts the requests a fault took.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from zoo.core.licenses import HUB_LICENSES

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
PIPELINE_TAGS = {
    "unconditional-image-generation", "text-to-image", "image-to-image", "image-classification",
    "feature-extraction", "text-generation", "image-feature-extraction", "other",
}
REPO = r"(?P<ns>[\w.-]+)/(?P<name>[\w.-]+)"
SEGMENT = r"(?P<rev>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern), handler) for method, pattern, handler in [
        ("POST", r"/api/repos/create", "create_repo"),
        ("DELETE", r"/api/repos/delete", "delete_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", r"/api/whoami-v2", "whoami"),
        ("GET", r"/api/models", "list_models"),
        ("GET", rf"/api/models/{REPO}(?:/revision/{SEGMENT})?", "model_info"),
        ("GET", rf"/api/models/{REPO}/tree/{SEGMENT}(?:/(?P<path>.*))?", "tree"),
        ("POST", rf"/api/models/{REPO}/paths-info/{SEGMENT}", "paths_info"),
        ("GET", rf"/api/models/{REPO}/refs", "refs"),
        ("GET", rf"/api/models/{REPO}/auth-check(?P<write>/write)?", "auth_check"),
        ("GET", rf"/api/models/{REPO}/commits/{SEGMENT}", "commits"),
        ("POST", rf"/api/models/{REPO}/preupload/{SEGMENT}", "preupload"),
        ("POST", rf"/api/models/{REPO}/commit/{SEGMENT}", "commit"),
        ("POST", rf"/api/models/{REPO}/branch/{SEGMENT}", "create_branch"),
        ("POST", rf"/api/models/{REPO}/tag/{SEGMENT}", "create_tag"),
        ("GET", rf"/{REPO}/resolve/{SEGMENT}/(?P<path>.+)", "resolve"),
        ("HEAD", rf"/{REPO}/resolve/{SEGMENT}/(?P<path>.+)", "resolve"),
    ]
]


class Reply(Exception):
    """An error answer: HTTP status, ``X-Error-Code`` and message."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None, **body: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.body = headers or {}, body


@dataclass
class Fault:
    """A failure the server injects into matching requests (see :meth:`HubServer.inject`).

    ``mode`` is ``"stall"`` (never answer) or an HTTP status to answer with;
    ``path`` is a regular expression searched in the request path (query left
    out), ``method`` limits it to one HTTP method, ``count`` to that many
    requests (``None``: all of them).
    """

    mode: str | int
    path: str = ""
    method: str | None = None
    count: int | None = None
    message: str = "injected fault"
    hits: int = 0

    def takes(self, method: str, path: str) -> bool:
        """Whether this fault takes a request (and counts it if so)."""
        if self.count is not None and self.hits >= self.count:
            return False
        if (self.method not in (None, method)) or not re.search(self.path, path):
            return False
        self.hits += 1
        return True


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob, which the client compares to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _yaml() -> Any:
    """PyYAML, which only this test server needs (the ``testing`` extra)."""
    try:
        import yaml
    except ImportError:
        raise ImportError("zoo.testing.hubserver needs PyYAML: pip install 'genzoo[testing]'"
                          ) from None
    return yaml


def front_matter(text: str) -> dict[str, Any] | None:
    """The YAML front matter of a model card (``None`` if it has none)."""
    match = re.match(r"---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return None
    meta = _yaml().safe_load(match.group(1))
    return meta if meta is not None else {}


def card_errors(meta: Any) -> list[str]:
    """What the Hub's metadata validation would reject (the subset genzoo cards use)."""
    if not isinstance(meta, dict):
        return ["metadata must be a YAML mapping"]
    errors = []

    def strings(key: str, value: Any) -> None:
        if not (isinstance(value, str) or (isinstance(value, list)
                                           and all(isinstance(v, str) for v in value))):
            errors.append(f'"{key}" must be a string or a list of strings')

    for key in ("tags", "datasets", "language", "metrics"):
        if key in meta:
            strings(key, meta[key])
    if "library_name" in meta and not isinstance(meta["library_name"], str):
        errors.append('"library_name" must be a string')
    if "license" in meta and str(meta["license"]) not in HUB_LICENSES:
        errors.append(f'"license" must be one of the Hub\'s license identifiers, '
                      f'not {meta["license"]!r}')
    if "license_name" in meta and not isinstance(meta["license_name"], str):
        errors.append('"license_name" must be a string')
    if "pipeline_tag" in meta and meta["pipeline_tag"] not in PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" {meta["pipeline_tag"]!r} is not a known task')
    if "model-index" in meta:
        try:
            for entry in meta["model-index"]:
                assert isinstance(entry["name"], str)
                for result in entry["results"]:
                    assert isinstance(result["task"]["type"], str)
                    assert isinstance(result["dataset"]["name"], str)
                    assert isinstance(result["dataset"]["type"], str)
                    for metric in result["metrics"]:
                        assert isinstance(metric["type"], str)
                        assert isinstance(metric["value"], int | float | str)
        except (AssertionError, KeyError, TypeError) as exc:
            errors.append(f'"model-index" is malformed ({type(exc).__name__}: {exc})')
    return errors


def now() -> str:
    """ISO 8601 UTC timestamp as the Hub writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HubState:
    """Repos, commits and blobs in a folder, behind one lock."""

    def __init__(self, root: Path, tokens: dict[str, str]) -> None:
        self.root = Path(root)
        for sub in ("blobs", "commits", "repos"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.tokens = tokens
        self.lock = threading.RLock()
        self.counter = 0

    # ------------------------------------------------------------------ storage

    def _repo_file(self, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_id.replace('/', '--')}.json"

    def repo(self, repo_id: str) -> dict[str, Any] | None:
        path = self._repo_file(repo_id)
        return json.loads(path.read_text()) if path.is_file() else None

    def save_repo(self, repo: dict[str, Any]) -> None:
        self._repo_file(repo["id"]).write_text(json.dumps(repo, indent=1))

    def put_blob(self, data: bytes) -> str:
        oid = git_blob_id(data)
        (self.root / "blobs" / oid).write_bytes(data)
        return oid

    def blob(self, oid: str) -> bytes:
        return (self.root / "blobs" / oid).read_bytes()

    def commit(self, sha: str) -> dict[str, Any]:
        return json.loads((self.root / "commits" / f"{sha}.json").read_text())

    def new_commit(self, parent: str | None, files: dict[str, str], title: str,
                   message: str = "", author: str = "") -> str:
        self.counter += 1
        record = {"parents": [parent] if parent else [], "files": files, "title": title,
                  "message": message, "author": author, "date": now(), "n": self.counter}
        sha = hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()
        (self.root / "commits" / f"{sha}.json").write_text(json.dumps(record, indent=1))
        return sha

    def resolve(self, repo: dict[str, Any], rev: str) -> str:
        """A branch, tag, ``refs/...`` name or full commit id -> commit id (404 otherwise)."""
        for prefix, refs in (("refs/heads/", repo["heads"]), ("refs/tags/", repo["tags"]),
                             ("", repo["heads"]), ("", repo["tags"])):
            if rev.startswith(prefix) and rev[len(prefix):] in refs:
                return refs[rev[len(prefix):]]
        pr = re.fullmatch(r"refs/pr/(\d+)", rev)
        if pr and pr.group(1) in repo["prs"]:
            return repo["prs"][pr.group(1)]
        if re.fullmatch(r"[0-9a-f]{40}", rev) and rev in self.history(repo):
            return rev
        raise Reply(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def history(self, repo: dict[str, Any]) -> set[str]:
        """Every commit reachable from any ref of the repo."""
        seen: set[str] = set()
        todo = [*repo["heads"].values(), *repo["tags"].values(), *repo["prs"].values()]
        while todo:
            sha = todo.pop()
            if sha not in seen:
                seen.add(sha)
                todo.extend(self.commit(sha)["parents"])
        return seen

    def log(self, repo_id: str, rev: str = "main") -> list[dict[str, Any]]:
        """Commits of a branch, newest first, each with its ``id``."""
        repo = self.repo(repo_id)
        if repo is None:
            return []
        out, sha = [], self.resolve(repo, rev)
        while sha:
            record = self.commit(sha)
            out.append({"id": sha, **record})
            sha = record["parents"][0] if record["parents"] else None
        return out

    def card(self, files: dict[str, str]) -> dict[str, Any]:
        if "README.md" not in files:
            return {}
        try:
            return front_matter(self.blob(files["README.md"]).decode("utf-8")) or {}
        except (_yaml().YAMLError, UnicodeDecodeError):
            return {}

    def info(self, repo: dict[str, Any], sha: str, siblings: bool = True) -> dict[str, Any]:
        """The model-info JSON of a repo at a commit."""
        record = self.commit(sha)
        card = self.card(record["files"])
        library = card.get("library_name")
        tags = card.get("tags") or []
        tags = [*([tags] if isinstance(tags, str) else tags),
                *([library] if isinstance(library, str) else [])]
        info = {"id": repo["id"], "modelId": repo["id"], "author": repo["id"].split("/")[0],
                "sha": sha, "private": repo["private"], "gated": False, "disabled": False,
                "downloads": repo["downloads"], "likes": 0, "library_name": library,
                "pipeline_tag": card.get("pipeline_tag"), "tags": list(dict.fromkeys(tags)),
                "createdAt": repo["created"], "lastModified": record["date"], "cardData": card}
        if siblings:
            info["siblings"] = [{"rfilename": p} for p in sorted(record["files"])]
        return info


class Handler(BaseHTTPRequestHandler):
    """One request: route it, check access, answer JSON or bytes (HTTP/1.0: one per connection)."""

    server: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # ------------------------------------------------------------------ plumbing

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        self.server.requests.append((self.command, split.path))
        fault = self.server.fault_for(self.command, split.path)
        if fault is not None:
            self.body()  # read the whole request, as a server would before answering
            if fault.mode == "stall":
                self.server.stopping.wait()
                self.close_connection = True
                return
            self.send_json(int(fault.mode), {"error": fault.message},
                           {"X-Error-Message": fault.message})
            return
        for method, pattern, name in ROUTES:
            match = pattern.fullmatch(split.path)
            if method == self.command and match:
                args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                try:
                    with self.server.state.lock:
                        getattr(self, name)(**args)
                except Reply as reply:
                    self.send_json(reply.status, {"error": reply.message, **reply.body},
                                   {**({"X-Error-Code": reply.code} if reply.code else {}),
                                    "X-Error-Message": reply.message, **reply.headers})
                return
        self.send_json(404, {"error": f"no route for {self.command} {split.path}"})

    do_GET = do_HEAD = do_POST = do_DELETE = _dispatch

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def json_body(self) -> Any:
        return json.loads(self.body() or b"{}")

    def send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(data).encode(), "application/json", headers)

    def send_bytes(self, status: int, data: bytes, content_type: str,
                   headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def url(self) -> str:
        return self.server.url

    def user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        token = auth[len("Bearer "):]
        if token not in self.state.tokens:
            raise Reply(401, "Invalid credentials in Authorization header")
        return self.state.tokens[token]

    def readable(self, ns: str, name: str) -> dict[str, Any]:
        repo = self.state.repo(f"{ns}/{name}")
        if repo is None or (repo["private"] and self.user() != ns):
            raise Reply(404 if self.user() else 401, "Repository not found", "RepoNotFound")
        return repo

    def writable(self, ns: str, name: str | None = None) -> dict[str, Any] | None:
        user = self.user()
        if user is None:
            raise Reply(401, "You must be authenticated to write to the Hub (no token)")
        if user != ns:
            raise Reply(403, f"You don't have the rights to write to namespace {ns!r} as {user!r}")
        return self.readable(ns, name) if name else None

    # ------------------------------------------------------------------ account and repos

    def whoami(self) -> None:
        user = self.user()
        if user is None:
            raise Reply(401, "Invalid credentials in Authorization header")
        self.send_json(200, {"type": "user", "name": user, "orgs": [],
                             "auth": {"type": "access_token",
                                      "accessToken": {"displayName": "test", "role": "write"}}})

    def create_repo(self) -> None:
        payload = self.json_body()
        if payload.get("type", "model") != "model":
            raise Reply(400, "this test server keeps model repos only")
        ns = payload.get("organization") or self.user() or ""
        repo_id = f"{ns}/{payload['name']}"
        self.writable(ns)
        if self.state.repo(repo_id) is not None:
            raise Reply(409, "You already created this model repo", url=f"{self.url}/{repo_id}")
        initial = self.state.new_commit(None, {".gitattributes": self.state.put_blob(
            GITATTRIBUTES)}, "initial commit", author=ns)
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.state.save_repo({"id": repo_id, "private": private, "created": now(),
                              "heads": {"main": initial}, "tags": {}, "prs": {}, "downloads": 0})
        self.send_json(200, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def delete_repo(self) -> None:
        payload = self.json_body()
        ns = payload.get("organization") or self.user() or ""
        self.writable(ns, payload["name"])
        self.state._repo_file(f"{ns}/{payload['name']}").unlink()
        self.send_json(200, {})

    def validate_yaml(self) -> None:
        content = self.json_body().get("content", "")
        try:
            meta = front_matter(content)
        except _yaml().YAMLError as exc:
            self.send_json(400, {"errors": [{"message": f"invalid YAML: {exc}"}]})
            return
        if meta is None:
            self.send_json(200, {"errors": [], "warnings": [
                {"message": "empty or missing yaml metadata in repo card"}]})
            return
        errors = card_errors(meta)
        self.send_json(400 if errors else 200,
                       {"errors": [{"message": e} for e in errors], "warnings": []})

    def list_models(self) -> None:
        user = self.user()
        wanted = self.query.get("filter", [])
        search = (self.query.get("search") or [""])[0].lower()
        author = (self.query.get("author") or [None])[0]
        out = []
        for path in sorted((self.state.root / "repos").glob("*.json")):
            repo = json.loads(path.read_text())
            if repo["private"] and repo["id"].split("/")[0] != user:
                continue
            info = self.state.info(repo, repo["heads"]["main"], siblings=False)
            if (all(tag in info["tags"] for tag in wanted) and search in repo["id"].lower()
                    and author in (None, info["author"])):
                info.pop("cardData")
                out.append(info)
        limit = int((self.query.get("limit") or [len(out)])[0])
        self.send_json(200, out[:limit])

    def model_info(self, ns: str, name: str, rev: str = "main") -> None:
        repo = self.readable(ns, name)
        self.send_json(200, self.state.info(repo, self.state.resolve(repo, rev)))

    def auth_check(self, ns: str, name: str, write: str = "") -> None:
        if write:
            self.writable(ns, name)
        else:
            self.readable(ns, name)
        self.send_json(200, {})

    def refs(self, ns: str, name: str) -> None:
        repo = self.readable(ns, name)

        def refs(kind: str, items: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": sha}
                    for n, sha in sorted(items.items())]

        self.send_json(200, {"branches": refs("heads", repo["heads"]), "converts": [],
                             "tags": refs("tags", repo["tags"]),
                             "pullRequests": refs("pr", repo["prs"])})

    def commits(self, ns: str, name: str, rev: str) -> None:
        repo = self.readable(ns, name)
        self.state.resolve(repo, rev)
        self.send_json(200, [{"id": c["id"], "authors": [{"user": c["author"]}], "date": c["date"],
                              "title": c["title"], "message": c["message"]}
                             for c in self.state.log(repo["id"], rev)])

    def create_branch(self, ns: str, name: str, rev: str) -> None:
        repo = self.writable(ns, name)
        if rev in repo["heads"]:
            raise Reply(409, f"Branch {rev} already exists")
        start = self.json_body().get("startingPoint") or "main"
        repo["heads"][rev] = self.state.resolve(repo, start)
        self.state.save_repo(repo)
        self.send_json(200, {})

    def create_tag(self, ns: str, name: str, rev: str) -> None:
        repo = self.writable(ns, name)
        tag = self.json_body()["tag"]
        if tag in repo["tags"]:
            raise Reply(409, f"Tag {tag} already exists")
        repo["tags"][tag] = self.state.resolve(repo, rev)
        self.state.save_repo(repo)
        self.send_json(200, {})

    # ------------------------------------------------------------------ files

    def entries(self, files: dict[str, str], under: str, recursive: bool) -> list[dict[str, Any]]:
        """Tree entries (files and folders) below ``under``."""
        prefix = f"{under.strip('/')}/" if under.strip("/") else ""
        found: dict[str, dict[str, Any]] = {}
        for path, oid in files.items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                folder = prefix + "/".join(rest[:depth])
                found.setdefault(folder, {"type": "directory", "oid": "0" * 40, "path": folder})
                if not recursive:
                    break
            if recursive or len(rest) == 1:
                found[path] = {"type": "file", "oid": oid, "path": path,
                               "size": len(self.state.blob(oid))}
        return [found[k] for k in sorted(found)]

    def tree(self, ns: str, name: str, rev: str, path: str = "") -> None:
        repo = self.readable(ns, name)
        files = self.state.commit(self.state.resolve(repo, rev))["files"]
        recursive = (self.query.get("recursive") or ["false"])[0].lower() == "true"
        found = self.entries(files, path, recursive)
        if path and not found:
            raise Reply(404, f"{path} does not exist", "EntryNotFound")
        self.send_json(200, found)

    def paths_info(self, ns: str, name: str, rev: str) -> None:
        repo = self.readable(ns, name)
        files = self.state.commit(self.state.resolve(repo, rev))["files"]
        everything = {e["path"]: e for e in self.entries(files, "", recursive=True)}
        paths = parse_qs(self.body().decode()).get("paths", [])
        self.send_json(200, [everything[p] for p in paths if p in everything])

    def resolve(self, ns: str, name: str, rev: str, path: str) -> None:
        repo = self.readable(ns, name)
        sha = self.state.resolve(repo, rev)
        files = self.state.commit(sha)["files"]
        if path not in files:
            raise Reply(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        data = self.state.blob(files[path])
        if self.command == "GET" and path == "config.json":
            repo["downloads"] += 1
            self.state.save_repo(repo)
        self.send_bytes(200, data, "application/octet-stream",
                        {"X-Repo-Commit": sha, "ETag": f'"{files[path]}"'})

    # ------------------------------------------------------------------ uploads

    def target(self, repo: dict[str, Any], rev: str) -> tuple[str, str]:
        """(kind, name) of the ref a commit to ``rev`` moves: a branch or a pull request."""
        pr = re.fullmatch(r"refs/pr/(\d+)", rev)
        if pr and pr.group(1) in repo["prs"]:
            return "prs", pr.group(1)
        branch = rev.removeprefix("refs/heads/")
        if branch not in repo["heads"]:
            raise Reply(404, f"Invalid rev id: {rev} is not a branch", "RevisionNotFound")
        return "heads", branch

    def preupload(self, ns: str, name: str, rev: str) -> None:
        repo = self.writable(ns, name)
        kind, ref = self.target(repo, rev)
        head = repo[kind][ref]
        files = self.state.commit(head)["files"]
        self.send_json(200, {"commitOid": head, "files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": files.get(f["path"])} for f in self.json_body()["files"]]})

    def commit(self, ns: str, name: str, rev: str) -> None:
        repo = self.writable(ns, name)
        kind, ref = self.target(repo, rev)
        lines = [json.loads(line) for line in self.body().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        parent = repo[kind][ref]
        if header.get("parentCommit") not in (None, parent):
            raise Reply(412, "A commit has happened since. Please refresh and try again.")
        files = dict(self.state.commit(parent)["files"])
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = self.state.put_blob(base64.b64decode(value["content"]))
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: o for p, o in files.items() if not p.startswith(folder)}
            elif key != "header":
                raise Reply(400, f"this test server does not support {key!r} operations")
        sha = self.state.new_commit(parent, files, header.get("summary", ""),
                                    header.get("description", ""), author=ns)
        pr_url = None
        if (self.query.get("create_pr") or ["0"])[0] == "1":
            number = str(len(repo["prs"]) + 1)
            repo["prs"][number] = sha
            pr_url = f"{self.url}/{repo['id']}/discussions/{number}"
        else:
            repo[kind][ref] = sha
        self.state.save_repo(repo)
        self.send_json(200, {"commitUrl": f"{self.url}/{repo['id']}/commit/{sha}",
                             "commitOid": sha, "pullRequestUrl": pr_url, "success": True})


class HubServer(ThreadingHTTPServer):
    """The loopback Hub on ``127.0.0.1`` at a free port; use as a context manager."""

    daemon_threads = True

    def __init__(self, root: str | Path, tokens: dict[str, str] | None = None,
                 port: int = 0) -> None:
        _yaml()  # without PyYAML, fail here with one line rather than inside a request
        super().__init__(("127.0.0.1", port), Handler)
        self.state = HubState(Path(root), dict(tokens or {}))
        self.requests: list[tuple[str, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread: threading.Thread | None = None
        self.faults: list[Fault] = []
        self.stopping = threading.Event()  # releases stalled requests when the server stops
        self._faults_lock = threading.Lock()

    def inject(self, mode: str | int, *, path: str = "", method: str | None = None,
               count: int | None = None, message: str = "injected fault") -> Fault:
        """Make matching requests fail from now on; returns the :class:`Fault`.

        ``mode``: ``"stall"`` (read the request, never answer until the server
        stops) or an HTTP status (``500``, ``503``, ``401``, ``403``...) answered
        with ``message`` as ``X-Error-Message``. ``path``: a regular expression
        searched in the request path (default: every path); ``method``: only
        this HTTP method; ``count``: only the first ``count`` matching requests.
        The first fault that matches a request takes it.
        """
        if mode != "stall" and not (isinstance(mode, int) and 400 <= mode <= 599):
            raise ValueError(f"fault mode must be 'stall' or an HTTP error status, not {mode!r}")
        fault = Fault(mode, path, method.upper() if method else None, count, message)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Serve every request normally again (requests already stalled stay stalled)."""
        with self._faults_lock:
            self.faults.clear()

    def fault_for(self, method: str, path: str) -> Fault | None:
        """The fault that takes this request, if any."""
        with self._faults_lock:
            return next((f for f in self.faults if f.takes(method, path)), None)

    def start(self) -> HubServer:
        """Serve in a background thread; returns self."""
        self.stopping.clear()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="hubserver",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port: clients then get "connection refused".

        Stalled requests are released (their connections close unanswered).
        """
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self, repo_id: str, rev: str = "main") -> list[dict[str, Any]]:
        """The commits of a branch (or any revision), newest first."""
        with self.state.lock:
            return self.state.log(repo_id, rev)

    def commits_seen(self) -> int:
        """How many commit requests the server has answered (successful or not)."""
        return sum(1 for method, path in self.requests if method == "POST" and "/commit/" in path)
