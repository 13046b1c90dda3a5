"""`monitor demo` (issue 9): the bundled sample web, served on loopback and polled once."""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import feedparser
import pytest

from monitor.config import parse_config
from monitor.demo import PLACEHOLDER, Sample, SampleServer, config_text, data, fresh_database, run_demo

ROOT = Path(__file__).parent.parent
SITECUSTOM = str(Path(__file__).parent / "sitecustom")
FIXTURES = Path(__file__).parent / "fixtures" / "articles"
# Namespace names in the XML and JSON-LD: identifiers, never fetched.
NAMESPACES = {"http://www.w3.org/2005/Atom", "http://purl.org/dc/elements/1.1/", "https://schema.org"}
ALL_RULES = {r["name"] for r in tomllib.loads((ROOT / "feeds.toml").read_text(encoding="utf-8"))["rules"]}
VIGILANT = "/le-vigilant/international/2026/01/06/coalition-des-volontaires-garanties-de-securite"
ECHO = "/echo-des-vallees/monde/2026/01/07/coalition-volontaires-ukraine-garanties"


def test_demo_rules_are_the_shipped_rules() -> None:
    shipped = tomllib.loads((ROOT / "feeds.toml").read_text(encoding="utf-8"))["rules"]
    demo = tomllib.loads((data() / "rules.toml").read_text(encoding="utf-8"))["rules"]
    assert demo == shipped


def test_every_url_of_the_sample_is_the_local_server() -> None:
    sample = Sample.load()
    for path, resource in sample.resources.items():
        text = (data() / resource.file).read_text(encoding="utf-8")
        urls = set(re.findall(r"https?://[^\s\"'<>]+", text)) - NAMESPACES
        assert all(u.startswith(PLACEHOLDER) for u in urls), (path, sorted(urls))
        assert path.startswith("/")


def test_feeds_are_rss_and_atom_and_link_to_served_pages() -> None:
    sample = Sample.load()
    bodies = sample.bodies("http://127.0.0.1:9")
    versions = []
    for feed in sample.feeds:
        parsed = feedparser.parse(bodies[feed.path][0])
        assert not parsed.bozo, (feed.name, parsed.get("bozo_exception"))
        versions.append(parsed.version)
        for entry in parsed.entries:
            assert entry.link.startswith("http://127.0.0.1:9/")
            assert entry.link.removeprefix("http://127.0.0.1:9").split("?")[0] in bodies, entry.link
    assert sorted(versions) == ["atom10", "rss20", "rss20"]


def test_pages_carry_site_chrome_and_our_own_text() -> None:
    """Extraction has work to do on every page; and no sentence comes from the test fixtures."""
    fixtures = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
    theirs = {p for a in fixtures["articles"] for p in a["paragraphs"]}
    pages = [r for r in Sample.load().resources.values() if r.file.startswith("pages/")]
    assert len(pages) == 8
    for r in pages:
        html = (data() / r.file).read_text(encoding="utf-8")
        assert "<nav" in html and "<footer" in html and "cookie" in html.lower(), r.file
        assert re.search(r"skip|aller au contenu|zum inhalt|перейти", html, re.I), r.file
        assert re.search(r"partager|share|teilen|поділитися|поделиться", html, re.I), r.file
        ours = re.findall(r"<p>([^<]{80,})</p>", html)
        assert ours and not theirs.intersection(ours), r.file
    lang = re.compile(r'<html lang="(\w\w)')
    languages = {m[1] for r in pages if (m := lang.search((data() / r.file).read_text(encoding="utf-8")))}
    assert languages == {"fr", "en", "de", "uk", "ru"}


def test_server_listens_on_loopback_and_records_requests() -> None:
    with SampleServer(Sample.load()) as server:
        assert server.base.startswith("http://127.0.0.1:")
        assert server.httpd.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(server.base + "/northbridge/latest.atom", timeout=10) as r:
            body = r.read().decode("utf-8")
        assert r.headers["Content-Type"].startswith("application/atom+xml")
        assert server.base + "/northbridge/uk/2026/jan/05/library-reopens" in body  # the port put in
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.base + "/nowhere", timeout=10)
        assert missing.value.code == 404
    assert [(r.client, r.path) for r in server.requests] == [
        ("127.0.0.1", "/northbridge/latest.atom"),
        ("127.0.0.1", "/nowhere"),
    ]


def test_config_points_only_at_the_local_server(tmp_path: Path) -> None:
    sample = Sample.load()
    text = config_text(sample, "http://127.0.0.1:4321", tmp_path / "demo.db")
    config = parse_config(text, "demo.toml", env={})
    assert config.database_url == f"sqlite:///{tmp_path / 'demo.db'}"
    assert tuple(config.fetch.allow_private) == ("127.0.0.1/32",)
    assert [f.url for f in config.feeds] == [f"http://127.0.0.1:4321{f.path}" for f in sample.feeds]
    assert all(f.alert_on_backlog for f in config.feeds)
    assert {r.name for r in config.rules} == ALL_RULES and list(config.channels) == ["console"]


