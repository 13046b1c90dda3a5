from __future__ import annotations

import subprocess
import sys

import pytest
from newssite import ARTICLES

from monitor.language import detect_language


@pytest.mark.parametrize("key", sorted(ARTICLES))
def test_fixture_languages(key: str) -> None:
    a = ARTICLES[key]
    lang, prob = detect_language("\n".join([a["title"], *a["paragraphs"]]))
    assert lang == a["language"]
    assert prob is not None and 0.5 < prob <= 1.0


SHORT = ["Paris, 6 janvier", "Kyiv – Київ", "Macron Starmer Merz", "OK", "Гарантії", "Sicherheit"]


def test_same_text_same_answer_in_one_process() -> None:
    first = [detect_language(t) for t in SHORT]
    for _ in range(5):
        assert [detect_language(t) for t in SHORT] == first


def test_same_answer_across_processes() -> None:
    code = (
        "import json,sys; from monitor.language import detect_language as d; "
        f"print(json.dumps([d(t) for t in {SHORT!r}]))"
    )
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1


def test_no_language() -> None:
    assert detect_language("") == (None, None)
    assert detect_language("12 345 — 2026") == (None, None)
