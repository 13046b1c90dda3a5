"""Near-duplicate texts: word shingles, MinHash signatures and LSH band keys.

The exact-copy layer (`monitor.text.content_hash`) misses a copy with one word
changed. Here a text becomes a set of word shingles, the set a 128-value
MinHash signature, and the signature 32 band keys (issue 5): two texts whose
shingle sets overlap enough share at least one band key with high
probability, so a new item finds its candidates with one indexed look-up
(`WHERE band_key IN (...)` on an `lsh_bands(band_key BIGINT, item_id)` table
that every worker shares), then `similarity` on the stored signatures
confirms or rejects each candidate. Everything here is pure and
storage-independent.

Stable across processes, machines and Python versions: shingles and the hash
parameters (drawn from `SEED`) come from BLAKE2b, not from Python's `hash()`
of a str, which is salted per process, nor from `random`. Stored
signatures and band keys are only comparable under the same `SCHEME`: store
it with them and recompute when it changes.

The signature is one-permutation MinHash with optimal densification
(Shrivastava, "Optimal Densification for Fast and Accurate Minwise Hashing",
ICML 2017): each shingle is hashed once, with a universal hash
(a*x + b) mod 2**61 - 1, and falls in one of 128 bins; each bin keeps its
minimum, and an empty bin borrows the minimum of a bin chosen by its own
fixed random probe sequence. Two signatures agree in a position with
probability equal to the Jaccard similarity of the shingle sets, as with 128
independent permutations, but the cost is one hash per shingle instead of
128: about 0.1 ms instead of 9 ms for a 600-word article in pure Python
(numpy is not a dependency). Tokenizing the text (one regex in C, each distinct
word folded and hashed once, cached) costs about as much again.

Shingle the title and the text together (`shingles(title + "\n" + text)`): a
copy under a new headline stays a copy, and the title alone is no copy.

The defaults were chosen on the development half of the labelled set in
tests/fixtures/dedupe (see tests/test_near_dupes.py for the figures).
"""

from __future__ import annotations

import hashlib
import struct
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TypeVar

from monitor.text import fold, pieces

NUM_PERM = 128
SEED = 1
# Word pairs, not triples: a copy with 10% of its words changed keeps 0.9**2 = 81%
# of its pairs but only 73% of its triples, and at the Jaccard that leaves
# (about 0.7 against 0.6) 32 bands of 4 rows find 99.99% of such copies instead
# of 99%. Distinct same-topic articles stay far below either way (at most 0.17,
# and 0.03 on average, on the development set).
SHINGLE_WORDS = 2
# 32 bands of 4 rows: a pair at Jaccard J becomes a candidate with probability
# 1 - (1 - J**4)**32: 0.9999 at 0.7, 0.97 at 0.5, 0.03 at 0.17. 25 bands of 5
# rows would miss 0.6% of 10%-edited copies; 42 bands of 3 rows would fetch
# 17 times more candidates for nothing.
BANDS = 32
ROWS = 4
# Estimated Jaccard similarity from which two texts are near-duplicates: the
# development set's distinct articles reach 0.17 (a variant carrying a rewritten
# passage of the other), its 10%-edited copies go down to 0.68.
THRESHOLD = 0.4

# Everything that changes signatures or band keys; stored values made under
# another scheme must be recomputed, not compared.
SCHEME = f"oph-d/w{SHINGLE_WORDS}/p{NUM_PERM}/s{SEED}/b{BANDS}x{ROWS}"

_P = (1 << 61) - 1  # Mersenne prime: universal hashing of 64-bit keys
_MASK64 = (1 << 64) - 1
# Odd 64-bit constants (golden ratio, and murmur3's fmix) to combine token hashes in order.
_K1 = 0x9E3779B97F4A7C15
_K2 = 0xC2B2AE3D27D4EB4F

_APOSTROPHES = frozenset("'’ʼ`´")
# French and Italian elided articles and conjunctions ("l'Ukraine", "qu'il",
# "dell'Europa"): dropped only when an apostrophe follows, so that English
# "all" or "quest" stay words. Elision varies with the next word and the
# writer, and carries no meaning of its own.
_ELISIONS = frozenset(
    {
        *"cdjlmnst",
        "qu",
        "jusqu",
        "lorsqu",
        "puisqu",
        "quoiqu",
        "quelqu",
        "presqu",
        "dell",
        "dall",
        "nell",
        "sull",
        "all",
        "coll",
        "quell",
        "quest",
        "un",
        "nessun",
        "buon",
        "sant",
        "tutt",
    }
)


@lru_cache(maxsize=1 << 16)
def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


@lru_cache(maxsize=1 << 17)
def _raw_token(raw: str) -> tuple[str, bool, int]:
    """A token as the text writes it: folded, whether it may be an elided article,
    and the hash of the folded token. Cached on the raw token: one look-up per word."""
    token = fold(raw)
    return token, token in _ELISIONS, _token_hash(token)


def _kept(text: str) -> list[tuple[str, bool, int]]:
    """`_raw_token` of each token of the text, elisions dropped."""
    parts = pieces(unicodedata.normalize("NFC", text))
    return [
        info
        for raw, after in zip(parts[1::2], parts[2::2], strict=True)
        if not ((info := _raw_token(raw))[1] and after[:1] in _APOSTROPHES)
    ]


