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
Aho-Corasick automaton over the literal tokens, prefixes and typo anchors
that each rule requires, so an article is tokenised once (in C: see
`_spaced`) and only the rules that could match it are evaluated exactly.
benchmarks/rules.py measures it against FTS5.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import math
import operator
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import NamedTuple, NoReturn, TypeAlias, overload
from urllib.parse import urlsplit

import ahocorasick

from monitor import stemming
from monitor.text import Token, fold, is_token_char

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

# Byte tables for bytes.translate, which runs in C at memory speed where
# str.translate looks every character up in a Python mapping (about 15x
# slower on a news article). Latin-1 text, once lower-cased: the folded
# character for a token character, a space for any other.
_LATIN1_TOKENS = bytes(f if is_token_char(chr(f)) else 0x20 for f in _DEACCENT[:0x100])
# UTF-8 text whose non-ASCII characters are all token characters: a space
# for each ASCII separator, every other byte unchanged.
_ASCII_TOKENS = bytes(o if o >= 0x80 or is_token_char(chr(o)) else 0x20 for o in range(0x100))
# Lower-cased Latin-1 text: the folded character (accents off), nothing else changed.
_LATIN1_FOLDED = bytes(_DEACCENT[:0x100])
_PRIVATE_USE = "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
_NON_ASCII_SEPARATOR = re.compile(f"[^\\x00-\\x7f\\w{_PRIVATE_USE}]")


def _cp1251_tokens() -> bytes:
    """What the last resort of `_spaced` makes of lower-cased text in
    Windows-1251 (Cyrillic, typographic punctuation, no Latin accents): a
    space for a separator, every other character unchanged."""
    table = []
    for o in range(0x100):
        try:
            c = bytes([o]).decode("cp1251")
        except UnicodeDecodeError:  # unassigned: never in an encoded text
            table.append(o)
            continue
        if c.isascii():
            table.append(_ASCII_TOKENS[o])
        else:
            table.append(0x20 if _NON_ASCII_SEPARATOR.fullmatch(c) else o)
    return bytes(table)


_CP1251_TOKENS = _cp1251_tokens()


def _elision_pattern() -> re.Pattern[str]:
    """An apostrophe that elides the token before it, in lower-cased text
    (accents not yet removed): after a whole token in ELISIONS, before a
    letter. The token is the group that matched. The pattern starts with
    the apostrophe, so the regex engine skips to apostrophes in C; Python
    needs fixed-width lookbehinds, hence one per length of article."""

    def folding_to(word: str) -> str:  # the lower-case characters that fold to word
        classes = ("".join(chr(o) for o, f in enumerate(_DEACCENT) if f == ord(c)) for c in word)
        return "".join(f"[{chars}]" if len(chars) > 1 else chars for chars in classes)

    start = f"(?<![^\\W_])(?<![{_PRIVATE_USE}])"  # not after a token character
    by_length: dict[int, list[str]] = {}
    for word in sorted(ELISIONS):
        by_length.setdefault(len(word), []).append(folding_to(word))
    behind = "|".join(f"(?<={start}({'|'.join(words)})['\u2019])" for _, words in sorted(by_length.items()))
    return re.compile(f"['\u2019](?:{behind})(?=[^\\W\\d_])")


_ELISION = _elision_pattern()


def _fold_text(source: str) -> str | None:
    """The text with every token folded, in C: lower case, then Latin accents
    removed character by character; None when str.lower() would not do
    (İ lowers to two characters, Σ to σ or ς by context)."""
    if _NOT_PER_CHARACTER.search(source):
        return None
    lowered = source.lower()
    if not _LATIN_ACCENTS.search(lowered):
        return lowered
    try:
        return lowered.encode("latin-1").translate(_LATIN1_FOLDED).decode("latin-1")
    except UnicodeEncodeError:
        return lowered.translate(_DEACCENT)


def _without_elisions(lowered: str) -> str:
    """Lower-cased text with each elided article replaced by spaces (as
    many: offsets do not change)."""
    parts: list[str] = []
    last = 0
    for m in _ELISION.finditer(lowered):
        article = m.start(m.lastindex or 0)
        parts += (lowered[last:article], " " * (m.start() - article))
        last = m.start()
    if not parts:
        return lowered
    parts.append(lowered[last:])
    return "".join(parts)


def _spaced(source: str, elide: bool = True) -> str | None:
    """An NFC text with its tokens folded, elided articles (unless not
    `elide`) and separators made spaces: a string as long as the source,
    with each token at its offsets, whose split() is the folded tokens
    without elided articles. Computed in C; None when the text needs
    `_folded` (see `_fold_text`). tests/test_rules.py checks it against
    `_folded` and monitor.text."""
    lowered = source.lower()
    if elide and ("'" in lowered or "\u2019" in lowered):
        lowered = _without_elisions(lowered)
    try:
        data = lowered.encode("latin-1")  # then the source had neither İ nor Σ
    except UnicodeEncodeError:
        if "\u0130" in source or "\u03a3" in source:
            return None
        # Cyrillic text: one byte a character too, in Windows-1251 (which
        # has no Latin accents, so nothing to fold): 3x faster than below.
        with contextlib.suppress(UnicodeEncodeError):
            return lowered.encode("cp1251").translate(_CP1251_TOKENS).decode("cp1251")
        # Typographic punctuation (’ « — …) is all that keeps most Western
        # text out of Latin-1: make it spaces, then try again.
        lowered = _NON_ASCII_SEPARATOR.sub(" ", lowered)
        try:
            data = lowered.encode("latin-1")
        except UnicodeEncodeError:  # Cyrillic, or Latin beyond Latin-1
            if _LATIN_ACCENTS.search(lowered):
                lowered = lowered.translate(_DEACCENT)
            return lowered.encode().translate(_ASCII_TOKENS).decode()
    return data.translate(_LATIN1_TOKENS).decode("latin-1")


