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
import itertools
import math
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, NoReturn, TypeAlias, overload
from urllib.parse import urlsplit

import ahocorasick

from monitor import stemming
from monitor.text import Token, fold

# -- tokens -------------------------------------------------------------------

# Exactly `monitor.text.is_token_char` (categories L*, N*, Co) as a regex, so
# that tokenising runs in C; tests/test_rules.py checks every code point.
_TOKEN_CHAR = r"[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]"
ELISIONS: frozenset[str] = frozenset(
    {"l", "d", "j", "m", "n", "s", "t", "c", "qu", "jusqu", "lorsqu", "puisqu", "quoiqu", "presqu", "quelqu"}
    | {"dell", "all", "dall", "nell", "sull", "quell", "un"}
)


def _either_case(word: str) -> str:
    # Spelled out rather than re.IGNORECASE, which would also take "ſ" for "s".
    return "".join(f"[{c}{c.upper()}]" for c in word)


_ARTICLE = (
    f"(?<!{_TOKEN_CHAR})"
    + "(?:"
    + "|".join(_either_case(w) for w in sorted(ELISIONS, key=len, reverse=True))
    + ")(?=['\u2019][^\\W\\d_])"
)
_SCAN = re.compile(f"{_ARTICLE}|((?:{_TOKEN_CHAR})+)")  # findall: "" for an elided article
_SCAN_FULL = re.compile(f"({_ARTICLE})|((?:{_TOKEN_CHAR})+)")  # with offsets, for snippets

_FOLDED: dict[str, str] = {}


def _fold(word: str) -> str:
    folded = _FOLDED.get(word)
    if folded is None:
        folded = word.lower() if word.isascii() else fold(word)
        if len(_FOLDED) >= 1 << 19:  # bounded: a crawler sees an endless vocabulary
            _FOLDED.clear()
        _FOLDED[word] = folded
    return folded


def _words(source: str) -> list[str]:
    """Folded tokens of NFC text, elided articles left out."""
    if source.isascii():
        return [w for w in _SCAN.findall(source.lower()) if w]
    get = _FOLDED.get
    return [get(w) or _fold(w) for w in _SCAN.findall(source) if w]


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


_DELETIONS: dict[str, tuple[str, ...]] = {}


