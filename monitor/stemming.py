"""Snowball stems for rules with `stem = true`.

Stems are taken of *folded* tokens (see `monitor.text.fold`): a rule then
matches the same whether a page writes "sécurités" or "SECURITES", and
query and document go through exactly the same function, which is what
makes a stem comparison meaningful. Snowball stemmers are pure Python
(about 45 µs a word), so stems are cached: news vocabulary is Zipfian and
the cache hit rate is high after a few hundred articles.

Ukrainian has no Snowball stemmer; the Russian one is used for it because
the two languages share most noun endings ("гарантія", "гарантій",
"гарантіями" all give "гаранті"), while forms ending in "-ії" are left as
they are. An item whose language is unknown is tried with `UNKNOWN_LANGUAGES`
in turn (see `monitor.rules`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache

import snowballstemmer

# ISO 639-1 code -> Snowball algorithm.
ALGORITHMS: dict[str, str] = {
    "fr": "french",
    "en": "english",
    "de": "german",
    "ru": "russian",
    "uk": "russian",
    "it": "italian",
    "es": "spanish",
    "pt": "portuguese",
    "nl": "dutch",
}
# Tried in this order when an item's language is unknown: the languages the
# service follows most (see feeds.toml).
UNKNOWN_LANGUAGES: tuple[str, ...] = ("fr", "en", "de", "ru")

_local = threading.local()  # Snowball stemmer objects keep state: one per thread


def primary_language(code: str | None) -> str | None:
    """ "fr-FR", "FR" and "fr" are the same language for rules; "" is unknown."""
    if not code:
        return None
    return code.strip().lower().replace("_", "-").split("-")[0] or None


def algorithm(language: str | None) -> str | None:
    """The Snowball algorithm for a language code, None when there is none."""
    lang = primary_language(language)
    return ALGORITHMS.get(lang) if lang else None


def algorithms_for(language: str | None) -> tuple[str | None, ...]:
    """The stemmers to try for an item: its own, the usual ones when its
    language is unknown, or (None,) for "compare tokens as they are"."""
    lang = primary_language(language)
    if lang is None:
        return tuple(dict.fromkeys(ALGORITHMS[code] for code in UNKNOWN_LANGUAGES))
    algo = ALGORITHMS.get(lang)
    return (algo,) if algo else (None,)


def all_algorithms() -> tuple[str, ...]:
    return tuple(dict.fromkeys(ALGORITHMS.values()))


def _stemmer(algo: str) -> Callable[[str], str]:
    stemmers: dict[str, Callable[[str], str]] | None = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    fn = stemmers.get(algo)
    if fn is None:
        fn = stemmers[algo] = snowballstemmer.stemmer(algo).stemWord
    return fn


@lru_cache(maxsize=1 << 18)
def stem(algo: str, word: str) -> str:
    """The stem of a folded token (already lower case, accents removed)."""
    return str(_stemmer(algo)(word))


@lru_cache(maxsize=1 << 16)
def stem_prefix(word: str, stem: str) -> str:
    """What a token must start with to be compared by stem with `word`.

    Part of the definition of a stem match, so that rules find stem matches
    through an index of prefixes instead of stemming whole articles: the
    letters `word` shares with its stem, less the last two (a stemmer may
    rewrite up to two letters before a suffix, "-ies" -> "-i"), and at least
    its first three letters. This leaves out irregular forms ("dying" for
    "die"), stems that drop a prefix (Dutch "ge-") and Russian "ё" written
    "е" (which plain matching also keeps apart)."""
    n = 0
    limit = min(len(word), len(stem))
    while n < limit and word[n] == stem[n]:
        n += 1
    return word[: max(min(3, len(word)), n - 2)]
