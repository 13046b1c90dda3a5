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


@pytest.mark.parametrize(
    "html,expected",
    [
        (b'<!doctype html><html lang="fr-FR"><head>', "fr"),
        (b"<html class='x' lang='uk'>", "uk"),
        (b'<html><head><meta property="og:locale" content="ru_RU">', "ru"),
        (b"<html><head><title>x</title>", None),
    ],
)
def test_page_language(html: bytes, expected: str | None) -> None:
    from monitor.metadata import page_language

    assert page_language(html) == expected


@pytest.mark.parametrize(
    "text,page,feed,expected",
    [
        ("Sommet à Paris", "fr", "en", ("fr", None, "page")),  # three French words: langdetect would guess
        ("Гарантії безпеки Україні", None, "uk", ("uk", None, "feed")),  # Ukrainian vs Russian on a title
        ("Гарантии безопасности Украине", None, None, None),  # nothing declared: whatever detection says
    ],
)
def test_short_texts_fall_back_to_what_is_declared(
    text: str, page: str | None, feed: str | None, expected: tuple[str, None, str] | None
) -> None:
    from monitor.language import choose_language

    got = choose_language(text, page, feed)
    if expected is None:
        assert got[2] == "detected" and got[0] == detect_language(text)[0]
    else:
        assert got == expected


def test_long_confident_text_is_detected_whatever_is_declared() -> None:
    from monitor.language import choose_language

    a = ARTICLES["de_summit"]
    code, probability, source = choose_language(" ".join(a["paragraphs"]), "fr", "en")
    assert (code, source) == ("de", "detected") and probability is not None and probability > 0.9
