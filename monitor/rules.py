"""Keyword rules: parse a query once, match it against many articles.

This version understands the subset every later version keeps: terms and
"quoted phrases" joined by OR, matched on whole tokens (see `monitor.text`)
in the title or the text, case- and accent-insensitively. A phrase matches
where its tokens stand next to each other in one field, so
"cessez-le-feu" finds "cessez-le - feu" and "Ukraine" finds "l'Ukraine".
Matching is pure: no I/O, so it is tested on plain strings.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from monitor.text import Token, tokenize


class QuerySyntaxError(ValueError):
    """A query that does not parse, with the offending position."""

    def __init__(self, query: str, pos: int, message: str) -> None:
        super().__init__(f"{message} at position {pos + 1}")
        self.query = query
        self.pos = pos
        self.message = message

    def render(self) -> str:
        """The message, the query and a caret under the offending token."""
        return f"{self.message} at position {self.pos + 1}\n    {self.query}\n    {' ' * self.pos}^"


@dataclass(frozen=True)
class Phrase:
    source: str  # as the user wrote it, for reports
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    source: str
    phrases: tuple[Phrase, ...]


def _lex(query: str) -> list[tuple[str, str, int]]:
    """(kind, value, position) with kind in PHRASE, WORD."""
    out: list[tuple[str, str, int]] = []
    i = 0
    n = len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c == '"':
            j = query.find('"', i + 1)
            if j < 0:
                raise QuerySyntaxError(query, i, "unterminated quoted phrase")
            out.append(("PHRASE", query[i + 1 : j], i))
            i = j + 1
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] != '"':
                j += 1
            out.append(("WORD", query[i:j], i))
            i = j
    return out


def parse_query(query: str) -> Query:
    """Parse `"a b" OR c OR "d"`; QuerySyntaxError says where it goes wrong."""
    tokens = _lex(query)
    if not tokens:
        raise QuerySyntaxError(query, 0, "empty query")
    phrases: list[Phrase] = []
    expect_operand = True
    for kind, value, pos in tokens:
        if expect_operand:
            if kind == "WORD" and value == "OR":
                raise QuerySyntaxError(query, pos, "expected a term or a quoted phrase, found OR")
            if kind == "WORD" and value in ("or", "and", "not", "AND", "NOT"):
                raise QuerySyntaxError(
                    query,
                    pos,
                    f"{value!r} is not supported here: join terms with OR "
                    "(upper case); put words in double quotes to search them",
                )
            if kind == "WORD" and (bad := next((c for c in value if c in "*()"), None)):
                raise QuerySyntaxError(
                    query,
                    pos + value.index(bad),
                    f"{bad!r} is not supported in this version (no wildcards or grouping)",
                )
            words = tuple(t.text for t in tokenize(value))
            if not words:
                raise QuerySyntaxError(query, pos, "this term has no letters or digits")
            if kind == "WORD" and len(words) > 1:
                raise QuerySyntaxError(query, pos, f"put {value!r} in double quotes to search it as a phrase")
            phrases.append(Phrase(value, words))
            expect_operand = False
        else:
            if kind == "WORD" and value == "OR":
                expect_operand = True
            elif kind == "WORD" and value.upper() in ("OR", "AND", "NOT"):
                raise QuerySyntaxError(
                    query, pos, f"operators are upper case and only OR is supported: write OR, not {value!r}"
                )
            else:
                raise QuerySyntaxError(query, pos, "expected OR between terms (this version supports only OR)")
    if expect_operand:
        raise QuerySyntaxError(query, tokens[-1][2], "OR at the end of the query needs a term after it")
    return Query(query, tuple(phrases))


@dataclass
class Field:
    """One searchable field of an article, tokenised once for all rules."""

    text: str
    tokens: list[Token]
    positions: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> Field:
        toks = tokenize(text)
        positions: dict[str, list[int]] = {}
        for i, t in enumerate(toks):
            positions.setdefault(t.text, []).append(i)
        return cls(text, toks, positions)

    def find(self, phrase: Sequence[str]) -> list[int]:
        """Token indexes where `phrase` starts."""
        starts = self.positions.get(phrase[0], [])
        if len(phrase) == 1:
            return list(starts)
        toks = self.tokens
        return [
            s
            for s in starts
            if s + len(phrase) <= len(toks) and all(toks[s + k].text == phrase[k] for k in range(1, len(phrase)))
        ]


@dataclass(frozen=True)
class Document:
    title: Field
    text: Field

    @classmethod
    def of(cls, title: str | None, text: str | None) -> Document:
        return cls(Field.of(title or ""), Field.of(text or ""))


@dataclass(frozen=True)
class MatchResult:
    terms: tuple[str, ...]  # the phrases that matched, as written in the rule
    snippet: str


def match(query: Query, doc: Document) -> MatchResult | None:
    hits: list[tuple[Field, int, int]] = []  # field, start token, length
    terms: list[str] = []
    for phrase in query.phrases:
        found = False
        for f in (doc.title, doc.text):
            for start in f.find(phrase.tokens):
                hits.append((f, start, len(phrase.tokens)))
                found = True
        if found:
            terms.append(phrase.source)
    if not terms:
        return None
    return MatchResult(tuple(terms), snippet(doc, hits))


def snippet(doc: Document, hits: Iterable[tuple[Field, int, int]], context: int = 12) -> str:
    """Keyword in context around the first hit in the text (else the title),
    with every hit in that window wrapped in ** **."""
    hits = list(hits)
    in_text = [h for h in hits if h[0] is doc.text]
    chosen = in_text or hits
    f, first, _ = min(chosen, key=lambda h: h[1])
    lo = max(0, first - context)
    hi = min(len(f.tokens), first + context * 2)
    marks = sorted({(s, s + n) for g, s, n in hits if g is f and lo <= s < hi})
    src = unicodedata.normalize("NFC", f.text)
    out: list[str] = []
    cursor = f.tokens[lo].start
    for s, e in marks:
        e = min(e, hi)
        a, b = f.tokens[s].start, f.tokens[e - 1].end
        if a < cursor:
            continue
        out.append(src[cursor:a])
        out.append("**" + src[a:b] + "**")
        cursor = b
    out.append(src[cursor : f.tokens[hi - 1].end])
    text = " ".join("".join(out).split())
    return ("… " if lo > 0 else "") + text + (" …" if hi < len(f.tokens) else "")


@dataclass(frozen=True)
class CompiledRule:
    name: str
    query: Query
    channels: tuple[str, ...]


def compile_rules(rules: Iterable[tuple[str, str, Sequence[str]]]) -> list[CompiledRule]:
    return [CompiledRule(name, parse_query(q), tuple(ch)) for name, q, ch in rules]


def match_rules(
    rules: Sequence[CompiledRule], title: str | None, text: str | None
) -> list[tuple[CompiledRule, MatchResult]]:
    doc = Document.of(title, text)
    out = []
    for rule in rules:
        result = match(rule.query, doc)
        if result is not None:
            out.append((rule, result))
    return out
