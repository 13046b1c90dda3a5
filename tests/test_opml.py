"""OPML import and export (issue 9): parsing, safe XML, names, the TOML file kept as it was."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import ConfigError, FeedConfig, load_config, parse_config
from monitor.opml import OpmlError, export_opml, feed_name, import_opml, parse_opml, plan_import, unique_name

SITECUSTOM = str(Path(__file__).parent / "sitecustom")

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="Presse fran\xc3\xa7aise">
      <outline type="rss" text="Le Monde - International" xmlUrl="https://www.lemonde.fr/international/rss_full.xml"/>
      <outline text="Sous-cat\xc3\xa9gorie">
        <outline type="rss" title="France 24" text="ignored" xmlUrl="https://www.france24.com/fr/rss" language="fr"/>
      </outline>
    </outline>
    <outline type="rss" text="\xd0\x9a\xd0\xb8\xd1\x97\xd0\xb2" xmlUrl="https://kyiv.example.org/feed"/>
    <outline type="rss" text="Le Monde - International" xmlUrl="https://example.net/other-le-monde.xml"/>
    <outline type="rss" text="Broken" xmlUrl="ftp://example.org/feed"/>
    <outline text="Empty category"/>
  </body>
</opml>
"""

CONFIG = """# My monitor configuration.
[storage]
url = "sqlite:///monitor.db"   # keep this comment

[alerts.console]

[[feeds]]
name = "lemonde-international"
url = "https://www.lemonde.fr/international/rss_full.xml?utm_source=x"  # already here

[[rules]]
name = "garanties"
query = '"garanties de sécurité"'
channels = ["console"]
"""


def test_parse_nested_outlines() -> None:
    feeds = parse_opml(OPML, "subs.opml")
    assert [f.url for f in feeds] == [
        "https://www.lemonde.fr/international/rss_full.xml",
        "https://www.france24.com/fr/rss",
        "https://kyiv.example.org/feed",
        "https://example.net/other-le-monde.xml",
        "ftp://example.org/feed",
    ]
    assert feeds[1].title == "France 24"  # title wins over text
    assert feeds[1].categories == ("Presse française", "Sous-catégorie")
    assert feeds[1].language == "fr"
    assert feeds[1].line == 8


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"<opml><body><outline xmlUrl='x'></body></opml>", "subs.opml:1: not well-formed XML: mismatched tag"),
        (b"<?xml version='1.0'?>\n\n<rss><channel/></rss>", "subs.opml:3: not an OPML document"),
        (b"<opml version='2.0'>\n<head/>\n</opml>", "subs.opml:1: <opml> has no <body>"),
        (b"", "subs.opml:1: not well-formed XML"),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>\n'
            b"<opml><body><outline text='&lol2;' xmlUrl='http://a.example/'/></body></opml>",
            "subs.opml:2: a document type declaration (DTD) is not allowed",
        ),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE opml SYSTEM "file:///etc/passwd">\n<opml><body/></opml>',
            "subs.opml:2: a document type declaration (DTD) is not allowed",
        ),
        (b"<opml><body><outline text='&secret;'/></body></opml>", "subs.opml:1: not well-formed XML: undefined entity"),
    ],
)
def test_broken_or_hostile_opml(data: bytes, expected: str) -> None:
    with pytest.raises(OpmlError) as exc:
        parse_opml(data, "subs.opml")
    assert str(exc.value).startswith(expected), str(exc.value)


def test_names_are_valid_and_unique() -> None:
    assert feed_name("Le Monde - International", "https://x.example/") == "le-monde-international"
    assert feed_name("Київ", "https://www.kyiv.example.org/feed") == "kyiv.example.org"
    assert feed_name("Süddeutsche Zeitung: Politik!", "https://x/") == "suddeutsche-zeitung-politik"
    assert feed_name(None, "https://x.example/") == "x.example"
    assert feed_name("x" * 200, "https://x/") == "x" * 60
    assert unique_name("a", {"a", "a-2"}) == "a-3"


