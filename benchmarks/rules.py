"""Keyword-rule matching throughput: our RuleSet against FTS5 queries, in one run.

    python benchmarks/rules.py [--articles 10000] [--rules 1000,10000] [--seed 1]

Articles are synthetic but shaped like news text: ~600 words drawn from a
seeded vocabulary with a Zipfian distribution (frequent words short, as in
real languages), sprinkled with multi-word expressions (collocations, also
Zipfian), plus a title; one vocabulary per language (French with accents,
ASCII English, German, Cyrillic Russian and Ukrainian; a tenth of the
articles without a detected language). Rules are shaped like alert rules,
each in one language: alternatives of rare phrases and words, AND of two
groups, NEAR/N, prefixes, NOT, a few with stems, typos or a language
restriction. They are selective: the average number of rules
matching an article is measured and printed (the aim is at most 5).

For each rule count, prints articles per CPU-second (time.process_time)
for `RuleSet.match` on one core, and for the baseline: the same rules as
FTS5 queries (`to_fts5`; stems and typos dropped) over batches of 1,000
articles, one in-memory FTS5 index per batch, every rule queried once per
batch. Also the ratio, and the memory used by the compiled RuleSet
(tracemalloc) and the process's peak RSS. Target: >= 2,000 articles per
CPU-second with 10,000 rules, and faster than the baseline.
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import sqlite3
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.rules import RuleSet, RuleSpec, compile_rules, to_fts5  # noqa: E402

VOCABULARY = 40_000
COLLOCATIONS = 6_000
WORDS_PER_ARTICLE = 600
BATCH = 1_000

# Each language its own vocabulary, as in real feeds: English text is ASCII,
# French has accents, Russian and Ukrainian are Cyrillic. Share of articles
# (and of rules), consonants, vowels.
LANGUAGES: dict[str, tuple[float, str, str]] = {
    "fr": (0.45, "bcdfgjlmnprstv", "aeiouaeiouéèàêç"),
    "en": (0.20, "bcdfghklmnprstvw", "aeiouy"),
    "de": (0.10, "bcdfghklmnprstwz", "aeiouaeiouäöü"),
    "ru": (0.10, "бвгджзклмнпрстфхч", "аеиоуыяю"),
    "uk": (0.05, "бвгджзклмнпрстфхч", "аеиоуяюіїє"),
}
UNKNOWN = 0.10  # articles whose language was not detected (French text)


def vocabulary(rng: random.Random, consonants: str, vowels: str) -> list[str]:
    """Words by rank; rank r gets about 1 + log10(r) syllables."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCABULARY:
        rank = len(words) + 1
        syllables = max(1, int(len(str(rank)) * 0.8 + rng.random() * 1.5))
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables))
        if rng.random() < 0.3:
            word += rng.choice(consonants)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_cumulative(n: int, s: float = 1.05) -> list[float]:
    return list(itertools.accumulate(1 / (r**s) for r in range(1, n + 1)))


class Language:
    def __init__(self, rng: random.Random, consonants: str, vowels: str) -> None:
        self.words = vocabulary(rng, consonants, vowels)
        self.cum = zipf_cumulative(len(self.words))
        content = self.words[200:20_000]  # collocations are made of content words, plus function words
        self.collocations = []
        for _ in range(COLLOCATIONS):
            parts = [rng.choice(content)]
            if rng.random() < 0.4:
                parts.append(self.words[rng.randrange(10)])  # "garanties *de* sécurité"
            parts.append(rng.choice(content))
            self.collocations.append(" ".join(parts))
        self.colloc_cum = zipf_cumulative(len(self.collocations), 1.0)


