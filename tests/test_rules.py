"""Rule matching: examples from real articles, syntax errors, and FTS5 as the oracle."""

from __future__ import annotations

import random
import re
import sqlite3
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import rules as rules_module
from monitor.rules import (
    _TOKEN_CHAR,
    ELISIONS,
    Document,
    Field,
    QuerySyntaxError,
    RuleSet,
    RuleSpec,
    compile_rule,
    compile_rules,
    match,
    match_rules,
    parse_query,
    to_fts5,
    within_one_edit,
)
from monitor.text import is_token_char, tokenize


def matches(
    query: str,
    title: str = "",
    text: str = "",
    *,
    stem: bool = False,
    fuzzy: int = 0,
    language: str | None = None,
    site: str | None = None,
    feed: str | None = None,
) -> bool:
    doc = Document.of(title, text, language, site, feed)
    return match(parse_query(query), doc, stem=stem, fuzzy=fuzzy) is not None


@pytest.mark.parametrize(
    "query,text",
    [
        ('"cessez-le-feu"', "après un éventuel cessez-le - feu avec la Russie"),
        ("cessez-le-feu", "après un éventuel cessez-le - feu avec la Russie"),  # unquoted: still a phrase
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
        ("secur*", "la sécurité de l'Europe"),
        ("sécur*", "SECURITE"),
        ('"cessez-le-f"*', "un cessez-le-feu"),
        ("безпек*", "гарантії безпеки"),
        ("Witkoff Kushner", "Kushner and Witkoff met"),  # adjacency is AND, in any order
        ("Witkoff AND Kushner", "Kushner and Witkoff met"),
        ("Witkoff NOT Dmitriev", "Witkoff met"),
        ("Witkoff AND NOT Dmitriev", "Witkoff met"),
        ("(Witkoff OR Kushner) Moscou", "Kushner à Moscou"),
        ("ukraine or", "Ukraine or"),  # lower-case operators are terms, as in FTS5
        ("NEAR(Witkoff Poutine)", "Witkoff doit rencontrer Vladimir Poutine"),
        ("NEAR(Witkoff Poutine, 2)", "Poutine a reçu Witkoff"),
        ("Witkoff NEAR/3 Poutine", "Witkoff doit rencontrer Vladimir Poutine"),
        ("(Witkoff OR Kushner) NEAR/1 Poutine", "Kushner et Poutine"),
        ('NEAR((Witkoff OR Kushner) "Vladimir Poutine", 0)', "Vladimir Poutine, Kushner"),
    ],
)
def test_matches(query: str, text: str) -> None:
    assert matches(query, text=text)


@pytest.mark.parametrize(
    "query,text",
    [
        ('"garanties de sécurité"', "des garanties pour la sécurité"),  # not adjacent
        ('"garanties de sécurité"', "une garantie de sécurité"),  # no stemming unless the rule asks
        ("Ukraine", "ukrainien"),  # whole words only
        ("Witkoff", "Whitkoff"),  # no typo tolerance unless the rule asks
        ('"гарантії безпеки"', "гарантій безпеки"),  # й is a letter, not и with an accent
        ('"cessez-le-feu"', "cessez le tir, le feu"),
        ("Witkoff Kushner", "Witkoff met"),
        ("Witkoff NOT Dmitriev", "Witkoff met Dmitriev"),
        ("Witkoff AND NOT Dmitriev", "Witkoff met Dmitriev"),
        ("ukraine or", "Ukraine"),
        ("secur*", "insécurité"),  # a prefix of the word, not of a part of it
        ("NEAR(Witkoff Poutine, 2)", "Witkoff doit rencontrer Vladimir Poutine"),
        ("Witkoff NEAR/2 Poutine", "Witkoff doit rencontrer Vladimir Poutine"),
        ("(Witkoff OR Kushner) NEAR/0 Poutine", "Kushner et Poutine"),
    ],
)
def test_does_not_match(query: str, text: str) -> None:
    assert not matches(query, text=text)


def test_precedence_is_fts5s() -> None:
    # Adjacency binds tighter than NOT: a NOT (b c).
    assert matches("ukraine NOT russie guerre", text="Ukraine Russie")
    assert not matches("ukraine NOT russie guerre", text="Ukraine Russie guerre")
    # NOT tighter than AND, AND tighter than OR.
    assert matches("paix OR ukraine AND russie", text="paix")
    assert not matches("paix OR ukraine AND russie", text="ukraine")
    assert matches("ukraine AND russie NOT guerre", text="Ukraine Russie")
    assert not matches("ukraine AND russie NOT guerre", text="Ukraine Russie guerre")


def test_title_and_text_are_separate_fields() -> None:
    assert matches('"paris summit"', title="Paris summit", text="")
    assert not matches('"summit security"', title="Paris summit", text="security guarantees")
    assert not matches("NEAR(summit security)", title="Paris summit", text="security guarantees")


