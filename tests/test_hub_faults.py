"""The Hub misbehaving: stalls, 5xx, 401/403, credentials in the endpoint, partial caches.

Faults come from the loopback Hub (``HubServer.inject``). Every call that could
hang runs in a thread under a deadline, so a regression fails in bounded time
instead of hanging the suite; ``ZOO_HUB_TIMEOUT=1`` keeps each test short.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from huggingface_hub.errors import HfHubHTTPError
from test_errors import assert_one_line_error
from test_hub import api, repo_with, v1, versions  # noqa: F401  (fixtures)

import zoo

#: The longest any one faulty call may take here (the acceptance bound is 15 s a test).
DEADLINE = 12.0


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch: pytest.MonkeyPatch):
    """A 1 s Hub timeout, and each test (past the session's model builds) under 15 s."""
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "1")
    start = time.perf_counter()
    yield
    assert time.perf_counter() - start < 15


def bounded(hub, call: Callable[..., Any], *args: Any, seconds: float = DEADLINE) -> Any:
    """``call(*args)``, failing the test if it is still running after ``seconds``.

    A call still waiting is released by stopping the server (stalled requests
    then end), so even a regression finishes in bounded time.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call(*args)
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    start = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        hub.stop()
        thread.join(30)
        pytest.fail(f"still waiting for the Hub after {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    assert time.perf_counter() - start < seconds
    return outcome["value"]


def requests_to(hub, pattern: str) -> int:
    return sum(1 for _, path in hub.requests if pattern in path)


# --------------------------------------------------------------------------- the server


def test_injected_faults_match_by_path_method_and_count(hub):
    client = api(hub)
    client.create_repo("me/x")
    fault = hub.inject(503, path="/api/models/", method="get", count=1, message="busy")
    with pytest.raises(HfHubHTTPError, match="503"):
        client.model_info("me/x")
    assert client.model_info("me/x").id == "me/x" and fault.hits == 1  # count used up
    with pytest.raises(ValueError, match="fault mode"):
        hub.inject(200)
    hub.inject("stall", path="/api/models/")
    with pytest.raises(httpx2.TimeoutException):
        client.model_info("me/x", timeout=0.5)
    hub.clear_faults()
    assert client.model_info("me/x").id == "me/x"


def test_stopping_the_server_releases_stalled_requests(hub):
    hub.inject("stall")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            api(hub).model_info("me/x")  # no timeout: waits until the server stops
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    while not hub.requests:
        time.sleep(0.01)
    started = time.perf_counter()
    hub.stop()
    thread.join(DEADLINE)
    assert not thread.is_alive() and time.perf_counter() - started < 5
    assert errors and isinstance(errors[0], httpx2.TransportError)


# --------------------------------------------------------------------------- stalls


def test_stall_on_an_uncached_model_is_one_line_in_bounded_time(hub, cli, tmp_path):
    hub.inject("stall")
    r = bounded(hub, cli, "sample", "me/x", "-o", tmp_path / "g.png")
    assert_one_line_error(r, f"the Hub at {hub.url} did not answer within 1 s",
                          "ZOO_HUB_TIMEOUT", "--offline")
    assert not (tmp_path / "g.png").exists()
    r = bounded(hub, cli, "pull", "me/x", "--local-dir", tmp_path / "copy")
    assert_one_line_error(r, "did not answer within 1 s")
    assert not (tmp_path / "copy").exists()


def test_stall_with_a_cached_model_falls_back_to_the_cache(hub, cli, v1, tmp_path):  # noqa: F811
    zoo.push(v1, "me/x")
    commit = zoo.from_pretrained("me/x").commit
    hub.inject("stall")
    r = bounded(hub, cli, "sample", "me/x", "-n", "2", "-o", tmp_path / "g.png")
    assert r.code == 0, r.err
    assert (tmp_path / "g.png").is_file()
    assert bounded(hub, zoo.from_pretrained, "me/x").commit == commit


def test_a_failing_hub_with_a_cached_model_falls_back_to_the_cache(hub, cli, v1):  # noqa: F811
    """A 5xx is the Hub failing, like a stall: the cache answers (huggingface_hub's own
    downloads do the same); a refusal (401, 403) is the user's to fix and is reported."""
    zoo.push(v1, "me/x")
    zoo.from_pretrained("me/x")
    for status in (500, 503):
        hub.clear_faults()
        hub.inject(status, path="/api/models/me/x")
        r = cli("info", "me/x")
        assert r.code == 0 and r.err == "", r.err
    hub.clear_faults()
    hub.inject(403, path="/api/models/me/x")
    assert_one_line_error(cli("info", "me/x"), "not authorised to read me/x", "403")
    hub.clear_faults()
    hub.inject(503, path="/api/models/me/y")
    assert_one_line_error(cli("info", "me/y"), "refused to read me/y", "503")  # nothing cached


