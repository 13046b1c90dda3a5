"""The CLI as a user types it, in a subprocess (with the network guard loaded there too)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from newssite import NewsSite, config_toml

pytestmark = pytest.mark.slow
SITECUSTOM = str(Path(__file__).parent / "sitecustom")


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    e["PYTHONPATH"] = SITECUSTOM + os.pathsep + e.get("PYTHONPATH", "")
    return e


def monitor(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout
    )


def write_config(tmp_path: Path, site: NewsSite, feeds: dict[str, str] | None = None) -> Path:
    cfg = tmp_path / "feeds.toml"
    cfg.write_text(
        config_toml("sqlite:///monitor.db", feeds or {"quotidien-fr": site.rss_url, "world-wire": site.atom_url}),
        encoding="utf-8",
    )
    return cfg


def test_guard_is_active_in_subprocesses(tmp_path: Path) -> None:
    code = "import socket\ntry:\n socket.getaddrinfo('example.org', 80)\nexcept OSError as e: print('refused', e)"
    out = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, check=True).stdout
    assert out.startswith("refused")


def test_help_for_every_command(tmp_path: Path) -> None:
    assert "poll" in monitor("--help", cwd=tmp_path).stdout
    for cmd in (
        ["run"],
        ["poll"],
        ["feeds"],
        ["items"],
        ["check"],
        ["db"],
        ["db", "upgrade"],
        ["explain"],
        ["alerts"],
        ["stories"],
        ["rules", "test"],
        ["search"],
    ):
        r = monitor(*cmd, "--help", cwd=tmp_path)
        assert r.returncode == 0 and "usage: monitor" in r.stdout, cmd


def test_console_script_installed() -> None:
    r = subprocess.run(["monitor", "--version"], capture_output=True, text=True, env=env())
    assert r.returncode == 0 and r.stdout.startswith("monitor ")


def test_check_broken_config(tmp_path: Path) -> None:
    (tmp_path / "feeds.toml").write_text(
        """
[alerts.console]

[[feeds]]
name = "a"
url = "not a url"

[[feeds]]
name = "a"
url = "https://news.invalid/feed"
intervall = "10m"

[[rules]]
name = "r"
query = '"unterminated'
channels = ["slack-desk"]
""",
        encoding="utf-8",
    )
    r = monitor("check", cwd=tmp_path)
    assert r.returncode == 2
    assert "feeds.toml:6: feeds[0] (a).url" in r.stderr
    assert "feeds[1] (a).name: duplicate name 'a'" in r.stderr
    assert "feeds.toml:11: feeds[1] (a).intervall: unknown key" in r.stderr
    assert "rules[0] (r).query: unterminated quoted phrase" in r.stderr
    assert "rules[0] (r).channels: unknown channel 'slack-desk'" in r.stderr
    assert not (tmp_path / "monitor.db").exists()  # check touches no database


def _alert_pairs(db: Path) -> set[tuple[str, int]]:
    """The distinct (rule, story) pairs among the matches: one alert each."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {(str(r), int(s)) for r, s in conn.execute("SELECT rule, story_id FROM matches")}


