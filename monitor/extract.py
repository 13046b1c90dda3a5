"""Article pages -> title, text and metadata, and the choice of which text to keep.

trafilatura does the extraction with the settings that measured best on the
Zyte benchmark (`favor_precision=True, include_comments=False`, see
`../shared/benchmarks/README.md`). Its comparison with readability and
justext, half of its time, runs only when the first output is suspiciously
short: on the benchmark's development pages it changed no other page's text.
What site chrome still slips through is removed line by line by
`monitor.boilerplate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import lxml.html
import trafilatura
from lxml import etree
from lxml.etree import ParserError
from lxml.html import HtmlComment, HtmlElement, HtmlEntity, HtmlProcessingInstruction
from trafilatura.utils import (
    DOCTYPE_TAG,
    FAULTY_HTML,
    decode_file,
    handle_compressed_file,
    is_dubious_html,
    repair_faulty_html,
)

from monitor.boilerplate import clean_text
from monitor.metadata import page_metadata
from monitor.parse import Entry
from monitor.urls import normalize_url

TextSource = Literal["page", "feed_content", "feed_summary", "title"]


@dataclass(frozen=True)
class Article:
    url: str
    title: str | None = None
    text: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    canonical_url: str | None = None
    site_name: str | None = None
    image_url: str | None = None
    language: str | None = None  # as the page declares it (<html lang>, og:locale)
    meta_sources: dict[str, str] = field(default_factory=dict)  # field -> where it came from
    # langdetect's (code, probability) for the title and this text, when it ran with the extraction
    detected: tuple[str | None, float | None] | None = None


# A precise extraction this short is suspicious: trafilatura's precision mode
# sometimes keeps a lead paragraph and drops the article it introduces.
SHORT_WORDS = 100


# trafilatura's parser settings (trafilatura.utils.HTML_PARSER) with one difference: lxml.html's
# element class lookup calls Python for every element object lxml hands out, thousands per page
# as trafilatura walks the tree; this one is lxml's C lookup. Every element is still an
# HtmlElement and the text is the same (issue 4, throughput: 7% of the extraction time).
_PARSER = lxml.html.HTMLParser(
    collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True, remove_pis=True
)
_PARSER.set_element_class_lookup(
    etree.ElementDefaultClassLookup(
        element=HtmlElement, comment=HtmlComment, pi=HtmlProcessingInstruction, entity=HtmlEntity
    )
)


def parse_html(html: bytes | str) -> HtmlElement | None:
    """The page's tree, read as trafilatura.utils.load_html reads it (encoding guessed,
    faulty HTML repaired, bytes tried when the text fails), with `_PARSER`; None when
    it is not HTML."""
    text, controls = _decoded(html)
    beginning = text[:50].lower()
    text = repair_faulty_html(text, beginning) if controls else _repair_markup(text, beginning)
    try:
        tree: HtmlElement | None = lxml.html.fromstring(text, parser=_PARSER)
    except (ValueError, etree.LxmlError):  # ValueError: a str that declares its encoding
        tree = None
    if tree is None or len(tree) < 1:
        tree = _parse_bytes(text)
    if tree is not None and is_dubious_html(beginning) and len(tree) < 2:
        return None  # not HTML: text or a fragment
    return tree


# What repair_faulty_html deletes (trafilatura.utils.INVALID_XML_CHARS), as UTF-8 bytes.
_CONTROLS = bytes(c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D))
_NONCHARACTERS = ("\ufffe".encode(), "\uffff".encode())


def _decoded(html: bytes | str) -> tuple[str, bool]:
    """trafilatura.utils.decode_file(html), and whether the text may hold control
    characters or noncharacters. trafilatura's regex that removes them reads the
    whole text, character by character; in UTF-8 bytes they are found in half the time."""
    if isinstance(html, bytes):
        data = handle_compressed_file(html)
        try:
            text = data.decode("utf-8")  # decode_file's first choice
        except UnicodeDecodeError:
            pass
        else:
            controls = len(data.translate(None, _CONTROLS)) < len(data) or any(n in data for n in _NONCHARACTERS)
            return text, controls
    return decode_file(html), True


def _repair_markup(text: str, beginning: str) -> str:
    """trafilatura.utils.repair_faulty_html for a text without control characters."""
    if "doctype" in beginning:
        first, _, rest = text.partition("\n")
        text = DOCTYPE_TAG.sub("", first, count=1) + "\n" + rest
    for line in text[:4096].splitlines()[:4]:
        if "<html" in line and line.endswith("/>"):
            return str(FAULTY_HTML.sub(r"\1>", text, count=1))
    return text


def _parse_bytes(text: str) -> HtmlElement | None:
    try:
        return lxml.html.fromstring(text.encode("utf8", "surrogatepass"), parser=_PARSER)
    except (etree.LxmlError, ValueError):  # ParserError is an LxmlError
        return None


def _bare(tree: HtmlElement, url: str, precise: bool, compare: bool = True) -> Any:
    try:
        return trafilatura.bare_extraction(
            tree,
            url=url,
            favor_precision=precise,
            favor_recall=not precise,
            include_comments=False,
            include_tables=True,
            # Metadata comes from monitor.metadata, at a fraction of the cost.
            with_metadata=False,
            # trafilatura's comparison with readability and justext (`fast=False`): half its time.
            fast=not compare,
        )
    except (ValueError, TypeError, ParserError):  # trafilatura raises on some malformed input
        return None


def _text_of(doc: Any) -> str:
    return str(getattr(doc, "text", None) or "") if doc is not None else ""


def prefer_fuller(precise: str, recalled: str) -> bool:
    """Take the recall-mode text when the precise one is short and the other
    more than twice as long: the article, rather than its lead."""
    return word_count(precise) < SHORT_WORDS and word_count(recalled) > 2 * word_count(precise)


def extract_article(html: bytes | str, url: str) -> Article:
    """Extract what the page says; fields it does not yield are None."""
    tree = parse_html(html)
    if tree is None:
        return Article(url=url)
    meta = page_metadata(tree, url)
    doc = _bare(tree, url, precise=True, compare=False)
    if word_count(_text_of(doc)) < SHORT_WORDS:
        # Suspiciously short: again with trafilatura's comparison with readability and justext
        # (on the Zyte development pages it changed no longer output), then in recall mode.
        doc = _bare(tree, url, precise=True)
        if word_count(_text_of(doc)) < SHORT_WORDS:
            second = _bare(tree, url, precise=False)
            if doc is None or prefer_fuller(_text_of(doc), _text_of(second)):
                doc = second
    text = clean_text(_text_of(doc))
    title = meta.title
    if title and text.split("\n", 1)[0] == " ".join(title.split()):
        # Some templates put the headline inside the article element.
        text = text.split("\n", 1)[1] if "\n" in text else ""
    return Article(
        url=url,
        title=title,
        text=text or None,
        author=meta.author,
        published_at=meta.published_at,
        canonical_url=meta.canonical_url or _fetched_url(url),
        site_name=meta.site_name,
        image_url=meta.image_url,
        language=meta.language,
        meta_sources=meta.sources,
    )


def _fetched_url(url: str) -> str | None:
    try:
        normal = normalize_url(url)
    except ValueError:
        return None
    return normal if normal.startswith(("http://", "https://")) else None


_BLOCK_TAGS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "section", "article"}


def html_to_text(fragment: str | None) -> str:
    """Plain text of a feed's HTML content or summary, one line per block."""
    if not fragment or not fragment.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (ParserError, ValueError):
        return fragment.strip()
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag in ("script", "style"):
            el.drop_tree()
            continue
        if el.tag in _BLOCK_TAGS:
            el.tail = "\n" + (el.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return clean_text("\n".join(line for line in lines if line))


def word_count(text: str | None) -> int:
    return len(text.split()) if text else 0


# Phrases of paywalls, consent walls and error pages, in the languages we follow.
_WALL = re.compile(
    r"subscribe (?:now )?to (?:continue|read)|to continue reading|this (?:article|content) is (?:for|reserved for) "
    r"(?:subscribers|members)|already a subscriber|réservé aux abonnés|abonnez-vous pour (?:lire|continuer)|"
    r"déjà abonné|pour lire la suite|nur für abonnenten|jetzt (?:weiterlesen|abonnieren)|"
    r"доступн\w* (?:только )?(?:для|подписчикам)|оформіть передплату|"
    r"please enable (?:javascript|cookies)|enable javascript to|are you a robot|access denied|"
    r"page (?:not found|introuvable)|seite nicht gefunden|страница не найдена|сторінку не знайдено|"
    r"(?:accept|manage) (?:all )?cookies|consent to (?:the use of )?cookies|accepter (?:les|tous les) cookies",
    re.I,
)
WALL_WORDS = 250


def is_wall(text: str) -> bool:
    """A short page that mostly asks for a subscription, consent or a login, or
    says the page is gone: not the article, however it was extracted."""
    return word_count(text) < WALL_WORDS and _WALL.search(text) is not None


def choose_text(article: Article | None, entry: Entry) -> tuple[str, TextSource]:
    """The best text we have for an entry, and where it came from.

    Order: page, feed content, feed summary, title. A page that is a paywall,
    a consent wall or an error page, or whose text is shorter than the
    feed's own, does not replace it.
    """
    page = article.text if article else None
    if page and is_wall(page):
        page = None  # a paywall, consent wall or error page says nothing about the article
    feed_texts: list[tuple[str, TextSource]] = [
        (html_to_text(entry.content), "feed_content"),
        (html_to_text(entry.summary), "feed_summary"),
    ]
    best_feed = next(((t, s) for t, s in feed_texts if t), None)
    if page and (best_feed is None or word_count(page) >= word_count(best_feed[0])):
        return page, "page"
    if best_feed is not None:
        return best_feed
    title = entry.title or (article.title if article else None) or ""
    return title, "title"
