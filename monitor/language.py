"""Language detection that gives the same answer for the same text, every time.

langdetect is probabilistic: without a fixed seed the same short text can
come out "fr" on one run and "it" on the next. The seed makes it
deterministic; the lock keeps that true across threads, because langdetect
seeds the shared `random` module state for each detection.
"""

from __future__ import annotations

import threading

from langdetect import DetectorFactory, detect_langs
from langdetect.lang_detect_exception import LangDetectException

DetectorFactory.seed = 0
_LOCK = threading.Lock()
# Longer texts add little accuracy and cost linear time.
MAX_CHARS = 5000


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
    best = langs[0]
    return str(best.lang), round(float(best.prob), 4)