def test_field_filters() -> None:
    title, text = "Sommet de Paris : la force multinationale", "Zelensky et Macron parlent de l'Ukraine"
    assert matches("title:paris", title, text)
    assert not matches("text:paris", title, text)
    assert matches('title:"force multinationale"', title, text)
    assert matches("title:(berlin OR paris) text:ukraine", title, text)
    assert matches("Title: paris", title, text)  # FTS5 also allows a space and any case
    assert not matches("title:(paris zelensky)", title, text)  # both in the title
    assert matches("paris zelensky", title, text)
    assert matches("title:NEAR(sommet multinationale, 4)", title, text)
    assert not matches("title:(text:paris)", title, text)
    assert matches("ukraine NOT title:ukraine", title, text)


def test_metadata_filters() -> None:
    text = "Ukraine : la force multinationale"
    assert matches("ukraine lang:fr", text=text, language="fr")
    assert matches("ukraine lang:fr", text=text, language="fr-CA")
    assert matches("ukraine lang:FR", text=text, language="fr")
    assert not matches("ukraine lang:fr", text=text, language="en")
    assert not matches("ukraine lang:fr", text=text)
    assert matches("ukraine NOT lang:en", text=text)
    assert matches("ukraine site:lemonde.fr", text=text, site="https://www.lemonde.fr/international/x.html")
    assert matches("ukraine site:www.lemonde.fr", text=text, site="lemonde.fr")
    assert matches("ukraine site:lemonde.fr", text=text, site="https://abonnes.lemonde.fr/x")
    assert not matches("ukraine site:lemonde.fr", text=text, site="https://notlemonde.fr/x")
    assert not matches("ukraine site:lemonde.fr", text=text, site="https://lemonde.fr.example.com/x")
    assert matches("ukraine (site:lemonde.fr OR site:liberation.fr)", text=text, site="www.liberation.fr")
    assert matches("ukraine feed:lemonde-international", text=text, feed="lemonde-international")
    assert not matches("ukraine feed:lemonde", text=text, feed="lemonde-international")
    assert not matches("ukraine feed:lemonde", text=text)


def test_rule_languages_option() -> None:
    rules = compile_rules(
        [
            RuleSpec("fr-only", "ukraine", ["console"], languages=("fr",)),
            RuleSpec("fr-or-uk", "ukraine", ["console"], languages=("fr", "uk")),
            RuleSpec("all", "ukraine", ["console"]),
        ]
    )

    def names(language: str | None) -> list[str]:
        return [r.name for r, _ in match_rules(rules, "", "Ukraine", language=language)]

    assert names("fr") == ["fr-only", "fr-or-uk", "all"]
    assert names("fr-BE") == ["fr-only", "fr-or-uk", "all"]
    assert names("uk") == ["fr-or-uk", "all"]
    assert names(None) == ["all"]


# -- elision: a deliberate difference from FTS5 -------------------------------


def test_elided_articles_are_not_positions() -> None:
    text = "Paris promet des garanties à l'Ukraine et des armes d’Europe ; qu'il vienne"
    assert matches('"à Ukraine"', text=text)  # FTS5 needs "à l Ukraine"
    assert matches('"à l\'Ukraine"', text=text)  # elided in the query too
    assert matches('"armes d\'Europe"', text=text)
    assert matches('"armes Europe"', text=text)
    assert not matches("l", text=text)
    assert not matches("qu", text=text)
    assert matches("NEAR(garanties ukraine, 1)", text=text)  # "l'" does not count
    # Only before a letter, only whole tokens, only the listed articles.
    assert matches("l", text="l'2026 ou l' avenir")
    assert matches("d", text="le plan D’")
    assert matches("bl", text="bl'Ukraine")
    assert matches("o", text="O'Brien")


def test_elision_differs_from_fts5() -> None:
    db = fts_table()
    db.execute("INSERT INTO docs(rowid, title, text) VALUES (1, '', ?)", ("des garanties à l'Ukraine",))
    assert not rows(db, '"à Ukraine"')
    assert matches('"à Ukraine"', text="des garanties à l'Ukraine")


def test_elision_snippet_keeps_the_article() -> None:
    ((_, result),) = match_rules(compile_rules([("r", '"à Ukraine"', [])]), "", "des garanties à l'Ukraine")
    assert result.snippet == "des garanties **à l'Ukraine**"


# -- stems and typos ----------------------------------------------------------


@pytest.mark.parametrize("language", ["fr", None])
def test_stemming_french(language: str | None) -> None:
    assert matches('"garantie de sécurité"', text="des garanties de sécurité", stem=True, language=language)
    assert matches('"force multinationale"', text="des forces multinationales", stem=True, language=language)
    assert matches('"forces multinationales"', text="une force multinationale", stem=True, language=language)
    assert matches("garanties", text="GARANTIE", stem=True, language=language)
    assert not matches('"garantie de sécurité"', text="des garanties pour la sécurité", stem=True, language=language)
    assert not matches('"force multinationale"', text="des forces multinationales", language=language)


