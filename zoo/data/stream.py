"""Sequential sources (``data.streaming = true``): data read from start to end, shard by shard
(remote or compressed WebDataset shards, a Hugging Face data set streamed from the Hub).

The data half of the design's "sequential kind": a :class:`StreamSource` lists its shards and
reads one as ``(key, raw, label)`` samples; :func:`epoch_stream` is the one global sequence of
an epoch's training (or held-out) samples, the same in every process and worker: shards in a
seeded order, held-out keys filtered by the hash split, a seeded shuffle buffer;
:func:`positions` keeps the positions one (rank, worker) decodes, so every sample of the
stream is decoded exactly once whatever the process and worker counts. The seeds come from
the training loop (``zoo.sampling.sample_seed``, a layer above this one).
"""

from __future__ import annotations

import os
import re
import tarfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from http.client import HTTPException
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.core.errors import DataError
from zoo.core.settings import seconds_from_env
from zoo.data.shard_keys import IMAGE_FIELDS, is_pipe, split_member, unescape_key
from zoo.data.split import key_hash

if TYPE_CHECKING:
    from zoo.core.spec import DataSpec
    from zoo.data.decode import Raw

#: One sample of a stream: its key, its encoded image and its label (or None).
Sample = tuple[str, "Raw", "int | None"]


class StreamSource:
    """A data set read sequentially, one shard at a time. ``counts``: images per shard when
    known (an ``index.json`` beside local shards), ``total``: their sum or the data set's
    declared size, else None (training then needs ``train.max_steps``)."""

    name: str
    shards: list[str]
    counts: list[int] | None = None
    total: int | None = None
    classes: int | None = None
    #: True: every sample is of the split asked for (an hf data set's own split, data.splits)
    presplit: bool = False

    def iter_shard(self, shard: int) -> Iterator[Sample]:
        """The samples of shard ``shard``, in stored order."""
        raise NotImplementedError


class ShardStream(StreamSource):
    """WebDataset shards read as tar streams: local (``.tar``, ``.tar.gz``), ``http(s)://``
    (each connect and read waits at most :func:`data_timeout`) and other URLs
    ``webdataset.gopen`` opens. ``pipe:COMMAND`` shards are refused: a spec
    (a model's config.json from the Hub, say) must never run a shell command."""

    def __init__(self, name: str, urls: list[str], label_field: str | None = None) -> None:
        for url in urls:
            if is_pipe(url):
                raise DataError(f"data source {name!r}: shard {url!r} is a shell command, which "
                                "genzoo does not run; download the shards or give their URLs")
        self.name, self.shards, self.label_field = name, urls, label_field
        self.counts = _recorded_counts(urls)
        self.total = None if self.counts is None else sum(self.counts)

    def iter_shard(self, shard: int) -> Iterator[Sample]:
        url = self.shards[shard]
        try:
            with _open_url(url) as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
                yield from _samples(tar, self.label_field, url)
        except (tarfile.TarError, OSError, EOFError, HTTPException) as exc:
            raise DataError(f"cannot read shard {_shown(url)}: {_reason(exc)}") from None


#: Seconds a read of a remote shard may wait (to connect, for each chunk) unless
#: ZOO_DATA_TIMEOUT; also how long the training loop waits for a batch from its workers.
DEFAULT_TIMEOUT = 60.0
#: The longest ZOO_DATA_TIMEOUT accepted (one day; far longer overflows the socket timeout).
MAX_TIMEOUT = 86400.0


def data_timeout() -> float:
    """Seconds to wait for data: ``$ZOO_DATA_TIMEOUT`` (read now, at most a day), else 60;
    a bad value is a one-line ``DataError``."""
    return seconds_from_env("ZOO_DATA_TIMEOUT", DEFAULT_TIMEOUT, MAX_TIMEOUT, DataError)


