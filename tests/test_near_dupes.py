"""Near-duplicate detection (monitor.minhash) on the labelled set of issue 5.

The set (tests/fixtures/dedupe) holds 50 invented reports in five languages
and 950 systematic variants of them; the parameters in monitor/minhash.py
were chosen on its "dev" half, and the "heldout" half is reported as it
comes. A copy is found the way the service finds it: it shares a band key
with the original and its estimated similarity reaches the threshold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from monitor import minhash
from monitor.minhash import (
    THRESHOLD,
    band_keys,
    nearest,
    pack,
    shingle_tokens,
    shingles,
    signature,
    similarity,
    unpack,
)

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "dedupe"))
import make_set  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def text_of(doc: make_set.Document) -> str:
    # What the service shingles: the title and the extracted text together, so a
    # copy under a new headline is still a copy.
    return doc.title + "\n" + doc.text


# --- units --------------------------------------------------------------------------


def test_pack_roundtrip() -> None:
    sig = signature(shingles("Le sommet de Paris a réuni trente-cinq pays à l'Élysée mardi."))
    data = pack(sig)
    assert len(data) == 128 * 8
    assert unpack(data) == sig
    with pytest.raises(ValueError):
        unpack(data[:-1])


def test_identical_texts_share_every_band_key() -> None:
    text = make_set.base_document("paris-summit.en-wire").text
    a, b = band_keys(signature(shingles(text))), band_keys(signature(shingles(text)))
    assert a == b and len(a) == minhash.BANDS
    assert len(set(a)) == len(a)  # the band index is part of the key
    assert all(-(2**63) <= k < 2**63 for k in a)  # fits a SQL BIGINT
    other = band_keys(signature(shingles(make_set.base_document("arsenal-strike.en-wire").text)))
    assert not set(a) & set(other)


def test_case_accents_punctuation_and_elisions_do_not_matter() -> None:
    assert shingle_tokens("L'Ukraine, d’abord : qu'il vienne !") == ["ukraine", "abord", "il", "vienne"]
    assert shingles("Sécurité de l'Ukraine") == shingles("securite de L’UKRAINE")
    # English words that look like elisions stay when no apostrophe follows.
    assert shingle_tokens("all of them") == ["all", "of", "them"]
    # Italian elisions too.
    assert shingle_tokens("dell'Europa e l'Italia") == ["europa", "e", "italia"]


def test_degenerate_texts() -> None:
    assert shingles("") == set() and shingles("— !") == set()
    empty = signature(set())
    assert similarity(empty, empty) == 0.0  # a text without words is nobody's copy
    one = signature(shingles("Kyiv"))
    assert similarity(one, one) == 1.0 and len(shingles("Kyiv")) == 1
    with pytest.raises(ValueError):
        similarity(one, one[:64])
    with pytest.raises(ValueError):
        band_keys(one[:64])


def test_nearest_picks_the_best_candidate_above_the_threshold() -> None:
    base = signature(shingles(text_of(make_set.base_document("energy-strike.en-wire"))))
    copy = signature(shingles(text_of(make_set.document("energy-strike.en-wire~word_edit-5~0"))))
    other = signature(shingles(text_of(make_set.base_document("arsenal-strike.en-wire"))))
    found = nearest(base, [("other", other), ("copy", copy)])
    assert found is not None and found[0] == "copy" and found[1] >= THRESHOLD
    assert nearest(base, [("other", other)]) is None


_SCRIPT = """
import json, sys
from monitor.minhash import band_keys, shingles, signature
sig = signature(shingles(sys.stdin.read()))
print(json.dumps([list(sig), band_keys(sig)]))
"""


def test_signatures_are_stable_across_processes() -> None:
    """Band keys live in a shared table: every worker, every run must compute the same."""
    text = make_set.base_document("kyiv-statement.uk-visti").text
    sig = signature(shingles(text))
    expected = [list(sig), band_keys(sig)]
    for hash_seed in ("0", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", _SCRIPT],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert json.loads(out.stdout) == expected


def test_estimate_tracks_exact_jaccard() -> None:
    """One-permutation hashing with densification estimates Jaccard like 128 permutations."""
    errors = []
    for spec in list(make_set.variant_specs().values())[::7]:
        a = shingles(text_of(make_set.base_document(spec["base"])))
        b = shingles(text_of(make_set.variant_document(spec)))
        exact = len(a & b) / len(a | b)
        errors.append(abs(similarity(signature(a), signature(b)) - exact))
    mean = sum(errors) / len(errors)
    # A 128-value estimate of J has a standard deviation of at most 0.044.
    assert mean < 0.045 and max(errors) < 0.2, f"mean error {mean:.3f}, max {max(errors):.3f}"


# --- the labelled set --------------------------------------------------------------


@cache
def _signatures() -> dict[str, tuple[tuple[int, ...], frozenset[int]]]:
    ids = [*make_set.articles(), *make_set.variant_specs()]
    out = {}
    for i in ids:
        sig = signature(shingles(text_of(make_set.document(i))))
        out[i] = (sig, frozenset(band_keys(sig)))
    return out


def _found(a: str, b: str) -> tuple[bool, float]:
    (sa, ka), (sb, kb) = _signatures()[a], _signatures()[b]
    s = similarity(sa, sb)
    return bool(ka & kb) and s >= THRESHOLD, s


@cache
def _evaluation() -> tuple[dict[tuple[str, str], list[bool]], dict[tuple[str, str], dict[str, float]], str]:
    data = make_set.load_labelled()
    variants: dict[str, list[str]] = defaultdict(list)
    for v in data["variants"]:
        variants[v["base"]].append(v["id"])
    recall: dict[tuple[str, str], list[bool]] = defaultdict(list)
    negatives: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: {"pairs": 0, "false": 0, "max": 0.0})
    for p in data["pairs"]:
        if p["near_duplicate"]:
            recall[(p["split"], p["kind"].removeprefix("near_dup/"))].append(_found(p["a"], p["b"])[0])
            continue
        # A negative pair stays negative with a variant of either side in its place.
        expanded = [(p["a"], p["b"])]
        expanded += [(v, p["b"]) for v in variants[p["a"]]] + [(p["a"], v) for v in variants[p["b"]]]
        stats = negatives[(p["split"], p["kind"])]
        for a, b in expanded:
            found, s = _found(a, b)
            stats["pairs"] += 1
            stats["false"] += found
            stats["max"] = max(stats["max"], s)
    lines = [f"near-duplicates ({minhash.SCHEME}, threshold {THRESHOLD})"]
    for split in ("dev", "heldout"):
        for (sp, kind), hits in sorted(recall.items()):
            if sp == split:
                lines.append(f"  {split:8} {kind:58} recall {sum(hits) / len(hits):.3f} ({sum(hits)}/{len(hits)})")
    for (sp, kind), st in sorted(negatives.items()):
        lines.append(
            f"  {sp:8} {kind:58} false merges {int(st['false'])}/{int(st['pairs'])}, max similarity {st['max']:.3f}"
        )
    report = "\n".join(lines)
    print(report)
    return dict(recall), dict(negatives), report


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_near_duplicates_are_found(split: str) -> None:
    recall, _, report = _evaluation()
    targets = (
        "word_edit-5",
        "word_edit-10",
        "chrome_swap",
        "chrome_strip",
        "truncate_last_paragraph",
        "headline_change",
    )
    for kind in targets:
        hits = recall[(split, kind)]
        assert sum(hits) / len(hits) >= 0.98, f"{split} {kind}\n{report}"
    # Block rewrites of 20% (the figure: 98%).
    hits = recall[(split, "block_rewrite-20")]
    assert sum(hits) / len(hits) >= 0.95, report


@pytest.mark.parametrize("split", ["dev", "heldout", "mixed"])
def test_no_false_merges(split: str) -> None:
    _, negatives, report = _evaluation()
    for (sp, kind), st in negatives.items():
        if sp == split:
            assert st["false"] == 0, f"{split} {kind}\n{report}"
    same_topic = negatives[(split, "same_topic_negative")]
    assert same_topic["pairs"] > 500, report


def test_timing() -> None:
    """CPU time per 600-word article (measured, reported; the bound only catches a regression by an order)."""
    words = " ".join(
        w
        for a in ("paris-summit.fr-quotidien", "paris-summit.fr-hebdo")
        for w in make_set.base_document(a).text.split()
    ).split()[:600]
    text = " ".join(words)
    n = 50
    t0 = time.process_time()
    for _ in range(n):
        toks = shingles(text)
    t1 = time.process_time()
    for _ in range(n):
        sig = signature(toks)
    t2 = time.process_time()
    for _ in range(n):
        band_keys(sig)
    t3 = time.process_time()
    per = [(t1 - t0) / n * 1000, (t2 - t1) / n * 1000, (t3 - t2) / n * 1000]
    print(
        f"600 words: shingles {per[0]:.3f} ms (tokenizer included), "
        f"signature {per[1]:.3f} ms, band keys {per[2]:.3f} ms"
    )
    assert per[1] < 5, per