def test_stemming_follows_the_item_language() -> None:
    assert matches("guarantees", text="a security guarantee", stem=True, language="en")
    assert matches("гарантии", text="о гарантиях", stem=True, language="ru")
    assert matches('"гарантія безпеки"', text="гарантій безпеки", stem=True, language="uk")  # via Russian
    assert not matches("guarantees", text="a security guarantee", stem=True, language="zh")  # no stemmer
    assert matches("guarantees", text="guarantees", stem=True, language="zh")


def test_typos() -> None:
    assert matches("Witkoff", text="Steve Whitkoff said", fuzzy=1)  # insertion
    assert matches("Witkoff", text="Steve Witkof said", fuzzy=1)  # deletion
    assert matches("Witkoff", text="Steve Witcoff said", fuzzy=1)  # substitution
    assert matches("Witkoff", text="Steve Wiktoff said", fuzzy=1)  # swap
    assert matches('"Steve Witkoff"', text="Steve Whitkoff said", fuzzy=1)  # in phrases too
    assert not matches("Witkoff", text="Steve Whitcoff said", fuzzy=1)  # two edits
    assert not matches("Kiev", text="Kiew", fuzzy=1)  # four letters: not fuzzed
    assert not matches("12345", text="12346", fuzzy=1)  # numbers are not fuzzed
    assert matches("Kiev", text="Kiev", fuzzy=1)


@pytest.mark.parametrize(
    "a,b,close",
    [
        ("witkoff", "witkoff", True),
        ("witkoff", "whitkoff", True),
        ("witkoff", "witkof", True),
        ("witkoff", "wiktoff", True),
        ("witkoff", "xitkoff", True),
        ("witkoff", "witkofx", True),
        ("witkoff", "itkoff", True),
        ("witkoff", "witkoffs", True),
        ("witkoff", "wtikofx", False),
        ("witkoff", "witkoffss", False),
        ("witkoff", "wiktofx", False),
        ("abc", "cba", False),
    ],
)
def test_within_one_edit(a: str, b: str, close: bool) -> None:
    assert within_one_edit(a, b) is close and within_one_edit(b, a) is close


def test_cyrillic() -> None:
    assert matches('"коаліція охочих"', text="про «Коаліцію охочих» у Парижі", stem=True, language="uk")
    assert matches("переговори", text="на переговорах", stem=True, language="uk")
    assert matches("Україн*", text="підтримка України")
    assert matches('"саммит в Париже"', text="САММИТ в Париже")
    assert not matches("Ёлка", text="елка")  # ё is its own letter, as in FTS5
    assert not matches("Ёлка", text="елка", stem=True, language="ru")  # with stems too (stem_prefix)
    assert matches("Ёлки", text="ёлка", stem=True, language="ru")


# -- rules, rule sets and reports ---------------------------------------------


def test_match_reports_terms_and_snippet() -> None:
    ((rule, result),) = match_rules(
        compile_rules([("r", '"cessez-le-feu" OR Witkoff OR absent', ["console"])]),
        "Titre",
        "Le plan prévoit un cessez-le - feu surveillé, selon Witkoff.",
    )
    assert rule.name == "r"
    assert result.terms == ("cessez-le-feu", "Witkoff")
    assert "**cessez-le - feu**" in result.snippet and "**Witkoff**" in result.snippet


def test_terms_are_those_that_made_the_match() -> None:
    ((_, result),) = match_rules(
        compile_rules([("r", "(Witkoff Moscou) OR Kushner OR secur* NOT Dmitriev", [])]),
        "",
        "Witkoff rencontre Kushner pour la sécurité",
    )
    assert result.terms == ("Kushner", "secur*")  # Witkoff's branch does not hold; Dmitriev is negated
    ((_, result),) = match_rules(compile_rules([("r", "Witkoff NEAR/2 Poutine", [])]), "", "Poutine. " * 9 + "Witkoff")
    assert result.snippet.count("**Poutine**") == 3  # only those within the window


def test_compile_rules_takes_specs_and_tuples() -> None:
    rules = compile_rules(
        [("plain", "ukraine", ["console"]), RuleSpec("spec", "ukrain*", ("console", "slack"), stem=True, fuzzy=1)]
    )
    assert isinstance(rules, RuleSet) and len(rules) == 2
    assert [r.name for r in rules] == ["plain", "spec"]
    assert rules[1].channels == ("console", "slack") and rules[1].stem and rules[1].fuzzy == 1
    assert [r.name for r, _ in match_rules(list(rules), "", "Ukraine")] == ["plain", "spec"]
    with pytest.raises(ValueError):
        compile_rules([RuleSpec("bad", "ukraine", fuzzy=2)])
    with pytest.raises(QuerySyntaxError):
        compile_rules([("bad", "(ukraine", [])])