def _reason(exc: BaseException) -> str:
    """Why a shard could not be read, in words (a timeout says how to wait longer)."""
    import socket
    import urllib.error

    cause = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(
        exc, urllib.error.HTTPError) else exc
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return (f"no data within {data_timeout():g} s (set ZOO_DATA_TIMEOUT to wait "
                "longer)")
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    return str(getattr(cause, "strerror", None) or cause)


def _open_url(url: str) -> Any:
    if is_pipe(url):  # ShardStream refuses these; never run one
        raise DataError(f"shard {url!r} is a shell command, which genzoo does not run")
    if "://" not in url:
        return open(url, "rb")  # closed by the caller's with
    if url.split("://", 1)[0].lower() in ("http", "https"):
        # read here, not by webdataset's curl (which waits for ever on a stalled server):
        # every connect and read waits at most ZOO_DATA_TIMEOUT seconds
        return _http_open(url)
    import webdataset

    return webdataset.gopen(url)


def _http_open(url: str) -> Any:
    """An ``http(s)://`` URL opened for reading with :func:`data_timeout`; ``user:password@``
    in it is sent as basic authentication (as curl does), never to a host it redirects to."""
    import base64
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise DataError(f"cannot read shard {_shown(url)}: {exc}") from None
    request = urllib.request.Request(url)
    if parts.username is not None:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = host if port is None else f"{host}:{port}"
        request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_unredirected_header("Authorization", f"Basic {token}")
    return _Body(urllib.request.urlopen(request, timeout=data_timeout()))


class _Body:
    """An HTTP response read to its end: a body shorter than its ``Content-Length`` (the
    server closed the connection early) is an ``OSError``, not a quietly shorter shard."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def read(self, size: int = -1) -> bytes:
        data = self.response.read() if size is None or size < 0 else self.response.read(size)
        left = self.response.length
        if not data and size != 0 and left:
            raise OSError(f"the connection closed {left:,} bytes before the end")
        return data

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shown(url: str) -> str:
    """``url`` without a password written into it."""
    return re.sub(r"(?i)^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", url)


def _samples(tar: tarfile.TarFile, label_field: str | None, url: str) -> Iterator[Sample]:
    """Image members of a tar stream as samples, with the label member of their key."""
    group: str | None = None
    images: list[tuple[str, bytes]] = []
    label: int | None = None

    def flush() -> Iterator[Sample]:
        for field, data in images:
            key = unicodedata.normalize("NFC", unescape_key(group) + "." + field)
            if label_field and label is None:
                raise DataError(f"shard {url}: image {key!r} has no {label_field!r} label")
            yield key, data, label

    for member in tar:
        parts = split_member(member.name) if member.isfile() else None
        if parts is None:
            continue
        key, field = parts
        if key != group:
            yield from flush()
            group, images, label = key, [], None
        if field.lower() in IMAGE_FIELDS:
            handle = tar.extractfile(member)
            images.append((field, handle.read() if handle else b""))
        elif field == label_field:
            handle = tar.extractfile(member)
            text = handle.read(64).decode("utf-8", "replace").strip() if handle else ""
            if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) >= 2**31:
                raise DataError(f"shard {url}: label {member.name!r} is {text!r}, not a class "
                                "number (0 or more)")
            label = int(text)
    if group is not None:
        yield from flush()


def _recorded_counts(urls: list[str]) -> list[int] | None:
    """Images per shard from ``index.json`` beside local shards (all of them), else None."""
    import json

    counts = []
    for url in urls:
        path = Path(url)
        if "://" in url or is_pipe(url) or not path.is_file():
            return None
        try:
            doc = json.loads((path.parent / "index.json").read_text(encoding="utf-8"))
            by_name = {s["name"]: (int(s["count"]), int(s["bytes"])) for s in doc["shards"]}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        count, size = by_name.get(path.name, (None, None))
        if count is None or size != os.path.getsize(path):
            return None
        counts.append(count)
    return counts


def decode_samples(name: str, samples: list[Sample], mode: str, size: int,
                   on_bad: Callable[[int, str, str], None], strict: bool = False
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """``samples`` decoded (uint8 ``N×C×S×S``) with their labels, bad ones left out
    (:func:`zoo.data.rows.decode_good_rows`; ``on_bad(index, key, reason)``)."""
    from zoo.data.rows import decode_good_rows

    rows = SampleRows(name, samples)
    return decode_good_rows(rows, np.arange(len(rows)), mode, size, on_bad, strict=strict)


def epoch_stream(source: StreamSource, split: str, held_out: float, shard_seed: int,
                 buffer_seed: int, buffer: int) -> Iterator[Sample]:
    """The samples of ``split`` ("train"/"test") in an epoch's order: the shards permuted by
    ``shard_seed``, the other split's keys left out (the hash split, ``held_out``), then a
    shuffle buffer of ``buffer`` samples drawn by ``buffer_seed``. The same sequence in every
    process for the same seeds. A ``presplit`` source's samples are all of its split."""
    order = np.random.default_rng(shard_seed).permutation(len(source.shards))
    return shuffled(split_samples(source, split, held_out, order), buffer, buffer_seed)


