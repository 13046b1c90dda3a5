"""OPML import and export: `monitor feeds import FILE.opml`, `monitor feeds export`.

Feed readers exchange subscription lists as OPML (http://opml.org/spec2.opml):
`<outline>` elements with an `xmlUrl` are feeds, the others are categories and
may nest. Parsing is pure (`parse_opml` takes bytes); `import_opml` appends the
new feeds to `feeds.toml` as `[[feeds]]` tables after the existing text, which
is kept byte for byte with its comments, and validates the result with the
configuration loader before anything is written.

An OPML file comes from elsewhere: it is parsed with expat, and a document
type declaration is refused outright (no entities at all, so neither the
"billion laughs" expansion nor external entities can happen), as
`monitor.parse` does for feeds.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
import xml.parsers.expat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from monitor.config import NAME_RE, Config, ConfigError, FeedConfig, parse_config, url_problem
from monitor.urls import normalize_url


class OpmlError(ValueError):
    """An OPML document that cannot be read, with the file and line."""


@dataclass(frozen=True)
class OpmlFeed:
    """One feed outline: its URL, its title, the categories it is nested in and its line."""

    url: str
    title: str | None
    categories: tuple[str, ...] = ()
    line: int = 0
    language: str | None = None
    html_url: str | None = None


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)


class _Refused(Exception):
    pass


def _tree(data: bytes, filename: str) -> _Node:
    """The element tree of `data`, with line numbers; no DTD, no entities."""
    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    root = _Node("", {}, 0)
    stack = [root]

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = _Node(tag, attrs, parser.CurrentLineNumber)
        stack[-1].children.append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def doctype(*_args: Any) -> None:
        raise _Refused("a document type declaration (DTD) is not allowed in OPML")

    def entity(*_args: Any) -> None:
        raise _Refused("entity declarations are not allowed in OPML")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.ExternalEntityRefHandler = lambda *_a: False
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise OpmlError(f"{filename}:{parser.CurrentLineNumber}: {exc}") from None
    except xml.parsers.expat.ExpatError as exc:
        raise OpmlError(
            f"{filename}:{exc.lineno}: not well-formed XML: {xml.parsers.expat.errors.messages[exc.code]}"
        ) from None
    if not root.children:
        raise OpmlError(f"{filename}: empty document")
    return root.children[0]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def parse_opml(data: bytes, filename: str = "<opml>") -> list[OpmlFeed]:
    """The feed outlines of an OPML document, in document order. Raises OpmlError."""
    top = _tree(data, filename)
    if _local(top.tag) != "opml":
        raise OpmlError(f"{filename}:{top.line}: not an OPML document: the root element is <{top.tag}>, not <opml>")
    bodies = [c for c in top.children if _local(c.tag) == "body"]
    if not bodies:
        raise OpmlError(f"{filename}:{top.line}: <opml> has no <body>")
    found: list[OpmlFeed] = []

    def walk(nodes: Iterable[_Node], categories: tuple[str, ...]) -> None:
        for node in nodes:
            if _local(node.tag) != "outline":
                continue
            attrs = {k.lower(): v.strip() for k, v in node.attrs.items()}
            title = attrs.get("title") or attrs.get("text") or None
            url = attrs.get("xmlurl")
            if url:
                language = attrs.get("language") or None
                found.append(OpmlFeed(url, title, categories, node.line, language, attrs.get("htmlurl") or None))
            # A feed outline may itself hold outlines in some exports; a category always does.
            walk(node.children, categories + ((title,) if title and not url else ()))

    for body in bodies:
        walk(body.children, ())
    return found


def feed_name(title: str | None, url: str) -> str:
    """A valid feed name (`monitor.config.NAME_RE`) from an outline's title, else the URL's host."""
    source = title or ""
    ascii_ = unicodedata.normalize("NFKD", source).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")
    if not name:
        from monitor.urls import host_of

        host = host_of(url).removeprefix("www.")
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", host.lower()).strip("-._") or "feed"
    return name[:60].rstrip("-._")


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... whichever is not taken."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


@dataclass(frozen=True)
class ImportPlan:
    """What importing an OPML document would do to a configuration."""

    added: tuple[FeedConfig, ...]
    categories: Mapping[str, tuple[str, ...]]  # feed name -> its OPML categories
    skipped: tuple[str, ...]  # one line per outline not imported, and why
    text: str  # the configuration file's new text


def _same_url(url: str) -> str:
    try:
        return normalize_url(url)
    except ValueError:
        return url


def _toml_string(value: str) -> str:
    # JSON strings are TOML basic strings: quotes, backslashes and control characters escaped.
    return json.dumps(value, ensure_ascii=False)


def plan_import(config_text: str, config: Config, feeds: Sequence[OpmlFeed], opml_name: str) -> ImportPlan:
    """The `[[feeds]]` tables to append for `feeds` (pure: nothing is read or written).
    Feeds whose URL the configuration has (or an earlier outline had) are skipped,
    and so are outlines whose URL is not http(s)."""
    known = {_same_url(f.url): f.name for f in config.feeds}
    taken = {f.name for f in config.feeds}
    added: list[FeedConfig] = []
    categories: dict[str, tuple[str, ...]] = {}
    skipped: list[str] = []
    blocks: list[str] = []
    for f in feeds:
        where = f"{opml_name}:{f.line}"
        problem = url_problem(f.url)
        if problem:
            skipped.append(f"{where}: skipped {f.title or f.url!r}: xmlUrl {problem}")
            continue
        key = _same_url(f.url)
        if key in known:
            skipped.append(f"{where}: skipped {f.url}: already configured as feed {known[key]!r}")
            continue
        name = unique_name(feed_name(f.title, f.url), taken)
        assert NAME_RE.match(name), name
        taken.add(name)
        known[key] = name
        language = (
            f.language.lower() if f.language and re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z]+)?", f.language) else None
        )
        added.append(FeedConfig(name=name, url=f.url, language=language))
        categories[name] = f.categories
        lines = ["[[feeds]]"]
        comment = " / ".join(f.categories)
        if f.title and f.title != name:
            lines[0] += f"  # {_one_line(f.title)}" + (f" ({_one_line(comment)})" if comment else "")
        elif comment:
            lines[0] += f"  # ({_one_line(comment)})"
        lines.append(f"name = {_toml_string(name)}")
        lines.append(f"url = {_toml_string(f.url)}")
        if language:
            lines.append(f"language = {_toml_string(language)}")
        blocks.append("\n".join(lines) + "\n")
    text = config_text
    if blocks:
        if text and not text.endswith("\n"):
            text += "\n"
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        text += f"\n# Imported from {Path(opml_name).name} on {stamp} (monitor feeds import)\n"
        text += "\n".join(blocks)
    return ImportPlan(tuple(added), categories, tuple(skipped), text)


def _one_line(value: str) -> str:
    return " ".join(value.split())


def import_opml(opml_path: str | Path, config_path: str | Path, env: Mapping[str, str] | None = None) -> ImportPlan:
    """Append the feeds of an OPML file to the configuration file; the result is
    validated by the configuration loader before it replaces the file (atomically).
    Raises OpmlError for a broken OPML file, ConfigError for a configuration
    that does not load before or would not load after."""
    opml_path, config_path = Path(opml_path), Path(config_path)
    try:
        data = opml_path.read_bytes()
    except OSError as exc:
        raise OpmlError(f"{opml_path}: cannot read: {exc.strerror or exc}") from None
    feeds = parse_opml(data, str(opml_path))
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{config_path}: cannot read: {exc}"]) from None
    environ = dict(os.environ if env is None else env)
    config = parse_config(text, str(config_path), environ)
    plan = plan_import(text, config, feeds, str(opml_path))
    if not plan.added:
        return plan
    try:
        parse_config(plan.text, str(config_path), environ)
    except ConfigError as exc:
        raise ConfigError(
            [f"{config_path}: not changed: the imported feeds would make it invalid:", *exc.problems]
        ) from None
    _write_atomically(config_path, plan.text)
    return plan


def _write_atomically(path: Path, text: str) -> None:
    path = path.absolute()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_opml(feeds: Iterable[FeedConfig], title: str = "news-monitor feeds", now: datetime | None = None) -> str:
    """The feeds as an OPML 2.0 document."""
    root = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(root, "head")
    ElementTree.SubElement(head, "title").text = title
    ElementTree.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(UTC), usegmt=True)
    body = ElementTree.SubElement(root, "body")
    for f in feeds:
        attrs = {"type": "rss", "text": f.name, "title": f.name, "xmlUrl": f.url}
        if f.language:
            attrs["language"] = f.language
        ElementTree.SubElement(body, "outline", attrs)
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"