def test_a_download_that_timed_out_file_by_file_says_so():
    """huggingface_hub retries a stalled file's metadata (six timeouts and 23 s of back-off,
    too slow to run here), then raises LocalEntryNotFoundError from the timeout."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    from zoo.core.errors import HubError
    from zoo.hub import hub_errors

    expected = r"cannot download me/x@main .*did not answer within 1 s"
    with pytest.raises(HubError, match=expected), hub_errors("me/x", None, "http://hub"):
        try:
            raise httpx2.ReadTimeout("timed out")
        except httpx2.ReadTimeout as exc:
            raise LocalEntryNotFoundError("An error happened while trying to locate the "
                                          "file on the Hub") from exc


def test_stall_during_push_is_one_line_and_commits_nothing(hub, cli, v1):  # noqa: F811
    hub.inject("stall", path="/api/repos/create")
    assert_one_line_error(bounded(hub, cli, "push", v1, "me/x"),
                          f"the Hub at {hub.url} did not answer within 1 s", "ZOO_HUB_TIMEOUT")
    hub.clear_faults()
    hub.inject("stall", path="/commit/")  # everything else answers: the commit itself hangs
    r = bounded(hub, cli, "push", v1, "me/x")
    assert_one_line_error(r, "did not answer within 1 s")
    assert "--offline" not in r.err
    assert [c["title"] for c in hub.log("me/x")] == ["initial commit"]


def test_a_bad_timeout_setting_is_one_line(hub, cli, monkeypatch):
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "soon")
    assert_one_line_error(cli("info", "me/x"), "ZOO_HUB_TIMEOUT='soon'", "positive number")
    assert hub.requests == []


# --------------------------------------------------------------------------- status codes


def test_5xx_on_list_remote_is_one_line_without_retries(hub, cli):
    for status in (500, 503):
        hub.clear_faults()
        hub.inject(status, path="/api/models$", message="the Hub is down for maintenance")
        before = requests_to(hub, "/api/models")
        r = bounded(hub, cli, "list", "--remote", seconds=5)
        assert_one_line_error(r, f"the Hub at {hub.url} refused to list models", str(status),
                              "down for maintenance")
        assert "Retrying" not in r.err and requests_to(hub, "/api/models") == before + 1
    hub.clear_faults()
    hub.inject(503, path="/api/models$", count=1)
    assert cli("list", "--remote").code == 2
    assert cli("list", "--remote").code == 0  # answers again once the Hub is back


def test_401_and_403_name_the_access_needed(hub, cli, v1):  # noqa: F811
    zoo.push(v1, "me/x")
    bad_token = "Invalid credentials in Authorization header"
    for status in (401, 403):
        hub.clear_faults()
        hub.inject(status, path="/api/models$", message=bad_token)
        r = cli("list", "--remote")
        assert_one_line_error(r, "not authorised to list models", str(status), "read access")
        assert "write" not in r.err
        hub.clear_faults()
        hub.inject(status, path="/api/models/me/x", message=bad_token)
        assert_one_line_error(cli("info", "me/x"), "not authorised to read me/x", str(status),
                              "read access", "hf auth login")
        hub.clear_faults()
        hub.inject(status, path="/preupload/", message=bad_token)
        assert_one_line_error(cli("push", v1, "me/x"), "not authorised to push to me/x",
                              str(status), "write access")
    assert hub.commits_seen() == 1


# --------------------------------------------------------------------------- credentials


def test_credentials_in_the_endpoint_never_show(hub, cli, v1, tmp_path, monkeypatch):  # noqa: F811
    secret = "s3cret-pw"
    endpoint = hub.url.replace("http://", f"http://user:{secret}@")
    shown = hub.url.replace("http://", "http://***@")
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))

    def check(r, *fragments: str) -> None:
        assert_one_line_error(r, *fragments)
        assert secret not in r.err and "user:" not in r.err, r.err

    check(cli("info", "me/nothing"), f"repo not found: me/nothing on {shown}")
    check(cli("--endpoint", endpoint, "info", "me/nothing"), "repo not found")
    hub.inject(500)
    check(cli("info", "me/x"), f"the Hub at {shown} refused to read me/x", "500")
    check(cli("list", "--remote"), f"the Hub at {shown} refused to list models")
    check(cli("push", v1, "me/x"), f"the Hub at {shown} refused to push to me/x")
    hub.clear_faults()
    hub.inject(500, message="")  # no X-Error-Message: the client's own text, with the URL
    check(cli("info", "me/x"), "500")
    hub.clear_faults()
    hub.inject("stall")
    check(bounded(hub, cli, "sample", "me/x"), f"the Hub at {shown} did not answer")
    monkeypatch.setenv("HF_ENDPOINT", f"http://user:{secret}@127.0.0.1:9")  # nothing listens
    check(cli("sample", "me/x"), "cannot reach the Hub at http://***@127.0.0.1:9")
    check(cli("list", "--remote"), "cannot reach the Hub")


def test_the_librarys_log_lines_never_show_during_genzoo_calls(hub, cli, v1, monkeypatch,  # noqa: F811
                                                               caplog):
    """A download that times out file by file: huggingface_hub logs "Error while downloading
    from URL" (credentials included) for each file and retry; none of it may show."""
    import logging

    zoo.push(v1, "me/x")
    secret = "s3cret-pw"
    monkeypatch.setenv("HF_ENDPOINT", hub.url.replace("http://", f"http://user:{secret}@"))
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "0.2")
    hub.inject("stall", path="/resolve/", method="get")  # the files' metadata still answers
    level = logging.getLogger("huggingface_hub").level
    with caplog.at_level(logging.DEBUG):
        r = bounded(hub, cli, "info", "me/x")
    assert_one_line_error(r, "did not answer within 0.2 s")
    assert secret not in r.err
    assert [rec.getMessage() for rec in caplog.records if rec.name.startswith("huggingface_hub")
            ] == []
    assert logging.getLogger("huggingface_hub").level == level  # restored after


