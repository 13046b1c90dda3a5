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
import re
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


@lru_cache(maxsize=1 << 17)
def fold(word: str) -> str:
    """Case- and (Latin) accent-folded form of a word.

    Cached: news text repeats its words, and folding is character by
    character (`str.lower` of a whole word would differ: a final "Σ" becomes
    "ς" in context). ASCII has no such context, so it lowers at once."""
    if word.isascii():
        return word.lower()
    return "".join(_fold_char(c) for c in word)


@dataclass(frozen=True)
class Token:
    text: str  # folded
    start: int  # offsets in the NFC-normalised source
    end: int


# Exactly `is_token_char` (categories L*, N*, Co) as a regex: `\w` is
# `str.isalnum` and "_", which are the L* and N* categories; private use is
# added by range. A run of them is a token, found in C rather than character
# by character (tests/test_dedupe.py checks every code point, and the tokens
# of arbitrary text against the character loop, since content hashes are stored).
_TOKEN = re.compile(r"(?:[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd])+")
# The same but for "_", as one character class: 2.5 times faster than the
# alternation, and right for every text without "_".
_TOKEN_NO_UNDERSCORE = re.compile(r"[\w\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]+")


_PIECES = re.compile(f"({_TOKEN.pattern})")
_PIECES_NO_UNDERSCORE = re.compile(f"({_TOKEN_NO_UNDERSCORE.pattern})")


def _token_re(text: str) -> re.Pattern[str]:
    return _TOKEN if "_" in text else _TOKEN_NO_UNDERSCORE


def pieces(text: str) -> list[str]:
    """An NFC text cut into separator, token, separator, ..., separator (raw,
    not folded; separators may be empty): one call in C, and each token's
    next character is the first of the piece after it."""
    return (_PIECES if "_" in text else _PIECES_NO_UNDERSCORE).split(text)


def spans(text: str) -> list[tuple[str, int, int]]:
    """(folded token, start, end) of each token of an NFC text: `tokenize`
    without the `Token` objects, for the hot paths."""
    return [(fold(m.group()), m.start(), m.end()) for m in _token_re(text).finditer(text)]


def tokenize(text: str) -> list[Token]:
    text = unicodedata.normalize("NFC", text)
    return [Token(t, start, end) for t, start, end in spans(text)]


def words(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text)
    return [fold(w) for w in _token_re(text).findall(text)]


def normalized_text(text: str) -> str:
    """The text as a comparison key: folded tokens joined by single spaces."""
    return " ".join(words(text))


def content_hash(text: str) -> str | None:
    """Exact-copy key: insensitive to case, accents, punctuation and spacing.
    None for a text without a single word, which is nobody's copy."""
    key = normalized_text(text)
    return hashlib.sha256(key.encode("utf-8")).hexdigest() if key else None
