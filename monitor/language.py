"""Language detection that gives the same answer for the same text, every time.

langdetect is probabilistic: without a fixed seed the same short text can
come out "fr" on one run and "it" on the next. The seed makes it
deterministic (each detection seeds its own generator with it); the lock
runs one detection at a time, since langdetect's shared factory does not
promise more.

langdetect is pure Python and, character by character, slow: on the Zyte
pages it cost a fifth of an article's extraction time (issue 4, throughput).
`_Detector` is langdetect's own Detector with its per-character loops
replaced by work per distinct character and per word (cached across calls):
the same profiles, the same n-grams in the same order, the same seeded
random draws and the same floating-point operations, hence the same answers
to the last bit (`tests/test_language.py` compares them with langdetect's;
so did a check on 900 samples of the Zyte pages), in half the time.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from functools import lru_cache

from langdetect import DetectorFactory, detector_factory
from langdetect.detector import Detector
from langdetect.lang_detect_exception import ErrorCode, LangDetectException
from langdetect.utils.ngram import NGram
from langdetect.utils.unicode_block import unicode_block

DetectorFactory.seed = 0
_LOCK = threading.Lock()
# Longer texts add little accuracy and cost more (their n-grams): on the Zyte pages
# 2,000 characters give the same answers as 5,000.
MAX_CHARS = 2000

_SPACES = re.compile(" {2,}")


class _Normalized(dict[int, str]):
    """str.translate table: each character as langdetect's NGram.normalize sees it, computed once."""

    def __missing__(self, code: int) -> str:
        value: str = NGram.normalize(chr(code))
        self[code] = value
        return value


_NORMALIZED = _Normalized()


def _latin(ch: str) -> bool:
    return "A" <= ch <= "z"


def _non_latin(ch: str) -> bool:
    # Detector.cleaning_text's test as written there (where the block comparison is always true).
    return ch >= "\u0300" and unicode_block(ch) != "Latin Extended Additional"


@lru_cache(maxsize=65536)
def _word_ngrams(word: str, trailing_space: bool) -> tuple[str, ...]:
    """The n-grams Detector._extract_ngrams emits for one word (normalized, no
    spaces) that follows a space or starts the text, and for the space after it.
    NGram's state starts afresh after every space, so a word's n-grams do not
    depend on what came before it: at each character, the 1-, 2- and 3-gram
    ending there that langdetect knows, except in a run of capitals (NGram's
    `capitalword`: this character and the one before it upper case)."""
    known = _factory().word_lang_prob_map
    padded = " " + word + (" " if trailing_space else "")
    # Upper case characters, when two can be neighbours (not in "word" or "Word").
    upper = [False, *map(str.isupper, word), False] if any(map(str.isupper, word[1:])) else None
    out: list[str] = []
    for j in range(1, len(padded)):
        if upper is not None and upper[j] and upper[j - 1]:
            continue
        one, two = padded[j], padded[j - 1 : j + 1]
        if one != " " and one in known:
            out.append(one)
        if two in known:
            out.append(two)
        if j >= 2 and (three := padded[j - 2 : j + 1]) in known:
            out.append(three)
    return tuple(out)


class _Detector(Detector):  # type: ignore[misc]
    text: str

    def append(self, text: str) -> None:
        text = self.URL_RE.sub(" ", text)
        text = self.MAIL_RE.sub(" ", text)
        text = NGram.normalize_vi(text)
        # Detector.append keeps a space only when the character before it is not one.
        self.text += _SPACES.sub(" ", text[: self.max_text_length])

    def cleaning_text(self) -> None:
        counts = Counter(self.text)
        latin = sum(n for ch, n in counts.items() if _latin(ch))
        non_latin = sum(n for ch, n in counts.items() if not _latin(ch) and _non_latin(ch))
        if latin * 2 < non_latin:
            self.text = "".join(ch for ch in self.text if not _latin(ch))

    def _extract_ngrams(self) -> list[str]:
        words = self.text.translate(_NORMALIZED).split(" ")
        result: list[str] = []
        for i, word in enumerate(words):
            if word:
                result += _word_ngrams(word, i < len(words) - 1)
        return result

    def _detect_block(self) -> None:
        self.cleaning_text()
        ngrams = self._extract_ngrams()
        if not ngrams:
            raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
        self.langprob = [0.0] * len(self.langlist)
        self.random.seed(self.seed)
        choice, word_probs = self.random.choice, self.word_lang_prob_map
        for _ in range(self.n_trial):
            prob = self._init_probability()
            alpha = self.alpha + self.random.gauss(0.0, 1.0) * self.ALPHA_WIDTH
            weight = alpha / self.BASE_FREQ
            i = 0
            while True:
                # Detector._update_lang_prob: prob[i] *= weight + lang_prob_map[i]
                prob = [p * (weight + q) for p, q in zip(prob, word_probs[choice(ngrams)], strict=True)]
                if i % 5 == 0:
                    # Detector._normalize_prob: each divided by the sum; converged when one is near 1
                    total = sum(prob)
                    prob = [p / total for p in prob]
                    if max(prob) > self.CONV_THRESHOLD or i >= self.ITERATION_LIMIT:
                        break
                i += 1
            for j in range(len(self.langprob)):
                self.langprob[j] += prob[j] / self.n_trial


def _factory() -> DetectorFactory:
    detector_factory.init_factory()
    return detector_factory._factory


def detect_langs(text: str) -> list[tuple[str, float]]:
    """langdetect.detect_langs, faster: (code, probability) of the likely languages, best first."""
    detector = _Detector(_factory())
    detector.append(text)
    return [(str(lang.lang), float(lang.prob)) for lang in detector.get_probabilities()]


def detect_language(text: str) -> tuple[str | None, float | None]:
    """(ISO 639-1 code, probability), or (None, None) when the text has no language."""
    sample = text[:MAX_CHARS]
    if not any(c.isalpha() for c in sample):
        return None, None
    with _LOCK:
        try:
            langs = detect_langs(sample)
        except LangDetectException:
            return None, None
    if not langs:
        return None, None
    code, probability = langs[0]
    return code, round(probability, 4)


# Below this, langdetect guesses (three-word titles, Ukrainian vs Russian).
MIN_WORDS = 20
MIN_PROBABILITY = 0.80


def choose_language(
    text: str,
    page: str | None,
    feed: str | None,
    detected: tuple[str | None, float | None] | None = None,
) -> tuple[str | None, float | None, str | None]:
    """(code, probability, source): detection when the text is long and the
    answer confident, else the page's declared language, else the feed's;
    source is "detected", "page" or "feed" (None when nothing is known).
    `detected` is a detection of this same text already made elsewhere."""
    code, probability = detected if detected is not None else detect_language(text)
    confident = code is not None and (probability or 0) >= MIN_PROBABILITY and len(text.split()) >= MIN_WORDS
    if confident:
        return code, probability, "detected"
    if page:
        return page, None, "page"
    if feed:
        return feed, None, "feed"
    return code, probability, "detected" if code else None