def split_samples(source: StreamSource, split: str, held_out: float,
                  shards: Iterable[int] | None = None) -> Iterator[Sample]:
    """The samples of ``split`` ("train"/"test") of ``shards`` (default: all, in order): the
    hash split of the keys (``held_out``), or every sample of a ``presplit`` source."""
    threshold = min(round(held_out * 2**64), 2**64 - 1)
    test = split == "test"
    for shard in range(len(source.shards)) if shards is None else shards:
        for sample in source.iter_shard(int(shard)):
            if source.presplit or (key_hash(sample[0]) < threshold) == test:
                yield sample


class SampleRows:
    """A list of samples as the rows :func:`zoo.data.rows.decode_rows` decodes (``name``,
    ``keys``, ``labels``, ``read``): a batch of a stream."""

    def __init__(self, name: str, samples: list[Sample]) -> None:
        self.name = name
        self.keys = [key for key, _, _ in samples]
        self._raws = [raw for _, raw, _ in samples]
        labels = [label for _, _, label in samples]
        self.labels = (None if not labels or any(x is None for x in labels)
                       else np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, i: int) -> Raw:
        """The encoded image of row ``i``."""
        return self._raws[i]


def shuffled(samples: Iterable[Sample], buffer: int, seed: int) -> Iterator[Sample]:
    """``samples`` through a shuffle buffer: once it holds ``buffer`` samples, each new one
    takes the place of a random one, which is yielded; the rest come out shuffled at the
    end."""
    rng = np.random.default_rng(seed)
    held: list[Sample] = []
    for sample in samples:
        if len(held) < buffer:
            held.append(sample)
            continue
        j = int(rng.integers(buffer))
        yield held[j]
        held[j] = sample
    for j in rng.permutation(len(held)):
        yield held[int(j)]


def open_stream(spec: DataSpec, split: str) -> StreamSource:
    """The sequential source of an ``hf:`` or ``wds:`` spec with ``data.streaming = true``."""
    from zoo.data.extra import check_installed, need

    kind, _, rest = spec.source.partition(":")
    if kind == "wds":
        check_installed("webdataset", spec.source)
        need("braceexpand", spec.source)
        from braceexpand import braceexpand

        urls = list(braceexpand(rest))
        if not urls:
            raise DataError(f"data source {spec.source!r} names no shards")
        return ShardStream(spec.source, urls, spec.label_column)
    raise DataError(f"data source {spec.source!r} is not WebDataset shards (wds:...)")


def read_all(source: StreamSource) -> Iterator[Sample]:
    """Every sample of every shard, in shard order (tools, tests)."""
    for shard in range(len(source.shards)):
        yield from source.iter_shard(shard)


__all__ = ["SampleRows", "ShardStream", "StreamSource", "data_timeout", "decode_samples",
           "epoch_stream", "open_stream", "read_all", "shuffled",
           "split_samples"]
