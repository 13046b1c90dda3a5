"""Dedupe and story assignment cost per article against 10k to 1M stored items (issue 5).

    python benchmarks/dedupe.py [--engines sqlite,postgresql] [--sizes 10000,100000]
                                [--articles 500] [--per-day 1300] [--pg-url URL]

For each engine and size, a fresh database is filled quickly and directly
(bulk inserts, not the pipeline) with `size` stored items spread over time
at `--per-day` items a day, the newest last. The items of the last
`monitor.stories.ACTIVE_DAYS` days are synthetic reports of synthetic
events, in five languages (sentences of the labelled set, tests/fixtures/dedupe,
mixed and edited, plus each event's own names, numbers and date), with real
signatures, band keys and story profiles, grouped in their events' stories.
Older items keep realistic rows (a text of a few KB, 32 band keys, a
signature, a story) whose band keys are random: they are what the indexes
must skip, not candidates. 1,300 items a day is what the 16 feeds of the
shipped feeds.toml publish together, roughly.

Then `--articles` new articles go through the pipeline's own dedupe and
story step (`Pipeline._signature`, `monitor.stories.profile`,
`Pipeline._store_new`: the serialised transaction that checks exact copies,
looks up near-duplicate candidates in `lsh_bands`, finds the story among
the active ones, and stores the item): a quarter near-duplicates of active
items, a quarter reports of active events in another language, half new
events. Printed: milliseconds per article, wall and CPU (this process;
PostgreSQL's own CPU is not in it), split into the pure computation
(shingles, signature, band keys, profile) and the database step; how many
stories were scored in full per article; the one-off load of the active
stories into the process's story index; and the database size.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import logging
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "dedupe"))

import make_set  # noqa: E402

from monitor import stories  # noqa: E402
from monitor.minhash import SCHEME, band_keys, pack, shingles, signature  # noqa: E402
from monitor.stories import Profile, profile, story_profile  # noqa: E402

LANGUAGES = ("en", "fr", "de", "uk", "ru")
FEEDS = 16
BATCH = 5000

# --- synthetic reports -----------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?»])\s+(?=[A-ZА-ЯІЇЄҐ«„\"])")
_MONTHS = {
    "en": "January February March April May June July August September October November December",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "uk": "січня лютого березня квітня травня червня липня серпня вересня жовтня листопада грудня",
    "ru": "января февраля марта апреля мая июня июля августа сентября октября ноября декабря",
}
_EVENT = {
    "en": "{a} and {b} met in {p} on {d}, where {x} people gathered and {y} were reported.",
    "fr": "{a} et {b} se sont réunis à {p} le {d}, où {x} personnes étaient présentes et {y} ont été signalées.",
    "de": "{a} und {b} trafen sich am {d} in {p}, wo {x} Menschen versammelt waren und {y} gemeldet wurden.",
    "uk": "{a} і {b} зустрілися у місті {p} {d}, де зібралися {x} людей, повідомлено про {y} випадків.",
    "ru": "{a} и {b} встретились в городе {p} {d}, где собрались {x} человек, сообщается о {y} случаях.",
}
_TO_CYRILLIC = dict(zip("abcdefghijklmnopqrstuvwyz", "абкдефгхийклмнопкрстуввиз", strict=True)) | {"x": "кс"}
_SYLLABLES = "ka lo mi ra ven dor zel pol tra bek nis sal gor lun fer mat kor vas tin bro".split()


def _date(language: str, when: datetime) -> str:
    month = _MONTHS[language].split()[when.month - 1]
    if language == "en":
        return f"{month} {when.day}"
    return f"{when.day}. {month}" if language == "de" else f"{when.day} {month}"


def _spell(name: str, language: str) -> str:
    if language not in ("uk", "ru"):
        return name
    return "".join(_TO_CYRILLIC.get(c.lower(), c) for c in name).capitalize()


@dataclass
class Event:
    names: tuple[str, str, str]
    numbers: tuple[int, int]
    when: datetime
    cast: list[str]  # who else the event's reports name, mostly
    figures: list[int]  # and which numbers they give, mostly
    languages: list[str] = field(default_factory=list)


@dataclass
class Report:
    title: str
    text: str
    language: str
    published: datetime
    event: int


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.sentences: dict[str, list[str]] = {lang: [] for lang in LANGUAGES}
        self.words: dict[str, list[str]] = {lang: [] for lang in LANGUAGES}
        for a in make_set.articles().values():
            for p in a.paragraphs:
                self.sentences[a.language].extend(s for s in _SENTENCE.split(p) if len(s.split()) > 5)
                self.words[a.language].extend(w for w in p.split() if w.isalpha() and w.islower())
        self.events: list[Event] = []
        self.cast = [self.name() for _ in range(5000)]
        self.cast_weights = list(itertools.accumulate(1 / rank for rank in range(1, len(self.cast) + 1)))

    def name(self) -> str:
        return "".join(self.rng.choice(_SYLLABLES) for _ in range(self.rng.randint(2, 3))).capitalize()

    def event(self, when: datetime) -> int:
        self.events.append(
            Event(
                (self.name(), self.name(), self.name()),
                (self.rng.randint(120, 99_000), self.rng.randint(11, 9_000)),
                when,
                self.rng.choices(self.cast, cum_weights=self.cast_weights, k=8),
                [self.rng.randint(10, 20_000) for _ in range(4)],
            )
        )
        return len(self.events) - 1

    def report(self, event: int, language: str, published: datetime) -> Report:
        """About 300 words: sentences of the language's pool made the event's (see
        `_sentence`), and the event's own sentence, with its own names, numbers and
        date, twice. An event's cast is drawn from a Zipf-distributed cast of 5,000
        (the most common is one name in nine, most are rare)."""
        e = self.events[event]
        e.languages.append(language)
        a, b, p = (_spell(n, language) for n in e.names)
        own = _EVENT[language].format(a=a, b=b, p=p, d=_date(language, e.when), x=e.numbers[0], y=e.numbers[1])
        edited = [self._sentence(s, language, e) for s in self.rng.sample(self.sentences[language], 14)]
        paragraphs = [own + " " + " ".join(edited[:4]), " ".join(edited[4:9]), " ".join(edited[9:]) + " " + own]
        title = f"{a}, {b}: " + " ".join(self.rng.choice(edited).split()[:8])
        return Report(title, "\n".join(paragraphs), language, published, event)

    def _sentence(self, sentence: str, language: str, event: Event) -> str:
        """A pool sentence made the event's: its names and numbers mostly the event's,
        sometimes anyone's; 30% of its other words replaced."""
        out = []
        for n, w in enumerate(sentence.split()):
            if any(c.isdigit() for c in w):
                figure = self.rng.choice(event.figures) if self.rng.random() < 0.7 else self.rng.randint(10, 20_000)
                out.append(str(figure))
            elif n > 0 and w[:1].isupper():
                if self.rng.random() < 0.7:
                    name = self.rng.choice(event.cast)
                else:
                    (name,) = self.rng.choices(self.cast, cum_weights=self.cast_weights)
                out.append(_spell(name, language))
            elif self.rng.random() < 0.3:
                out.append(self.rng.choice(self.words[language]))
            else:
                out.append(w)
        return " ".join(out)

    def near_copy(self, report: Report) -> Report:
        """The same report syndicated: 5% of its words changed and another site's line."""
        words = self.words[report.language]
        lines = [
            " ".join(w if self.rng.random() > 0.05 else self.rng.choice(words) for w in line.split())
            for line in report.text.split("\n")
        ]
        return Report(
            report.title, "\n".join([*lines, "Read more on our site"]), report.language, report.published, report.event
        )