def test_fresh_database_removes_the_earlier_one_and_its_wal(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert not fresh_database(db)
    for name in ("demo.db", "demo.db-wal", "demo.db-shm"):
        (tmp_path / name).write_bytes(b"x")
    assert fresh_database(db)
    assert not any(tmp_path.iterdir())


# --- the whole demo -----------------------------------------------------------------------


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _check_database(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        q = conn.execute
        assert q("SELECT COUNT(*) FROM items").fetchone() == (7,)
        # Le Vigilant's article: its own entry, Europa Wire's under a tracking URL, L'Écho's syndicated copy.
        [(item_id, sources, feeds)] = q(
            "SELECT item_id, COUNT(*), COUNT(DISTINCT feed_id) FROM item_sources GROUP BY item_id HAVING COUNT(*) > 1"
        ).fetchall()
        assert (sources, feeds) == (3, 2)
        urls = [u for (u,) in q("SELECT url FROM item_sources WHERE item_id = ?", (item_id,))]
        assert sorted(re.sub(r"^http://127\.0\.0\.1:\d+", "", u) for u in urls) == sorted([ECHO, VIGILANT, VIGILANT])
        # One story in five languages, and the two unrelated articles on their own.
        stories = q(
            "SELECT item_count, source_count, languages FROM story_overview ORDER BY item_count DESC, languages"
        ).fetchall()
        assert stories == [(5, 3, "de,en,fr,ru,uk"), (1, 1, "en"), (1, 1, "fr")]
        unmatched = q("SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT item_id FROM matches)").fetchone()
        assert unmatched == (2,)
        assert {r for (r,) in q("SELECT DISTINCT rule FROM matches")} == ALL_RULES
        assert q("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall() == [("sent", len(ALL_RULES))]
        # Nothing but the local server anywhere.
        for (url,) in q("SELECT url FROM item_sources UNION SELECT url FROM items UNION SELECT url FROM feeds"):
            assert re.match(r"http://127\.0\.0\.1:\d+/", url), url
    finally:
        conn.close()


@pytest.mark.slow
def test_monitor_demo_twice(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = SITECUSTOM + os.pathsep + env.get("PYTHONPATH", "")  # the network guard, in there too
    env["MONITOR_DATABASE_URL"] = "sqlite:///not-the-demo.db"  # must not send the demo elsewhere
    for run in (1, 2):
        r = subprocess.run(
            [sys.executable, "-m", "monitor", "demo"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert ("replaced by a fresh one" in r.stdout) == (run == 2)
        alerted = re.findall(r"^ALERT \[([\w-]+)\]", r.stdout, re.M)
        assert sorted(alerted) == sorted(ALL_RULES)  # one alert per rule for the one story
        assert "in 3 stories; 11 alerts sent" in r.stdout
        served = re.search(r"The local server answered (\d+) requests, from (.*) only\.", r.stdout)
        assert served and int(served[1]) >= 12 and served[2] == "127.0.0.1", r.stdout
        examples = re.findall(r'^  sqlite3 demo\.db "(.*)"$', r.stdout, re.M)
        assert len(examples) >= 3 and all(_rows(tmp_path / "demo.db", sql) for sql in examples)
        assert "network guard" not in r.stderr and "Traceback" not in r.stderr, r.stderr
        _check_database(tmp_path / "demo.db")
    assert not (tmp_path / "not-the-demo.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("demo.db")) == ["demo.toml"]
    del env["MONITOR_DATABASE_URL"]  # which would win over demo.toml's [storage] url, as it should
    stories = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", "demo.toml", "stories"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stories.returncode == 0 and "5 items" in stories.stdout, stories.stderr


@pytest.mark.slow
def test_the_server_saw_only_loopback_and_only_sample_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    result = run_demo(tmp_path, out)
    assert result.ok
    sample = Sample.load()
    assert {r.client for r in result.requests} == {"127.0.0.1"}
    paths = {r.path.split("?")[0] for r in result.requests}
    assert paths <= set(sample.resources)
    assert {f.path for f in sample.feeds} <= paths
    assert capsys.readouterr().out.count("\nALERT [") == len(ALL_RULES)  # the console channel, on stdout
    _check_database(tmp_path / "demo.db")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = re.findall(r'sqlite3 demo\.db "(.*?)"', readme, re.S)
    assert documented and all(_rows(tmp_path / "demo.db", sql) for sql in documented)