def shingle_tokens(text: str) -> list[str]:
    """The folded, accent-free tokens that shingles are made of, elisions dropped."""
    return [token for token, _, _ in _kept(text)]


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[int]:
    """The text's word shingles (`size` consecutive tokens), as 64-bit hashes.

    A text shorter than one shingle is one shingle of all its words; a text
    without words has none."""
    h = [x for _, _, x in _kept(text)]
    if len(h) < size:
        h += [0] * (size - len(h)) if h else []
    if size == 1:
        return set(h)
    if size == 2:
        return {(a * _K1 + b) & _MASK64 for a, b in zip(h, h[1:], strict=False)}
    if size == 3:
        return {(a * _K1 + b * _K2 + c) & _MASK64 for a, b, c in zip(h, h[1:], h[2:], strict=False)}
    out = set()
    for i in range(len(h) - size + 1):
        acc = 0
        for x in h[i : i + size]:
            acc = (acc * _K1 + x) & _MASK64
        out.add(acc)
    return out


def _draw(seed: int, *labels: object) -> int:
    """A 64-bit pseudo-random number, a pure function of the seed and the labels.

    Not `random.Random`: Python guarantees only `random()`'s sequence across
    versions, not `randrange` or `shuffle`, and these numbers decide band keys
    stored for good."""
    data = ":".join(map(str, (seed, *labels))).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, person=b"monitor-minhash").digest(), "little")


@lru_cache(maxsize=8)
def _parameters(num_perm: int, seed: int) -> tuple[int, int, tuple[tuple[int, ...], ...]]:
    """The universal hash (a, b) and, for every bin, the order in which an empty
    bin probes the other bins to borrow a value (optimal densification)."""
    a = 1 + _draw(seed, "a") % (_P - 1)
    b = _draw(seed, "b") % _P
    probes = tuple(
        tuple(sorted((j for j in range(num_perm) if j != i), key=lambda j: _draw(seed, "probe", i, j)))
        for i in range(num_perm)
    )
    return a, b, probes


def signature(shingles: Iterable[int], num_perm: int = NUM_PERM, seed: int = SEED) -> tuple[int, ...]:
    """The MinHash signature of a set of shingles: `num_perm` values below 2**61.

    The empty set has a signature of its own (every value 2**61 - 1) that is
    nobody's near-duplicate; see `similarity`."""
    a, b, probes = _parameters(num_perm, seed)
    empty = _P
    mins = [empty] * num_perm
    for x in shingles:
        h = (a * x + b) % _P
        i = h % num_perm
        v = h // num_perm
        if v < mins[i]:
            mins[i] = v
    if empty not in mins:
        return tuple(mins)
    if all(v == empty for v in mins):
        return tuple(mins)
    out = list(mins)
    for i, v in enumerate(mins):
        if v == empty:
            out[i] = next(mins[j] for j in probes[i] if mins[j] != empty)
    return tuple(out)


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of the two shingle sets: the share of equal positions."""
    if len(a) != len(b):
        raise ValueError(f"signatures of different lengths: {len(a)} and {len(b)}")
    if not a or a[0] == _P and all(v == _P for v in a):
        return 0.0  # a text without words resembles nothing
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def is_near_duplicate(a: Sequence[int], b: Sequence[int], threshold: float = THRESHOLD) -> bool:
    return similarity(a, b) >= threshold


def band_keys(signature: Sequence[int], bands: int = BANDS, rows: int = ROWS) -> list[int]:
    """One key per band, a signed 64-bit integer (a SQL BIGINT).

    Two texts are candidates when they share any key. A key hashes the band's
    index with its rows, so equal rows in two different bands do not collide."""
    if bands * rows > len(signature):
        raise ValueError(f"{bands} bands of {rows} rows need {bands * rows} values, the signature has {len(signature)}")
    keys = []
    for band in range(bands):
        rows_bytes = struct.pack(f"<H{rows}Q", band, *signature[band * rows : (band + 1) * rows])
        keys.append(int.from_bytes(hashlib.blake2b(rows_bytes, digest_size=8).digest(), "little", signed=True))
    return keys


def pack(signature: Sequence[int]) -> bytes:
    """The signature as bytes for storage: 8 bytes per value, little-endian."""
    return struct.pack(f"<{len(signature)}Q", *signature)


def unpack(data: bytes) -> tuple[int, ...]:
    if len(data) % 8:
        raise ValueError(f"a packed signature is a multiple of 8 bytes, not {len(data)}")
    return struct.unpack(f"<{len(data) // 8}Q", data)


T = TypeVar("T")


def nearest(
    signature: Sequence[int], candidates: Iterable[tuple[T, Sequence[int]]], threshold: float = THRESHOLD
) -> tuple[T, float] | None:
    """The most similar candidate at or above the threshold, with its similarity.

    `candidates` are (item, signature) pairs, typically the items that share a
    band key with this one; ties go to the first candidate."""
    best: tuple[T, float] | None = None
    for item, other in candidates:
        s = similarity(signature, other)
        if s >= threshold and (best is None or s > best[1]):
            best = (item, s)
    return best
