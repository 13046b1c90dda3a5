from __future__ import annotations

from pathlib import Path

import pytest

from monitor.parse import parse_feed

RSS091 = b"""<?xml version="1.0"?><rss version="0.91"><channel><title>T</title><link>http://127.0.0.1/</link>
<description>d</description><item><title>Un</title><link>http://127.0.0.1/a/1</link><description>x</description></item>
</channel></rss>"""
RSS10 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
<channel rdf:about="http://127.0.0.1/"><title>T</title><link>http://127.0.0.1/</link><description>d</description></channel>
<item rdf:about="http://127.0.0.1/a/1"><title>Un</title><link>http://127.0.0.1/a/1</link><description>x</description></item>
</rdf:RDF>"""
RSS20 = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>http://127.0.0.1/</link><ttl>45</ttl>
<description>d</description><item><title>Un</title><link>/a/1?utm_source=rss</link><guid isPermaLink="false">id-1</guid>
<pubDate>Tue, 06 Jan 2026 18:30:00 +0100</pubDate>
<description>&lt;p&gt;x&lt;/p&gt;</description></item></channel></rss>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:t</id>
<updated>2026-01-06T17:30:00Z</updated><entry><title>Un</title><link href="a/1"/><id>urn:e:1</id>
<updated>2026-01-06T17:30:00Z</updated><author><name>Claire</name></author>
<content type="html">&lt;p&gt;corps&lt;/p&gt;</content></entry></feed>"""


@pytest.mark.parametrize("body,version", [(RSS091, "rss091"), (RSS10, "rss10"), (RSS20, "rss20"), (ATOM, "atom10")])
def test_formats(body: bytes, version: str) -> None:
    feed = parse_feed(body, "http://127.0.0.1:9/feeds/x.xml")
    assert feed.version is not None and feed.version.startswith(version[:5])
    (e,) = feed.entries
    assert e.title == "Un"
    assert e.url is not None and e.url.startswith("http://127.0.0.1")


def test_rss20_details() -> None:
    feed = parse_feed(RSS20, "http://127.0.0.1:9/feeds/x.xml")
    (e,) = feed.entries
    assert e.guid == "id-1"
    assert e.url == "http://127.0.0.1:9/a/1"  # resolved against the feed URL, tracking removed
    assert e.published_at is not None and e.published_at.isoformat() == "2026-01-06T17:30:00+00:00"
    assert feed.ttl == 45


def test_atom_details() -> None:
    (e,) = parse_feed(ATOM, "http://127.0.0.1:9/feeds/x.xml").entries
    assert e.url == "http://127.0.0.1:9/feeds/a/1"
    assert e.author == "Claire" and e.content == "<p>corps</p>"


def test_body_naming_a_local_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(RSS20)
    feed = parse_feed(str(secret).encode(), "http://127.0.0.1:9/feed")
    assert feed.entries == []
    assert feed.bozo is not None


def test_garbage_is_reported_not_raised() -> None:
    feed = parse_feed(b"\x00\xff<html><body>Not a feed</body></html>", "http://127.0.0.1:9/feed")
    assert feed.entries == [] and feed.bozo


def _bomb(size: int = 100_000, refs: int = 2_000, prolog: str = "") -> bytes:
    """One large internal entity referenced thousands of times: ~200 KB that
    would expand to a title of size * refs characters."""
    return (
        f'<?xml version="1.0"?>\n{prolog}<!DOCTYPE rss [\n<!ENTITY big "{"x" * size}">\n]>\n'
        f'<rss version="2.0"><channel><title>{"&big;" * refs}</title><link>http://127.0.0.1/</link>'
        "<description>d</description><item><title>ok</title><link>http://127.0.0.1/a</link></item></channel></rss>"
    ).encode()


BOMBS = {
    "plain": _bomb(),
    "padded": _bomb(prolog="\n" * 5000 + "<!--" + " " * 8000 + "-->"),  # past any prefix a scanner reads
    "quoted": _bomb().replace(b"<!DOCTYPE rss [", b'<!DOCTYPE rss PUBLIC "a>b" "c>d" ['),
    "utf16": "\ufeff".encode("utf-16-le")
    + _bomb(size=1000, refs=100)
    .decode()
    .replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="utf-16"?>')
    .encode("utf-16-le"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_entity_expansion_is_refused_in_bounded_memory(tmp_path: Path, name: str) -> None:
    import subprocess
    import sys

    (tmp_path / "bomb.xml").write_bytes(BOMBS[name])
    code = f"""
import resource, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
from monitor.parse import parse_feed
body = open({str(tmp_path / "bomb.xml")!r}, "rb").read()
tracemalloc.start()
feed = parse_feed(body, "http://127.0.0.1/feed")
peak = tracemalloc.get_traced_memory()[1]
print(peak, len(feed.title or ""), len(feed.entries), feed.bozo)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    peak, title_len, entries, bozo = r.stdout.split(" ", 3)
    assert int(peak) < 100 * 1024**2
    assert int(title_len) == 0 and int(entries) == 0
    assert "declares XML entities" in bozo


def test_a_public_doctype_is_fine() -> None:
    body = RSS091.replace(
        b'<?xml version="1.0"?>',
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC '
        b'"-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://my.netscape.com/publish/formats/rss-0.91.dtd">',
    )
    feed = parse_feed(body, "http://127.0.0.1:9/feed")
    assert [e.title for e in feed.entries] == ["Un"]
