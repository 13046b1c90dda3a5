"""Keyword rules: parse a query once, match it against many articles.

The query language is SQLite FTS5's, so that FTS5 can serve as the oracle
of the tests, plus what media-monitoring users expect:

    query   := or
    or      := and ("OR" and)*
    and     := not ("AND" not)*
    not     := seq ("NOT" seq)*            a NOT b: a, but not b
    seq     := unary unary*                adjacency is an AND that binds
                                           tighter than every operator
    unary   := "NOT" unary | near          NOT b alone, inside a larger AND
    near    := primary ("NEAR/" N primary)*      a NEAR/5 b
    primary := term | "quoted phrase" | term* | "phrase"* | ( or )
             | NEAR(item item ... [, N])   item: term, phrase or (a OR b)
             | title:primary | text:primary
             | lang:fr | site:example.org | feed:NAME

Operators are upper case only; `or`, `and`, `not`, `near` in lower case are
ordinary terms, as in FTS5. Precedence is FTS5's: adjacency, then NOT, AND,
OR, so `a NOT b c` is `a NOT (b c)`. A term that the tokenizer splits
(`cessez-le-feu`, `Article 5-like` in quotes) is a phrase, as in FTS5.
`NEAR(a "b c", N)` holds where every phrase ends at most N tokens before
the start of the last one to start, in any order, in one field (N is 10 by
default); `a NEAR/N b` is `NEAR(a b, N)`. `lang:` matches the item's
language ("fr" also matches "fr-CA"), `site:` the host of the article's URL
and its subdomains (`www.` ignored), `feed:` the feed's name. A rule must
require at least one term, so `NOT x` or `lang:fr` alone is refused.

Matching is on tokens (see `monitor.text`): case- and accent-insensitive,
Latin and Cyrillic alike, so "cessez-le-feu" finds "cessez-le - feu".
Rules may also ask for Snowball stems (`stem`, see `monitor.stemming`) and
for one typo in terms of five letters or more (`fuzzy = 1`, where a typo is
one insertion, deletion, substitution or swap of neighbours).

Deliberate differences from FTS5, besides the extensions above:
- Elision: a token `l`, `d`, `qu`, `j`, `n`, `s`, `c`, `m`, `t` (and
  `jusqu`, `lorsqu`..., Italian `dell`, `all`, `un`...) directly followed by
  an apostrophe (' or ’) and a letter is not a position, in articles and in
  queries alike: "l'Ukraine" is the single token "ukraine", so
  `"garanties pour Ukraine"` finds "garanties pour l'Ukraine" and NEAR
  distances do not count articles. FTS5 keeps "l" as a token.
- Implicit AND and field filters apply to parenthesised groups too
  (`(a OR b) c`, `title:(a OR b) c`), and NEAR takes alternatives
  (`NEAR((a OR b) c, 5)`); FTS5 refuses these (`to_fts5` rewrites them).

Everything is pure (no I/O). `compile_rules` builds a `RuleSet` once: an
Aho-Corasick automaton over the literal tokens and prefixes that each rule
requires, so an article is tokenised once and only the rules that could
match it are evaluated exactly.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import NamedTuple, NoReturn, TypeAlias, overload
from urllib.parse import urlsplit

import ahocorasick

from monitor import stemming
from monitor.text import Token, fold

# -- tokens -------------------------------------------------------------------

# Exactly `monitor.text.is_token_char` (categories L*, N*, Co) as a regex, so
# that tokenising runs in C; tests/test_rules.py checks every code point.
_TOKEN_CHAR = r"[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]"
# The same but for "_", as one character class: much faster than the
# alternation, and right for every text without "_".
_TOKEN_CLASS = r"[\w\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]"
# Pieces of a text: separator, token, separator, ..., separator (split is
# as fast as findall, and the separators give offsets for snippets).
_PIECES = re.compile(f"((?:{_TOKEN_CHAR})+)")
_PIECES_FAST = re.compile(f"({_TOKEN_CLASS}+)")
_LETTER = re.compile(r"[^\W\d_]")
ELISIONS: frozenset[str] = frozenset(
    {"l", "d", "j", "m", "n", "s", "t", "c", "qu", "jusqu", "lorsqu", "puisqu", "quoiqu", "presqu", "quelqu"}
    | {"dell", "all", "dall", "nell", "sull", "quell", "un"}
)

_FOLDED: dict[str, str] = {}


def _deaccent_table() -> list[int]:
    """Code point -> the code point `monitor.text.fold` gives it once lower-cased."""
    table = list(range(0x2100))  # Latin, Cyrillic, punctuation: what news text uses
    for o in [*range(0x80, 0x250), *range(0x1E00, 0x1F00)]:
        folded = fold(chr(o))
        if len(folded) == 1 and chr(o) == chr(o).lower():
            table[o] = ord(folded)
    return table


_DEACCENT = _deaccent_table()
_LATIN_ACCENTS = re.compile("[\xc0-\u024f\u1e00-\u1eff]")  # where _DEACCENT changes anything
_NOT_PER_CHARACTER = re.compile("[\u0130\u03a3]")  # İ and Σ: str.lower() is not per character


def _fold_text(source: str) -> str | None:
    """The text with every token folded, in C: lower case, then Latin accents
    removed character by character; None when str.lower() would not do
    (İ lowers to two characters, Σ to σ or ς by context)."""
    if _NOT_PER_CHARACTER.search(source):
        return None
    lowered = source.lower()
    return lowered.translate(_DEACCENT) if _LATIN_ACCENTS.search(lowered) else lowered


def _fold(token: str) -> str:
    folded = _FOLDED.get(token)
    if folded is None:
        folded = token.lower() if token.isascii() else fold(token)
        if len(_FOLDED) >= 1 << 18:  # bounded: a crawler sees an endless vocabulary
            _FOLDED.clear()
        _FOLDED[token] = folded
    return folded


def _pieces(source: str) -> list[str]:
    return (_PIECES if "_" in source else _PIECES_FAST).split(source)


def _folded(source: str, pieces: list[str], lowered: bool = False) -> list[str]:
    """The tokens of `pieces`, folded, "" for elided articles: a token in
    ELISIONS that an apostrophe and a letter follow."""
    tokens = pieces[1::2]
    if lowered:  # from _fold_text: tokens are folded already
        folded: list[str | None] = tokens  # type: ignore[assignment]
    else:
        folded = list(map(_FOLDED.get, tokens))  # in C: most words were seen before
        i = -1
        with contextlib.suppress(ValueError):
            while True:
                i = folded.index(None, i + 1)
                folded[i] = _fold(tokens[i])
    separators = None
    for apostrophe in ("'", "\u2019"):
        if apostrophe in source:
            separators = separators or pieces[2::2]  # the one after each token
            i = -1
            with contextlib.suppress(ValueError):
                while True:
                    i = separators.index(apostrophe, i + 1)  # exactly the apostrophe, then a token
                    if folded[i] in ELISIONS and i + 1 < len(tokens) and _LETTER.match(tokens[i + 1]):
                        folded[i] = ""
    return folded  # type: ignore[return-value]


def _fuzzable(token: str) -> bool:
    return len(token) >= 5 and token.isalpha()


def within_one_edit(a: str, b: str) -> bool:
    """Optimal-string-alignment distance at most 1 (a swap of neighbours is one edit)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if la > lb:
        a, b, la, lb = b, a, lb, la
    if lb - la > 1:
        return False
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    if la == lb:
        if a[i + 1 :] == b[i + 1 :]:
            return True
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
    return a[i:] == b[i + 1 :]