# --- the stored items ----------------------------------------------------------------------


@dataclass
class Stored:
    """An active stored item, kept in memory to make the new articles from."""

    id: int
    report: Report
    story: int


def _reports_per_event(rng: random.Random) -> int:
    return rng.choices((1, 2, 3, 5), weights=(60, 25, 10, 5))[0]


def build(
    size: int, per_day: int, now: datetime, gen: Generator
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[int, int]], list[Stored]]:
    """Rows of items (with sources), stories and band keys, and the active items."""
    rng = gen.rng
    span = timedelta(days=size / per_day)
    start = now - span
    active_from = now - timedelta(days=stories.ACTIVE_DAYS) + timedelta(hours=1)
    filler = [gen.report(gen.event(now), lang, now) for lang in LANGUAGES]
    gen.events.clear()
    filler_profile = profile(filler[0].title, filler[0].text, "en", start).to_json()
    items: list[dict[str, Any]] = []
    story_rows: list[dict[str, Any]] = []
    bands: list[tuple[int, int]] = []
    active: list[Stored] = []
    i = 0
    while i < size:
        fetched = start + span * (i / size)
        n = min(_reports_per_event(rng), size - i)
        story_id = len(story_rows) + 1
        languages = rng.sample(LANGUAGES, min(n, len(LANGUAGES))) + ["en"] * max(0, n - len(LANGUAGES))
        profiles: list[Profile] = []
        is_active = fetched >= active_from
        event = gen.event(fetched) if is_active else -1
        last = fetched
        for k in range(n):
            item_id = i + 1
            when = fetched + timedelta(minutes=7 * k)
            last = when
            if is_active:
                r = gen.report(event, languages[k], when)
                sig = signature(shingles(r.title + "\n" + r.text))
                keys = band_keys(sig)
                packed = pack(sig)
                profiles.append(profile(r.title, r.text, r.language, when))
                active.append(Stored(item_id, r, story_id))
            else:
                r = filler[rng.randrange(len(filler))]
                keys = [rng.getrandbits(64) - (1 << 63) for _ in range(32)]
                packed = rng.randbytes(1024)
            url = f"https://site{item_id % 97}.example/news/{item_id}"
            items.append(
                {
                    "id": item_id,
                    "feed_id": 1 + item_id % FEEDS,
                    "url": url,
                    "canonical_url": url,
                    "guid": url,
                    "title": r.title,
                    "published_at": when,
                    "fetched_at": when,
                    "language": r.language,
                    "text": r.text,
                    "text_source": "page",
                    "content_hash": hashlib.sha256(url.encode()).hexdigest(),  # unique: no exact copies
                    "story_id": story_id,
                    "signature": packed,
                    "signature_scheme": SCHEME,
                }
            )
            bands.extend((key, item_id) for key in sorted(set(keys)))
            i += 1
        story_rows.append(
            {
                "id": story_id,
                "title": items[-n]["title"],
                "first_seen_at": fetched,
                "last_seen_at": last,
                "item_count": n,
                "source_count": len({it["feed_id"] for it in items[-n:]}),
                "languages": ",".join(sorted(set(languages[:n]))),
                "profile": story_profile(profiles).to_json() if profiles else filler_profile,
            }
        )
    return items, story_rows, bands, active