# A RuleSet finds atoms by scanning each text when it has few of them and
# through a lexicon of the words seen when it has many (see RuleSet): both ways
# are tested on the same small rule sets.
STRATEGIES = pytest.mark.parametrize("scan", [True, False], ids=["scan", "lexicon"])


def rule_set(specs: list[RuleSpec | tuple[str, str, list[str]]], scan: bool) -> RuleSet:
    return RuleSet((compile_rule(spec) for spec in specs), scan=scan)


@STRATEGIES
def test_rule_set_evaluates_only_candidates(scan: bool) -> None:
    rules = rule_set(
        [
            ("a", "ukraine", []),
            ("b", '"force multinationale" russie', []),
            ("c", "secur* OR paix", []),
            ("d", "russie NOT ukraine", []),
        ],
        scan,
    )
    assert rules.candidates(Document.of("", "la force multinationale")) == []
    assert rules.candidates(Document.of("", "la force multinationale et la Russie")) == [1, 3]
    assert rules.candidates(Document.of("", "sécuriser l'Ukraine")) == [0, 2]


@STRATEGIES
def test_rule_set_finds_stems_and_typos(scan: bool) -> None:
    rules = rule_set(
        [
            RuleSpec("typo", "Witkoff", fuzzy=1),
            RuleSpec("stem", '"forces multinationales"', stem=True),
            RuleSpec("stem-uk", "гарантія", stem=True, languages=("uk",)),
        ],
        scan,
    )
    cases = [
        ("Witkof", "en", ["typo"]),
        ("Whitkoff", None, ["typo"]),
        ("Wiktoff", "fr", ["typo"]),
        ("Witßoff", "de", ["typo"]),  # a letter no rule has
        ("Witkoffs", None, ["typo"]),
        ("Whitkof", None, []),
        ("une force multinationale", "fr", ["stem"]),
        ("une force multinationale", None, ["stem"]),
        ("гарантій", "uk", ["stem-uk"]),
        ("гарантій", "ru", []),
    ]
    for text, language, names in cases:
        assert [r.name for r, _ in rules.match("", text, language)] == names, text


def test_to_fts5() -> None:
    assert to_fts5("a NOT b c") == '"a" NOT ("b" AND "c")'
    assert to_fts5("(a OR b) c") == '("a" OR "b") AND "c"'
    assert to_fts5("a AND (b OR NOT c)") == '"a" NOT ("c" NOT "b")'
    assert to_fts5("(a OR b) NEAR/3 c") == 'NEAR("a" "c", 3) OR NEAR("b" "c", 3)'
    assert to_fts5('title:"l\'Ukraine" secur*') == 'title : ("Ukraine") AND "secur"*'
    assert to_fts5("ukraine lang:fr") is None
    assert to_fts5("ukraine", stem=True) is None
    assert to_fts5("ukraine", fuzzy=1) is None


# -- syntax errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "query,pos,fragment",
    [
        ('"garanties de sécurité', 0, "unterminated"),
        ('"a" OR', 4, "needs a term"),
        ('OR "a"', 0, "found OR"),
        ("a AND OR b", 6, "found OR"),
        ("a NOT", 2, "needs a term"),
        ("(a OR)", 3, "needs a term"),
        ('"a" OR "!!"', 7, "no letters"),
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("(a OR b", 0, "never closed"),
        ("a OR b)", 6, "no matching ("),
        ("ukraine ()", 8, "empty parentheses"),
        ("NOT ukraine", 0, "at least one term"),
        ("ukraine OR NOT russie", 11, "at least one term"),
        ("lang:fr", 0, "at least one term"),
        ("ukraine OR site:x.org", 11, "at least one term"),
        ("NEAR(a b, x)", 10, "whole number"),
        ("NEAR(a b, 5", 4, "never closed"),
        ("NEAR(a b", 4, "never closed"),
        ("NEAR()", 0, "at least one term"),
        ("NEAR(a AND b)", 7, "NEAR(...) takes terms"),
        ("NEAR(title:a b)", 5, "before NEAR"),
        ("a NEAR/x b", 7, "NEAR/ needs a distance"),
        ("a NEAR/ b", 7, "NEAR/ needs a distance"),
        ("a NEAR/3 b NEAR/4 c", 11, "one distance"),
        ("(a OR b AND c) NEAR/3 d", 6, "NEAR joins"),
        ("a NEAR/3", 2, "needs a term"),
        ("title:", 0, "empty field filter"),
        ("title: OR b", 0, "empty field filter"),
        ("ukraine text:)", 8, "empty field filter"),
        ("ukraine lang:", 8, "empty filter"),
        ("ukraine lang: fr", 8, "empty filter"),
        ("foo:bar", 0, "title:, text:, lang:, site: and feed:"),
        ("ukraine https://x.org", 8, "unknown field 'https'"),
        ("*", 0, "bare *"),
        ("ukraine *", 8, "bare *"),
        ("ukraine se*cur", 10, "only allowed at the end"),
        ("ukraine -russie", 8, "NOT russie"),
        ("a, b", 1, "comma"),
        ("title:(lang:fr a)", 7, "not a field"),
    ],
)
def test_syntax_errors_point_at_the_token(query: str, pos: int, fragment: str) -> None:
    with pytest.raises(QuerySyntaxError) as err:
        parse_query(query)
    assert err.value.pos == pos, err.value.render()
    assert fragment in err.value.message
    lines = err.value.render().splitlines()
    assert lines[2].index("^") - 4 == pos and lines[1].strip() == query.strip()


