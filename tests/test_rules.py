"""Rule matching: examples from real articles, syntax errors, and FTS5 as the oracle."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.rules import Document, QuerySyntaxError, compile_rules, match, match_rules, parse_query


def matches(query: str, title: str = "", text: str = "") -> bool:
    return match(parse_query(query), Document.of(title, text)) is not None


@pytest.mark.parametrize(
    "query,text",
    [
        ('"cessez-le-feu"', "après un éventuel cessez-le - feu avec la Russie"),
        ('"cessez-le-feu"', "un CESSEZ LE FEU durable"),
        ('"garanties de sécurité"', "des garanties de securite robustes"),
        ('"garanties de sécurité"', "DES GARANTIES DE SÉCURITÉ"),
        ("Ukraine", "les engagements envers l'Ukraine"),
        ("Ukraine", "l’Ukraine"),
        ('"force multinationale"', "une « force multinationale » pour l'Ukraine"),
        ('"гарантії безпеки"', "Лідери погодили Гарантії безпеки для України"),
        ('"гарантии безопасности"', "о ГАРАНТИЯХ безопасности" + " и гарантии безопасности"),
        ("Sicherheitsgarantien", "Die Sicherheitsgarantien für Kiew"),
        ('"security guarantees" OR Witkoff', "envoy Steve Witkoff said"),
    ],
)
def test_matches(query: str, text: str) -> None:
    assert matches(query, text=text)


@pytest.mark.parametrize(
    "query,text",
    [
        ('"garanties de sécurité"', "des garanties pour la sécurité"),  # not adjacent
        ('"garanties de sécurité"', "une garantie de sécurité"),  # no stemming in this version
        ("Ukraine", "ukrainien"),  # whole words only
        ("Witkoff", "Whitkoff"),  # no typo tolerance in this version
        ('"гарантії безпеки"', "гарантій безпеки"),  # й is a letter, not и with an accent
        ('"cessez-le-feu"', "cessez le tir, le feu"),
    ],
)
def test_does_not_match(query: str, text: str) -> None:
    assert not matches(query, text=text)


def test_title_and_text_are_separate_fields() -> None:
    assert matches('"paris summit"', title="Paris summit", text="")
    assert not matches('"summit security"', title="Paris summit", text="security guarantees")


def test_match_reports_terms_and_snippet() -> None:
    ((rule, result),) = match_rules(
        compile_rules([("r", '"cessez-le-feu" OR Witkoff OR absent', ["console"])]),
        "Titre",
        "Le plan prévoit un cessez-le - feu surveillé, selon Witkoff.",
    )
    assert rule.name == "r"
    assert result.terms == ("cessez-le-feu", "Witkoff")
    assert "**cessez-le - feu**" in result.snippet and "**Witkoff**" in result.snippet


@pytest.mark.parametrize(
    "query,pos,fragment",
    [
        ('"garanties de sécurité', 0, "unterminated"),
        ('"a" OR', 4, "needs a term"),
        ('OR "a"', 0, "found OR"),
        ('"a" "b"', 4, "expected OR"),
        ("cessez-le-feu", 0, "double quotes"),
        ('"a" OR "!!"', 7, "no letters"),
        ("", 0, "empty"),
    ],
)
def test_syntax_errors_point_at_the_token(query: str, pos: int, fragment: str) -> None:
    with pytest.raises(QuerySyntaxError) as err:
        parse_query(query)
    assert err.value.pos == pos
    assert fragment in err.value.message
    lines = err.value.render().splitlines()
    assert lines[2].index("^") - 4 == pos and lines[1].strip() == query.strip()


# -- the oracle: SQLite FTS5 with the tokenizer our matcher imitates ---------

WORDS = [
    "sécurité",
    "securite",
    "garanties",
    "Garantie",
    "cessez",
    "le",
    "feu",
    "l",
    "Ukraine",
    "UKRAINE",
    "Kiev",
    "Київ",
    "гарантії",
    "безпеки",
    "гарантий",
    "безопасности",
    "Ёлка",
    "елка",
    "Paris",
    "naïve",
    "naive",
    "Zoë",
    "force",
    "forces",
    "2026",
    "35",
    "façade",
    "ÉLYSÉE",
    "élysée",
    "Straße",
    "ßtraße",
]
SEPARATORS = [" ", "  ", "-", " - ", "'", "’", ", ", ". ", " « ", " » ", "\n", "/", "(", ")", ":", "!", "?", "\u00a0"]


@st.composite
def texts(draw: st.DrawFn) -> str:
    n = draw(st.integers(0, 14))
    out = []
    for _ in range(n):
        out.append(draw(st.sampled_from(WORDS)))
        out.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(out)


@st.composite
def queries(draw: st.DrawFn) -> str:
    phrases = draw(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), min_size=1, max_size=3))
    return " OR ".join('"' + " ".join(p) + '"' for p in phrases)


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE docs USING fts5(title, text, tokenize = 'unicode61 remove_diacritics 2')")
    return db


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=queries(), docs=st.lists(st.tuples(texts(), texts()), min_size=1, max_size=6))
def test_same_documents_as_fts5(fts: sqlite3.Connection, query: str, docs: list[tuple[str, str]]) -> None:
    fts.execute("DELETE FROM docs")
    fts.executemany(
        "INSERT INTO docs(rowid, title, text) VALUES (?, ?, ?)", [(i + 1, t, x) for i, (t, x) in enumerate(docs)]
    )
    expected = {r[0] for r in fts.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (query,))}
    parsed = parse_query(query)
    got = {i + 1 for i, (t, x) in enumerate(docs) if match(parsed, Document.of(t, x)) is not None}
    assert got == expected