def test_a_timeout_too_long_for_a_socket_is_one_line(hub, cli, monkeypatch):
    for value in ("1e10", "1e300"):
        monkeypatch.setenv("ZOO_HUB_TIMEOUT", value)
        assert_one_line_error(cli("info", "me/x"), f"ZOO_HUB_TIMEOUT={value!r}", "at most 86400")
    assert hub.requests == []
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "86400")
    assert_one_line_error(cli("info", "me/x"), "repo not found")


def test_a_token_with_a_character_headers_cannot_carry_is_named(hub, cli, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_s3cret\u00e9")  # pasted with a stray character
    for args in (("info", "me/x"), ("list", "--remote")):
        r = cli(*args)
        assert_one_line_error(r, "not ASCII", "HF_TOKEN")
        assert "s3cret" not in r.err


# --------------------------------------------------------------------------- cache and folders


def test_a_partly_cached_model_offline_names_the_missing_files(hub, cli, v1, tmp_path):  # noqa: F811
    zoo.push(v1, "me/x")
    api(hub).hf_hub_download("me/x", "README.md", cache_dir=tmp_path / "hf-cache")  # the card only
    assert_one_line_error(cli("--offline", "info", "me/x"),
                          "me/x@main is only partly in the Hub cache",
                          "config.json, model.safetensors missing", "offline mode is on")
    hub.stop()  # not offline, but the Hub is down: the same cache cannot answer either
    assert_one_line_error(cli("info", "me/x"), "cannot reach the Hub")


def test_a_failed_pull_into_new_folders_leaves_none_behind(hub, cli, tmp_path):
    repo_with(hub, "me/broken", {"notes.txt": b"no model here"})
    (tmp_path / "kept").mkdir()
    for target in (tmp_path / "a" / "b" / "c", tmp_path / "kept" / "b" / "c"):
        assert_one_line_error(cli("pull", "me/nothing", "--local-dir", target), "repo not found")
        assert_one_line_error(cli("pull", "me/broken", "--local-dir", target), "file missing")
        assert not (tmp_path / "a").exists() and not (tmp_path / "kept" / "b").exists()
    hub.inject("stall")
    r = bounded(hub, cli, "pull", "me/broken", "--local-dir", tmp_path / "a" / "b" / "c")
    assert_one_line_error(r, "did not answer")
    assert not (tmp_path / "a").exists()
    assert list((tmp_path / "kept").iterdir()) == []  # kept, and nothing made inside it


def test_a_pull_into_a_folder_that_cannot_be_made_is_one_line(hub, cli, tmp_path):
    (tmp_path / "file").write_text("in the way")
    assert_one_line_error(cli("pull", "me/x", "--local-dir", tmp_path / "file" / "sub" / "x"),
                          "cannot create", "file/sub")
    assert (tmp_path / "file").read_text() == "in the way" and hub.requests == []


def test_pull_never_replaces_a_model_built_here(hub, cli, v1, tmp_path):  # noqa: F811
    zoo.push(v1, "me/x")
    built = Path(shutil.copytree(v1, tmp_path / "mine"))
    (built / "training_state" / "note").write_text("hours of training")
    assert_one_line_error(cli("pull", "me/x", "--local-dir", built), "refusing to replace",
                          "not a folder zoo pull made")
    assert (built / "training_state" / "note").is_file()
    pulled = tmp_path / "pulled"
    assert cli("pull", "me/x", "--local-dir", pulled).code == 0
    assert cli("pull", "me/x", "--local-dir", pulled).code == 0  # an earlier pull: updated
    (tmp_path / "empty").mkdir()
    assert cli("pull", "me/x", "--local-dir", tmp_path / "empty").code == 0


def test_a_successful_pull_keeps_the_folders_it_made(hub, cli, v1, tmp_path):  # noqa: F811
    zoo.push(v1, "me/x")
    target = tmp_path / "a" / "b" / "c"
    assert cli("pull", "me/x", "--local-dir", target).code == 0
    assert (target / "config.json").is_file()