# -- the query language ---------------------------------------------------------


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
    """A term, a quoted phrase or a prefix: the leaves of a query."""

    source: str  # as the user wrote it, for reports
    tokens: tuple[str, ...]  # folded, elided articles left out
    surfaces: tuple[str, ...] = ()  # the same tokens as written, for to_fts5
    prefix: bool = False  # the last token is a prefix
    pos: int = 0


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]
    pos: int = 0


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]
    pos: int = 0


@dataclass(frozen=True)
class Not:
    child: Node
    pos: int = 0


@dataclass(frozen=True)
class Near:
    slots: tuple[tuple[Phrase, ...], ...]  # each slot: alternatives
    distance: int = 10
    pos: int = 0


@dataclass(frozen=True)
class FieldFilter:
    field: str  # "title" or "text"
    child: Node
    pos: int = 0


@dataclass(frozen=True)
class Meta:
    key: str  # "lang", "site" or "feed"
    value: str  # normalised
    pos: int = 0


Node: TypeAlias = Phrase | And | Or | Not | Near | FieldFilter | Meta
FIELDS = ("title", "text")
METADATA = ("lang", "site", "feed")


def _leaves(node: Node) -> Iterator[Phrase]:
    if isinstance(node, Phrase):
        yield node
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from _leaves(child)
    elif isinstance(node, Not | FieldFilter):
        yield from _leaves(node.child)
    elif isinstance(node, Near):
        for slot in node.slots:
            yield from slot


@dataclass(frozen=True)
class Query:
    source: str
    root: Node

    @property
    def phrases(self) -> tuple[Phrase, ...]:
        """Every term and phrase of the query, in the order written."""
        return tuple(_leaves(self.root))


class _Lexeme(NamedTuple):
    kind: str  # word string ( ) , AND OR NOT NEAR NEAR/ field meta end
    value: str
    pos: int
    prefix: bool = False  # a string followed by *
    number: int = 0  # the N of NEAR/N
    arg: str = ""  # the value of a metadata filter


_IDENT = re.compile(r"[A-Za-z_]+")
_OPERAND_START = frozenset({"word", "string", "(", "NEAR", "field", "meta"})


def _read_string(query: str, i: int) -> tuple[str, int]:
    """The content of the quoted string at i and the index after it; `""`
    inside is a quote, as in FTS5."""
    parts: list[str] = []
    j = i + 1
    while True:
        k = query.find('"', j)
        if k < 0:
            raise QuerySyntaxError(query, i, "unterminated quoted phrase")
        if query.startswith('""', k):
            parts.append(query[j : k + 1])
            j = k + 2
            continue
        parts.append(query[j:k])
        return "".join(parts), k + 1


def _bare_end(query: str, i: int) -> int:
    n = len(query)
    while i < n and not query[i].isspace() and query[i] not in '"(),':
        i += 1
    return i


def _lex(query: str) -> list[_Lexeme]:
    out: list[_Lexeme] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "(),":
            out.append(_Lexeme(c, c, i))
            i += 1
        elif c == '"':
            value, j = _read_string(query, i)
            prefix = query.startswith("*", j)
            out.append(_Lexeme("string", value, i, prefix=prefix))
            i = j + prefix
        else:
            j = _bare_end(query, i)
            word = query[i:j]
            colon = word.find(":")
            if colon > 0 and _IDENT.fullmatch(word[:colon]):
                name = word[:colon].lower()
                after = i + colon + 1
                if name in FIELDS:
                    out.append(_Lexeme("field", name, i))
                    i = after
                    continue
                if name in METADATA:
                    if query.startswith('"', after):
                        value, end = _read_string(query, after)
                    else:
                        end = _bare_end(query, after)
                        value = query[after:end]
                    if not value.strip():
                        example = {"lang": "lang:fr", "site": "site:lemonde.fr", "feed": "feed:NAME"}[name]
                        raise QuerySyntaxError(query, i, f"empty filter: {name}: needs a value, e.g. {example}")
                    out.append(_Lexeme("meta", name, i, arg=value.strip()))
                    i = end
                    continue
                raise QuerySyntaxError(
                    query,
                    i,
                    f"unknown field {word[:colon]!r}: the fields are title:, text:, lang:, site: and feed: "
                    '(put a term with a colon in double quotes, e.g. "12:30")',
                )
            if word in ("AND", "OR", "NOT"):
                out.append(_Lexeme(word, word, i))
            elif word == "NEAR" and query[j:].lstrip().startswith("("):
                out.append(_Lexeme("NEAR", word, i))
            elif word.startswith("NEAR/"):
                digits = word[5:]
                if not (digits.isascii() and digits.isdigit()):
                    raise QuerySyntaxError(query, i + 5, "NEAR/ needs a distance in words, e.g. a NEAR/5 b")
                out.append(_Lexeme("NEAR/", word, i, number=int(digits)))
            else:
                out.append(_Lexeme("word", word, i))
            i = j
    out.append(_Lexeme("end", "", n))
    return out


