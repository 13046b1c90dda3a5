"""Cyrillic to Latin, for comparing Ukrainian and Russian text with the rest.

A plain letter table, deterministic and reversible enough to read: the
Ukrainian national system (Cabinet of Ministers resolution 55 of 2010, the
one behind "Kyiv", "Zelenskyi", "Sybiha") for Ukrainian, and a BGN/PCGN-like
table for Russian ("Zakharova", "Peskov"). The two differ where the letters
sound different: Ukrainian "г" is "h", "и" is "y"; Russian "г" is "g", "и" is
"i". Story scoring (`monitor.stories`) folds the remaining spelling
differences away; this module only writes Latin letters.
"""

from __future__ import annotations

_COMMON = {
    "а": "a",
    "б": "b",
    "в": "v",
    "д": "d",
    "е": "e",
    "ж": "zh",
    "з": "z",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ь": "",
    "ю": "yu",
    "я": "ya",
}

_UK = {
    **_COMMON,
    "г": "h",
    "ґ": "g",
    "и": "y",
    "і": "i",
    # Inside a word; at the start they are "ye", "yi", "y" (see _UK_INITIAL).
    "є": "ie",
    "ї": "i",
    "й": "i",
    "ю": "iu",
    "я": "ia",
    "'": "",
    "’": "",
    "ʼ": "",
    # Russian letters met in Ukrainian text (quotes, names), read the Russian way.
    "ё": "e",
    "ъ": "",
    "ы": "y",
    "э": "e",
}
_UK_INITIAL = {"є": "ye", "ї": "yi", "й": "y", "ю": "yu", "я": "ya"}

_RU = {
    **_COMMON,
    "г": "g",
    "и": "i",
    "й": "y",
    "ё": "e",
    "ъ": "",
    "ы": "y",
    "э": "e",
    # Ukrainian letters met in Russian text, read the Ukrainian way.
    "ґ": "g",
    "є": "ye",
    "і": "i",
    "ї": "yi",
}

_UKRAINIAN_ONLY = frozenset("ґєіїҐЄІЇ")


def is_cyrillic(c: str) -> bool:
    return "\u0400" <= c <= "\u04ff"


def transliterate(text: str, language: str | None = None) -> str:
    """`text` with its Cyrillic letters in Latin; everything else unchanged.

    `language` picks the table ("uk" or "ru"); without it, a text with a
    letter that only Ukrainian has (і, ї, є, ґ) is Ukrainian, else Russian."""
    if language not in ("uk", "ru"):
        language = "uk" if any(c in _UKRAINIAN_ONLY for c in text) else "ru"
    table = _UK if language == "uk" else _RU
    out: list[str] = []
    prev_letter = False
    for c in text:
        low = c.lower()
        if not (is_cyrillic(c) or (language == "uk" and low in "'’ʼ" and prev_letter)):
            out.append(c)
            prev_letter = c.isalpha()
            continue
        latin = _UK_INITIAL.get(low) if language == "uk" and not prev_letter else None
        if latin is None:
            latin = table.get(low, c)
        if c != low and latin:
            latin = latin[0].upper() + latin[1:]
        out.append(latin)
        prev_letter = True
    return "".join(out)
