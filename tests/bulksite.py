"""Many feeds of short articles over several loopback addresses: the workload of
the multi-worker test and of benchmarks/workers.py.

Article texts are drawn from a seeded pseudo-vocabulary, so no two are near
duplicates or one story; every `MATCH_EVERY`-th article mentions `KEYWORD`.
Neighbouring feeds share `overlap` entries (the same URL syndicated in two
feeds), so workers race to store the same article. Links point only to the
servers on 127.0.0.0/8.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

from httpserver import LocalServer, Route

KEYWORD = "ceasefire"
MATCH_EVERY = 4
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


@dataclass
class BulkSite:
    servers: list[LocalServer]
    feeds: dict[str, str] = field(default_factory=dict)  # name -> URL
    feed_paths: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (server, path)
    articles: list[str] = field(default_factory=list)  # every distinct article URL
    matching: set[str] = field(default_factory=set)  # the URLs of the articles that mention KEYWORD
    listed: Counter[str] = field(default_factory=Counter)  # article URL -> how many feeds list it

    def feed_hits(self) -> Counter[str]:
        """How many times each feed was fetched."""
        hits: Counter[str] = Counter()
        by_path = {v: k for k, v in self.feed_paths.items()}
        for i, server in enumerate(self.servers):
            for r in list(server.requests):
                if (name := by_path.get((i, r.path))) is not None:
                    hits[name] += 1
        return hits

    def article_hits(self) -> Counter[str]:
        """How many times each article page was fetched, by URL."""
        return Counter(s.url(r.path) for s in self.servers for r in list(s.requests) if r.path.startswith("/a/"))

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(n)]


def _page(title: str, paragraphs: list[str]) -> bytes:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
        f"<body><nav><a href='/'>Home</a></nav><article><h1>{escape(title)}</h1>{body}</article>"
        "<footer>Bulk Wire</footer></body></html>"
    ).encode()


def _rss(title: str, items: list[tuple[str, str, datetime]]) -> bytes:
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>']
    for link, headline, when in items:
        parts.append(
            f"<item><title>{escape(headline)}</title><link>{escape(link)}</link><guid>{escape(link)}</guid>"
            f"<pubDate>{format_datetime(when)}</pubDate></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def build(n_feeds: int, per_feed: int, hosts: int = 6, overlap: int = 2, seed: int = 1) -> BulkSite:
    """Start `hosts` servers on 127.0.0.2, 127.0.0.3, ... and publish `n_feeds`
    feeds of `per_feed` entries, spread over them."""
    rng = random.Random(seed)
    vocabulary = sorted(set(_words(rng, 6000)))
    site = BulkSite([LocalServer(f"127.0.0.{2 + h}").start() for h in range(hosts)])
    step = per_feed - overlap
    n_articles = step * n_feeds + overlap
    now = datetime.now(UTC).replace(microsecond=0)
    links: list[tuple[str, str, datetime]] = []
    for i in range(n_articles):
        server = site.servers[i % hosts]
        path = f"/a/{i}.html"
        title = f"{' '.join(rng.sample(vocabulary, 5)).capitalize()} {i}"
        paragraphs = [" ".join(rng.sample(vocabulary, 45)) + "." for _ in range(3)]
        if i % MATCH_EVERY == 0:
            paragraphs[1] = paragraphs[1][:-1] + f" near {KEYWORD}."
        server.routes[path] = Route(_page(title, paragraphs))
        url = server.url(path)
        site.articles.append(url)
        if i % MATCH_EVERY == 0:
            site.matching.add(url)
        links.append((url, title, now - timedelta(minutes=n_articles - i)))
    for f in range(n_feeds):
        h = f % hosts
        path = f"/feeds/{f}.rss"
        entries = links[f * step : f * step + per_feed]
        site.listed.update(link for link, _, _ in entries)
        site.servers[h].routes[path] = Route(_rss(f"Feed {f}", entries), content_type="application/rss+xml")
        name = f"feed-{f:04}"
        site.feeds[name] = site.servers[h].url(path)
        site.feed_paths[name] = (h, path)
    return site


def config_toml(db_url: str, site: BulkSite, hook_url: str, lease: str = "10m", concurrency: int = 4) -> str:
    """Every feed polled hourly and alerting on its backlog, one rule on one webhook."""
    feeds = "".join(
        f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\ninterval = "1h"\nalert_on_backlog = true\n'
        for n, u in site.feeds.items()
    )
    return f"""\
[storage]
url = "{db_url}"

[fetch]
timeout = 20
per_host_delay = 0
per_host_concurrency = 2
concurrency = {concurrency}
allow_private = ["127.0.0.0/8"]

[schedule]
tick = 1
lease = "{lease}"

[extract]
processes = 1

[alerts.hook]
type = "webhook"
url = "{hook_url}"

[[rules]]
name = "watch"
query = "{KEYWORD}"
channels = ["hook"]
max_alerts_per_hour = 100000
{feeds}"""
