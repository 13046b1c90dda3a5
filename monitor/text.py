"""Tokens and normalised text, shared by rule matching and dedupe.

Tokenising follows SQLite FTS5's `unicode61 remove_diacritics 2` tokenizer
so that rule matching can be checked against FTS5 as an oracle: token
characters are Unicode letters, numbers and private-use characters (the
tokenizer's default "L* N* Co"); everything else separates. Case is folded
with `str.lower`, and diacritics are removed from Latin letters only, as
FTS5 does: "é" is "e", but Cyrillic "й" stays "й" (it is a letter of its own,
not "и" with an accent).

One deliberate difference: text is NFC-normalised first, so a page that
writes "é" as "e" + combining accent still gives "e".
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=65536)
def _fold_char(c: str) -> str:
    low = c.lower()
    out = []
    for ch in low:
        o = ord(ch)
        # Latin blocks: Basic Latin to IPA Extensions, and Latin Extended Additional.
        if o < 0x250 or 0x1E00 <= o <= 0x1EFF:
            base = "".join(x for x in unicodedata.normalize("NFD", ch) if not unicodedata.combining(x))
            out.append(base or ch)
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=65536)
def is_token_char(c: str) -> bool:
    cat = unicodedata.category(c)
    return cat[0] in "LN" or cat == "Co"


def fold(word: str) -> str:
    """Case- and (Latin) accent-folded form of a word."""
    return "".join(_fold_char(c) for c in word)


@dataclass(frozen=True)
class Token:
    text: str  # folded
    start: int  # offsets in the NFC-normalised source
    end: int


def tokenize(text: str) -> list[Token]:
    text = unicodedata.normalize("NFC", text)
    tokens: list[Token] = []
    start = -1
    for i, c in enumerate(text):
        if is_token_char(c):
            if start < 0:
                start = i
        elif start >= 0:
            tokens.append(Token(fold(text[start:i]), start, i))
            start = -1
    if start >= 0:
        tokens.append(Token(fold(text[start:]), start, len(text)))
    return tokens


def words(text: str) -> list[str]:
    return [t.text for t in tokenize(text)]


def normalized_text(text: str) -> str:
    """The text as a comparison key: folded tokens joined by single spaces."""
    return " ".join(words(text))


def content_hash(text: str) -> str | None:
    """Exact-copy key: insensitive to case, accents, punctuation and spacing.
    None for a text without a single word, which is nobody's copy."""
    key = normalized_text(text)
    return hashlib.sha256(key.encode("utf-8")).hexdigest() if key else None