def _nfc(text: str) -> str:
    """The text in NFC. Latin-1 text is in NFC (no character of it composes
    or decomposes), which a copy in C checks faster than `normalize`."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return unicodedata.normalize("NFC", text)
    return text


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
        folded: list[str | None] = list(tokens)  # a copy: `tokens` must keep the elided articles
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
    Only `spaced` is computed up front, in C (see `_spaced`): most articles
    are looked at by few rules or none, so the rest is computed on demand,
    for the words asked about."""

    __slots__ = (
        "text",
        "source",
        "spaced",
        "_aligned",
        "_unelided",
        "_words",
        "_vocabulary",
        "_split",
        "_found",
        "_keep",
        "_ends",
        "_words_text",
        "_joined",
        "_matching",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self.source = _nfc(text)
        spaced = _spaced(self.source)
        self._split: tuple[list[str], list[str]] | None = None
        self._words: list[str] | None = None
        self._aligned = spaced is not None  # each token at its offsets in `source`
        self._unelided: str | None = None
        if spaced is None:
            self._words = list(filter(None, self._pieces_and_tokens()[1]))
            spaced = " ".join(self._words)
        self.spaced: str = spaced  # the folded tokens between spaces, elided articles left out
        self._vocabulary: set[str] | None = None
        self._found: dict[str, list[int]] = {}
        self._keep: Sequence[int] | None = None
        self._ends: list[int] = []
        self._words_text: str | None = None
        self._joined: str | None = None
        self._matching: dict[tuple[str, bool, str | None, bool], set[str]] = {}

    @classmethod
    def of(cls, text: str) -> Field:
        return cls(text)

    def unelided(self) -> str:
        """`spaced` with the elided articles, for an aligned field."""
        if self._unelided is None:
            if "'" in self.source or "\u2019" in self.source:
                self._unelided = _spaced(self.source, elide=False)
            else:
                self._unelided = self.spaced
            assert self._unelided is not None
        return self._unelided

    @property
    def words(self) -> list[str]:
        """The folded tokens, elided articles left out: position -> word."""
        if self._words is None:
            self._words = self.spaced.split()  # no token character is a space (checked by the tests)
        return self._words

    def _pieces_and_tokens(self) -> tuple[list[str], list[str]]:
        """Separator, token, ..., separator of `source`, and every folded
        token ("" for elided articles)."""
        if self._split is None:
            # Fold the whole text at once when that gives the same tokens (nearly
            # always): folding token by token costs a dictionary lookup each.
            folded = _fold_text(self.source)
            pieces = _pieces(folded if folded is not None else self.source)
            self._split = pieces, _folded(folded or self.source, pieces, lowered=folded is not None)
        return self._split

    @property
    def vocabulary(self) -> set[str]:
        """The words of this field (or a superset: see Document.vocabulary)."""
        if self._vocabulary is None:
            self._vocabulary = set(self.words)
        return self._vocabulary

    def occurrences(self, word: str) -> list[int]:
        """Positions of a word, in order."""
        found = self._found.get(word)
        if found is None:
            found = self._found[word] = []
            # Without a vocabulary yet, scanning the words costs less than making one.
            if self._vocabulary is None or word in self._vocabulary:
                # str.find in the words joined by single spaces, and the spaces
                # before a hit for its position: a few times faster than
                # list.index, which compares every word.
                text = self._joined
                if text is None:
                    text = self._joined = f" {' '.join(self.words)} "
                key = f" {word} "
                at, last, position = text.find(key), 0, 0
                while at >= 0:
                    position += text.count(" ", last, at)
                    found.append(position)
                    last = at
                    at = text.find(key, at + 1)
        return found

    @property
    def positions(self) -> dict[str, list[int]]:
        """Word -> its positions, in order."""
        return {w: found for w in self.vocabulary if (found := self.occurrences(w))}

    def offsets(self, lo: int = 0, hi: int | None = None) -> tuple[list[int], list[int]]:
        """Start and end offsets in `source` of tokens lo to hi (elided
        articles included; all by default)."""
        pieces, tokens = self._pieces_and_tokens()
        n = len(tokens) if hi is None else min(hi, len(tokens))
        ends = self._ends  # 0, then the offset after each piece: computed as far as asked, in C
        if len(ends) < 2 * n + 1:
            if not ends:
                ends.append(0)
            more = itertools.accumulate(map(len, itertools.islice(pieces, len(ends) - 1, 2 * n)), initial=ends[-1])
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
        return len(self._pieces_and_tokens()[1])

    @property
    def keep(self) -> Sequence[int]:
        """Position -> index in `tokens`."""
        if self._keep is None:
            tokens = self._pieces_and_tokens()[1]
            self._keep = list(itertools.compress(range(len(tokens)), tokens)) if "" in tokens else range(len(tokens))
        return self._keep

    def _between_spaces(self) -> str:
        """`spaced` with a space first and last (or both fields': see
        Document.vocabulary), where str.find finds the words with a prefix
        in C: faster than sorting the vocabulary to bisect it."""
        if self._words_text is None:
            self._words_text = f" {self.spaced} "
        return self._words_text

    def prefixed(self, prefix: str) -> list[str]:
        """Words of this field that start with prefix."""
        text, key = self._between_spaces(), f" {prefix}"
        found = set()
        at = text.find(key)
        while at >= 0:
            end = text.index(" ", at + 1)
            found.add(text[at + 1 : end])
            at = text.find(key, end)
        return sorted(found)

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
            if not f.occurrences(t):
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
        return cls(head, body, language or None, _host(site) if site else None, feed)

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
        """The words of both fields: one set, which each field takes as its
        own (a field's vocabulary may be a superset), so built only once."""
        vocabulary = self._vocabulary
        if vocabulary is None:
            vocabulary = set(self.text.words)
            vocabulary.update(self.title.words)
            object.__setattr__(self, "_vocabulary", vocabulary)
            self.title._vocabulary = self.text._vocabulary = vocabulary
            # What a query token matches depends on the vocabulary only (what
            # either field found with its own is forgotten).
            self.title._matching = self.text._matching = {}
            self.title._words_text = self.text._words_text = self.spaced
        return vocabulary

    @property
    def spaced(self) -> str:
        """Both fields' folded tokens between spaces, a space first and last."""
        return f" {self.title.spaced} {self.text.spaced} "

    def starts(self, index: int, phrase: Phrase, algo: str | None, fuzzy: bool) -> Sequence[int]:
        """Positions where `phrase` starts in field `index`; shared by every rule."""
        tokens = phrase.tokens
        f = self.text if index else self.title
        if len(tokens) == 1 and algo is None and not fuzzy and not phrase.prefix:
            return f.occurrences(tokens[0])
        key = (index, tokens, phrase.prefix, algo, fuzzy)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = _starts(f, tokens, phrase.prefix, algo, fuzzy, self._words_by_atom)
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
    if f._aligned:
        return MatchResult(terms, _snippet(f, chosen, context))
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


_TOKEN_RUN = re.compile("[^ ]+")


@functools.cache
def _window_patterns(context: int) -> tuple[re.Pattern[str], re.Pattern[str], list[re.Pattern[str]]]:
    """Up to 2 * context tokens from a token's start, up to context tokens
    in a reversed text (with the spaces before each), and k tokens with the
    spaces after each, for each k of a window."""
    return (
        re.compile(f"[^ ]+(?: +[^ ]+){{0,{2 * context - 1}}}"),
        re.compile(f"(?: +[^ ]+){{0,{context}}}"),
        [re.compile(f"(?:[^ ]+ +){{{k}}}") for k in range(3 * context + 1)],
    )


def _snippet(f: Field, hits: list[_Hit], context: int) -> str:
    """What `snippet` makes of the hits of one field, from offsets found
    around the first hit only (no tokenising of the whole field): the
    window is context tokens before the first hit and 2 * context from it,
    elided articles counted (the aligned `Field.unelided` has them,
    `Field.spaced` has them blank)."""
    spaced, full = f.spaced, f.unelided()
    first = min(h.starts[0] for h in hits)
    # Where word `first` starts: it is occurrence `rank` of its word, found
    # with str.find (in C, no token list made).
    word = f.words[first]
    rank = bisect.bisect_left(f.occurrences(word), first)
    padded, key, c0 = f" {spaced} ", f" {word} ", -1
    for _ in range(rank + 1):
        c0 = padded.find(key, c0 + 1)  # word starts at padded[c0 + 1], spaced[c0]
    # The window's ends by regex, each in one call: 2 * context tokens from
    # c0, and context before it, found in the text before c0 reversed.
    after_re, before_re, skip = _window_patterns(context)
    end = after_re.match(full, c0).end()  # type: ignore[union-attr]  # full[c0] starts a token
    more_after = _TOKEN_RUN.search(full, end) is not None
    # Tokens before: in a stretch as long as the tokens after take, or longer.
    width = (end - c0) * (context + 1) // (2 * context) + 16
    while True:
        begin = max(0, c0 - width)
        reverse = full[begin:c0][::-1]
        taken = before_re.match(reverse).end()  # type: ignore[union-attr]  # matches the empty string
        k0 = len(reverse[:taken].split())  # the first hit's index in spans
        # Enough tokens, the last one whole (a space after it), or all of them.
        if (k0 == context and taken < len(reverse)) or begin == 0:
            break
        width *= 2
    start = c0 - taken
    more_before = k0 == context and _TOKEN_RUN.search(full, 0, start) is not None
    marks = set()
    if full is spaced or full[start:end] == spaced[start:end]:  # none in the window: position - shift
        # Only the marked tokens' offsets are needed: k tokens from the
        # window's start, in one regex call each.
        last = k0 + len(full[c0:end].split()) - 1
        shift = first - k0
        lo, hi = shift, shift + last
        for h in hits:
            n = h.length - 1
            for s in h.starts[bisect.bisect_left(h.starts, lo) : bisect.bisect_right(h.starts, hi)]:
                marks.add((s - shift, min(s + n - shift, last) + 1))

        def span(k: int) -> tuple[int, int]:
            at = c0 if k == k0 else skip[k].match(full, start).end()  # type: ignore[union-attr]
            stop = full.find(" ", at, end)
            return at, end if stop < 0 else stop

    else:
        spans = [m.span() for m in _TOKEN_RUN.finditer(full, start, end)]
        last = len(spans) - 1
        # Position -> index in spans, elided articles (blank in `spaced`) left out.
        index = {}
        position = first
        for k in range(k0, len(spans)):
            if spaced[spans[k][0]] != " ":
                index[position] = k
                position += 1
        position = first - 1
        for k in range(k0 - 1, -1, -1):
            if spaced[spans[k][0]] != " ":
                index[position] = k
                position -= 1
        lo, hi = min(index), max(index)
        for h in hits:
            for s in h.starts[bisect.bisect_left(h.starts, lo) : bisect.bisect_right(h.starts, hi)]:
                marks.add((index[s], index.get(s + h.length - 1, last) + 1))

        def span(k: int) -> tuple[int, int]:
            return spans[k]

    src = f.source
    out: list[str] = []
    cursor = start
    for a, e in sorted(marks):
        mark_start, mark_end = span(a)[0], span(e - 1)[1]
        if mark_start < cursor:
            continue
        out += (src[cursor:mark_start], "**", src[mark_start:mark_end], "**")
        cursor = mark_end
    out.append(src[cursor:end])
    text = " ".join("".join(out).split())
    return ("… " if more_before else "") + text + (" …" if more_after else "")


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
# token, ("p", prefix) when it has a token with that prefix, ("f", token)
# when it has a token one typo away (see `_Typos`), ("s", algo, prefix)
# when it has a token with that prefix and is stemmed with algo (derived
# from the "p" atom per article: see `RuleSet._present`). A stem term is
# read as the token or the prefixes that its stem matches require (see
# `stemming.stem_prefix`), one per stemmer: the prefilter may let a rule
# through that evaluation then refuses, never the reverse.
# A rule's requirement is its query with each phrase read as "all its
# tokens are there" and NOT, lang:, site:, feed: read as "maybe", put in
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
_KIND_COST = {"t": 1.0, "p": 4.0, "f": 3.0, "s": 4.0}


def _atom_cost(atom: Atom) -> float:
    word = atom[-1]
    cost = 0.6 ** len(word) + (2.0 if word in _COMMON else 0.0)
    return cost * _KIND_COST[atom[0]]


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
        # A token is one typo away from itself, and has its own stem.
        atoms: set[Atom] = {("f", token) if self.rule.fuzzy and _fuzzable(token) else ("t", token)}
        for algo in self.algos:
            atoms.add(("s", algo, stemming.stem_prefix(token, stemming.stem(algo, token))))
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

# Prefix and typo atom -> the words seen that bring it, for evaluating the
# rules that have them without scanning the article's vocabulary.
WordIndex: TypeAlias = dict[Atom, set[str]]

# In the view of a text that `_Scan` reads, the character that stands for
# every character that no key has.
_OTHER = "\x01"


class _Typos:
    """Which words are one typo away from the rules' typo terms, found with
    little work per word.

    An edit at position i of a term leaves its first i letters at the start
    of the word and its letters after i (after i + 1 for a swap) at the end.
    So with h = len(term) // 2, a word one edit away from a term (5+
    letters) either starts with term[:h] (an edit at h or after), or ends
    with term[h:] (an edit before h, or an insertion at h), or is the term
    with letters h - 1 and h swapped. The last is found exactly, as a whole
    word (`swapped`); the others through anchors (" " + term[:h] in
    `starts`, and " " + the reverse of term[h:] in `tails`, which runs over
    the reversed text), checking only the words of a length one typo
    allows (`_fits`): half a term and a length are rare together, and
    `_Lexicon` learns a word with no per-word work but a few hits (issue
    6: the typo check was a seventh of the cold start). `_Scan` anchors on
    term[:h + 1] (`head_keys`), which fewer words have, and finds the edits
    at h exactly (`exact`, and the term with letter h replaced, which it
    makes keys of). tests/test_rules.py tries every kind of edit at every
    place, and checks `_Atoms.of` against `within_one_edit`."""

    def __init__(self, atoms: dict[str, int]) -> None:
        self.atoms = atoms  # term -> its atom
        self.exact: dict[str, list[int]] = {}  # " word " -> atoms
        self.swapped: dict[str, list[int]] = {}  # the part of `exact` that `_Atoms` needs
        # anchor key -> (from the key's end back to the word's start, terms)
        self.head_keys: dict[str, tuple[int, tuple[str, ...]]] = {}
        # anchor key -> the terms it anchors
        start_keys: dict[str, list[str]] = {}
        tail_keys: dict[str, list[str]] = {}
        for term, a in atoms.items():
            h = len(term) // 2
            swaps = (term[: i - 1] + term[i] + term[i - 1] + term[i + 1 :] for i in (h, h + 1))
            for word in {term, term[:h] + term[h + 1 :], *swaps}:
                self.exact.setdefault(f" {word} ", []).append(a)
            swapped = term[: h - 1] + term[h] + term[h - 1] + term[h + 1 :]
            self.swapped.setdefault(f" {swapped} ", []).append(a)
            key = " " + term[: h + 1]
            self.head_keys[key] = (len(key) - 2, (*self.head_keys.get(key, (0, ()))[1], term))
            start_keys.setdefault(" " + term[:h], []).append(term)
            tail_keys.setdefault(" " + term[h:][::-1], []).append(term)
        # Anchor key -> word length -> the terms (and atoms) a word of that
        # length may be one typo from: `_Atoms` makes keys of `starts`.
        self.starts = {key: self._fits(terms) for key, terms in start_keys.items()}
        self.tails = ahocorasick.Automaton()
        for key, terms in tail_keys.items():
            self.tails.add_word(key, (len(key) - 2, self._fits(terms)))
        self.tails.make_automaton()

    def _fits(self, terms: list[str]) -> dict[int, tuple[tuple[str, int], ...]]:
        """Word length -> the terms (and atoms) a word that long may be one typo from."""
        fits: dict[int, tuple[tuple[str, int], ...]] = {}
        for term in terms:
            for n in (len(term) - 1, len(term), len(term) + 1):
                fits[n] = (*fits.get(n, ()), (term, self.atoms[term]))
        return fits

    def add_tails(self, joined: str, found: dict[str, list[int]]) -> None:
        """Add to found the words of `joined` (words between spaces) one typo
        from a term whose tail they end with, and those terms' atoms."""
        reverse = joined[::-1]
        find = reverse.find
        for end, (back, fits) in self.tails.iter(reverse):
            word = reverse[end - back : find(" ", end)][::-1]
            these = fits.get(len(word))
            if these is not None:
                for t, a in these:
                    if within_one_edit(t, word):
                        found.setdefault(word, []).append(a)


class _Scan:
    """Finds the atoms of an article by reading its text, all but the typo
    anchors' few words in C, with no work per word: right for rule sets
    with few atoms, whose keys a text has few occurrences of (see
    `RuleSet`).

    One Aho-Corasick automaton reads the article's folded text (see
    `Document.spaced`) for keys " token ", " prefix", the whole words one
    typo away that `_Typos` finds exactly (`exact`, and its terms with letter
    h replaced by any letter of the keys or by `_OTHER`), and the typo
    anchors " " + term[:h + 1], whose words are then checked; `_Typos.tails`
    reads the text reversed. The text is read in a view where every
    character that no key has is `_OTHER` (offsets unchanged). Tokens of up
    to three letters, prefixes of up to two and the commonest words are not
    looked for but taken as present, unless a rule is anchored on them:
    nearly every article has them, many times, and all a wrong guess does
    is make a candidate of a rule that evaluation then refuses."""

    def __init__(self, ids: dict[Atom, int], anchors: frozenset[int]) -> None:
        keys: dict[str, list[int]] = {}
        common: list[int] = []
        fuzzy: dict[str, int] = {}  # typo term -> its atom
        letters: set[str] = set()
        for atom, a in ids.items():
            kind, word = atom[0], atom[1]
            if kind == "s":  # derived from its "p" atom
                continue
            letters.update(word)
            if a not in anchors and (len(word) <= (3 if kind == "t" else 2) or word in _COMMON):
                common.append(a)
            elif kind == "t":
                keys.setdefault(f" {word} ", []).append(a)
            elif kind == "p":
                keys.setdefault(f" {word}", []).append(a)
            else:
                fuzzy[word] = a
        self.common = frozenset(common)
        self.typos = _Typos(fuzzy) if fuzzy else None
        # Typo anchors are keys too, with ids after the atoms'.
        self.heads: list[tuple[str, tuple[str, ...]]] = []  # key, terms
        if self.typos is not None:
            for term, a in self.typos.atoms.items():
                h = len(term) // 2
                for c in (*letters, _OTHER):
                    keys.setdefault(f" {term[:h]}{c}{term[h + 1 :]} ", []).append(a)
            for key, found in self.typos.exact.items():
                keys.setdefault(key, []).extend(found)
            for key, (_, terms) in self.typos.head_keys.items():
                keys.setdefault(key, []).append(len(ids) + len(self.heads))
                self.heads.append((key, terms))
        self.first_head = len(ids)
        self.head_ids = frozenset(range(len(ids), len(ids) + len(self.heads)))
        # An automaton of ints (no Python object per key, nor per hit but
        # the hit): the id of a key's atom, or of a group of them.
        self.groups: dict[int, tuple[int, ...]] = {}
        self.automaton: ahocorasick.Automaton | None = None
        if keys:
            self.automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            for key, found in keys.items():
                if len(found) > 1:
                    group = len(ids) + len(self.heads) + len(self.groups)
                    self.groups[group] = tuple(found)
                    found = [group]
                self.automaton.add_word(key, found[0])
            self.automaton.make_automaton()
        self.group_ids = frozenset(self.groups)
        kept = frozenset(letters) | {" "}
        self.latin1 = bytes(o if chr(o) in kept else ord(_OTHER) for o in range(0x100))
        self.others = re.compile("[^ " + "".join(map(re.escape, sorted(letters))) + "]")  # one by one: same offsets

    def present(self, doc: Document) -> set[int]:
        """The atoms of doc, but for `common`."""
        spaced = doc.spaced
        try:
            view = spaced.encode("latin-1").translate(self.latin1).decode("latin-1")
        except UnicodeEncodeError:
            view = self.others.sub(_OTHER, spaced)
        if self.automaton is None:
            return set()
        present = set(map(_second, self.automaton.iter(view)))
        for group in present & self.group_ids:
            present.discard(group)
            present.update(self.groups[group])
        if self.typos is None:
            return present
        atoms = self.typos.atoms
        for h in present & self.head_ids:
            present.discard(h)
            key, terms = self.heads[h - self.first_head]
            at = view.find(key)
            while at >= 0:
                word = view[at + 1 : view.index(" ", at + 1)]
                present.update(atoms[t] for t in terms if within_one_edit(t, word))
                at = view.find(key, at + 1)
        reverse = view[::-1]
        for end, (back, fits) in self.typos.tails.iter(reverse):
            word = reverse[end - back : reverse.index(" ", end)][::-1]
            these = fits.get(len(word))
            if these is not None:
                present.update(a for t, a in these if within_one_edit(t, word))
        return present


class _Atoms:
    """How the atoms a word brings are found (those `kept`); compiled once
    per RuleSet."""

    def __init__(self, ids: dict[Atom, int], kept: frozenset[int]) -> None:
        # Atom ids are the very int objects of `ids` everywhere, so that set
        # operations on them compare identities, never the ints' memory.
        self.atoms: list[Atom] = [("",)] * len(ids)  # by id
        for atom, a in ids.items():
            self.atoms[a] = atom
        self.kept = kept
        keys: dict[str, list[int]] = {}
        fuzzy: dict[str, int] = {}  # typo term -> its atom
        for atom, a in ids.items():
            kind = atom[0]
            if a not in kept or kind == "s":  # "s": derived from its "p" atom
                continue
            if kind == "t":
                keys.setdefault(f" {atom[1]} ", []).append(a)
            elif kind == "p":
                keys.setdefault(f" {atom[1]}", []).append(a)
            else:
                fuzzy[atom[1]] = a
        self.typos = _Typos(fuzzy) if fuzzy else None
        starts: dict[str, dict[int, tuple[tuple[str, int], ...]]] = {}
        if self.typos is not None:
            for key, found in self.typos.swapped.items():
                keys.setdefault(key, []).extend(found)
            starts = self.typos.starts
        # Key -> (from the key's end back to the word's start, the atoms the
        # key brings, the typo terms it anchors by word length or None).
        self.automaton: ahocorasick.Automaton | None = None
        if keys or starts:
            self.automaton = ahocorasick.Automaton()
            for key in keys.keys() | starts.keys():
                self.automaton.add_word(key, (len(key) - 2, tuple(keys.get(key, ())), starts.get(key)))
            self.automaton.make_automaton()

    def of(self, words: list[str]) -> dict[str, list[int]]:
        """The words that bring atoms, and their atoms (an atom may come twice)."""
        found: dict[str, list[int]] = {}
        # One pass over the words joined: every key is " " and the start of
        # a word, whose end is the next space.
        joined = " " + " ".join(words) + " "
        if self.automaton is not None:
            find = joined.find
            for end, (back, ids, fits) in self.automaton.iter(joined):
                word = joined[end - back : find(" ", end)]
                if ids:
                    found.setdefault(word, []).extend(ids)
                if fits is not None:
                    these = fits.get(len(word))
                    if these is not None:
                        for t, a in these:
                            if within_one_edit(t, word):
                                found.setdefault(word, []).append(a)
        if self.typos is not None:
            self.typos.add_tails(joined, found)
        return found


class _Lexicon:
    """The atoms of each word seen (those `_Atoms` keeps), learnt word by
    word: right for rule sets with many atoms (see `RuleSet`).

    What a word brings depends on the word alone, so it is computed once per
    word, not per article: per article, the distinct words known to bring
    nothing are left out by one set difference in C, and those known to
    bring atoms are looked up; new words are learnt together, with one pass
    of the automaton over them joined. News vocabulary is Zipfian: after a
    few hundred articles nearly every word is known. Shared between
    threads: a word learnt twice is learnt the same, and a word enters
    `atoms` only once it is in `words`."""

    LIMIT = 1 << 18  # words: a crawler sees an endless vocabulary

    def __init__(self, compiled: _Atoms) -> None:
        self.compiled = compiled
        self.clean: set[str] = set()  # words that bring no atom
        # The others, and their atoms: tuples, which the garbage collector stops tracking.
        self.atoms: dict[str, tuple[int, ...]] = {}
        # Only the atoms kept: for the others, evaluation looks at the article's vocabulary.
        self.words: WordIndex = {compiled.atoms[a]: set() for a in compiled.kept if compiled.atoms[a][0] in "pf"}
        # The same sets by atom id, for learning words without looking atoms up.
        self.indexed = {a: self.words[compiled.atoms[a]] for a in compiled.kept if compiled.atoms[a] in self.words}

    @property
    def full(self) -> bool:
        return len(self.clean) + len(self.atoms) >= self.LIMIT

    def present(self, vocabulary: set[str]) -> set[int]:
        """The atoms of the words of vocabulary."""
        unknown = list(vocabulary - self.clean)
        atoms = self.atoms
        found = list(map(atoms.get, unknown))
        present: set[int] = set().union(*filter(None, found))
        if None in found:
            new = list(itertools.compress(unknown, map(operator.not_, found)))  # not seen before
            brought = self.compiled.of(new)
            self.clean.update(itertools.filterfalse(brought.__contains__, new))  # most
            indexed = self.indexed
            for word, these in brought.items():
                for a in indexed.keys() & these:
                    indexed[a].add(word)
                atoms[word] = tuple(dict.fromkeys(these))
                present.update(these)
        return present


# The rest of a conjunction, in the form that `RuleSet.candidates` checks:
# atoms that the prefilter finds, tokens in the vocabulary, prefixes of a
# word (" " + prefix, with the stemmer they matter for, None for all).
_Rest: TypeAlias = tuple[frozenset[int], frozenset[str], tuple[tuple[str, str | None], ...]]
# The same for articles stemmed with given stemmers: only the prefixes that
# matter for them, found with `in` on `Document.spaced` (all in C).
_Narrowed: TypeAlias = tuple[frozenset[int], frozenset[str], tuple[str, ...]]
_GeneralChecks: TypeAlias = dict[int, list[tuple[int, tuple[_Narrowed, ...]]]]
_NO_WORDS: frozenset[str] = frozenset()


def _narrowed(rest: _Rest, algos: tuple[str | None, ...]) -> _Narrowed:
    kept, tokens, prefixes = rest
    return kept, tokens, tuple(key for key, algo in prefixes if algo is None or algo in algos)


# Up to this many atoms, a RuleSet reads each text (`_Scan`); beyond, it
# looks its distinct words up (`_Lexicon`): with many atoms, a text has
# many occurrences of keys. Measured with benchmarks/rules.py (issue 6): 300
# rules (about 1,500 atoms) are faster scanned, 1,000 rules (about 4,700)
# faster through the lexicon, by some 15%, and 10,000 rules (about 30,000)
# much faster.
_SCAN_ATOMS = 3_000
# The lexicon keeps the prefixes (of prefix and stem terms) of this many
# letters or more, so the rules that need them check a set; shorter ones are
# looked for in the text, where nearly every article has a word with them,
# found at once (a long prefix is rarely there, and `in` reads the whole
# text to say so). Measured with benchmarks/rules.py (issue 6), 10,000
# rules: every prefix in the lexicon is some 15% slower, none 8% slower.
_LAZY_PREFIX = 4


class RuleSet(Sequence[CompiledRule]):
    """Rules compiled for matching many articles.

    Per article: tokenise once (`Document`), find the atoms it has (see
    `_Scan` for few atoms, `_Lexicon` for many), take the rules anchored on
    them whose rest of the conjunction holds, and evaluate exactly only
    those (`candidates`). The prefilter never drops a match
    (tests/test_rules.py checks it against each rule alone). Safe to share
    between threads."""

    def __init__(self, rules: Iterable[CompiledRule], *, scan: bool | None = None) -> None:
        """`scan`: find atoms with `_Scan` rather than `_Lexicon` (by default,
        when there are few)."""
        self.rules = tuple(rules)
        ids: dict[Atom, int] = {}
        self._costs: list[float] = []  # by atom id
        # atom -> (rule, the rest of a conjunction anchored on the atom):
        # atoms that must all be there, or (general) clauses that must each
        # have one.
        anchors: dict[int, list[tuple[int, frozenset[int]]]] = {}
        general: dict[int, list[tuple[int, tuple[frozenset[int], ...]]]] = {}
        self._always: list[int] = []  # rules that need no atom (parse_query refuses them)
        for index, rule in enumerate(self.rules):
            requirements = _Requirements(rule, ids, self._costs)
            need = requirements.need(rule.query.root)
            if () in need:
                self._always.append(index)
                continue
            for conjunction in need:
                anchor = min(conjunction, key=lambda c: sum(self._costs[a] for a in c))
                rest = tuple(c for c in conjunction if c is not anchor)
                for a in anchor:
                    if all(len(c) == 1 for c in rest):
                        anchors.setdefault(a, []).append((index, frozenset(a for c in rest for a in c)))
                    else:
                        general.setdefault(a, []).append((index, rest))
        # A stem prefix anchors a rule only in articles stemmed so: most stem
        # rules apply to one language, and where the prefixes of several
        # stemmers are atoms, an article's words often start with one that is
        # not its own. So a stem atom ("s", algo, prefix) is derived per
        # article from its prefix atom, which is what is found.
        base_of: dict[int, int] = {}
        for atom, a in list(ids.items()):
            if atom[0] == "s":
                base = ids.get(("p", atom[2]))
                if base is None:
                    base = ids[("p", atom[2])] = len(ids)
                    self._costs.append(_atom_cost(("p", atom[2])))
                base_of[a] = base
        self._anchored = frozenset(anchors)
        self._anchored_general = frozenset(general)
        anchoring = self._anchored | self._anchored_general
        found_anchors = anchoring | {base_of[a] for a in anchoring if a in base_of}
        self._scan: _Scan | None = None
        common: frozenset[int] = frozenset()  # atoms taken as present
        if scan if scan is not None else len(ids) <= _SCAN_ATOMS:
            self._scan = _Scan(ids, found_anchors)
            common = self._scan.common
            common |= {a for a, base in base_of.items() if base in common}
            kept = frozenset(ids.values()) - common
        else:
            # The lexicon keeps the atoms that anchor rules and typos: most
            # words that bring atoms bring only some of the rest of a
            # conjunction, which is checked on the article's vocabulary
            # instead, and only for the rules anchored in it.
            kept = found_anchors | {
                a for atom, a in ids.items() if atom[0] == "f" or (atom[0] in "ps" and len(atom[-1]) >= _LAZY_PREFIX)
            }
            self._atoms = _Atoms(ids, kept)
            self._lexicon = _Lexicon(self._atoms)
        atom_of = {a: atom for atom, a in ids.items()}
        derived: dict[int, list[tuple[str, int]]] = {}
        for a, base in base_of.items():
            if a in kept:
                derived.setdefault(base, []).append((atom_of[a][1], a))
        self._derived = {base: tuple(found) for base, found in derived.items()}
        self._derived_by_algos: dict[tuple[str | None, ...], tuple[frozenset[int], dict[int, frozenset[int]]]] = {}

        def split(clause: frozenset[int]) -> _Rest:
            lazy = [atom_of[a] for a in clause - kept]
            return (
                clause & kept,
                frozenset(atom[1] for atom in lazy if atom[0] == "t"),
                tuple((" " + atom[-1], atom[1] if atom[0] == "s" else None) for atom in lazy if atom[0] != "t"),
            )

        # The rules that the atom alone anchors (nothing to check: most), then
        # those with atoms or tokens to check, then those with prefixes too; a
        # clause with an atom taken as present always holds.
        self._checks: dict[int, tuple[tuple[int, ...], list[tuple[int, *_Rest]], list[tuple[int, *_Rest]]]] = {}
        for a, found in anchors.items():
            rests = [(i, *split(rest - common)) for i, rest in found]
            self._checks[a] = (
                tuple(i for i, kept_, tokens, prefixes in rests if not kept_ and not tokens and not prefixes),
                [r for r in rests if (r[1] or r[2]) and not r[3]],
                [r for r in rests if r[3]],
            )
        self._general_rests = {
            a: [(i, tuple(split(c) for c in rest if common.isdisjoint(c))) for i, rest in found]
            for a, found in general.items()
        }
        # The same per set of stemmers, narrowed as the anchors are met.
        self._general_by_algos: dict[tuple[str | None, ...], _GeneralChecks] = {}

    def _general_checks(self, algos: tuple[str | None, ...], a: int) -> list[tuple[int, tuple[_Narrowed, ...]]]:
        """The general checks anchored on atom a, for articles stemmed with
        algos: a prefix of a stem term for another stemmer never holds, so
        a clause forgets it, and a rule with a clause left empty goes."""
        checks = self._general_by_algos.get(algos)
        if checks is None:
            checks = self._general_by_algos[algos] = {}
        found = checks.get(a)
        if found is None:
            narrowed = [(i, tuple(_narrowed(c, algos) for c in clauses)) for i, clauses in self._general_rests[a]]
            found = checks[a] = [(i, clauses) for i, clauses in narrowed if all(any(c) for c in clauses)]
        return found

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
        """The atoms that hold for doc (or may: see `_Scan`)."""
        if self._scan is not None:
            present = self._scan.present(doc)
        else:
            lexicon = self._lexicon
            if lexicon.full:
                lexicon = self._lexicon = _Lexicon(self._atoms)  # replaced, not cleared: other threads keep theirs
            present = lexicon.present(doc.vocabulary())
            object.__setattr__(doc, "_words_by_atom", lexicon.words)
        if self._derived:
            derived = self._derived_by_algos.get(doc.algorithms)
            if derived is None:
                derived = self._derived_by_algos[doc.algorithms] = self._derive(doc.algorithms)
            bases, atoms = derived
            present.update(*map(atoms.__getitem__, present & bases))
        return present

    def _derive(self, algos: tuple[str | None, ...]) -> tuple[frozenset[int], dict[int, frozenset[int]]]:
        """The prefix atoms that bring stem atoms in articles stemmed with
        algos, and the stem atoms each brings."""
        atoms = {base: frozenset(a for algo, a in found if algo in algos) for base, found in self._derived.items()}
        atoms = {base: these for base, these in atoms.items() if these}
        return frozenset(atoms), atoms

    def candidates(self, doc: Document) -> list[int]:
        """Indexes of the rules that may match doc (a superset of those that do)."""
        present = self._present(doc)
        vocabulary: AbstractSet[str] = _NO_WORDS if self._scan is not None else doc.vocabulary()
        chosen = set(self._always)
        checks = self._checks
        algos = doc.algorithms
        # Both fields' words between spaces (see Document.vocabulary): " " +
        # prefix is in it when a word starts with prefix. (`_Scan` leaves no
        # prefix to check.)
        words = _NO_WORDS.__contains__ if self._scan is not None else doc.text._between_spaces().__contains__
        for a in present.intersection(self._anchored):
            alone, rests, prefixed = checks[a]
            chosen.update(alone)
            for i, kept, tokens, _ in rests:
                if kept <= present and tokens <= vocabulary:
                    chosen.add(i)
            for i, kept, tokens, prefixes in prefixed:
                if (
                    kept <= present
                    and tokens <= vocabulary
                    and all((algo is None or algo in algos) and words(key) for key, algo in prefixes)
                ):
                    chosen.add(i)
        general = self._general_checks
        for a in present.intersection(self._anchored_general):
            for i, clauses in general(algos, a):
                for kept, tokens, keys in clauses:
                    if kept.isdisjoint(present) and tokens.isdisjoint(vocabulary) and not any(map(words, keys)):
                        break
                else:
                    chosen.add(i)
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