# -- the tokenizer: the same tokens as monitor.text, faster ---------------------


def test_token_characters_are_monitor_texts() -> None:
    token_char = re.compile(_TOKEN_CHAR)
    for start in range(0, 0x110000, 0x1000):
        chunk = [chr(o) for o in range(start, start + 0x1000)]
        assert [bool(token_char.fullmatch(c)) for c in chunk] == [is_token_char(c) for c in chunk], hex(start)


def test_folding_whole_texts_is_folding_each_token() -> None:
    # Field folds a whole text at once (str.lower, then a table of Latin
    # accents) unless it has "İ" or "Σ"; monitor.text folds token by token.
    chars = [chr(o) for o in range(0x20, 0x3000) if is_token_char(chr(o)) and chr(o) not in "\u0130\u03a3"]
    for text in (" ".join(chars), "".join(chars), "-".join(c * 3 for c in chars)):
        assert Field(text).words == [t.text for t in tokenize(text)]


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=40) | st.text("aàÀlLĺdDqQuU'’ -_.²İΣσςß\u0301ё", max_size=40))
def test_fields_tokenise_as_monitor_text(text: str) -> None:
    f = Field(text)
    assert f.tokens == tokenize(text)
    expected = [
        t.text
        for i, t in enumerate(f.tokens)
        if not (
            t.text in ELISIONS
            and f.source[t.end : t.end + 1] in ("'", "\u2019")
            and t.end + 2 <= len(f.source)
            and re.fullmatch(r"[^\W\d_]", f.source[t.end + 1])
            and i + 1 < len(f.tokens)
            and f.tokens[i + 1].start == t.end + 1
        )
    ]
    assert f.words == expected
    assert [f.tokens[k].text for k in f.keep] == f.words


# -- the oracle: SQLite FTS5 with the tokenizer our matcher imitates ------------

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
# Queries and documents favour a few words (in other spellings for queries),
# so that most queries match some documents and not others.
IN_DOCS = WORDS + 3 * ["sécurité", "garanties", "le", "feu", "Ukraine", "Київ", "безпеки", "елка", "naive", "élysée"]
IN_QUERIES = WORDS + 2 * ["securite", "garanties", "feu", "UKRAINE", "Київ", "безпеки", "Ёлка", "naïve", "ÉLYSÉE"]


