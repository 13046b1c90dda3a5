"""Which story is this item about? Cross-language story grouping (issue 5).

A story is one event, told by any number of items in any language. An item
is compared with the stories active in the last `ACTIVE_DAYS` days by a
language-independent profile of its title and lead:

- character n-grams of the transliterated, spelling-folded text, which catch
  the same names, numbers and international words in every language (and
  everything in a shared language);
- anchors: names (the consonant skeleton of a capitalised word, so that
  "Zelensky", "Selenskyj", "Зеленський" and "Зеленского" meet), numbers
  ("1,200", "1 200", "1.200" and "1200" are one; "11,5 milliards" and "11.5
  billion" too) and dates ("6 janvier", "January 6", "6. Januar", "6 січня",
  "6 января", and weekday names resolved against the publication date);
- the publication time.

Distinct events on one topic share the topic's names (Zelensky, Paris,
Macron) but not their own: the people and place of the day, its figures and
its date. So the score is the share of the *item's* features that the story
has (a story's features weighted by how many of its items have them), times
a date factor (a story of another day is discounted, however many names it
shares) and a decay with the time between the item and the story.

Everything is pure: the caller stores profiles (`Profile.to_json`), one per
item and one per story (`story_profile` of the story's profile and the new
item's), and gives `best_story` the active stories. Publication times should
be timezone-aware (any zone; weekday names resolve against the publication's
own calendar date). Thresholds were chosen on the development half of
tests/fixtures/dedupe (tests/test_stories.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from monitor.text import fold
from monitor.translit import is_cyrillic, transliterate

ACTIVE_DAYS = 3
LEAD_WORDS = 250  # words of the text after the title that make the profile
NGRAM = 5
GRAM_SAMPLE = 4  # keep the n-grams whose hash is 0 modulo this: a consistent sample, a quarter of the size
STORY_GRAMS = 4000  # bounds on a story's aggregate profile
STORY_ANCHORS = 300
THRESHOLD = 0.25

# --- spelling folds -----------------------------------------------------------------

# Applied in order to lower-case Latin (after transliteration): spellings of one
# sound in the five languages' conventions for foreign names. "h" and "g" go
# altogether: Ukrainian "г" is "h" where Russian has "g" ("Sybiha", "Sibiga").
_DIGRAPHS = (
    ("tsch", "ch"),
    ("tch", "ch"),
    ("shch", "sh"),
    ("sch", "sh"),
    ("ou", "u"),
    ("kh", "k"),
    ("ch", "k"),
    ("ck", "k"),
    ("ph", "f"),
    ("zh", "s"),
    ("sh", "s"),
    ("ts", "s"),
    ("tz", "s"),
    ("th", "t"),
)
_LETTERS = str.maketrans(
    {"c": "k", "q": "k", "x": "ks", "z": "s", "w": "v", "j": "i", "y": "i", "h": None, "g": None, "ß": "ss"}
)
_VOWELS = frozenset("aeiou")


@lru_cache(maxsize=1 << 16)
def phonetic(word: str, language: str | None = None) -> str:
    """A word's spelling folded across languages: transliterated, lower-case,
    accent-free, with one letter per sound where conventions differ."""
    w = fold(transliterate(word, language))
    for a, b in _DIGRAPHS:
        if a in w:
            w = w.replace(a, b)
    return w.translate(_LETTERS)


# Case endings of Ukrainian and Russian nouns and names, longest first: "Зеленського",
# "Макрона", "Мерцем", "Києві" are "Зеленськ", "Макрон", "Мерц", "Києв".
_CYRILLIC_ENDINGS = sorted(
    "ого его ому ему ими ыми ами ями ові еві ой ей ий ій ый ом ем ам ям ах ях ою ею ую ю у а я і и ы е о".split(),
    key=len,
    reverse=True,
)


def _stem_cyrillic(word: str) -> str:
    low = word.lower()
    for end in _CYRILLIC_ENDINGS:
        if low.endswith(end) and len(low) - len(end) >= 3:
            return word[: len(word) - len(end)]
    return word


def name_key(word: str, language: str | None = None) -> str:
    """The anchor key of a name: its first letter and its next consonants, at most five.

    Vowels are where transliterations and case endings differ most ("Kyiv",
    "Kiew", "Киев", "Києві" are all "kv"; "Zakharova", "Sacharowa", "Захаровой"
    are "skrv")."""
    if word and is_cyrillic(word[0]):
        word = _stem_cyrillic(word)
    w = phonetic(word, language)
    if not w:
        return ""
    out = [w[0]]
    for c in w[1:]:
        if c not in _VOWELS and c.isalpha() and c != out[-1]:
            out.append(c)
    return "".join(out)[:5]


# --- dates ----------------------------------------------------------------------------

# Full names only: "mar", "sept" and "dec" are also words ("sept" is seven).
_MONTHS: dict[str, int] = {}
for _month, _names in enumerate(
    (
        "janvier january januar jänner січня января",
        "février fevrier february februar лютого февраля",
        "mars march märz marz березня марта",
        "avril april квітня апреля",
        "mai may травня мая",
        "juin june juni червня июня",
        "juillet july juli липня июля",
        "août aout august серпня августа",
        "septembre september вересня сентября",
        "octobre october oktober жовтня октября",
        "novembre november листопада ноября",
        "décembre decembre december dezember грудня декабря",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _month

_MONTH_RE = "|".join(sorted(map(re.escape, _MONTHS), key=len, reverse=True))
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:er|st|nd|rd|th|-?го|\.)?\s+(?:of\s+)?({_MONTH_RE})\b\.?", re.IGNORECASE)
# The lookahead on the names' first letters changes no match: it only spares the
# regex engine trying sixty names, case-insensitively, at every word (3 times faster).
_MONTH_INITIALS = "".join(sorted({name[0] for name in _MONTHS}))
_MONTH_DAY = re.compile(rf"\b(?=[{_MONTH_INITIALS}])({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b", re.IGNORECASE)
_NUMERIC_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b|\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b")

_WEEKDAYS: dict[str, int] = {}
for _day, _names in enumerate(
    (
        "lundi monday montag понеділок понеділка понедельник понедельника",
        "mardi tuesday dienstag вівторок вівторка вторник вторника",
        "mercredi wednesday mittwoch середу середа середи среду среда среды",
        "jeudi thursday donnerstag четвер четверга четверг",
        "vendredi friday freitag пятницю пятниця пятниці пятницу пятница пятницы",
        "samedi saturday samstag sonnabend суботу субота суботи субботу суббота субботы",
        "dimanche sunday sonntag неділю неділя неділі воскресенье воскресенья",
    )
):
    for _name in _names.split():
        _WEEKDAYS[_name] = _day
# German writes "Dienstagabend", "Mittwochmorgen": a weekday may start a longer word.
_GERMAN_WEEKDAYS = (
    ("montag", 0),
    ("dienstag", 1),
    ("mittwoch", 2),
    ("donnerstag", 3),
    ("freitag", 4),
    ("samstag", 5),
    ("sonnabend", 5),
    ("sonntag", 6),
)
_WORD = re.compile(r"\w+(?:['’ʼ]\w+)?")
_WORD_PIECES = re.compile(f"({_WORD.pattern})")
_NO_APOSTROPHES = str.maketrans("", "", "'’ʼ")


def _resolve(weekday: int, published: date) -> date:
    """The last such weekday on or before the publication date."""
    return published - timedelta(days=(published.weekday() - weekday) % 7)


def dates(text: str, published_at: datetime | None = None) -> set[tuple[int, int]]:
    """(month, day) of the dates a text mentions, weekday names included when
    the publication date says which day they are."""
    out: set[tuple[int, int]] = set()
    for m in _DAY_MONTH.finditer(text):
        day, month = int(m.group(1)), _MONTHS[m.group(2).lower()]
        if 1 <= day <= 31:
            out.add((month, day))
    for m in _MONTH_DAY.finditer(text):
        month, day = _MONTHS[m.group(1).lower()], int(m.group(2))
        if 1 <= day <= 31:
            out.add((month, day))
    for m in _NUMERIC_DATE.finditer(text):
        if m.group(1):
            month, day = int(m.group(2)), int(m.group(3))
        else:
            day, month = int(m.group(4)), int(m.group(5))
        if 1 <= month <= 12 and 1 <= day <= 31:
            out.add((month, day))
    if published_at is not None and _WEEKDAY_ANYWHERE.search(_apostrophe_free(text.lower())):
        published = published_at.date()
        for word in _WORD.findall(text):
            day_of_week = _weekday(word)
            if day_of_week is not None:
                d = _resolve(day_of_week, published)
                out.add((d.month, d.day))
    return out


@lru_cache(maxsize=1 << 16)
def _weekday(word: str) -> int | None:
    """The day of the week a word names (0 is Monday), if any."""
    word = word.lower().translate(_NO_APOSTROPHES)
    day_of_week = _WEEKDAYS.get(word)
    if day_of_week is None:
        day_of_week = next((i for name, i in _GERMAN_WEEKDAYS if word.startswith(name)), None)
    return day_of_week


def _apostrophe_free(text: str) -> str:
    return text.replace("'", "").replace("’", "").replace("ʼ", "")


# Most texts name no day of the week: one search of the lower-cased text, without
# apostrophes, says so. A word naming one has the name in it, lower-cased and
# without apostrophes, and so has the text (no name has a Σ, the one letter whose
# lower case depends on the letters around it).
_WEEKDAY_ANYWHERE = re.compile(
    "|".join(map(re.escape, sorted({*_WEEKDAYS, *(name for name, _ in _GERMAN_WEEKDAYS)}, key=len, reverse=True)))
)


def _strip_dates(text: str) -> str:
    for pattern in (_DAY_MONTH, _MONTH_DAY, _NUMERIC_DATE):
        text = pattern.sub(" ", text)
    return text


# --- numbers --------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[ \u00a0\u202f.,]\d+)*")
_MULTIPLIERS = (
    (1_000, ("thousand", "mille", "tausend", "тисяч", "тысяч", "тыс")),
    (1_000_000, ("million", "millionen", "mio", "мільйон", "млн", "миллион")),
    (1_000_000_000, ("billion", "milliard", "mrd", "мільярд", "млрд", "миллиард")),
)
_NEXT_WORD = re.compile(r"[\s\u00a0\u202f]*(\w+)")


def _parse_number(raw: str) -> list[float]:
    """One number per match, except for groups that are not thousands: "1 200" is
    1200, "1,200" and "1.200" too, "11,5" and "11.5" are 11.5, "2024 2025" is two."""
    parts = re.split(r"([ \u00a0\u202f.,])", raw)
    values: list[float] = []
    current = parts[0]
    decimal: str | None = None
    for sep, group in zip(parts[1::2], parts[2::2], strict=True):
        if decimal is None and len(group) == 3 and len(current.replace(" ", "")) <= 15:
            current += group  # a thousands group
        elif sep in ".," and decimal is None:
            decimal = group
        else:
            values.append(float(current + ("." + decimal if decimal else "")))
            current, decimal = group, None
    values.append(float(current + ("." + decimal if decimal else "")))
    return values


def numbers(text: str, published_at: datetime | None = None) -> set[str]:
    """The numbers a text gives, normalised ("4 800", "4,800", "4.800" are "4800";
    "11,5 Milliarden" is "11500000000"), without dates, the current year, or
    numbers below 10, which every story has."""
    text = _strip_dates(text)
    year = published_at.year if published_at else None
    out: set[str] = set()
    for m in _NUMBER.finditer(text):
        values = _parse_number(m.group())
        nxt = _NEXT_WORD.match(text, m.end())
        if nxt:
            word = nxt.group(1).lower()
            for factor, prefixes in _MULTIPLIERS:
                if word.startswith(prefixes):
                    values[-1] *= factor
        for v in values:
            if v < 10 or (year is not None and v == year):
                continue
            out.add(str(int(v)) if v == int(v) else f"{v:g}")
    return out


# --- names ----------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?:;«»\"“”„()\[\]—–-]\s*$")


def names(text: str, language: str | None = None) -> set[str]:
    """Name keys of the capitalised words that do not start a sentence."""
    out: set[str] = set()
    for line in text.splitlines():
        parts = _WORD_PIECES.split(line)  # what is before a word, the word, ...
        for i in range(1, len(parts), 2):
            if (i > 1 or parts[0]) and (key := _name_of(parts[i], language)) and not _SENTENCE_END.search(parts[i - 1]):
                out.add(key)
    return out


@lru_cache(maxsize=1 << 16)
def _name_of(word: str, language: str | None) -> str | None:
    """The name key of a word, if it is a capitalised word that is no month or
    weekday (whether it starts a sentence is for the caller to see)."""
    if not word[0].isupper() or word.isdigit():
        return None
    low = word.lower().translate(_NO_APOSTROPHES)
    if low in _MONTHS or low in _WEEKDAYS:
        return None
    key = name_key(word.split("'")[0].split("’")[0], language)
    return key if len(key) >= 2 else None


# --- character n-grams ----------------------------------------------------------------


def _gram_hash(gram: str) -> int:
    return int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=4).digest(), "little")


@lru_cache(maxsize=1 << 16)
def _word_grams(word: str, language: str | None) -> tuple[int, ...]:
    w = f"_{phonetic(word, language)}_"
    hashes = (_gram_hash(w[i : i + NGRAM]) for i in range(max(1, len(w) - NGRAM + 1)))
    return tuple(h for h in hashes if h % GRAM_SAMPLE == 0)


def grams(text: str, language: str | None = None) -> set[int]:
    """A consistent sample of the character n-grams of the text's folded words
    (n-grams do not cross words: word order differs between languages)."""
    out: set[int] = set()
    for word in set(_WORD.findall(text)):
        out.update(_word_grams(word, language))
    return out


# --- profiles ---------------------------------------------------------------------------


def _lead(text: str, words: int) -> str:
    out: list[str] = []
    count = 0
    for line in text.splitlines():
        n = len(line.split())
        if count + n > words:
            out.append(" ".join(line.split()[: words - count]))
            break
        out.append(line)
        count += n
    return "\n".join(out)


@dataclass(frozen=True)
class Profile:
    """An item's or a story's features. For an item every count is 1; a story's
    profile (`story_profile`) counts the items that have each feature."""

    grams: Mapping[int, int]
    names: Mapping[str, int]
    numbers: Mapping[str, int]
    dates: Mapping[str, int]  # "MM-DD"
    first_published_at: datetime
    last_published_at: datetime
    items: int = 1
    languages: tuple[str, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(
            {
                "grams": sorted(self.grams.items()),
                "names": self.names,
                "numbers": self.numbers,
                "dates": self.dates,
                "first": self.first_published_at.isoformat(),
                "last": self.last_published_at.isoformat(),
                "items": self.items,
                "languages": list(self.languages),
            },
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, data: str) -> Profile:
        d: dict[str, Any] = json.loads(data)
        return cls(
            grams={int(g): int(n) for g, n in d["grams"]},
            names=dict(d["names"]),
            numbers=dict(d["numbers"]),
            dates=dict(d["dates"]),
            first_published_at=datetime.fromisoformat(d["first"]),
            last_published_at=datetime.fromisoformat(d["last"]),
            items=int(d["items"]),
            languages=tuple(d["languages"]),
        )


def profile(title: str, text: str, language: str | None, published_at: datetime) -> Profile:
    """The profile of an item: its title and the first `LEAD_WORDS` words of its text."""
    title = unicodedata.normalize("NFC", title)
    lead = _lead(unicodedata.normalize("NFC", text), LEAD_WORDS)
    both = title + "\n" + lead
    return Profile(
        grams=dict.fromkeys(grams(both, language), 1),
        names=dict.fromkeys(names(both, language), 1),
        numbers=dict.fromkeys(numbers(both, published_at), 1),
        dates={f"{m:02d}-{d:02d}": 1 for m, d in dates(both, published_at)},
        first_published_at=published_at,
        last_published_at=published_at,
        languages=(language,) if language else (),
    )


def _merge(counts: Iterable[Mapping[Any, int]], bound: int) -> dict[Any, int]:
    total: dict[Any, int] = {}
    for c in counts:
        for k, n in c.items():
            total[k] = total.get(k, 0) + n
    if len(total) > bound:
        # Keep the features most items share; ties by key, so merging is deterministic.
        total = dict(sorted(total.items(), key=lambda kv: (-kv[1], str(kv[0])))[:bound])
    return total


def story_profile(profiles: Sequence[Profile]) -> Profile:
    """A story's profile: its items' features with the number of items having each,
    bounded in size. Merging is associative: a story's stored profile merged with a
    new item's is the profile of all its items (up to the bounds)."""
    if not profiles:
        raise ValueError("a story has at least one item")
    return Profile(
        grams=_merge((p.grams for p in profiles), STORY_GRAMS),
        names=_merge((p.names for p in profiles), STORY_ANCHORS),
        numbers=_merge((p.numbers for p in profiles), STORY_ANCHORS),
        dates=_merge((p.dates for p in profiles), STORY_ANCHORS),
        first_published_at=min(p.first_published_at for p in profiles),
        last_published_at=max(p.last_published_at for p in profiles),
        items=sum(p.items for p in profiles),
        languages=tuple(sorted({lang for p in profiles for lang in p.languages})),
    )


