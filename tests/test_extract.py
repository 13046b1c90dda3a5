"""Extraction on our fixture pages (own text, several site templates and languages)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from newssite import ARTICLES, CHROME, FIXTURES

from monitor.boilerplate import clean_text, is_chrome
from monitor.extract import Article, choose_text, extract_article, html_to_text, is_wall
from monitor.parse import Entry


def flat(s: str) -> str:
    return " ".join(s.split())


@pytest.mark.parametrize("key", sorted(ARTICLES))
def test_every_paragraph_kept_and_chrome_gone(key: str) -> None:
    a = ARTICLES[key]
    art = extract_article((FIXTURES / a["file"]).read_bytes(), a["canonical"])
    assert art.text
    body = flat(art.text)
    for para in a["paragraphs"]:
        assert flat(para) in body
    leaked = [c for c in CHROME if c in art.text]
    assert leaked == []
    assert art.title == a["title"]
    assert art.canonical_url == a["canonical"]
    if a.get("author"):
        assert art.author == a["author"]
    published = datetime.fromisoformat(a["published"]).astimezone(UTC)
    assert art.published_at is not None and art.published_at.date() == published.date()


@pytest.mark.parametrize(
    "line",
    [
        "Skip to content",
        "Aller au contenu",
        "facebook icon twitter icon linkedin icon",
        "Copié!",
        "Copié !",
        "Plus de contenu",
        "Photo : Ludovic Marin / AFP",
        "© Reuters",
        "Lire aussi",
        "Partager sur Facebook",
        "Inscrivez-vous à notre newsletter quotidienne",
        "Nous utilisons des cookies pour mesurer l'audience.",
        "Ce contenu a été créé avec l'aide de l'IA et relu par la rédaction.",
        "Zum Inhalt springen",
        "Перейти к содержанию",
        "Par Sophie Giraud · Publié le 06/01/2026 à 07h30",
    ],
)
def test_chrome_lines(line: str) -> None:
    assert is_chrome(line)


@pytest.mark.parametrize(
    "line",
    [
        "Le sommet a réuni trente-cinq pays à Paris le 6 janvier.",
        "Facebook a supprimé plusieurs comptes liés à la campagne de désinformation, selon la plateforme.",
        "La photo de famille des dirigeants a été prise sur le perron de l'Élysée avant la signature.",
        "We use cookies, the minister joked, as a metaphor for small incentives that add up over years of talks.",
    ],
)
def test_article_sentences_are_not_chrome(line: str) -> None:
    assert not is_chrome(line)
    assert clean_text(line) == line


ENTRY = Entry(
    guid="g",
    url="http://127.0.0.1/a",
    title="Titre",
    summary="<p>Un résumé court.</p>",
    content="<p>Le texte complet de l'article, <b>avec</b> du balisage.</p><p>Second paragraphe.</p>",
    author=None,
    published_at=None,
    updated_at=None,
)


def test_choose_text_order() -> None:
    long_page = Article(url="u", text=" ".join(["mot"] * 50))
    assert choose_text(long_page, ENTRY) == (long_page.text, "page")
    assert choose_text(None, ENTRY) == (
        "Le texte complet de l'article, avec du balisage.\nSecond paragraphe.",
        "feed_content",
    )
    no_content = Entry(**{**ENTRY.__dict__, "content": None})
    assert choose_text(Article(url="u"), no_content) == ("Un résumé court.", "feed_summary")
    bare = Entry(**{**ENTRY.__dict__, "content": None, "summary": None})
    assert choose_text(None, bare) == ("Titre", "title")


def test_stub_page_does_not_replace_fuller_feed_text() -> None:
    stub = Article(url="u", text="Abonnez-vous pour lire la suite")
    text, source = choose_text(stub, ENTRY)
    assert source == "feed_content"


def test_html_to_text_drops_scripts() -> None:
    assert html_to_text("<p>a<script>alert(1)</script></p><p>b</p>") == "a\nb"


def test_garbage_page_gives_empty_article() -> None:
    assert extract_article(b"\x00\x01\x02", "http://127.0.0.1/x").text is None
    assert extract_article(b"", "http://127.0.0.1/x").text is None


def test_headline_is_not_repeated_in_the_text() -> None:
    for key, a in ARTICLES.items():
        art = extract_article((FIXTURES / a["file"]).read_bytes(), a["canonical"])
        assert art.text is not None
        assert art.text.splitlines()[0] != " ".join(a["title"].split()), key


def test_a_suspiciously_short_extraction_gets_a_second_pass() -> None:
    from monitor.extract import prefer_fuller

    lead = "Un chapeau de vingt mots. " * 4
    article = "Le corps de l'article, bien plus long. " * 40
    assert prefer_fuller(lead, article)
    assert not prefer_fuller(lead, lead + "un peu plus")  # not more than twice as long
    assert not prefer_fuller(article, article * 3)  # long enough already


PARA = (
    "Les garanties de sécurité pour l’Ukraine ont été détaillées à l’Élysée, où les dirigeants "
    "européens se sont réunis autour d’Emmanuel Macron. "
) * 3


def _page(charset: str | None) -> str:
    meta = f'<meta charset="{charset}">' if charset else ""
    return (
        f"<html><head>{meta}<title>Sécurité</title></head><body><article><h1>Sécurité à Paris</h1>"
        f"<p>{PARA}</p><p>{PARA}</p><p>Détails &amp; entités&nbsp;: &eacute;t&eacute; &#8217;ok&#8217;.</p>"
        "</article></body></html>"
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_page("utf-8").encode("cp1252"), id="windows-1252 declared utf-8"),
        pytest.param(_page("windows-1252").encode("utf-8"), id="utf-8 declared windows-1252"),
        pytest.param(_page(None).encode("utf-8"), id="utf-8 undeclared"),
        pytest.param(_page(None).encode("cp1252"), id="windows-1252 undeclared"),
        pytest.param(b"\xef\xbb\xbf" + _page("utf-8").encode("utf-8"), id="utf-8 BOM"),
        pytest.param(_page("utf-16").encode("utf-16"), id="utf-16 BOM"),
    ],
)
def test_encodings_and_entities_come_out_right(body: bytes) -> None:
    text = extract_article(body, "http://127.0.0.1/x").text or ""
    assert " ".join(PARA.split()) in " ".join(text.split())
    assert "Détails & entités : été ’ok’." in " ".join(text.replace("\u00a0", " ").split())


@pytest.mark.parametrize(
    "wall",
    [
        "Sommet de Paris : ce que prévoit la déclaration. Cet article est réservé aux abonnés. Déjà abonné ? "
        "Connectez-vous. Abonnez-vous pour lire la suite, 1 € le premier mois, sans engagement, résiliable à tout "
        "moment depuis votre espace client, avec accès illimité à tous nos contenus et à l'application.",
        "To continue reading, subscribe now. Already a subscriber? Sign in. Get unlimited access to award-winning "
        "journalism on security guarantees, the Paris summit and the war in Ukraine, for less than a coffee a week.",
        "We value your privacy. We and our 842 partners use cookies and similar technologies to store and access "
        "information on your device, to measure audiences and personalise content. Accept all cookies or manage "
        "cookies to choose which purposes you consent to. You can change your choice at any time.",
        "Page introuvable. La page que vous cherchez n'existe plus ou a été déplacée. Retour à l'accueil.",
    ],
)
def test_walls_do_not_replace_the_feed_text(wall: str) -> None:
    feed = Entry(**{**ENTRY.__dict__, "content": None, "summary": "<p>Résumé de la dépêche.</p>"})
    text, source = choose_text(Article(url="u", text=wall), feed)
    assert (text, source) == ("Résumé de la dépêche.", "feed_summary")


def test_an_article_about_subscriptions_is_not_a_wall() -> None:
    article = " ".join(ARTICLES["fr_summit_main"]["paragraphs"])
    mentioning = article + " Les abonnés pourront suivre le sommet en direct."
    assert not is_wall(mentioning)
    long_article_with_footer = article + " Abonnez-vous pour lire la suite de nos analyses. " + article
    assert not is_wall(long_article_with_footer)


@pytest.mark.parametrize(
    "html",
    [
        *((FIXTURES / a["file"]).read_bytes() for a in ARTICLES.values()),
        b"",
        b"plain text, not a page",
        b"<p>a fragment</p>",
        b"\xef\xbb\xbf<!DOCTYPE html><html><body><p>after a BOM</p></body></html>",
        "<?xml version='1.0' encoding='utf-8'?><html><body><p>déclarée</p></body></html>",
        "<html><body><p>café</p></body></html>".encode("cp1252"),
        b"<html/>\n<body><p>self-closed html</p></body>",
        b"<html><body><p>control \x00\x01 characters</p></body></html>",
    ],
)
def test_pages_are_parsed_as_trafilatura_parses_them(html: bytes | str) -> None:
    from lxml.etree import tostring
    from lxml.html import HtmlElement
    from trafilatura.utils import load_html

    from monitor.extract import parse_html

    ours, theirs = parse_html(html), load_html(html)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert tostring(ours) == tostring(theirs)
        assert all(isinstance(el, HtmlElement) for el in ours.iter())


def test_only_short_output_gets_the_comparison_and_the_recall_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first pass skips trafilatura's comparison with readability and justext (half its
    cost); a short output is extracted again with it, and if still short, in recall mode."""
    import monitor.extract as extract

    calls: list[tuple[bool, bool]] = []
    real = extract._bare

    def spy(tree: object, url: str, precise: bool, compare: bool = True) -> object:
        calls.append((precise, compare))
        return real(tree, url, precise, compare)  # type: ignore[arg-type]

    monkeypatch.setattr(extract, "_bare", spy)
    a = next(iter(ARTICLES.values()))
    extract_article((FIXTURES / a["file"]).read_bytes(), a["canonical"])
    assert calls == [(True, False)]
    calls.clear()
    extract_article(b"<html><body><article><p>Trois mots seulement.</p></article></body></html>", "http://x/")
    assert calls == [(True, False), (True, True), (False, True)]