def _query_tokens(value: str) -> list[tuple[str, str]]:
    """(folded, as written) for each token of a query term, elided articles left out."""
    source = unicodedata.normalize("NFC", value)
    pieces = _pieces(source)
    return [(f, t) for f, t in zip(_folded(source, pieces), pieces[1::2], strict=True) if f]


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.lexemes = _lex(query)
        self.i = 0

    def error(self, pos: int, message: str) -> NoReturn:
        raise QuerySyntaxError(self.query, pos, message)

    def peek(self) -> _Lexeme:
        return self.lexemes[self.i]

    def take(self) -> _Lexeme:
        lexeme = self.lexemes[self.i]
        self.i += 1
        return lexeme

    def parse(self) -> Node:
        if self.peek().kind == "end":
            self.error(0, "empty query")
        node = self.or_(None, None)
        t = self.peek()
        if t.kind == ")":
            self.error(t.pos, "unbalanced parenthesis: this ) has no matching (")
        if t.kind == ",":
            self.comma(t)
        return node

    def comma(self, t: _Lexeme) -> NoReturn:
        self.error(t.pos, "a comma only separates the distance in NEAR(a b, 5)")

    # `after` is the operator that needs an operand (for messages), `scope`
    # the field filter we are in.
    def or_(self, after: _Lexeme | None, scope: _Lexeme | None) -> Node:
        items = [self.and_(after, scope)]
        while self.peek().kind == "OR":
            op = self.take()
            items.append(self.and_(op, scope))
        return items[0] if len(items) == 1 else Or(tuple(items), items[0].pos)

    def and_(self, after: _Lexeme | None, scope: _Lexeme | None) -> Node:
        items = [self.not_(after, scope)]
        while self.peek().kind == "AND":
            op = self.take()
            items.append(self.not_(op, scope))
        return items[0] if len(items) == 1 else And(tuple(items), items[0].pos)

    def not_(self, after: _Lexeme | None, scope: _Lexeme | None) -> Node:
        left = self.seq(after, scope)
        while self.peek().kind == "NOT":
            op = self.take()
            left = And((left, Not(self.seq(op, scope), op.pos)), left.pos)
        return left

    def seq(self, after: _Lexeme | None, scope: _Lexeme | None) -> Node:
        items = [self.unary(after, scope)]
        while self.peek().kind in _OPERAND_START:
            items.append(self.unary(None, scope))
        return items[0] if len(items) == 1 else And(tuple(items), items[0].pos)

    def unary(self, after: _Lexeme | None, scope: _Lexeme | None) -> Node:
        if self.peek().kind == "NOT":
            op = self.take()
            return Not(self.unary(op, scope), op.pos)
        return self.near(after, scope)

    def near(self, after: _Lexeme | None, scope: _Lexeme | None) -> Node:
        first = self.primary(after, scope)
        if self.peek().kind != "NEAR/":
            return first
        slots = [self.slot(first)]
        distance: int | None = None
        while self.peek().kind == "NEAR/":
            op = self.take()
            if distance is not None and op.number != distance:
                self.error(op.pos, f"one chain of NEAR/N takes one distance: write NEAR(a b c, {distance})")
            distance = op.number
            slots.append(self.slot(self.primary(op, scope)))
        assert distance is not None
        return Near(tuple(slots), distance, first.pos)

    def slot(self, node: Node) -> tuple[Phrase, ...]:
        """NEAR takes phrases, or alternatives between phrases."""
        if isinstance(node, Phrase):
            return (node,)
        if isinstance(node, Or):
            return tuple(p for child in node.children for p in self.slot(child))
        self.error(
            node.pos,
            "NEAR joins terms or quoted phrases, or alternatives in parentheses: (a OR b) NEAR/5 c; "
            "put a field filter around the whole NEAR: title:(a NEAR/5 b)",
        )

    def primary(self, after: _Lexeme | None, scope: _Lexeme | None) -> Node:
        t = self.peek()
        if t.kind in ("word", "string"):
            self.take()
            return self.phrase(t)
        if t.kind == "(":
            self.take()
            if self.peek().kind == ")":
                self.error(t.pos, "empty parentheses: put a term inside")
            node = self.or_(None, scope)
            close = self.peek()
            if close.kind == ",":
                self.comma(close)
            if close.kind != ")":
                self.error(t.pos, "unbalanced parenthesis: this ( is never closed")
            self.take()
            return node
        if t.kind == "NEAR":
            return self.near_group()
        if t.kind == "field":
            self.take()
            if self.peek().kind not in _OPERAND_START - {"meta"}:
                self.error(t.pos, f"empty field filter: {t.value}: needs a term, a quoted phrase or (...) after it")
            return FieldFilter(t.value, self.primary(t, t), t.pos)
        if t.kind == "meta":
            if scope is not None:
                self.error(t.pos, f"{t.value}: filters the whole item, not a field: move it out of {scope.value}:")
            self.take()
            return Meta(t.value, _meta_value(t.value, t.arg), t.pos)
        self.missing_operand(after, t)

    def missing_operand(self, after: _Lexeme | None, t: _Lexeme) -> NoReturn:
        if after is not None and t.kind in ("end", ")"):
            where = "at the end of the query" if t.kind == "end" else "before )"
            self.error(after.pos, f"{after.value} {where} needs a term after it")
        if t.kind == ")":
            self.error(t.pos, "expected a term before )")
        if t.kind == ",":
            self.comma(t)
        found = "the end of the query" if t.kind == "end" else t.value
        self.error(
            t.pos, f"expected a term or a quoted phrase{' after ' + after.value if after else ''}, found {found}"
        )

    def near_group(self) -> Near:
        near = self.take()
        opening = self.take()
        slots: list[tuple[Phrase, ...]] = []
        distance = 10
        while True:
            t = self.peek()
            if t.kind in ("word", "string"):
                self.take()
                slots.append((self.phrase(t),))
            elif t.kind == "(":
                slots.append(self.slot(self.primary(None, None)))
            elif t.kind == ",":
                self.take()
                number = self.peek()
                if number.kind != "word" or not (number.value.isascii() and number.value.isdigit()):
                    self.error(number.pos, "the NEAR distance must be a whole number of words, e.g. NEAR(a b, 5)")
                self.take()
                distance = int(number.value)
                if self.peek().kind == "end":
                    self.error(opening.pos, "unbalanced parenthesis: this NEAR( is never closed")
                if self.peek().kind != ")":
                    self.error(self.peek().pos, "expected ) after the NEAR distance")
                self.take()
                break
            elif t.kind == ")":
                self.take()
                break
            elif t.kind == "end":
                self.error(opening.pos, "unbalanced parenthesis: this NEAR( is never closed")
            elif t.kind == "field":
                self.error(t.pos, f"put the field filter before NEAR: {t.value}:NEAR(...)")
            else:
                self.error(
                    t.pos,
                    f"NEAR(...) takes terms and quoted phrases separated by spaces, found {t.value}; "
                    "alternatives go in parentheses: NEAR((a OR b) c, 5)",
                )
        if not slots:
            self.error(near.pos, "NEAR() needs at least one term")
        return Near(tuple(slots), distance, near.pos)

    def phrase(self, t: _Lexeme) -> Phrase:
        value, prefix, source = t.value, t.prefix, t.value
        if t.kind == "word":
            star = value.find("*")
            if value == "*":
                self.error(
                    t.pos, "a bare * matches nothing: put it at the end of a word to search a prefix, e.g. secur*"
                )
            if star >= 0 and star != len(value) - 1:
                self.error(t.pos + star, "* is only allowed at the end of a word (a prefix search, e.g. secur*)")
            if star >= 0:
                prefix, value = True, value[:-1]
            if value.startswith("-") and len(value) > 1:
                self.error(t.pos, f"a leading - does not exclude a word: write NOT {value[1:]}")
        elif prefix:
            source = value + "*"
        tokens = _query_tokens(value)
        if not tokens:
            self.error(t.pos, "this term has no letters or digits")
        return Phrase(source, tuple(f for f, _ in tokens), tuple(s for _, s in tokens), prefix, t.pos)


def _meta_value(key: str, value: str) -> str:
    if key == "site":
        return _host(value)
    if key == "lang":
        return _language(value)
    return value.casefold()


def _host(site: str) -> str:
    """ "https://www.Example.org:443/x" and "example.org" are the same site."""
    site = site.strip()
    host = urlsplit(site).hostname if "://" in site else site.split("/")[0].rsplit(":", 1)[0]
    host = (host or "").lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _language(code: str) -> str:
    return code.strip().lower().replace("_", "-")