@st.composite
def texts(draw: st.DrawFn, words: list[str] = WORDS, elisions: bool = False, size: int = 14) -> str:
    out = []
    for _ in range(draw(st.integers(size // 4, size))):
        word, sep = draw(st.sampled_from(words)), draw(st.sampled_from(SEPARATORS))
        if not elisions and fold_simple(word) in ELISIONS and sep in ("'", "’"):
            sep = " "  # FTS5 does not elide: keep the oracle's documents free of elisions
        out += [word, sep]
    return "".join(out)


def fold_simple(word: str) -> str:
    return word.lower()


@st.composite
def phrases(draw: st.DrawFn, words: list[str] = IN_QUERIES) -> str:
    """A term, a quoted phrase or a prefix, in the syntax FTS5 and we share."""
    kind = draw(st.sampled_from(["term", "term", "phrase", "prefix", "phrase-prefix"]))
    if kind == "term":
        return draw(st.sampled_from(words))
    if kind == "prefix":
        word = draw(st.sampled_from(words))
        return word[: draw(st.integers(1, len(word)))] + "*"
    ws = draw(st.lists(st.sampled_from(words), min_size=1, max_size=2))
    if kind == "phrase-prefix":
        ws[-1] = ws[-1][: draw(st.integers(1, len(ws[-1])))]
        return '"' + " ".join(ws) + '"*'
    return '"' + " ".join(ws) + '"'


@st.composite
def near_groups(draw: st.DrawFn) -> str:
    items = draw(st.lists(phrases(), min_size=1, max_size=2))
    distance = draw(st.none() | st.integers(0, 6))
    return f"NEAR({' '.join(items)}{'' if distance is None else f', {distance}'})"


@st.composite
def simple_items(draw: st.DrawFn) -> str:
    """What FTS5 lets stand next to each other: [column:] phrase or NEAR group."""
    column = draw(st.sampled_from(["", "", "", "", "title:", "text:"]))
    return column + draw(phrases() | near_groups())


@st.composite
def fts5_queries(draw: st.DrawFn, depth: int = 2) -> str:
    """Queries in the subset both FTS5 and we accept, written with minimal
    parentheses so that precedence is exercised too."""
    kind = draw(st.integers(0, 3)) if depth else 0
    if kind == 0:
        return " ".join(draw(st.lists(simple_items(), min_size=1, max_size=2)))
    if kind == 1:
        op = draw(st.sampled_from(["AND", "OR", "NOT"]))
        return f"{draw(fts5_queries(depth - 1))} {op} {draw(fts5_queries(depth - 1))}"
    if kind == 2:
        return f"({draw(fts5_queries(depth - 1))})"
    return f"{draw(st.sampled_from(['title', 'text']))}:({draw(fts5_queries(depth - 1))})"


@st.composite
def our_queries(draw: st.DrawFn, depth: int = 2, words: list[str] = IN_QUERIES) -> str:
    """Our extensions too: unary NOT, adjacency of groups, NEAR/N, NEAR over alternatives."""
    kind = draw(st.integers(0, 8)) if depth else 0

    def sub() -> str:
        return draw(our_queries(depth - 1, words))

    if kind == 0:
        return " ".join(draw(st.lists(phrases(words), min_size=1, max_size=2)))
    if kind == 1:
        return f"{sub()} {draw(st.sampled_from(['AND', 'OR', 'NOT', '']))} {sub()}"
    if kind == 2:
        return f"({sub()}) {sub()}"
    if kind == 3:
        return f"{sub()} AND NOT {sub()}"
    if kind == 4:
        return f"{sub()} AND ({sub()} OR NOT {sub()})"
    if kind == 5:
        items = draw(st.lists(phrases(words), min_size=2, max_size=3))
        return f" NEAR/{draw(st.integers(0, 5))} ".join(items)
    if kind == 6:
        a, b, c = draw(phrases(words)), draw(phrases(words)), draw(phrases(words))
        return f"NEAR(({a} OR {b}) {c}, {draw(st.integers(0, 5))})"
    if kind == 7:
        return f"{draw(st.sampled_from(['title', 'text']))}:({sub()}) {sub()}"
    return f"({sub()})"


def fts_table() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE docs USING fts5(title, text, tokenize = 'unicode61 remove_diacritics 2')")
    return db


def rows(db: sqlite3.Connection, query: str) -> set[int]:
    return {r[0] for r in db.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (query,))}


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    return fts_table()


def load(db: sqlite3.Connection, docs: list[tuple[str, str]]) -> None:
    db.execute("DELETE FROM docs")
    db.executemany(
        "INSERT INTO docs(rowid, title, text) VALUES (?, ?, ?)", [(i + 1, t, x) for i, (t, x) in enumerate(docs)]
    )


def ours(query: str, docs: list[tuple[str, str]]) -> set[int]:
    parsed = parse_query(query)
    return {i + 1 for i, (t, x) in enumerate(docs) if match(parsed, Document.of(t, x)) is not None}


DOCS = st.lists(st.tuples(texts(IN_DOCS, size=8), texts(IN_DOCS, size=25)), min_size=1, max_size=8)
ORACLE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@ORACLE
@given(query=fts5_queries(), docs=DOCS)
def test_same_documents_as_fts5(fts: sqlite3.Connection, query: str, docs: list[tuple[str, str]]) -> None:
    load(fts, docs)
    expected = rows(fts, query)
    assert ours(query, docs) == expected
    translated = to_fts5(query)
    assert translated is not None and rows(fts, translated) == expected


@ORACLE
@given(query=our_queries(), docs=DOCS)
def test_extensions_mean_what_fts5_says(fts: sqlite3.Connection, query: str, docs: list[tuple[str, str]]) -> None:
    translated = to_fts5(query)
    assert translated is not None
    load(fts, docs)
    assert ours(query, docs) == rows(fts, translated)


# -- the prefilter never drops a match ------------------------------------------

# Words that stems, typos, prefixes and elisions bring together.
RICH = [
    "garantie",
    "garanties",
    "sécurité",
    "securites",
    "force",
    "forces",
    "multinationales",
    "Witkoff",
    "Whitkoff",
    "Witkof",
    "Wiktoff",
    "guarantee",
    "guaranteed",
    "гарантий",
    "гарантиях",
    "гарантія",
    "Ukraine",
    "l",
    "d",
    "qu",
    "il",
    "Kiev",
    "Kiew",
]


# Plain random generators here: hypothesis draws every choice through its
# engine, which would make this test spend seconds generating rule sets.


def random_phrase(rng: random.Random, words: list[str]) -> str:
    ws = rng.choices(words, k=rng.choice([1, 1, 1, 2]))
    if rng.random() < 0.2:
        ws[-1] = ws[-1][: rng.randint(1, len(ws[-1]))]
        return (ws[0] if len(ws) == 1 and rng.random() < 0.5 else '"' + " ".join(ws) + '"') + "*"
    return ws[0] if len(ws) == 1 else '"' + " ".join(ws) + '"'


def random_query(rng: random.Random, words: list[str], depth: int = 2) -> str:
    """The shapes of our_queries()."""
    kind = rng.randint(0, 8) if depth else 0

    def sub() -> str:
        return random_query(rng, words, depth - 1)

    def p() -> str:
        return random_phrase(rng, words)

    if kind == 0:
        return " ".join(p() for _ in range(rng.randint(1, 2)))
    if kind == 1:
        return f"{sub()} {rng.choice(['AND', 'OR', 'NOT', ''])} {sub()}"
    if kind == 2:
        return f"({sub()}) {sub()}"
    if kind == 3:
        return f"{sub()} AND NOT {sub()}"
    if kind == 4:
        return f"{sub()} AND ({sub()} OR NOT {sub()})"
    if kind == 5:
        return f" NEAR/{rng.randint(0, 5)} ".join(p() for _ in range(rng.randint(2, 3)))
    if kind == 6:
        return f"NEAR(({p()} OR {p()}) {p()}, {rng.randint(0, 5)})"
    if kind == 7:
        return f"{rng.choice(['title', 'text'])}:({sub()}) {sub()}"
    return f"({sub()})"


def random_text(rng: random.Random, words: list[str], size: int) -> str:
    return "".join(rng.choice(words) + rng.choice(SEPARATORS) for _ in range(rng.randint(0, size)))


def random_rule(rng: random.Random, name: str) -> RuleSpec:
    query = random_query(rng, RICH, rng.choice([1, 2]))
    extra = rng.choice(["", "", "lang:fr", "NOT lang:en", "site:lemonde.fr", "feed:wire"])
    return RuleSpec(
        name,
        f"({query}) {extra}" if extra else query,
        (),
        rng.choice([(), (), ("fr",), ("fr", "uk"), ("ru",), ("zh",)]),
        rng.random() < 0.5,
        rng.choice([0, 0, 1]),
    )


@STRATEGIES
@settings(max_examples=300, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_rule_set_finds_what_each_rule_finds(scan: bool, rng: random.Random) -> None:
    specs = [random_rule(rng, f"r{i}") for i in range(rng.randint(1, 12))]
    rules = rule_set(specs, scan)
    for _ in range(rng.randint(1, 4)):
        article = (
            random_text(rng, RICH, 6),
            random_text(rng, RICH, 40),
            rng.choice([None, "fr", "en", "uk", "ru", "de", "zh"]),
            rng.choice([None, "https://www.lemonde.fr/x", "https://abonnes.lemonde.fr/", "liberation.fr"]),
            rng.choice([None, "wire", "other"]),
        )
        fast = match_rules(rules, *article)
        slow = match_rules(list(rules), *article)
        assert fast == slow, (specs, article)


def test_rule_sets_choose_how_to_find_atoms(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = [("a", "ukraine OR russie", []), ("b", "paix", [])]  # three atoms
    assert compile_rules(specs)._scan is not None
    monkeypatch.setattr(rules_module, "_SCAN_ATOMS", 2)
    assert compile_rules(specs)._scan is None


# Typo terms are found through anchors and exact words (see _Typos): every
# word one edit away must be found, whatever the edit, its place and the
# letter involved (one of the terms' letters or another, in any script).
EDIT_LETTERS = "abkorßé0жx"


@st.composite
def one_edit(draw: st.DrawFn) -> tuple[str, str]:
    term = draw(st.text("abkortw", min_size=5, max_size=11))
    i = draw(st.integers(0, len(term)))
    c = draw(st.sampled_from(EDIT_LETTERS))
    kind = draw(st.sampled_from(["insert", "delete", "replace", "swap", "same"]))
    if kind == "insert":
        word = term[:i] + c + term[i:]
    elif kind == "delete" and i < len(term):
        word = term[:i] + term[i + 1 :]
    elif kind == "replace" and i < len(term):
        word = term[:i] + c + term[i + 1 :]
    elif kind == "swap" and i + 1 < len(term):
        word = term[:i] + term[i + 1] + term[i] + term[i + 2 :]
    else:
        word = term
    return term, word


@STRATEGIES
@settings(max_examples=300, deadline=None)
@given(edit=one_edit(), others=st.lists(st.text("abkortwßé", min_size=1, max_size=9), max_size=6))
def test_typos_are_all_found(scan: bool, edit: tuple[str, str], others: list[str]) -> None:
    term, word = edit
    rules = rule_set([RuleSpec("typo", term, fuzzy=1), RuleSpec("plain", f"{term} OR zzz")], scan)
    text = " ".join([*others, word, *others])
    names = [r.name for r, _ in match_rules(rules, "", text)]
    assert names == [r.name for r, _ in match_rules(list(rules), "", text)]
    assert ("typo" in names) == any(within_one_edit(term, t.text) for t in tokenize(text))


@st.composite
def near_words(draw: st.DrawFn, terms: list[str]) -> str:
    """A word one or two edits from one of terms, or any word."""
    word = draw(st.sampled_from(terms) | st.text("abkorß", min_size=1, max_size=12))
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(word)))
        c = draw(st.sampled_from(EDIT_LETTERS))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "swap"]))
        if kind == "insert":
            word = word[:i] + c + word[i:]
        elif kind == "delete" and i < len(word) and len(word) > 1:
            word = word[:i] + word[i + 1 :]
        elif kind == "replace" and i < len(word):
            word = word[:i] + c + word[i + 1 :]
        elif kind == "swap" and i + 1 < len(word):
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word


