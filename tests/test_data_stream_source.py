"""The data half of data.streaming: shards read as tar streams (plain, gzip; pipe: refused),
an hf data set streamed, one seeded epoch sequence, and the positions each (rank, worker)
decodes."""

from __future__ import annotations

import gzip

import pytest
from streamed import photo_folder, saved_hf

from zoo.api import pack_data
from zoo.core.errors import DataError
from zoo.core.spec import DataSpec
from zoo.data import open_source
from zoo.data.split import held_out_mask
from zoo.data.stream import epoch_stream, open_stream, read_all, shuffled

pytest.importorskip("webdataset")


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    photos = photo_folder(root / "photos", 30)
    return photos, pack_data(photos, root / "shards", shard_size=8, progress=False)


def test_shards_streamed_give_the_indexed_samples(packed, tmp_path):
    _, out = packed
    indexed = open_source(DataSpec(source=out.source), "train")
    expected = {indexed.keys[i]: indexed.read(i) for i in range(len(indexed))}
    stream = open_stream(DataSpec(source=out.source, streaming=True), "train")
    assert stream.counts == [8, 8, 8, 6] and stream.total == 30
    assert {k: raw for k, raw, _ in read_all(stream)} == expected
    # compressed copies read the same; a pipe: is refused, never run
    for i, name in enumerate(out.shards):
        data = (out.out / name).read_bytes()
        (tmp_path / f"s{i}.tar.gz").write_bytes(gzip.compress(data, mtime=0))
    gz = open_stream(DataSpec(source=f"wds:{tmp_path}/s{{0..3}}.tar.gz", streaming=True),
                     "train")
    assert gz.counts is None and {k: r for k, r, _ in read_all(gz)} == expected
    marker = tmp_path / "ran"
    with pytest.raises(DataError, match="a shell command, which genzoo does not run"):
        open_stream(DataSpec(source=f"wds:pipe:touch {marker}", streaming=True), "train")
    assert not marker.exists()


def test_the_epoch_stream_is_the_split_shuffled_and_the_same_every_time(packed):
    _, out = packed
    source = open_stream(DataSpec(source=out.source, streaming=True), "train")
    indexed = open_source(DataSpec(source=out.source), "train")
    test = held_out_mask(indexed.keys, 0.1)
    for split, mask in (("train", ~test), ("test", test)):
        keys = [k for k, _, _ in epoch_stream(source, split, 0.1, 1, 2, 5)]
        assert sorted(keys) == [indexed.keys[i] for i in range(len(indexed)) if mask[i]]
    a = [k for k, _, _ in epoch_stream(source, "train", 0.1, 1, 2, 5)]
    assert a == [k for k, _, _ in epoch_stream(source, "train", 0.1, 1, 2, 5)]
    assert a != [k for k, _, _ in epoch_stream(source, "train", 0.1, 3, 2, 5)]


def test_shuffled_keeps_every_sample_once():
    items = [(str(i), b"", None) for i in range(50)]
    out = list(shuffled(items, 7, 0))
    assert sorted(out) == sorted(items) and out != items
    assert list(shuffled(items, 7, 0)) == out


def test_an_hf_data_set_streams(packed, tmp_path):
    pytest.importorskip("datasets")
    from datasets import load_from_disk

    photos, _ = packed
    saved = saved_hf(photos, tmp_path / "saved")
    load_from_disk(str(saved)).to_parquet(str(tmp_path / "pq" / "d.parquet"))
    spec = DataSpec(source="hf:parquet", path=str(tmp_path / "pq" / "d.parquet"),
                    streaming=True, key_column="path", label_column="label")
    stream = open_source(spec, "train")
    folder = open_source(DataSpec(source="folder", path=str(photos)), "train")
    got = {k: (raw, label) for k, raw, label in read_all(stream)}
    assert sorted(got) == list(folder.keys)
    assert all(got[folder.keys[i]][0] == folder.read(i).read_bytes() for i in range(len(folder)))
    assert stream.classes == 3


@pytest.fixture
def silent_server():
    """An http://127.0.0.1:PORT/ that accepts connections and never answers."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_a_stalled_server_is_one_line_after_zoo_data_timeout(silent_server, monkeypatch):
    import time

    monkeypatch.setenv("ZOO_DATA_TIMEOUT", "0.5")
    url = f"{silent_server}/shard-{{0..1}}.tar"
    stream = open_stream(DataSpec(source=f"wds:{url}", streaming=True), "train")
    began = time.monotonic()
    with pytest.raises(DataError) as info:
        list(read_all(stream))
    assert time.monotonic() - began < 10
    assert str(info.value) == (f"cannot read shard {silent_server}/shard-0.tar: no data within "
                               "0.5 s (set ZOO_DATA_TIMEOUT to wait longer)")
    monkeypatch.setenv("ZOO_DATA_TIMEOUT", "soon")
    with pytest.raises(DataError, match=r"^ZOO_DATA_TIMEOUT='soon': expected a positive"):
        list(read_all(stream))


@pytest.mark.parametrize("label", ["²", "١", "9" * 40, "-1", "1_0"])
def test_a_label_that_is_not_a_class_number_is_one_line(tmp_path, label):
    """Streamed or indexed, a label member must be ASCII digits below 2**31 (``"²"`` passes
    str.isdigit but not int())."""
    import io
    import tarfile

    from PIL import Image

    png = io.BytesIO()
    Image.new("L", (4, 4)).save(png, format="PNG")
    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in (("a.png", png.getvalue()), ("a.cls", label.encode())):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    for streaming in (True, False):
        with pytest.raises(DataError, match=r"label 'a\.cls' is .*not a class number") as info:
            spec = DataSpec(source=f"wds:{shard}", streaming=streaming, label_column="cls")
            list(read_all(open_stream(spec, "train"))) if streaming else open_source(spec,
                                                                                      "train")
        assert "\n" not in str(info.value)


@pytest.fixture
def http_shards(packed):
    """``(base URL, {path: Authorization header seen})``: the packed shards served over
    http://127.0.0.1 (``/cut/NAME`` sends half of a shard and closes)."""
    import http.server
    import threading

    _, out = packed
    seen: dict[str, str | None] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen[self.path] = self.headers.get("Authorization")
            cut = self.path.startswith("/cut/")
            path = out.out / self.path.rpartition("/")[2]
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2] if cut else data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_shards_stream_and_a_cut_or_missing_one_is_one_line(packed, http_shards):
    _, out = packed
    base, seen = http_shards
    local = open_stream(DataSpec(source=out.source, streaming=True), "train")
    names = ",".join(out.shards)
    remote = open_stream(DataSpec(source=f"wds:{base}/{{{names}}}", streaming=True), "train")
    assert list(read_all(remote)) == list(read_all(local))
    # user:password@ is sent as basic authentication and never shown
    host = base.partition("://")[2]
    secret = open_stream(DataSpec(source=f"wds:http://me:s%40cret@{host}/{out.shards[0]}",
                                  streaming=True), "train")
    assert len(list(read_all(secret))) == 8
    assert seen[f"/{out.shards[0]}"] == "Basic bWU6c0BjcmV0"  # me:s@cret
    for path, why in ((f"cut/{out.shards[0]}", "cannot read shard"),
                      ("nothing.tar", "HTTP 404")):
        stream = open_stream(DataSpec(source=f"wds:http://me:pw@{host}/{path}",
                                      streaming=True), "train")
        with pytest.raises(DataError, match=why) as info:
            list(read_all(stream))
        assert "\n" not in str(info.value) and "pw" not in str(info.value)