# --- scoring --------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """Why an item does or does not belong to a story (for `monitor explain`).

    `total` is `content * date_factor * time_factor`: the content evidence
    (the weighted mean of the overlaps that both sides can show), discounted
    when the two tell of different days, and as they drift apart in time."""

    total: float
    content: float
    grams: float  # share of the item's n-grams that the story has
    names: float | None  # None: one side has no names, the part does not count
    numbers: float | None
    date_factor: float
    time_factor: float
    gap_days: float  # from the item to the story's nearest item
    shared_names: tuple[str, ...] = ()
    shared_numbers: tuple[str, ...] = ()
    shared_dates: tuple[str, ...] = ()


# Weights of the content parts. The n-grams see every word but mostly within one
# language; names and numbers cross languages. Equal weights: the development set
# (5 events, 26 items) cannot support finer ones.
GRAMS_WEIGHT = NAMES_WEIGHT = NUMBERS_WEIGHT = 1 / 3
# A shared date is weak evidence (every story of the day has it) but a date
# mismatch is strong evidence against: the drone strike of Wednesday night is
# not the summit of Tuesday, however many names they share.
DATE_MISMATCH = 0.5
NO_DATE = 0.8


def _overlap(item: Mapping[Any, int], story: Mapping[Any, int], items: int) -> tuple[float, list[Any]]:
    """How much of the item the story has, each feature weighted by the share of
    the story's items that have it."""
    if not item:
        return 0.0, []
    shared = [k for k in item if k in story]
    return sum(min(1.0, story[k] / items) for k in shared) / len(item), shared