class Corpus:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.languages = {code: Language(self.rng, c, v) for code, (_, c, v) in LANGUAGES.items()}
        self.codes = list(LANGUAGES)
        self.shares = [share for share, _, _ in LANGUAGES.values()]

    def article(self) -> tuple[str, str, str | None]:
        rng = self.rng
        code = rng.choices(self.codes, weights=self.shares)[0]
        lang = self.languages[code]
        picks = rng.choices(lang.words, cum_weights=lang.cum, k=WORDS_PER_ARTICLE)
        for _ in range(WORDS_PER_ARTICLE // 80):
            picks[rng.randrange(len(picks))] = rng.choices(lang.collocations, cum_weights=lang.colloc_cum)[0]
        out = []
        for w in picks:
            out.append(w)
            r = rng.random()
            out.append(". " if r < 0.06 else ", " if r < 0.12 else " « " if r < 0.125 else " ")
        title = " ".join(rng.choices(lang.words, cum_weights=lang.cum, k=10)).capitalize()
        detected = None if code == "fr" and rng.random() < UNKNOWN / LANGUAGES["fr"][0] else code
        return title, "".join(out), detected

    def rule(self, index: int) -> RuleSpec:
        rng = self.rng
        code = rng.choices(self.codes, weights=self.shares)[0]
        lang = self.languages[code]
        words = lang.words

        def rare(lo: int = 8_000) -> str:
            return words[rng.randrange(lo, len(words))]

        def phrase() -> str:  # rules name specific expressions: the less frequent collocations
            return '"' + lang.collocations[rng.randrange(2_000, COLLOCATIONS)] + '"'

        kind = rng.random()
        if kind < 0.45:
            query = " OR ".join(phrase() if rng.random() < 0.7 else rare(30_000) for _ in range(rng.randint(1, 4)))
        elif kind < 0.65:
            query = f"({phrase()} OR {rare()}) ({words[rng.randrange(300, 5000)]} OR {rare(2000)})"
        elif kind < 0.75:
            query = f"{words[rng.randrange(1000, 6000)]} NEAR/5 {words[rng.randrange(1000, 6000)]}"
        elif kind < 0.85:
            word = rare(30_000)
            query = f"{word[: max(6, len(word) - 1)]}* OR {phrase()}"
        else:
            query = f"{phrase()} NOT {words[rng.randrange(50, 3000)]}"
        options = rng.random()
        return RuleSpec(
            f"rule-{index}",
            query,
            ("console",),
            languages=(code,) if options < 0.125 else (),  # half the stem rules: stemmers are per language
            stem=0.1 <= options < 0.15,
            fuzzy=1 if 0.15 <= options < 0.2 else 0,
        )


def run_ruleset(rules: RuleSet, articles: list[tuple[str, str, str | None]]) -> tuple[float, float, int]:
    """CPU seconds for all articles and for the second half (caches warm), matches."""
    matched = 0
    cpu = time.process_time()
    half = cpu
    for i, (title, text, language) in enumerate(articles):
        if i == len(articles) // 2:
            half = time.process_time()
        matched += len(rules.match(title, text, language))
    end = time.process_time()
    return end - cpu, end - half, matched


def run_fts5(queries: list[str], articles: list[tuple[str, str, str | None]]) -> tuple[float, int]:
    matched = 0
    cpu = time.process_time()
    for start in range(0, len(articles), BATCH):
        db = sqlite3.connect(":memory:")
        db.execute("CREATE VIRTUAL TABLE d USING fts5(title, text, tokenize = 'unicode61 remove_diacritics 2')")
        db.executemany(
            "INSERT INTO d(title, text) VALUES (?, ?)", ((t, x) for t, x, _ in articles[start : start + BATCH])
        )
        for q in queries:
            matched += len(db.execute("SELECT rowid FROM d WHERE d MATCH ?", (q,)).fetchall())
        db.close()
    return time.process_time() - cpu, matched


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=10_000)
    ap.add_argument("--rules", default="1000,10000", help="comma-separated rule counts")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    counts = [int(n) for n in args.rules.split(",")]

    corpus = Corpus(args.seed)
    articles = [corpus.article() for _ in range(args.articles)]
    all_specs = [corpus.rule(i) for i in range(max(counts))]
    print(
        f"{len(articles)} articles of ~{WORDS_PER_ARTICLE} words, "
        f"{len(LANGUAGES)} languages of {VOCABULARY} words, seed {args.seed}"
    )

    for n in counts:
        specs = all_specs[:n]
        tracemalloc.start()
        cpu = time.process_time()
        rules = compile_rules(specs)
        compile_cpu = time.process_time() - cpu
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        ours_cpu, warm_cpu, ours_matched = run_ruleset(rules, articles)
        queries = [q for q in (to_fts5(r.query) for r in rules) if q is not None]
        fts_cpu, fts_matched = run_fts5(queries, articles)
        ours_rate, fts_rate = len(articles) / ours_cpu, len(articles) / fts_cpu
        print(f"\n{n} rules (compiled in {compile_cpu:.2f} CPU-s, {peak / 2**20:.1f} MiB):")
        per_article = ours_matched / len(articles)
        warm_rate = (len(articles) - len(articles) // 2) / warm_cpu
        print(
            f"  RuleSet: {ours_rate:,.0f} articles per CPU-second ({warm_rate:,.0f} over the second half, "
            f"its word caches warm), {per_article:.2f} matches per article"
        )
        print(
            f"  FTS5 baseline (batches of {BATCH}, {len(queries)} queries): {fts_rate:,.0f} articles per CPU-second, "
            f"{fts_matched / len(articles):.2f} matches per article (no stems, typos or language options)"
        )
        print(f"  ratio RuleSet / FTS5: {ours_rate / fts_rate:.2f}")
    print(f"\npeak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
