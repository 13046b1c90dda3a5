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


LANGDETECT_CASES = [
    *SHORT,
    "Emmanuel MACRON et Keir STARMER à l'ÉLYSÉE, mardi 6 janvier",  # capitalised words are skipped
    "Voir https://www.elysee.fr/emmanuel-macron/2026/01/06 ou écrire à presse@elysee.fr",
    "  beaucoup   d'espaces\t\tet\n\nde lignes  ",
    "Київ, 6 січня (Укрінформ) – Гарантії безпеки для України обговорили в Парижі. Kyiv Independent",
    "Tiếng Việt có dấu: Hà Nội, Việt Nam",  # decomposed and precomposed diacritics
    "東京で会議が開かれた。カタカナ、ひらがな、한국어 텍스트",
    "ab",
    "",
    "— 12 345 —",
]


@pytest.mark.parametrize("text", LANGDETECT_CASES + [a["title"] for a in ARTICLES.values()])
def test_the_same_answers_as_langdetect(text: str) -> None:
    """monitor.language.detect_langs is langdetect's algorithm, only faster: same
    codes, same probabilities to the last bit (including langdetect's errors)."""
    import langdetect
    from langdetect.lang_detect_exception import LangDetectException

    from monitor.language import detect_langs

    def theirs() -> object:
        try:
            return [(str(x.lang), float(x.prob)) for x in langdetect.detect_langs(text)]
        except LangDetectException as e:
            return str(e)

    def ours() -> object:
        try:
            return detect_langs(text)
        except LangDetectException as e:
            return str(e)

    assert ours() == theirs()


@pytest.mark.parametrize("key", sorted(ARTICLES))
def test_the_same_answers_as_langdetect_on_whole_articles(key: str) -> None:
    import langdetect

    from monitor.language import detect_langs

    a = ARTICLES[key]
    text = "\n".join([a["title"], *a["paragraphs"]])
    for sample in (text, text[:2000], text[:300]):
        assert detect_langs(sample) == [(str(x.lang), float(x.prob)) for x in langdetect.detect_langs(sample)]