def _gap_days(item: Profile, story: Profile) -> float:
    if item.last_published_at < story.first_published_at:
        gap = story.first_published_at - item.last_published_at
    elif item.first_published_at > story.last_published_at:
        gap = item.first_published_at - story.last_published_at
    else:
        gap = timedelta(0)
    return gap.total_seconds() / 86400


def score(item: Profile, story: Profile) -> Score:
    """How well an item (or a story) fits a story, in [0, 1]; not symmetric: it is
    the share of the *item's* features that the story has."""
    g, _ = _overlap(item.grams, story.grams, story.items)
    parts = [(GRAMS_WEIGHT, g)]
    n: float | None = None
    x: float | None = None
    shared_names: list[str] = []
    shared_numbers: list[str] = []
    if item.names and story.names:
        n, shared_names = _overlap(item.names, story.names, story.items)
        parts.append((NAMES_WEIGHT, n))
    if item.numbers and story.numbers:
        x, shared_numbers = _overlap(item.numbers, story.numbers, story.items)
        parts.append((NUMBERS_WEIGHT, x))
    content = sum(w * v for w, v in parts) / sum(w for w, _ in parts)
    shared_dates = sorted(d for d in item.dates if d in story.dates)
    if not (item.dates and story.dates):
        date_factor = NO_DATE
    else:
        date_factor = 1.0 if shared_dates else DATE_MISMATCH
    gap_days = _gap_days(item, story)
    time_factor = math.exp(-gap_days / ACTIVE_DAYS)
    return Score(
        total=content * date_factor * time_factor,
        content=content,
        grams=g,
        names=n,
        numbers=x,
        date_factor=date_factor,
        time_factor=time_factor,
        gap_days=gap_days,
        shared_names=tuple(sorted(shared_names)),
        shared_numbers=tuple(sorted(shared_numbers)),
        shared_dates=tuple(shared_dates),
    )


def same_story(a: Profile, b: Profile, threshold: float = THRESHOLD) -> bool:
    return score(a, b).total >= threshold


K = TypeVar("K")


def is_active(story: Profile, now: datetime) -> bool:
    return now - story.last_published_at <= timedelta(days=ACTIVE_DAYS)


def best_story(
    item: Profile, stories: Iterable[tuple[K, Profile]], threshold: float = THRESHOLD
) -> tuple[K, Score] | None:
    """The active story the item belongs to best, if any scores at or above the threshold."""
    best: tuple[K, Score] | None = None
    for key, story in stories:
        if not is_active(story, item.first_published_at):
            continue
        s = score(item, story)
        if s.total >= threshold and (best is None or s.total > best[1].total):
            best = (key, s)
    return best