@settings(max_examples=300, deadline=None)
@given(data=st.data(), terms=st.lists(st.text("abkor", min_size=5, max_size=10), min_size=1, max_size=6, unique=True))
def test_lexicon_finds_the_words_one_typo_away(data: st.DataObject, terms: list[str]) -> None:
    # What _Lexicon learns of new words (_Atoms.of: anchors, word lengths,
    # swaps): exactly the typo terms within one edit, and the plain tokens.
    ids = {("f", t): i for i, t in enumerate(terms)} | {("t", t): len(terms) + i for i, t in enumerate(terms)}
    atoms = rules_module._Atoms(ids, frozenset(ids.values()))
    words = list(dict.fromkeys(data.draw(st.lists(near_words(terms), min_size=1, max_size=12))))
    found = atoms.of(words)
    for w in words:
        expected = {i for i, t in enumerate(terms) if within_one_edit(t, w)} | {
            len(terms) + i for i, t in enumerate(terms) if t == w
        }
        assert set(found.get(w, ())) == expected, (terms, w)
    assert found.keys() <= set(words)


@STRATEGIES
def test_rule_set_words_are_learnt_within_bounds(scan: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules_module._Lexicon, "LIMIT", 8)  # replaced, never cleared, every few articles
    specs = [random_rule(random.Random(i), f"r{i}") for i in range(12)]
    rules = rule_set(specs, scan)
    rng = random.Random(7)
    for _ in range(40):
        article = (random_text(rng, RICH, 6), random_text(rng, RICH, 30), rng.choice([None, "fr", "ru"]))
        assert match_rules(rules, *article) == match_rules(list(rules), *article)