def _language_matches(wanted: str, actual: str | None) -> bool:
    if not actual:
        return False
    actual = _language(actual)
    return actual == wanted or actual.startswith(wanted + "-")


def _unbounded(node: Node) -> int | None:
    """Where a node could hold for an article without any of its terms, or None."""
    if isinstance(node, Phrase | Near):
        return None
    if isinstance(node, Not | Meta):
        return node.pos
    if isinstance(node, FieldFilter):
        return _unbounded(node.child)
    if isinstance(node, And):
        where = [_unbounded(c) for c in node.children]
        return None if None in where else where[0]
    return next((p for c in node.children if (p := _unbounded(c)) is not None), None)


def parse_query(query: str) -> Query:
    """Parse a rule's query; QuerySyntaxError says where it goes wrong."""
    root = _Parser(query).parse()
    where = _unbounded(root)
    if where is not None:
        raise QuerySyntaxError(
            query,
            where,
            "a rule must require at least one term: this part can hold for an article without any of them "
            "(write e.g. ukraine NOT russie, or ukraine lang:fr)",
        )
    return Query(query, root)


# -- to_fts5: the oracle's view of a query ------------------------------------


class _Inexpressible(Exception):
    pass


def _fts_phrase(p: Phrase) -> str:
    return '"' + " ".join(p.surfaces).replace('"', '""') + '"' + ("*" if p.prefix else "")


def _fts(node: Node) -> tuple[bool, str, bool]:
    """(True, e, _) for the documents matching e, (False, e, _) for those not
    matching e: FTS5 has only binary NOT, so negations are carried up to the
    nearest AND. The last item says whether e needs no parentheses."""
    if isinstance(node, Phrase):
        return True, _fts_phrase(node), True
    if isinstance(node, Near):
        if math.prod(len(s) for s in node.slots) > 256:
            raise _Inexpressible
        groups = [
            f"NEAR({' '.join(_fts_phrase(p) for p in combo)}, {node.distance})"
            for combo in itertools.product(*node.slots)
        ]
        return True, " OR ".join(groups), len(groups) == 1
    if isinstance(node, FieldFilter):
        positive, inner, _ = _fts(node.child)
        return positive, f"{node.field} : ({inner})", True
    if isinstance(node, Not):
        positive, inner, atomic = _fts(node.child)
        return not positive, inner, atomic
    if isinstance(node, Meta):
        raise _Inexpressible
    parts = [_fts(c) for c in node.children]
    pos = [e if atomic else f"({e})" for p, e, atomic in parts if p]
    neg = [e if atomic else f"({e})" for p, e, atomic in parts if not p]

    def group(items: list[str], op: str) -> str:
        return items[0] if len(items) == 1 else "(" + f" {op} ".join(items) + ")"

    if isinstance(node, And):
        if pos and neg:
            return True, f"{group(pos, 'AND')} NOT {group(neg, 'OR')}", False
        return (True, " AND ".join(pos), len(pos) == 1) if pos else (False, " OR ".join(neg), len(neg) == 1)
    if not neg:
        return True, " OR ".join(pos), len(pos) == 1
    if not pos:
        return False, " AND ".join(neg), len(neg) == 1
    return False, f"{group(neg, 'AND')} NOT {group(pos, 'OR')}", False


def to_fts5(query: Query | str, *, stem: bool = False, fuzzy: int = 0) -> str | None:
    """The same query as an FTS5 MATCH expression over columns title and text
    (tokenize "unicode61 remove_diacritics 2"), or None when FTS5 cannot say
    it: lang:/site:/feed: filters, stems, typos. Elided articles are left out
    of the expression, as they are of our matching (see the module docstring)."""
    parsed = parse_query(query) if isinstance(query, str) else query
    if stem or fuzzy:
        return None
    try:
        positive, expr, _ = _fts(parsed.root)
    except _Inexpressible:
        return None
    return expr if positive else None


# -- articles -------------------------------------------------------------------


