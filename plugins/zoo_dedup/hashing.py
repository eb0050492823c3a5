"""Binary codes, Hamming search and grouping; NumPy only (no torch).

Codes are packed into rows of uint64 words. :func:`near_pairs` finds every
pair of codes within Hamming distance ``k`` by multi-index hashing (Norouzi,
Punjani & Fleet, CVPR 2012): split the bits into ``k + 1`` disjoint chunks;
two codes within distance ``k`` agree exactly on at least one chunk
(pigeonhole), so candidates are the pairs that share a chunk's bucket, and
each candidate is verified on the full code. With well-spread codes the
buckets stay small and the work is near-linear in the number of codes;
:func:`brute_force_pairs` is the quadratic reference.

Flip invariance: a code set may carry each image's mirrored code too
(``mirrors``); then images *a* and *b* match when ``d(a, b)``,
``d(a, mirror(b))`` or ``d(mirror(a), b)`` is at most ``k``.

Confirmation: a code set may also carry the real-valued codes (unit vectors)
the hashes were binarised from; then a pair within Hamming distance ``k``
matches only if the same two codes are also at most ``max_angle`` degrees
apart. The hash finds candidates in near-linear time, the codes reject the
distinct images that happen to share a hash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORD = 64


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Bool ``(N, B)`` -> uint64 ``(N, ceil(B / 64))``; bit j lands in word j // 64."""
    bits = np.asarray(bits, dtype=bool)
    n, b = bits.shape
    words = -(-b // WORD)
    padded = np.zeros((n, words * WORD), dtype=np.uint8)
    padded[:, :b] = bits
    return np.packbits(padded.reshape(n, words, WORD), axis=2, bitorder="little").view(
        np.uint64).reshape(n, words)


def unpack_bits(codes: np.ndarray, n_bits: int) -> np.ndarray:
    """uint64 ``(N, W)`` -> bool ``(N, n_bits)`` (inverse of :func:`pack_bits`)."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    as_bytes = codes.view(np.uint8).reshape(len(codes), -1)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :n_bits].astype(bool)


def popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per row of a uint64 array ``(..., W)``, summed over the last axis."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(-1, dtype=np.int64)
    as_bytes = np.ascontiguousarray(words).view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1).sum(-1, dtype=np.int64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distances between packed codes ``a`` and ``b`` (same shape)."""
    return popcount(np.bitwise_xor(a, b))


@dataclass(frozen=True)
class CodeSet:
    """Packed hashes of N images, their mirrors' hashes when flip-invariant, and optionally
    the unit-length real-valued codes behind both (rows aligned with the hashes)."""

    codes: np.ndarray  # uint64 (N, W)
    n_bits: int
    mirrors: np.ndarray | None = None  # uint64 (N, W)
    vectors: np.ndarray | None = None  # float (N, D), unit rows
    mirror_vectors: np.ndarray | None = None  # float (N, D), unit rows

    def __len__(self) -> int:
        return len(self.codes)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def within_angle(a: np.ndarray, b: np.ndarray, max_angle: float) -> np.ndarray:
    """Whether unit rows ``a[i]`` and ``b[i]`` are at most ``max_angle`` degrees apart.

    Two all-zero rows (no unit active) count as equal; one all-zero row is 90° from any other.
    """
    cos = np.einsum("ij,ij->i", a.astype(np.float32), b.astype(np.float32))
    zero_a = ~np.any(a, axis=1)
    zero_b = ~np.any(b, axis=1)
    cos = np.where(zero_a & zero_b, 1.0, cos)
    return cos >= np.cos(np.deg2rad(max_angle)) - 1e-6


def balanced_chunks(bits: np.ndarray, k: int) -> list[np.ndarray]:
    """Split the bit columns into ``k + 1`` disjoint chunks of near-equal size and entropy.

    Bits are dealt round-robin in order of how close their frequency of ones
    is to 1/2, so no chunk collects all the rarely-set bits of sparse ReLU
    codes (which would make that chunk's buckets huge).
    """
    n_bits = bits.shape[1]
    m = k + 1
    if m > n_bits:
        raise ValueError(f"max distance {k} is too large for {n_bits}-bit codes "
                         f"(at most {n_bits - 1})")
    frequency = bits.mean(0) if len(bits) else np.full(n_bits, 0.5)
    order = np.argsort(np.abs(frequency - 0.5), kind="stable")
    return [np.sort(order[j::m]) for j in range(m)]


def bucket_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(i, j)``, ``i < j`` in sorted position, of rows with equal keys."""
    n = len(keys)
    if n < 2:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    order = np.lexsort(keys.T[::-1])
    ordered = keys[order]
    new = np.ones(n, dtype=bool)
    new[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, n))
    ends = np.repeat(starts + sizes, sizes)
    partners = ends - np.arange(n) - 1  # later positions in the same bucket
    left = np.repeat(np.arange(n), partners)
    first = np.cumsum(partners) - partners
    right = left + 1 + (np.arange(len(left)) - np.repeat(first, partners))
    return order[left], order[right]


def _entries(codes: CodeSet) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Stacked hashes, their vectors (or None), image ids and whether each is a mirror."""
    n = len(codes)
    if codes.mirrors is None:
        return codes.codes, codes.vectors, np.arange(n), np.zeros(n, dtype=bool)
    stacked = np.concatenate([codes.codes, codes.mirrors])
    vectors = None
    if codes.vectors is not None:
        vectors = np.concatenate([codes.vectors, codes.mirror_vectors])
    return stacked, vectors, np.tile(np.arange(n), 2), np.repeat([False, True], n)


def _check_angle(codes: CodeSet, max_angle: float | None) -> None:
    if max_angle is not None and codes.vectors is None:
        raise ValueError("max_angle needs the code set's vectors")
    if codes.mirrors is not None and codes.vectors is not None and codes.mirror_vectors is None:
        raise ValueError("a code set with mirrors and vectors needs mirror_vectors")


def _normalise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unique image pairs ``(min, max)`` without self pairs, sorted, as ``(P, 2)``."""
    keep = a != b
    pairs = np.stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])], axis=1)
    if len(pairs) == 0:
        return pairs.reshape(0, 2).astype(np.int64)
    return np.unique(pairs, axis=0).astype(np.int64)


def near_pairs(codes: CodeSet, k: int, max_angle: float | None = None,
               max_candidates: int = 50_000_000) -> np.ndarray:
    """Image pairs ``(a, b)``, ``a < b``, within Hamming distance ``k``, by multi-index hashing.

    With ``max_angle`` (degrees), a pair also needs its real-valued codes that
    close. Returns a sorted ``(P, 2)`` int64 array. ``max_candidates`` bounds
    the memory of one chunk's candidate list: a ValueError says to lower ``k``
    when a degenerate code set would exceed it.
    """
    _check_angle(codes, max_angle)
    stacked, vectors, image, mirror = _entries(codes)
    bits = unpack_bits(stacked, codes.n_bits)
    found: list[np.ndarray] = []
    for columns in balanced_chunks(bits, k):
        left, right = bucket_pairs(pack_bits(bits[:, columns]))
        if len(left) > max_candidates:
            raise ValueError(f"{len(left):,} candidate pairs share one chunk (limit "
                             f"{max_candidates:,}): the codes are too concentrated for max "
                             f"distance {k}; lower it")
        keep = ~(mirror[left] & mirror[right])  # mirror-mirror repeats image-image
        left, right = left[keep], right[keep]
        close = hamming(stacked[left], stacked[right]) <= k
        if max_angle is not None:
            close[close] = within_angle(vectors[left[close]], vectors[right[close]], max_angle)
        found.append(np.stack([image[left[close]], image[right[close]]], axis=1))
    allp = np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)
    return _normalise(allp[:, 0], allp[:, 1])


def brute_force_pairs(codes: CodeSet, k: int, max_angle: float | None = None) -> np.ndarray:
    """The same pairs as :func:`near_pairs`, by comparing every pair (quadratic; a reference)."""
    _check_angle(codes, max_angle)
    n = len(codes)
    views = [(codes.codes, codes.vectors, codes.codes, codes.vectors)]
    if codes.mirrors is not None:
        views += [(codes.codes, codes.vectors, codes.mirrors, codes.mirror_vectors),
                  (codes.mirrors, codes.mirror_vectors, codes.codes, codes.vectors)]
    found = []
    for a in range(n - 1):
        match = np.zeros(n - a - 1, dtype=bool)
        for left, left_vectors, right, right_vectors in views:
            rest = right[a + 1 :]
            ok = hamming(np.broadcast_to(left[a], rest.shape), rest) <= k
            if max_angle is not None:
                rest_vectors = right_vectors[a + 1 :]
                ok &= within_angle(np.broadcast_to(left_vectors[a], rest_vectors.shape),
                                   rest_vectors, max_angle)
            match |= ok
        hits = np.flatnonzero(match) + a + 1
        found.append(np.stack([np.full(len(hits), a), hits], axis=1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return _normalise(*np.concatenate(found).T)


# --------------------------------------------------------------------------- groups


class UnionFind:
    """Disjoint sets over ``0..n-1`` with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        """The representative of ``x``'s set."""
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        """Merge the sets of ``a`` and ``b``."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


def groups_from_pairs(n: int, pairs: np.ndarray) -> list[list[int]]:
    """Connected components of size >= 2, each sorted, ordered by their first member."""
    uf = UnionFind(n)
    for a, b in pairs.tolist():
        uf.union(a, b)
    members: dict[int, list[int]] = {}
    for i in sorted({int(x) for x in pairs.ravel()}):
        members.setdefault(uf.find(i), []).append(i)
    return sorted((g for g in members.values() if len(g) > 1), key=lambda g: g[0])


def find_groups(codes: CodeSet, k: int = 0, max_angle: float | None = None) -> list[list[int]]:
    """Groups of near-duplicate images: matching pairs (see :func:`near_pairs`), closed
    transitively with union-find."""
    return groups_from_pairs(len(codes), near_pairs(codes, k, max_angle))