def _sqlite_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def load(
    engine: Any,
    items: list[dict[str, Any]],
    story_rows: list[dict[str, Any]],
    bands: list[tuple[int, int]],
    now: datetime,
) -> None:
    """Bulk insert: executemany on SQLite, COPY on PostgreSQL."""
    feeds = [
        {
            "id": f + 1,
            "name": f"feed-{f + 1}",
            "url": f"https://feeds{f}.example/rss",
            "current_url": f"https://feeds{f}.example/rss",
            "interval_seconds": 1800,
            "status": "ok",
            "error_count": 0,
            "next_poll_at": now,
            "created_at": now,
        }
        for f in range(FEEDS)
    ]
    sources = [
        {
            "item_id": it["id"],
            "feed_id": it["feed_id"],
            "url": it["url"],
            "guid": it["guid"],
            "first_seen_at": it["fetched_at"],
        }
        for it in items
    ]
    tables: list[tuple[str, list[str], Iterable[Sequence[Any]]]] = []
    for name, rows in (("feeds", feeds), ("stories", story_rows), ("items", items), ("item_sources", sources)):
        columns = list(rows[0])
        tables.append((name, columns, ([row[c] for c in columns] for row in rows)))
    tables.append(("lsh_bands", ["band_key", "item_id"], bands))
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            cur = raw.cursor()
            for name, columns, rows in tables:
                sql = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                batch: list[Sequence[Any]] = []
                for row in rows:
                    batch.append([_sqlite_time(v) if isinstance(v, datetime) else v for v in row])
                    if len(batch) >= BATCH:
                        cur.executemany(sql, batch)
                        batch = []
                if batch:
                    cur.executemany(sql, batch)
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        else:
            cur = raw.cursor()
            for name, columns, rows in tables:
                with cur.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            for name in ("feeds", "stories", "items", "item_sources"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")
            raw.commit()
            raw.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            cur.execute("VACUUM ANALYZE")
            raw.dbapi_connection.autocommit = False  # type: ignore[union-attr]
    finally:
        raw.close()


# --- the new articles -------------------------------------------------------------------------


def new_articles(n: int, active: list[Stored], gen: Generator, now: datetime) -> list[tuple[str, Report]]:
    rng = gen.rng
    out: list[tuple[str, Report]] = []
    for k in range(n):
        kind = "near" if k % 4 == 0 else "language" if k % 4 == 1 else "new"
        if kind == "near":
            out.append((kind, gen.near_copy(rng.choice(active).report)))
        elif kind == "language":
            event = rng.choice(active).report.event
            unused = [lang for lang in LANGUAGES if lang not in gen.events[event].languages] or ["en"]
            out.append((kind, gen.report(event, rng.choice(unused), now)))
        else:
            out.append((kind, gen.report(gen.event(now), rng.choice(LANGUAGES), now)))
    return out


def run(engine_name: str, url: str, size: int, args: argparse.Namespace) -> None:
    from sqlalchemy import event

    from monitor.config import FetchConfig
    from monitor.fetch import Fetcher
    from monitor.pipeline import Pipeline
    from storage.db import make_engine, upgrade
    from storage.repository import NewItem, Store

    now = datetime.now(UTC)
    gen = Generator(args.seed)
    t0 = time.perf_counter()
    items, story_rows, bands, active = build(size, args.per_day, now - timedelta(minutes=1), gen)
    t1 = time.perf_counter()
    engine = make_engine(url)
    if engine.dialect.name == "sqlite" and args.sqlite_cache_mib:

        @event.listens_for(engine, "connect")
        def _cache(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute(f"PRAGMA cache_size=-{args.sqlite_cache_mib * 1024}")

    upgrade(engine)
    load(engine, items, story_rows, bands, now)
    t2 = time.perf_counter()
    del items, bands
    store = Store(engine)
    fetcher = Fetcher(FetchConfig(robots=False))
    pipeline = Pipeline(store, fetcher, [])
    warm_up = ("new", gen.report(gen.event(now), "en", now))  # loads the active stories into the index
    articles = [warm_up, *new_articles(args.articles, active, gen, now)]

    def one(n: int, kind: str, r: Report) -> tuple[float, float, float, float, str]:
        url = f"https://new{n % 13}.example/{uuid.uuid4().hex}"
        w0, c0 = time.perf_counter(), time.process_time()
        sig, keys = pipeline._signature(r.title, r.text)
        item_profile = profile(r.title, r.text, r.language, now)
        w1, c1 = time.perf_counter(), time.process_time()
        new = NewItem(
            feed_id=1 + n % FEEDS,
            url=url,
            guid=url,
            source_url=url,
            title=r.title,
            author=None,
            published_at=now,
            language=r.language,
            language_probability=None,
            text=r.text,
            text_source="page",
            content_hash=hashlib.sha256(f"{r.text}{n}".encode()).hexdigest(),
            signature=pack(sig),
            signature_scheme=SCHEME,
            band_keys=keys,
        )
        stored = pipeline._store_new(new, None, sig, item_profile)
        w2, c2 = time.perf_counter(), time.process_time()
        assert not isinstance(stored, tuple) or stored[0] > 0
        placement = stored[1] if isinstance(stored, tuple) else None
        outcome = (
            "copy"
            if placement is None
            else "near"
            if placement.duplicate_of
            else "joined"
            if placement.story_id
            else "new"
        )
        return w1 - w0, c1 - c0, w2 - w1, c2 - c1, outcome

    warm = time.perf_counter()
    one(0, *articles[0])
    warm = time.perf_counter() - warm
    indexed = len(pipeline.story_index)
    scored0 = pipeline.story_index.scored
    totals = [0.0, 0.0, 0.0, 0.0]
    outcomes: dict[tuple[str, str], int] = {}
    for n, (kind, r) in enumerate(articles[1:], start=1):
        *times, outcome = one(n, kind, r)
        for k in range(4):
            totals[k] += times[k]  # type: ignore[operator]
        outcomes[(kind, outcome)] = outcomes.get((kind, outcome), 0) + 1
    n = len(articles) - 1
    ms = [1000 * t / n for t in totals]
    scored = (pipeline.story_index.scored - scored0) / n
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(str(engine.url.database))
        db_bytes = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    else:
        with engine.connect() as conn:
            db_bytes = int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0)
    print(
        f"{engine_name:10} {size:>9,} items: {ms[0] + ms[2]:6.2f} ms/article wall, {ms[1] + ms[3]:6.2f} ms CPU "
        f"(compute {ms[0]:.2f} wall / {ms[1]:.2f} CPU; database step {ms[2]:.2f} wall / {ms[3]:.2f} CPU); "
        f"{scored:.1f} of {indexed} active stories scored per article; index load {warm:.2f} s; "
        f"database {db_bytes / 2**20:,.0f} MiB (generated in {t1 - t0:.0f} s, loaded in {t2 - t1:.0f} s)",
        flush=True,
    )
    print(
        "           outcomes (kind -> placement): "
        + ", ".join(f"{k} -> {o}: {c}" for (k, o), c in sorted(outcomes.items()))
    )
    fetcher.close()
    engine.dispose()


@contextmanager
def database(engine_name: str, args: argparse.Namespace) -> Iterator[str]:
    """The URL of a fresh database, removed afterwards."""
    if engine_name == "sqlite":
        with tempfile.TemporaryDirectory(prefix="monitor-dedupe-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    import psycopg

    name = f"monitor_bench_{uuid.uuid4().hex[:8]}"
    admin = args.pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield args.pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="sqlite", help="comma-separated: sqlite,postgresql")
    ap.add_argument("--sizes", default="10000,100000", help="stored items, comma-separated")
    ap.add_argument("--articles", type=int, default=500, help="new articles timed per run")
    ap.add_argument("--per-day", type=int, default=1300, help="stored items per day (sets the active stories)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument(
        "--sqlite-cache-mib", type=int, default=0, help="PRAGMA cache_size for SQLite (default: storage.db's, 64 MiB)"
    )
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(
        f"dedupe + story step, {args.articles} new articles per run, {args.per_day} stored items a day "
        f"({stories.ACTIVE_DAYS} active days), this machine: {os.cpu_count()} cores",
        flush=True,
    )
    for engine_name in args.engines.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            with database(engine_name, args) as url:
                run(engine_name, url, size, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