# -- what matching is made of: the spaced text and snippets from its offsets -----


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.characters(codec="utf-8"), max_size=40)
    | st.text("aàÀlLĺdDqQuU'’ -_.²ßё«\xa0—", max_size=40)
    | st.text("aЯяЁёЇїІіҐґЙй'’ -_.,«»\xa0—…№µ§", max_size=40)  # Windows-1251 (see _spaced)
)
def test_spaced_text_keeps_every_token_at_its_offsets(text: str) -> None:
    f = Field(text)
    if not f._aligned:  # İ or Σ: folded token by token (see _fold_text)
        assert "\u0130" in f.source or "\u03a3" in f.source
        return
    assert len(f.spaced) == len(f.unelided()) == len(f.source)
    kept = set(f.keep)
    for i, t in enumerate(f.tokens):
        assert f.unelided()[t.start : t.end] == t.text
        assert f.spaced[t.start : t.end] == (t.text if i in kept else " " * (t.end - t.start))
    assert f.spaced.split() == f.words and f.unelided().split() == [t.text for t in f.tokens]


def test_latin1_text_is_in_nfc() -> None:
    # Field takes Latin-1 text as it is (see _nfc): no character of it
    # composes with the next, nor decomposes.
    chars = [chr(o) for o in range(0x100)]
    assert all(unicodedata.is_normalized("NFC", a + b) for a in chars for b in chars)


ELIDING = ["l", "d", "qu", "L", "jusqu", "Ukraine", "Europe", "garanties", "à", "paix", "sécurité", "2026"]


@settings(max_examples=200, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_snippets_from_offsets_are_those_from_every_token(rng: random.Random) -> None:
    # _snippet finds offsets around the first hit only; Field.offsets has every
    # token's: the same snippets, elided articles counting in the window.
    words = RICH + ELIDING
    for _ in range(5):
        query = random_query(rng, words, rng.choice([1, 2]))
        title, text = random_text(rng, words, 5), random_text(rng, words, rng.choice([10, 60, 150]))
        stem, fuzzy = rng.random() < 0.3, rng.choice([0, 1])
        fast = match(parse_query(query), Document.of(title, text, "fr"), stem=stem, fuzzy=fuzzy)
        doc = Document.of(title, text, "fr")
        doc.title._aligned = doc.text._aligned = False  # the field as if it had İ or Σ
        assert fast == match(parse_query(query), doc, stem=stem, fuzzy=fuzzy), (query, title, text)