class Field:
    """One searchable field of an article, tokenised once for all rules.

    Positions count tokens without elided articles; `tokens` has every
    token with its offsets, for snippets, and `keep` maps a position to it.
    Only `words` is computed up front, in C: most articles are looked at by
    few rules or none, so the rest is computed on demand, for the words
    asked about."""

    __slots__ = (
        "text",
        "source",
        "words",
        "_vocabulary",
        "_pieces",
        "_all",
        "_found",
        "_keep",
        "_ends",
        "_sorted",
        "_matching",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self.source = unicodedata.normalize("NFC", text)
        # Fold the whole text at once when that gives the same tokens (nearly
        # always): folding token by token costs a dictionary lookup each.
        folded = _fold_text(self.source)
        self._pieces = _pieces(folded if folded is not None else self.source)
        self._all = _folded(folded or self.source, self._pieces, lowered=folded is not None)
        self.words: list[str] = list(filter(None, self._all))
        self._vocabulary: set[str] | None = None
        self._found: dict[str, list[int]] = {}
        self._keep: Sequence[int] | None = None
        self._ends: list[int] = []
        self._sorted: list[str] | None = None
        self._matching: dict[tuple[str, bool, str | None, bool], set[str]] = {}

    @classmethod
    def of(cls, text: str) -> Field:
        return cls(text)

    @property
    def vocabulary(self) -> set[str]:
        """The words of this field (or a superset: see Document.of)."""
        if self._vocabulary is None:
            self._vocabulary = set(self.words)
        return self._vocabulary

    def occurrences(self, word: str) -> list[int]:
        """Positions of a word, in order."""
        found = self._found.get(word)
        if found is None:
            found = self._found[word] = []
            if word in self.vocabulary:
                words, i = self.words, -1
                with contextlib.suppress(ValueError):
                    while True:  # list.index scans in C
                        i = words.index(word, i + 1)
                        found.append(i)
        return found

    @property
    def positions(self) -> dict[str, list[int]]:
        """Word -> its positions, in order."""
        return {w: found for w in self.vocabulary if (found := self.occurrences(w))}

    def offsets(self, lo: int = 0, hi: int | None = None) -> tuple[list[int], list[int]]:
        """Start and end offsets in `source` of tokens lo to hi (elided
        articles included; all by default)."""
        n = len(self._all) if hi is None else min(hi, len(self._all))
        ends = self._ends  # 0, then the offset after each piece: computed as far as asked, in C
        if len(ends) < 2 * n + 1:
            if not ends:
                ends.append(0)
            more = itertools.accumulate(
                map(len, itertools.islice(self._pieces, len(ends) - 1, 2 * n)), initial=ends[-1]
            )
            next(more)
            ends.extend(more)
        return ends[2 * lo + 1 : 2 * n + 1 : 2], ends[2 * lo + 2 : 2 * n + 1 : 2]

    @property
    def tokens(self) -> list[Token]:
        """Every token, elided articles included, with offsets in `source`."""
        starts, ends = self.offsets()
        return [Token(_fold(self.source[s:e]), s, e) for s, e in zip(starts, ends, strict=True)]

    @property
    def token_count(self) -> int:
        """Tokens, elided articles included."""
        return len(self._all)

    @property
    def keep(self) -> Sequence[int]:
        """Position -> index in `tokens`."""
        if self._keep is None:
            has_elisions = "" in self._all
            self._keep = (
                list(itertools.compress(range(len(self._all)), self._all)) if has_elisions else range(len(self._all))
            )
        return self._keep

    def prefixed(self, prefix: str) -> list[str]:
        """Words of this field that start with prefix."""
        if self._sorted is None:
            self._sorted = sorted(self.vocabulary)
        words = self._sorted
        i = j = bisect.bisect_left(words, prefix)
        while j < len(words) and words[j].startswith(prefix):
            j += 1
        return words[i:j]

    def within_one_edit(self, token: str, index: WordIndex | None = None) -> list[str]:
        """Words of this field one typo away from a token of 5+ letters."""
        near = index.get(("f", token)) if index is not None else None
        if near is not None:
            return [w for w in near & self.vocabulary if within_one_edit(token, w)]
        n, first, last = len(token), token[0], token[-1]
        # One edit keeps the first or the last letter of words this long.
        return [
            w
            for w in self.vocabulary
            if -2 < len(w) - n < 2 and (w[0] == first or w[-1] == last) and within_one_edit(token, w)
        ]

    def matching(
        self, token: str, prefix: bool, algo: str | None, fuzzy: bool, index: WordIndex | None = None
    ) -> set[str]:
        """The words of this field that a query token matches."""
        key = (token, prefix, algo, fuzzy)
        found = self._matching.get(key)
        if found is None:
            found = self._matching[key] = self._match(token, prefix, algo, fuzzy, index)
        return found

    def _prefixed(self, prefix: str, index: WordIndex | None) -> Iterable[str]:
        words = index.get(("p", prefix)) if index is not None else None
        return words & self.vocabulary if words is not None else self.prefixed(prefix)

    def _match(self, token: str, prefix: bool, algo: str | None, fuzzy: bool, index: WordIndex | None) -> set[str]:
        if prefix:
            return set(self._prefixed(token, index))
        out = {token} if token in self.vocabulary else set()
        if algo is not None:
            stem = stemming.stem(algo, token)
            key = stemming.stem_prefix(token, stem)
            out.update(w for w in self._prefixed(key, index) if stemming.stem(algo, w) == stem)
        if fuzzy and _fuzzable(token):
            out.update(self.within_one_edit(token, index))
        return out

    def token_positions(self, token: str, prefix: bool, algo: str | None, fuzzy: bool) -> list[int]:
        return sorted(p for w in self.matching(token, prefix, algo, fuzzy) for p in self.occurrences(w))

    def find(self, phrase: Sequence[str]) -> list[int]:
        """Positions where the folded tokens of `phrase` start."""
        return _starts(self, tuple(phrase), False, None, False)


def _starts(
    f: Field, tokens: tuple[str, ...], prefix: bool, algo: str | None, fuzzy: bool, index: WordIndex | None = None
) -> list[int]:
    last = len(tokens) - 1
    exact = algo is None and not fuzzy
    allowed: list[set[str] | None] = []  # None: the token itself
    for k, t in enumerate(tokens):
        if exact and not (prefix and k == last):
            if t not in f.vocabulary:
                return []
            allowed.append(None)
        else:
            words = f.matching(t, prefix and k == last, algo, fuzzy, index)
            if not words:
                return []
            allowed.append(words)
    first = allowed[0]
    starts = f.occurrences(tokens[0]) if first is None else sorted(p for w in first for p in f.occurrences(w))
    if last == 0:
        return starts
    sequence, n = f.words, len(f.words)
    out = []
    for p in starts:
        if p + last >= n:
            break
        for k in range(1, last + 1):
            w, a = sequence[p + k], allowed[k]
            if (w != tokens[k]) if a is None else (w not in a):
                break
        else:
            out.append(p)
    return out


@dataclass(frozen=True, eq=False)
class Document:
    """An article as rules see it; caches what rules compute on it."""

    title: Field
    text: Field
    language: str | None = None
    site: str | None = None  # host, www. removed
    feed: str | None = None
    _cache: dict[tuple[int, tuple[str, ...], bool, str | None, bool], list[int]] = field(
        default_factory=dict, repr=False
    )
    _vocabulary: set[str] | None = field(default=None, repr=False)
    _words_by_atom: WordIndex | None = field(default=None, repr=False)  # set by a RuleSet
    _algorithms: tuple[str | None, ...] | None = field(default=None, repr=False)

    @classmethod
    def of(
        cls,
        title: str | None,
        text: str | None,
        language: str | None = None,
        site: str | None = None,
        feed: str | None = None,
    ) -> Document:
        """`site` is the article's URL or host."""
        head, body = Field(title or ""), Field(text or "")
        # One set for both fields: a field's vocabulary may be a superset.
        vocabulary = set(body.words)
        vocabulary.update(head.words)
        head._vocabulary = body._vocabulary = vocabulary
        return cls(head, body, language or None, _host(site) if site else None, feed, _vocabulary=vocabulary)

    @property
    def fields(self) -> tuple[Field, Field]:
        return (self.title, self.text)

    @property
    def algorithms(self) -> tuple[str | None, ...]:
        """The stemmers to try on this article (see `stemming.algorithms_for`)."""
        if self._algorithms is None:
            object.__setattr__(self, "_algorithms", stemming.algorithms_for(self.language))
        assert self._algorithms is not None
        return self._algorithms

    def vocabulary(self) -> set[str]:
        if self._vocabulary is None:
            object.__setattr__(self, "_vocabulary", self.title.vocabulary | self.text.vocabulary)
        assert self._vocabulary is not None
        return self._vocabulary

    def starts(self, index: int, phrase: Phrase, algo: str | None, fuzzy: bool) -> Sequence[int]:
        """Positions where `phrase` starts in field `index`; shared by every rule."""
        tokens = phrase.tokens
        if len(tokens) == 1 and algo is None and not fuzzy and not phrase.prefix:
            return self.fields[index].occurrences(tokens[0])
        key = (index, tokens, phrase.prefix, algo, fuzzy)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = _starts(
                self.fields[index], phrase.tokens, phrase.prefix, algo, fuzzy, self._words_by_atom
            )
        return found

    def has(self, meta: Meta) -> bool:
        if meta.key == "lang":
            return _language_matches(meta.value, self.language)
        if meta.key == "site":
            return self.site is not None and (self.site == meta.value or self.site.endswith("." + meta.value))
        return self.feed is not None and self.feed.casefold() == meta.value


# -- matching -------------------------------------------------------------------


class _Hit(NamedTuple):
    """Where a leaf matched in a field: positions where it starts."""

    field: int
    starts: Sequence[int]  # sorted
    length: int  # in positions
    leaf: Phrase


_FIELD_INDEX = {name: i for i, name in enumerate(FIELDS)}


def _eval(
    node: Node, doc: Document, fields: tuple[int, ...], algo: str | None, fuzzy: bool, hits: list[_Hit] | None
) -> bool:
    """Whether node holds; the hits of its positive leaves go to `hits`
    (None under NOT), and only when it holds."""
    if isinstance(node, Phrase):
        found = False
        for i in fields:
            starts = doc.starts(i, node, algo, fuzzy)
            if starts:
                if hits is None:
                    return True
                found = True
                hits.append(_Hit(i, starts, len(node.tokens), node))
        return found
    if isinstance(node, And):
        mine: list[_Hit] | None = [] if hits is not None else None
        for child in node.children:
            if not _eval(child, doc, fields, algo, fuzzy, mine):
                return False
        if hits is not None and mine:
            hits.extend(mine)
        return True
    if isinstance(node, Or):
        found = False
        for child in node.children:
            if _eval(child, doc, fields, algo, fuzzy, hits):
                if hits is None:
                    return True
                found = True
        return found
    if isinstance(node, Not):
        return not _eval(node.child, doc, fields, algo, fuzzy, None)
    if isinstance(node, FieldFilter):
        index = _FIELD_INDEX[node.field]
        return _eval(node.child, doc, tuple(i for i in fields if i == index), algo, fuzzy, hits)
    if isinstance(node, Meta):
        return doc.has(node)
    return _eval_near(node, doc, fields, algo, fuzzy, hits)


def _eval_near(
    node: Near, doc: Document, fields: tuple[int, ...], algo: str | None, fuzzy: bool, hits: list[_Hit] | None
) -> bool:
    # FTS5's rule (fts5ExprNearIsMatch): instances p_i of each phrase with
    # p_i <= M and p_i + len_i + N >= M, where M is the largest p_i.
    found = False
    d = node.distance
    for i in fields:
        slots: list[list[tuple[int, int, Phrase]]] = []
        for alternatives in node.slots:
            instances = [(s, len(p.tokens), p) for p in alternatives for s in doc.starts(i, p, algo, fuzzy)]
            if not instances:
                break
            instances.sort(key=itemgetter(0))
            slots.append(instances)
        else:
            window: set[tuple[int, int, Phrase]] = set()
            starts = [[h[0] for h in s] for s in slots]
            longest = [max(h[1] for h in s) for s in slots]
            for m in sorted({h[0] for s in slots for h in s}):
                chosen: list[tuple[int, int, Phrase]] = []
                for instances, st, n in zip(slots, starts, longest, strict=True):
                    lo, hi = bisect.bisect_left(st, m - n - d), bisect.bisect_right(st, m)
                    near = [h for h in instances[lo:hi] if h[0] + h[1] + d >= m]
                    if not near:
                        break
                    chosen.extend(near)
                else:
                    if hits is None:
                        return True
                    found = True
                    window.update(chosen)
            if hits is not None:
                by_leaf: dict[Phrase, list[int]] = {}
                for s, _n, p in sorted(window, key=itemgetter(0)):
                    by_leaf.setdefault(p, []).append(s)
                hits.extend(_Hit(i, starts_, len(p.tokens), p) for p, starts_ in by_leaf.items())
    return found


@dataclass(frozen=True)
class MatchResult:
    terms: tuple[str, ...]  # the terms and phrases that matched, as written in the rule
    snippet: str


def _result(doc: Document, hits: list[_Hit], context: int = 12) -> MatchResult:
    leaves: dict[int, Phrase] = {id(h.leaf): h.leaf for h in hits}
    terms = tuple(dict.fromkeys(p.source for p in sorted(leaves.values(), key=attrgetter("pos"))))
    if not hits:
        return MatchResult(terms, "")
    # The snippet's window, around the first hit in the text (else the title):
    # only the hits inside it are turned into marks.
    in_text = [h for h in hits if h.field == 1]
    chosen = in_text or hits
    f = doc.fields[chosen[0].field]
    keep = f.keep
    first = keep[min(h.starts[0] for h in chosen)]
    lo_pos = bisect.bisect_left(keep, first - context)
    hi_pos = bisect.bisect_left(keep, first + context * 2)
    marks: list[tuple[Field, int, int]] = []
    for h in chosen:
        for s in h.starts[bisect.bisect_left(h.starts, lo_pos) : bisect.bisect_left(h.starts, hi_pos)]:
            a = keep[s]
            marks.append((f, a, keep[s + h.length - 1] - a + 1))
    return MatchResult(terms, snippet(doc, marks))


def snippet(doc: Document, hits: Iterable[tuple[Field, int, int]], context: int = 12) -> str:
    """Keyword in context around the first hit in the text (else the title),
    with every hit in that window wrapped in ** ** (a hit: field, index in
    `tokens`, number of tokens)."""
    hits = list(hits)
    in_text = [h for h in hits if h[0] is doc.text]
    chosen = in_text or hits
    f, first, _ = min(chosen, key=lambda h: h[1])
    total = f.token_count
    lo = max(0, first - context)
    hi = min(total, first + context * 2)
    starts, ends = f.offsets(lo, hi)  # of tokens lo to hi: index - lo
    marks = sorted({(s, s + n) for g, s, n in hits if g is f and lo <= s < hi})
    src = f.source
    out: list[str] = []
    cursor = starts[0]
    for s, e in marks:
        e = min(e, hi)
        a, b = starts[s - lo], ends[e - 1 - lo]
        if a < cursor:
            continue
        out.append(src[cursor:a])
        out.append("**" + src[a:b] + "**")
        cursor = b
    out.append(src[cursor : ends[hi - 1 - lo]])
    text = " ".join("".join(out).split())
    return ("… " if lo > 0 else "") + text + (" …" if hi < total else "")


def match(query: Query, doc: Document, *, stem: bool = False, fuzzy: int = 0) -> MatchResult | None:
    """Match one query; with `stem`, tokens are compared by their stems in
    the item's language, or in each of `stemming.UNKNOWN_LANGUAGES` in turn
    when it is unknown (the first that matches wins)."""
    algos = doc.algorithms if stem else (None,)
    for algo in algos:
        hits: list[_Hit] = []
        if _eval(query.root, doc, (0, 1), algo, fuzzy > 0, hits):
            return _result(doc, hits)
    return None


# -- rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSpec:
    """A rule as configured."""

    name: str
    query: str
    channels: Sequence[str] = ()
    languages: Sequence[str] = ()  # only items in these languages; () for all
    stem: bool = False
    fuzzy: int = 0  # 0, or 1 for one typo in terms of 5+ letters


@dataclass(frozen=True)
class CompiledRule:
    name: str
    query: Query
    channels: tuple[str, ...]
    languages: tuple[str, ...] = ()
    stem: bool = False
    fuzzy: int = 0

    def applies_to(self, language: str | None) -> bool:
        return not self.languages or any(_language_matches(w, language) for w in self.languages)

    def match(self, doc: Document) -> MatchResult | None:
        if not self.applies_to(doc.language):
            return None
        return match(self.query, doc, stem=self.stem, fuzzy=self.fuzzy)


def compile_rule(spec: RuleSpec | tuple[str, str, Sequence[str]]) -> CompiledRule:
    if not isinstance(spec, RuleSpec):
        name, query, channels = spec
        spec = RuleSpec(name, query, channels)
    if spec.fuzzy not in (0, 1):
        raise ValueError(f"rule {spec.name!r}: fuzzy must be 0 or 1, got {spec.fuzzy!r}")
    return CompiledRule(
        spec.name,
        parse_query(spec.query),
        tuple(spec.channels),
        tuple(_language(code) for code in spec.languages),
        bool(spec.stem),
        spec.fuzzy,
    )


# The prefilter reasons on atoms: ("t", token) holds when the article has the
# token, ("p", prefix) when it has a token with that prefix, ("s", algo,
# prefix) the same for a stem term (see `stemming.stem_prefix`) but only in
# articles stemmed with algo, ("f", token) when it has a token one typo away.
# A rule's requirement is its query with each phrase read as "all its tokens
# are there" and NOT, lang:, site:, feed: read as "maybe", put in
# disjunctive normal form. Each conjunction is anchored on its most
# selective clause: the rule is evaluated only when the article has an
# anchor's atom and the rest of that conjunction holds.
Atom: TypeAlias = tuple[str, ...]
Clause: TypeAlias = frozenset[Atom]

# Tokens too common to anchor a rule on, when it offers anything better.
_COMMON = frozenset(
    "a à au aux d de des du en et l la le les un une the of and to in is for on that with by at as "
    "der die das und den dem des zu von mit im ist ein eine "
    "и в на не что с по для о из к у от за та і з до що це".split()
)


def _atom_cost(atom: Atom) -> float:
    word = atom[-1]
    cost = 0.6 ** len(word) + (2.0 if word in _COMMON else 0.0)
    return cost * {"t": 1.0, "p": 4.0, "s": 4.0, "f": 3.0}[atom[0]]


def _best(clauses: list[Clause]) -> Clause:
    return min(clauses, key=lambda c: sum(_atom_cost(a) for a in c))


# A requirement in disjunctive normal form: one of its conjunctions must
# hold, and a conjunction holds when each of its clauses (atom ids) has an
# atom in the article. The empty conjunction always holds.
Dnf: TypeAlias = tuple[tuple[frozenset[int], ...], ...]
_TRUE: Dnf = ((),)
_MAX_DNF = 64  # beyond, a requirement is weakened to its clauses


class _Requirements:
    """What one rule requires of an article, in atoms."""

    def __init__(self, rule: CompiledRule, ids: dict[Atom, int], costs: list[float]) -> None:
        self.rule = rule
        self.ids = ids  # shared by the rules of a RuleSet, with costs
        self.costs = costs
        self.algos: set[str] = set()
        if rule.stem:
            found = (stemming.algorithm(code) for code in rule.languages)
            self.algos = {a for a in found if a} if rule.languages else set(stemming.all_algorithms())

    def token(self, token: str, prefix: bool) -> Clause:
        if prefix:
            return frozenset({("p", token)})
        atoms: set[Atom] = {("t", token)}
        atoms.update(("s", algo, stemming.stem_prefix(token, stemming.stem(algo, token))) for algo in self.algos)
        if self.rule.fuzzy and _fuzzable(token):
            atoms.add(("f", token))
        return frozenset(atoms)

    def phrase(self, p: Phrase) -> list[Clause]:
        last = len(p.tokens) - 1
        return list(dict.fromkeys(self.token(t, p.prefix and k == last) for k, t in enumerate(p.tokens)))

    def clauses(self, node: Node) -> list[Clause]:
        """Clauses every matching article satisfies; [] when there are none."""
        if isinstance(node, Phrase):
            return self.phrase(node)
        if isinstance(node, Near):
            return [frozenset().union(*(_best(self.phrase(p)) for p in slot)) for slot in node.slots]
        if isinstance(node, And):
            return list(dict.fromkeys(c for child in node.children for c in self.clauses(child)))
        if isinstance(node, Or):
            each = [self.clauses(child) for child in node.children]
            return [frozenset().union(*(_best(c) for c in each))] if all(each) else []
        if isinstance(node, FieldFilter):
            return self.clauses(node.child)
        return []

    def number(self, clause: Clause) -> frozenset[int]:
        out = []
        for atom in clause:
            a = self.ids.get(atom)
            if a is None:
                a = self.ids[atom] = len(self.ids)
                self.costs.append(_atom_cost(atom))
            out.append(a)
        return frozenset(out)

    def need(self, node: Node) -> Dnf:
        """The query with each phrase read as "all its tokens are there" and
        NOT, lang:, site:, feed: as "maybe"."""
        if isinstance(node, Phrase):
            return (tuple(self.number(c) for c in self.phrase(node)),)
        if isinstance(node, Near):
            slots = [tuple(c for p in slot for c in self.need(p)) for slot in node.slots]
            return self.conjunction(node, slots)
        if isinstance(node, And):
            return self.conjunction(node, [self.need(child) for child in node.children])
        if isinstance(node, Or):
            each = [self.need(child) for child in node.children]
            if _TRUE in each:
                return _TRUE
            either = tuple(dict.fromkeys(c for need in each for c in need))
            return either if len(either) <= _MAX_DNF else self.weakened(node)
        if isinstance(node, FieldFilter):
            return self.need(node.child)
        return _TRUE

    def conjunction(self, node: Node, needs: list[Dnf]) -> Dnf:
        out: Dnf = _TRUE
        for need in needs:
            out = tuple(tuple(dict.fromkeys(a + b)) for a in out for b in need)
            if len(out) > _MAX_DNF:
                return self.weakened(node)
        return out

    def weakened(self, node: Node) -> Dnf:
        return (tuple(self.number(c) for c in self.clauses(node)),)


_second = itemgetter(1)


def _indexed(atom: Atom) -> Atom:
    """The key of a WordIndex: stem atoms are indexed as plain prefixes."""
    return ("p", atom[2]) if atom[0] == "s" else atom


# Prefix and typo atom -> the words seen that bring it, for evaluating the
# rules that have them without scanning the article's vocabulary.
WordIndex: TypeAlias = dict[Atom, set[str]]


@dataclass(frozen=True)
class _WordCache:
    atoms: dict[str, tuple[int, ...]]
    words: WordIndex


class RuleSet(Sequence[CompiledRule]):
    """Rules compiled for matching many articles.

    Per article: tokenise once, look up the atoms of each distinct token
    (found by one Aho-Corasick automaton over keys " token " and " prefix"
    and by an index of typo terms, then cached per token), take the rules
    anchored on them, and evaluate exactly only those whose requirements
    hold. The prefilter never drops a match. Safe to share between threads."""

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self.rules = tuple(rules)
        ids: dict[Atom, int] = {}
        self._costs: list[float] = []  # by atom id
        # atom -> (rule, the rest of a conjunction anchored on the atom): atoms
        # that must all be there, or (in _general) clauses that must each have one
        self._anchors: dict[int, list[tuple[int, frozenset[int]]]] = {}
        self._general: dict[int, list[tuple[int, tuple[frozenset[int], ...]]]] = {}
        self._always: list[int] = []  # rules that need no atom (parse_query refuses them)
        for index, rule in enumerate(self.rules):
            need = _Requirements(rule, ids, self._costs).need(rule.query.root)
            if () in need:
                self._always.append(index)
                continue
            for conjunction in need:
                anchor = min(conjunction, key=lambda c: sum(self._costs[a] for a in c))
                rest = tuple(c for c in conjunction if c is not anchor)
                for a in anchor:
                    if all(len(c) == 1 for c in rest):
                        self._anchors.setdefault(a, []).append((index, frozenset(a for c in rest for a in c)))
                    else:
                        self._general.setdefault(a, []).append((index, rest))
        keys: dict[str, list[int]] = {}
        # (length, first two letters) and (length, last two) -> typo tokens: one
        # edit keeps the first two or the last two letters of a token of five.
        self._typo_heads: dict[tuple[int, str], list[tuple[str, int]]] = {}
        self._typo_tails: dict[tuple[int, str], list[tuple[str, int]]] = {}
        by_algo: dict[str, set[int]] = {algo: set() for algo in stemming.all_algorithms()}
        for atom, a in ids.items():
            kind = atom[0]
            if kind == "t":
                keys.setdefault(f" {atom[1]} ", []).append(a)
            elif kind == "p":
                keys.setdefault(f" {atom[1]}", []).append(a)
            elif kind == "s":
                keys.setdefault(f" {atom[2]}", []).append(a)
                by_algo[atom[1]].add(a)
            else:
                token = atom[1]
                for n in range(len(token) - 1, len(token) + 2):
                    self._typo_heads.setdefault((n, token[:2]), []).append((token, a))
                    self._typo_tails.setdefault((n, token[-2:]), []).append((token, a))
        self._anchored = frozenset(self._anchors)
        self._anchored_general = frozenset(self._general)
        # The stem atoms that cannot hold for an article, by its stemmers.
        self._not_stemmed = {
            algos: frozenset().union(*(ids for algo, ids in by_algo.items() if algo not in algos))
            for algos in {stemming.algorithms_for(code) for code in (None, *stemming.ALGORITHMS, "xx")}
        }
        self._atom_list: list[Atom] = [("",)] * len(ids)
        for atom, a in ids.items():
            self._atom_list[a] = atom
        self._cache = self._new_cache()
        self._automaton: ahocorasick.Automaton | None = None
        if keys:
            automaton = ahocorasick.Automaton()
            for key, atoms in keys.items():
                automaton.add_word(key, tuple(atoms))
            automaton.make_automaton()
            self._automaton = automaton

    def __len__(self) -> int:
        return len(self.rules)

    @overload
    def __getitem__(self, index: int) -> CompiledRule: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[CompiledRule]: ...

    def __getitem__(self, index: int | slice) -> CompiledRule | Sequence[CompiledRule]:
        return self.rules[index]

    def __iter__(self) -> Iterator[CompiledRule]:
        return iter(self.rules)

    def _new_cache(self) -> _WordCache:
        return _WordCache({}, {_indexed(atom): set() for atom in self._atom_list if atom[0] != "t"})

    def _atoms_of(self, word: str, cache: _WordCache) -> tuple[int, ...]:
        """The atoms a word brings, through the automaton and the typo index."""
        found: set[int] = set()
        if self._automaton is not None:
            found.update(itertools.chain.from_iterable(map(_second, self._automaton.iter(f" {word} "))))
        n = len(word)
        heads, tails = self._typo_heads.get((n, word[:2]), ()), self._typo_tails.get((n, word[-2:]), ())
        for token, a in itertools.chain(heads, tails):
            if a not in found and within_one_edit(token, word):
                found.add(a)
        atom_list = self._atom_list
        for a in found:
            atom = atom_list[a]
            if atom[0] != "t":
                cache.words[_indexed(atom)].add(word)
        atoms = cache.atoms[word] = tuple(found)  # last: a word in `atoms` is in `words` too
        return atoms

    def _present(self, doc: Document) -> set[int]:
        # News vocabulary is Zipfian: after a few hundred articles nearly
        # every word's atoms come from this cache, not from the automaton.
        cache = self._cache
        if len(cache.atoms) >= 1 << 18:  # a crawler sees an endless vocabulary
            cache = self._cache = self._new_cache()  # replaced, not cleared: other threads keep theirs
        words = list(doc.vocabulary())
        found: list[tuple[int, ...] | None] = list(map(cache.atoms.get, words))
        i = -1
        with contextlib.suppress(ValueError):
            while True:  # words not seen before
                i = found.index(None, i + 1)
                found[i] = self._atoms_of(words[i], cache)
        present = set(itertools.chain.from_iterable(found))  # type: ignore[arg-type]
        object.__setattr__(doc, "_words_by_atom", cache.words)
        excluded = self._not_stemmed.get(doc.algorithms)
        if excluded is None:
            return present
        return present.difference(excluded)

    def candidates(self, doc: Document) -> list[int]:
        """Indexes of the rules that may match doc (a superset of those that do)."""
        present = self._present(doc)
        chosen = set(self._always)
        anchors = self._anchors
        for a in present.intersection(self._anchored):
            chosen.update([index for index, rest in anchors[a] if rest <= present])
        disjoint = present.isdisjoint
        for a in present.intersection(self._anchored_general):
            chosen.update([index for index, rest in self._general[a] if not any(map(disjoint, rest))])
        return sorted(chosen)

    def match_document(self, doc: Document) -> list[tuple[CompiledRule, MatchResult]]:
        out = []
        for index in self.candidates(doc):
            rule = self.rules[index]
            result = rule.match(doc)
            if result is not None:
                out.append((rule, result))
        return out

    def match(
        self,
        title: str | None,
        text: str | None,
        language: str | None = None,
        site: str | None = None,
        feed: str | None = None,
    ) -> list[tuple[CompiledRule, MatchResult]]:
        return self.match_document(Document.of(title, text, language, site, feed))


def compile_rules(rules: Iterable[RuleSpec | tuple[str, str, Sequence[str]]]) -> RuleSet:
    """Rules as `RuleSpec`s or (name, query, channels) tuples; raises
    QuerySyntaxError for the first query that does not parse."""
    return RuleSet(compile_rule(r) for r in rules)


def match_rules(
    rules: RuleSet | Iterable[CompiledRule],
    title: str | None,
    text: str | None,
    language: str | None = None,
    site: str | None = None,
    feed: str | None = None,
) -> list[tuple[CompiledRule, MatchResult]]:
    """The rules that match an article, in rule order. `site` is the
    article's URL or host. Pass the RuleSet from `compile_rules`: a plain
    list of rules is matched rule by rule, without the prefilter."""
    doc = Document.of(title, text, language, site, feed)
    if isinstance(rules, RuleSet):
        return rules.match_document(doc)
    out = []
    for rule in rules:
        result = rule.match(doc)
        if result is not None:
            out.append((rule, result))
    return out