def test_plan_skips_known_urls_and_bad_ones() -> None:
    config = parse_config(CONFIG, "feeds.toml", {})
    result = plan_import(CONFIG, config, parse_opml(OPML, "subs.opml"), "subs.opml")
    assert [(f.name, f.url) for f in result.added] == [
        ("france-24", "https://www.france24.com/fr/rss"),
        ("kyiv.example.org", "https://kyiv.example.org/feed"),
        ("le-monde-international", "https://example.net/other-le-monde.xml"),
    ]
    assert result.added[0].language == "fr"
    assert result.skipped[0].startswith("subs.opml:6: skipped https://www.lemonde.fr/international/rss_full.xml: ")
    assert "already configured as feed 'lemonde-international'" in result.skipped[0]
    assert result.skipped[1].startswith("subs.opml:13: skipped 'Broken': xmlUrl must start with http")
    # The existing text is kept byte for byte, comments included; the result loads.
    assert result.text.startswith(CONFIG)
    assert "# France 24 (Presse française / Sous-catégorie)" in result.text
    loaded = parse_config(result.text, "feeds.toml", {})
    assert [f.name for f in loaded.feeds] == ["lemonde-international"] + [f.name for f in result.added]


def test_duplicate_title_gets_a_suffix() -> None:
    config = parse_config(CONFIG.replace("lemonde-international", "le-monde-international"), "feeds.toml", {})
    result = plan_import(CONFIG, config, parse_opml(OPML, "subs.opml"), "subs.opml")
    assert result.added[-1].name == "le-monde-international-2"


def test_import_writes_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "feeds.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    opml = tmp_path / "subs.opml"
    opml.write_bytes(OPML)
    result = import_opml(opml, cfg, env={})
    assert len(result.added) == 3
    written = cfg.read_text(encoding="utf-8")
    assert written.startswith(CONFIG)
    assert len(tomllib.loads(written)["feeds"]) == 4
    assert len(load_config(cfg, env={}).feeds) == 4
    # Importing again adds nothing and leaves the file alone.
    again = import_opml(opml, cfg, env={})
    assert not again.added and cfg.read_text(encoding="utf-8") == written


def test_import_refuses_to_break_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "feeds.toml"
    broken = CONFIG + "\nfeeds_extra = 1\n"
    cfg.write_text(broken, encoding="utf-8")
    opml = tmp_path / "subs.opml"
    opml.write_bytes(OPML)
    with pytest.raises(ConfigError) as exc:
        import_opml(opml, cfg, env={})
    assert "feeds_extra: unknown key" in exc.value.problems[0]
    # A configuration whose feeds are an inline array cannot take [[feeds]] tables.
    inline = 'feeds = [{name = "a", url = "https://a.example/"}]\n[alerts.console]\n'
    cfg.write_text(inline, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        import_opml(opml, cfg, env={})
    assert "not changed" in exc.value.problems[0]
    assert cfg.read_text(encoding="utf-8") == inline


def test_export_round_trip() -> None:
    feeds = (
        FeedConfig("lemonde", "https://www.lemonde.fr/rss.xml?a=1&b=2", language="fr"),
        FeedConfig("kyiv", "https://kyiv.example.org/feed"),
    )
    doc = export_opml(feeds, now=datetime(2026, 1, 6, tzinfo=UTC))
    assert doc.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    assert "<dateCreated>Tue, 06 Jan 2026 00:00:00 GMT</dateCreated>" in doc
    back = parse_opml(doc.encode(), "export.opml")
    assert [(f.title, f.url, f.language) for f in back] == [
        ("lemonde", "https://www.lemonde.fr/rss.xml?a=1&b=2", "fr"),
        ("kyiv", "https://kyiv.example.org/feed", None),
    ]


@pytest.mark.slow
def test_cli_import_and_export(tmp_path: Path) -> None:
    (tmp_path / "feeds.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "subs.opml").write_bytes(OPML)
    (tmp_path / "bad.opml").write_bytes(b"<opml>\n<body>\n<outline>\n</opml>")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = SITECUSTOM + os.pathsep + env.get("PYTHONPATH", "")

    def monitor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    r = monitor("feeds", "import", "subs.opml")
    assert r.returncode == 0, r.stderr
    assert "added france-24\thttps://www.france24.com/fr/rss\t[Presse française / Sous-catégorie]" in r.stdout
    assert "feeds.toml: 3 feeds added, 2 skipped" in r.stderr
    r = monitor("feeds", "import", "bad.opml")
    assert r.returncode == 1 and "bad.opml:4: not well-formed XML: mismatched tag" in r.stderr
    r = monitor("feeds", "export")
    assert r.returncode == 0 and r.stdout.count("<outline ") == 4
    r = monitor("feeds", "export", "--output", "out.opml")
    assert r.returncode == 0 and len(parse_opml((tmp_path / "out.opml").read_bytes())) == 4