def _deletions(word: str) -> tuple[str, ...]:
    """The word and every string one deletion away: two words within one
    edit always share one of these keys (the SymSpell idea)."""
    keys = _DELETIONS.get(word)
    if keys is None:
        keys = tuple(dict.fromkeys([word, *(word[:i] + word[i + 1 :] for i in range(len(word)))]))
        if len(_DELETIONS) >= 1 << 17:
            _DELETIONS.clear()
        _DELETIONS[word] = keys
    return keys


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
    return [(_fold(m.group(2)), m.group(2)) for m in _SCAN_FULL.finditer(source) if m.lastindex == 2]


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

    Positions count tokens without elided articles; `tokens` keeps every
    token with its offsets, for snippets, and `keep` maps a position to it."""

    __slots__ = ("text", "source", "words", "_positions", "_tokens", "_keep", "_sorted", "_by_length", "_stems")

    def __init__(self, text: str) -> None:
        self.text = text
        self.source = unicodedata.normalize("NFC", text)
        self.words: list[str] = _words(self.source)
        self._positions: dict[str, list[int]] | None = None
        self._tokens: list[Token] | None = None
        self._keep: list[int] | None = None
        self._sorted: list[str] | None = None
        self._by_length: dict[int, list[str]] | None = None
        self._stems: dict[str, dict[str, list[int]]] = {}

    @classmethod
    def of(cls, text: str) -> Field:
        return cls(text)

    @property
    def positions(self) -> dict[str, list[int]]:
        if self._positions is None:
            positions: dict[str, list[int]] = {}
            for i, w in enumerate(self.words):
                if w in positions:
                    positions[w].append(i)
                else:
                    positions[w] = [i]
            self._positions = positions
        return self._positions

    def _offsets(self) -> None:
        tokens: list[Token] = []
        keep: list[int] = []
        for m in _SCAN_FULL.finditer(self.source):
            group = m.lastindex or 0
            if group == 2:
                keep.append(len(tokens))
            tokens.append(Token(_fold(m.group(group)), m.start(group), m.end(group)))
        self._tokens, self._keep = tokens, keep

    @property
    def tokens(self) -> list[Token]:
        """Every token, elided articles included, with offsets in `source`."""
        if self._tokens is None:
            self._offsets()
        assert self._tokens is not None
        return self._tokens

    @property
    def keep(self) -> list[int]:
        """Position -> index in `tokens`."""
        if self._keep is None:
            self._offsets()
        assert self._keep is not None
        return self._keep

    def prefixed(self, prefix: str) -> list[str]:
        """Words of this field that start with prefix."""
        if self._sorted is None:
            self._sorted = sorted(self.positions)
        words = self._sorted
        i = bisect.bisect_left(words, prefix)
        out = []
        while i < len(words) and words[i].startswith(prefix):
            out.append(words[i])
            i += 1
        return out

    def within_one_edit(self, token: str) -> list[str]:
        """Words of this field one typo away (only words of a length within one)."""
        if self._by_length is None:
            by_length: dict[int, list[str]] = {}
            for w in self.positions:
                by_length.setdefault(len(w), []).append(w)
            self._by_length = by_length
        n = len(token)
        return [w for k in (n - 1, n, n + 1) for w in self._by_length.get(k, ()) if within_one_edit(token, w)]

    def stems(self, algo: str) -> dict[str, list[int]]:
        """Stem -> positions, computed on first use and kept for every rule."""
        table = self._stems.get(algo)
        if table is None:
            table = {}
            for w, ps in self.positions.items():
                table.setdefault(stemming.stem(algo, w), []).extend(ps)
            self._stems[algo] = table
        return table

    def token_positions(self, token: str, prefix: bool, algo: str | None, fuzzy: bool) -> Collection[int]:
        positions = self.positions
        if prefix:
            return {p for w in self.prefixed(token) for p in positions[w]}
        exact = positions.get(token, ())
        if algo is None and not (fuzzy and _fuzzable(token)):
            return exact
        out = set(exact)
        if algo is not None:
            out.update(self.stems(algo).get(stemming.stem(algo, token), ()))
        if fuzzy and _fuzzable(token):
            for w in self.within_one_edit(token):
                out.update(positions[w])
        return out

    def find(self, phrase: Sequence[str]) -> list[int]:
        """Positions where the folded tokens of `phrase` start."""
        return _starts(self, tuple(phrase), False, None, False)


def _starts(f: Field, tokens: tuple[str, ...], prefix: bool, algo: str | None, fuzzy: bool) -> list[int]:
    last = len(tokens) - 1
    found = [f.token_positions(t, prefix and k == last, algo, fuzzy) for k, t in enumerate(tokens)]
    if not all(found):
        return []
    if last == 0:
        return sorted(found[0])
    rest = [s if isinstance(s, set | frozenset) else set(s) for s in found[1:]]
    return [p for p in sorted(found[0]) if all(p + k + 1 in s for k, s in enumerate(rest))]


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
        return cls(Field(title or ""), Field(text or ""), language or None, _host(site) if site else None, feed)

    @property
    def fields(self) -> tuple[Field, Field]:
        return (self.title, self.text)

    def vocabulary(self) -> set[str]:
        return set(self.title.words).union(self.text.words)

    def starts(self, index: int, phrase: Phrase, algo: str | None, fuzzy: bool) -> list[int]:
        """Positions where `phrase` starts in field `index`; shared by every rule."""
        key = (index, phrase.tokens, phrase.prefix, algo, fuzzy)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = _starts(self.fields[index], phrase.tokens, phrase.prefix, algo, fuzzy)
        return found

    def has(self, meta: Meta) -> bool:
        if meta.key == "lang":
            return _language_matches(meta.value, self.language)
        if meta.key == "site":
            return self.site is not None and (self.site == meta.value or self.site.endswith("." + meta.value))
        return self.feed is not None and self.feed.casefold() == meta.value


# -- matching -------------------------------------------------------------------


class _Hit(NamedTuple):
    field: int
    start: int  # position
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
                n = len(node.tokens)
                hits.extend(_Hit(i, s, n, node) for s in starts)
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
        slots: list[list[_Hit]] = []
        for alternatives in node.slots:
            instances = [_Hit(i, s, len(p.tokens), p) for p in alternatives for s in doc.starts(i, p, algo, fuzzy)]
            if not instances:
                break
            instances.sort(key=lambda h: h.start)
            slots.append(instances)
        else:
            window: set[_Hit] = set()
            starts = [[h.start for h in s] for s in slots]
            longest = [max(h.length for h in s) for s in slots]
            for m in sorted({h.start for s in slots for h in s}):
                chosen: list[_Hit] = []
                for instances, st, n in zip(slots, starts, longest, strict=True):
                    lo, hi = bisect.bisect_left(st, m - n - d), bisect.bisect_right(st, m)
                    near = [h for h in instances[lo:hi] if h.start + h.length + d >= m]
                    if not near:
                        break
                    chosen.extend(near)
                else:
                    if hits is None:
                        return True
                    found = True
                    window.update(chosen)
            if hits is not None:
                hits.extend(sorted(window, key=lambda h: h.start))
    return found


@dataclass(frozen=True)
class MatchResult:
    terms: tuple[str, ...]  # the terms and phrases that matched, as written in the rule
    snippet: str


def _result(doc: Document, hits: list[_Hit]) -> MatchResult:
    leaves = sorted({h.leaf for h in hits}, key=lambda p: p.pos)
    terms = tuple(dict.fromkeys(p.source for p in leaves))
    marks: list[tuple[Field, int, int]] = []
    for h in hits:
        f = doc.fields[h.field]
        first, last = f.keep[h.start], f.keep[h.start + h.length - 1]
        marks.append((f, first, last - first + 1))
    return MatchResult(terms, snippet(doc, marks) if marks else "")


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
    src = f.source
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


def match(query: Query, doc: Document, *, stem: bool = False, fuzzy: int = 0) -> MatchResult | None:
    """Match one query; with `stem`, tokens are compared by their stems in
    the item's language, or in each of `stemming.UNKNOWN_LANGUAGES` in turn
    when it is unknown (the first that matches wins)."""
    algos = stemming.algorithms_for(doc.language) if stem else (None,)
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
# token, ("p", prefix) a token with that prefix, ("s", algo, stem) a token
# with that stem, ("f", token) a token sharing a deletion key with it (a
# superset of "one typo away"). A rule's query implies a conjunction of
# clauses, each a disjunction of atoms; an article that falsifies a clause
# cannot match.
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
    return cost * {"t": 1.0, "s": 1.0, "p": 4.0, "f": 3.0}[atom[0]]


def _best(clauses: list[Clause]) -> Clause:
    return min(clauses, key=lambda c: sum(_atom_cost(a) for a in c))


def _token_atoms(token: str, rule: CompiledRule) -> Clause:
    atoms: set[Atom] = {("t", token)}
    if rule.stem:
        if rule.languages:
            algos = {a for a in (stemming.algorithm(code) for code in rule.languages) if a}
        else:
            algos = set(stemming.all_algorithms())
        atoms.update(("s", algo, stemming.stem(algo, token)) for algo in algos)
    if rule.fuzzy and _fuzzable(token):
        atoms.add(("f", token))
    return frozenset(atoms)


def _clauses(node: Node, rule: CompiledRule) -> list[Clause]:
    """Clauses every matching article satisfies; [] when there are none."""
    if isinstance(node, Phrase):
        last = len(node.tokens) - 1
        return [
            frozenset({("p", t)}) if node.prefix and k == last else _token_atoms(t, rule)
            for k, t in enumerate(node.tokens)
        ]
    if isinstance(node, Near):
        return [frozenset().union(*(_best(_clauses(p, rule)) for p in slot)) for slot in node.slots]
    if isinstance(node, And):
        return list(dict.fromkeys(c for child in node.children for c in _clauses(child, rule)))
    if isinstance(node, Or):
        each = [_clauses(child, rule) for child in node.children]
        if not all(each):
            return [frozenset()]
        return [frozenset().union(*(_best(c) for c in each))]
    if isinstance(node, FieldFilter):
        return _clauses(node.child, rule)
    return []


class RuleSet(Sequence[CompiledRule]):
    """Rules compiled for matching many articles.

    Per article: tokenise once, run the distinct tokens through one
    Aho-Corasick automaton (keys " token " and " prefix"), add stems and
    typo keys when some rule needs them, then evaluate exactly only the
    rules whose clauses all hold. The prefilter never drops a match."""

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self.rules = tuple(rules)
        ids: dict[Atom, int] = {}
        self._anchors: dict[int, list[int]] = {}  # atom -> rules anchored on it
        self._checks: list[tuple[frozenset[int], ...]] = []  # the other clauses of each rule
        self._always: list[int] = []  # rules without clauses (parse_query refuses them)
        for index, rule in enumerate(self.rules):
            clauses = _clauses(rule.query.root, rule)
            if not clauses:
                self._always.append(index)
                self._checks.append(())
                continue
            anchor = _best(clauses)
            numbered = [frozenset(ids.setdefault(a, len(ids)) for a in c) for c in clauses]
            for a in numbered[clauses.index(anchor)]:
                self._anchors.setdefault(a, []).append(index)
            self._checks.append(tuple(c for c, raw in zip(numbered, clauses, strict=True) if raw is not anchor))
        keys: dict[str, list[int]] = {}
        self._stems: dict[str, dict[str, list[int]]] = {}
        self._typos: dict[str, list[int]] = {}
        self._typo_lengths: set[int] = set()
        for atom, a in ids.items():
            kind = atom[0]
            if kind == "t":
                keys.setdefault(f" {atom[1]} ", []).append(a)
            elif kind == "p":
                keys.setdefault(f" {atom[1]}", []).append(a)
            elif kind == "s":
                self._stems.setdefault(atom[1], {}).setdefault(atom[2], []).append(a)
            else:
                for key in _deletions(atom[1]):
                    self._typos.setdefault(key, []).append(a)
                self._typo_lengths.update(range(len(atom[1]) - 1, len(atom[1]) + 2))
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

    def _present(self, doc: Document) -> set[int]:
        vocabulary = doc.vocabulary()
        present: set[int] = set()
        if self._automaton is not None and vocabulary:
            for _, atoms in self._automaton.iter(" " + " ".join(vocabulary) + " "):
                present.update(atoms)
        if self._stems:
            for algo in stemming.algorithms_for(doc.language):
                table = self._stems.get(algo) if algo is not None else None
                if algo is None or not table:
                    continue
                stem = stemming.stem
                for w in vocabulary:
                    found = table.get(stem(algo, w))
                    if found:
                        present.update(found)
        if self._typos:
            typos, lengths = self._typos, self._typo_lengths
            for w in vocabulary:
                if len(w) in lengths:
                    for key in _deletions(w):
                        found = typos.get(key)
                        if found:
                            present.update(found)
        return present

    def candidates(self, doc: Document) -> list[int]:
        """Indexes of the rules that may match doc (a superset of those that do)."""
        present = self._present(doc)
        chosen = set(self._always)
        anchors = self._anchors
        for a in present:
            found = anchors.get(a)
            if found:
                chosen.update(found)
        checks = self._checks
        return [i for i in sorted(chosen) if all(not c.isdisjoint(present) for c in checks[i])]

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