def test_poll_once_items_feeds(tmp_path: Path, site: NewsSite) -> None:
    write_config(tmp_path, site)
    assert monitor("check", cwd=tmp_path).returncode == 0
    r = monitor("poll", "--once", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # One alert per (rule, story): as many as distinct pairs among the matches (the summit
    # reports of several languages share stories, so fewer than the 10 matching items).
    pairs = _alert_pairs(tmp_path / "monitor.db")
    rules = {"garanties-fr", "cessez-le-feu", "security-en", "sicherheit-de", "bezpeka-uk", "vendanges"}
    assert {r for r, _ in pairs} == rules and len(pairs) < 10
    assert r.stdout.count("ALERT [") == len(pairs)
    assert r.stdout.count("ALERT [vendanges]") == 1
    stories = monitor("stories", cwd=tmp_path)
    assert stories.returncode == 0, stories.stderr
    assert stories.stdout.count("story ") == len({s for _, s in pairs})
    assert "Vendanges en Touraine" in stories.stdout and "fr\tquotidien-fr" in stories.stdout
    # The two feeds are polled concurrently and share one article: 8 new items between them.
    counts = re.findall(r"^(quotidien-fr|world-wire): ok: (\d+) entries, (\d+) new, (\d+) known", r.stderr, re.M)
    assert sorted(c[0] for c in counts) == ["quotidien-fr", "world-wire"]
    assert sum(int(c[2]) for c in counts) == 8 and sum(int(c[1]) for c in counts) == 10
    items = monitor("items", "--limit", "50", cwd=tmp_path)
    assert items.stdout.count("http://127.0.0.1") == 8
    feeds = monitor("feeds", cwd=tmp_path)
    assert "quotidien-fr" in feeds.stdout and "world-wire" in feeds.stdout
    line = next(x for x in feeds.stdout.splitlines() if x.startswith("world-wire"))
    # status, errors, items (the copy counts once); the fixture articles date from
    # January 2026, far more than ten times their usual gap ago: stale.
    assert line.split()[1:4] == ["stale", "0", "5"]
    # Why (no) alert: the tracking-URL copy leads to the main French article and its sent alerts.
    main = site.pages["fr_summit_main"]
    why = monitor("explain", main.url + "?utm_source=rss&fbclid=x", cwd=tmp_path)
    assert why.returncode == 0, why.stderr
    assert main.title in why.stdout and "garanties-fr: matched (garanties de sécurité)" in why.stdout
    assert re.search(r"garanties-fr -> console: sent \d{4}-\d\d-\d\d", why.stdout)
    assert "(world-wire, matched by exactly the same text)" in why.stdout or "exactly the same text)" in why.stdout
    missing = monitor("explain", "999999", cwd=tmp_path)
    assert missing.returncode == 1 and "never stored" in missing.stderr
    again = monitor("poll", "--once", "--feed", "world-wire", cwd=tmp_path)
    assert again.returncode == 0 and "ALERT" not in again.stdout
    unknown = monitor("poll", "--once", "--feed", "nope", cwd=tmp_path)
    assert unknown.returncode == 1 and "no feed named nope" in unknown.stderr


def test_poll_once_fails_only_when_nothing_could_be_done(tmp_path: Path, site: NewsSite) -> None:
    write_config(tmp_path, site, {"dead": site.server.url("/missing.xml"), "also-dead": "http://127.0.0.1:9/feed"})
    r = monitor("poll", "--once", cwd=tmp_path)
    assert r.returncode == 1
    assert "dead: error: http: HTTP 404" in r.stderr and "also-dead: error: connect" in r.stderr
    write_config(tmp_path, site, {"dead": site.server.url("/missing.xml"), "good": site.rss_url})
    assert monitor("poll", "--once", cwd=tmp_path).returncode == 0


def test_db_upgrade(tmp_path: Path, site: NewsSite) -> None:
    write_config(tmp_path, site)
    r = monitor("db", "upgrade", cwd=tmp_path)
    versions = Path(__file__).parent.parent / "storage" / "migrations" / "versions"
    head = max(p.name[:4] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert r.returncode == 0 and f"upgraded empty -> {head}" in r.stdout
    assert f"already at {head}" in monitor("db", "upgrade", cwd=tmp_path).stdout


def run_until(cwd: Path, ready: Callable[[], bool]) -> tuple[subprocess.Popen[str], str, str]:
    """`monitor run` until `ready()` holds (checked for up to 60 s), then SIGTERM it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"],
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            time.sleep(0.1)
            if ready():
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)  # a bound for a hung test, not a timing assertion
    finally:
        proc.kill()
    return proc, out, err


def test_run_stops_cleanly_on_sigterm(tmp_path: Path, site: NewsSite) -> None:
    write_config(tmp_path, site)
    db = tmp_path / "monitor.db"

    def all_sent() -> bool:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                sent = conn.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'").fetchone()[0]
                return bool(sent > 0 and sent == len(_alert_pairs(db)))
        except sqlite3.OperationalError:
            return False

    proc, out, err = run_until(tmp_path, all_sent)
    assert proc.returncode == 0, err
    assert "received SIGTERM" in err and "monitor stopped" in err
    assert out.count("ALERT [") == len(_alert_pairs(db))


def test_sigterm_during_a_hanging_fetch_still_exits(tmp_path: Path, site: NewsSite) -> None:
    from httpserver import Route

    slow = site.pages["en_summit"]
    site.server.routes[slow.path] = Route(b"<html></html>", delay=120)
    (tmp_path / "feeds.toml").write_text(
        config_toml("sqlite:///monitor.db", {"world-wire": site.atom_url}, timeout=100), encoding="utf-8"
    )
    proc, _, err = run_until(tmp_path, lambda: site.server.hits(slow.path) > 0)
    assert site.server.hits(slow.path) == 1
    assert proc.returncode == 0, err
    assert "will be fetched again" in err
    with sqlite3.connect(tmp_path / "monitor.db") as conn:
        # Entries before the hanging one were committed; the feed's cache was not saved.
        assert conn.execute("SELECT body_hash FROM feeds").fetchone()[0] is None


def test_read_only_commands_do_not_touch_feed_state(tmp_path: Path, site: NewsSite) -> None:
    write_config(tmp_path, site)
    r = monitor("feeds", cwd=tmp_path)
    assert r.returncode == 1 and "no monitor database" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "monitor.db").exists()
    assert monitor("poll", "--once", cwd=tmp_path).returncode == 0
    small = tmp_path / "small.toml"
    small.write_text(config_toml("sqlite:///monitor.db", {"world-wire": site.atom_url}), encoding="utf-8")
    # Global options after the command, and a config naming fewer feeds: nothing is marked removed.
    for cmd in ("feeds", "items"):
        assert monitor(cmd, "--config", str(small), cwd=tmp_path).returncode == 0
    feeds = monitor("feeds", cwd=tmp_path).stdout
    assert "removed" not in feeds and feeds.count(" stale ") == 2


def test_database_errors_are_one_line(tmp_path: Path, site: NewsSite) -> None:
    cfg = tmp_path / "feeds.toml"
    cfg.write_text(
        config_toml("postgresql+psycopg://postgres@127.0.0.1:9/nowhere", {"w": site.atom_url}), encoding="utf-8"
    )
    r = monitor("poll", cwd=tmp_path)
    assert r.returncode == 1
    assert "monitor poll: database error:" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_extract_files_and_urls(tmp_path: Path, site: NewsSite) -> None:
    import json

    fixtures = Path(__file__).parent / "fixtures" / "articles"
    write_config(tmp_path, site)
    page = site.pages["uk_summit"]
    r = monitor(
        "extract", "--json", str(fixtures / "de_summit.html"), page.url, str(tmp_path / "missing.html"), cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    de, uk, missing = (json.loads(line) for line in r.stdout.splitlines())
    assert de["language"] == "de" and de["title"].startswith("Ukraine-Gipfel in Paris")
    assert "Sicherheitsgarantien" in de["text"] and "Zum Inhalt springen" not in de["text"]
    assert uk["language"] == "uk" and uk["title"] == page.title and uk["text_source"] == "page"
    assert uk["url"] == page.url and uk["published_at"].startswith("2026-01-06")
    assert missing["error"].startswith("cannot read")
    plain = monitor("extract", str(fixtures / "ru_summit.html"), cwd=tmp_path)
    assert "language: ru" in plain.stdout and "title:    В Париже" in plain.stdout


def test_rules_test_and_search_over_stored_items(tmp_path: Path, site: NewsSite) -> None:
    import json

    write_config(tmp_path, site)
    assert monitor("poll", "--once", cwd=tmp_path).returncode == 0
    r = monitor("rules", "test", "coalition AND (lang:fr OR lang:en) AND NOT vendanges", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    # The three French summit items (the syndicated copy is a source, not an item) and the English one;
    # not the German "Koalition", nor the French page on the grape harvest.
    assert sorted(h["language"] for h in hits) == ["en", "fr", "fr", "fr"], hits
    for h in hits:
        assert {"item_id", "story_id", "title", "url", "snippet"} <= h.keys()
        assert "**" in h["snippet"]
    de = monitor("search", "Koalition lang:de", cwd=tmp_path)
    assert de.returncode == 0 and "1 matching item" in de.stderr
    assert "matched: Koalition" in de.stdout
    bad = monitor("rules", "test", "(coalition", cwd=tmp_path)
    assert bad.returncode == 2 and "^" in bad.stderr
    since = monitor("rules", "test", "coalition", "--since", "2999-01-01", cwd=tmp_path)
    assert since.returncode == 0 and "0 matching items" in since.stderr
