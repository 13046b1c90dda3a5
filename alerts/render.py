"""What an alert says, independent of the channel that carries it.

Content of an alert: the rule, the story's title, how many sources and
languages carry it, the snippet with the matched terms highlighted (the
rule matcher marks them `**term**`), and a link to each source. Every
renderer treats every field as hostile (see alerts/safety.py): only
http(s) URLs become links, others are dropped.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerts.safety import fit_escaped, one_line, safe_link, slack_escape, truncate, utf16_len

KINDS = ("alert", "digest", "update")

TITLE_LIMIT = 300  # characters of a title shown (before escaping)
SNIPPET_LIMIT = 1000
SOURCES_SHOWN = 10  # sources listed by name; the rest are counted ("and 4 more")
SUBJECT_LIMIT = 200

# Slack's Block Kit limits (api.slack.com/reference/block-kit/blocks).
SLACK_TEXT_LIMIT = 3000  # a section's or context element's text, escaped
SLACK_MAX_BLOCKS = 50


@dataclass(frozen=True)
class Source:
    """One place the story was seen: an article in a feed."""

    title: str
    url: str
    feed: str
    language: str | None = None


@dataclass(frozen=True)
class Alert:
    delivery_id: int
    rule: str
    channel: str
    story_id: int
    item_id: int
    title: str
    url: str
    feed: str
    language: str | None
    published_at: datetime | None
    terms: tuple[str, ...]
    snippet: str | None
    kind: str = "alert"  # one of KINDS
    sources: tuple[Source, ...] = ()  # empty: the alert's own title, url, feed and language
    source_count: int = 1  # may exceed len(sources) when only some are listed
    languages: tuple[str, ...] = ()  # empty: the alert's own language
    message_id: str | None = None  # empty: derived from the delivery's idempotency key
    created_at: datetime | None = None  # when the delivery was created (stable across retries)
    entries: tuple[Alert, ...] = ()  # the stories of a digest


def sources_of(alert: Alert) -> tuple[Source, ...]:
    return alert.sources or (Source(alert.title, alert.url, alert.feed, alert.language),)


def source_count(alert: Alert) -> int:
    return max(alert.source_count, len(sources_of(alert)))


def languages_of(alert: Alert) -> tuple[str, ...]:
    if alert.languages:
        return alert.languages
    found = [s.language for s in sources_of(alert) if s.language]
    if alert.language and alert.language not in found:
        found.insert(0, alert.language)
    return tuple(dict.fromkeys(found))


def message_id(alert: Alert) -> str:
    """A stable id for the message (without angle brackets).

    Derived from the delivery's idempotency key (rule, story, channel, kind),
    never from the time or a random number: an alert sent again after a crash
    between the channel accepting it and our commit carries the same id, so
    mail clients and webhook receivers can drop the repeat."""
    if alert.message_id:
        bare = alert.message_id.strip().strip("<>")
        if re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+", bare):
            return bare
        key = alert.message_id
    else:
        key = json.dumps([alert.rule, alert.story_id, alert.channel, alert.kind])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + "@news-monitor"


def original_message_id(alert: Alert) -> str:
    """The id of the first alert of an update's story, to thread the update under it."""
    key = json.dumps([alert.rule, alert.story_id, alert.channel, "alert"])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + "@news-monitor"


def snippet_parts(snippet: str) -> list[tuple[str, bool]]:
    """(text, highlighted) runs of a snippet whose matches are marked `**x**`."""
    parts: list[tuple[str, bool]] = []
    pos = 0
    for m in re.finditer(r"\*\*(.+?)\*\*", snippet, re.S):
        if m.start() > pos:
            parts.append((snippet[pos : m.start()], False))
        parts.append((m.group(1), True))
        pos = m.end()
    if pos < len(snippet):
        parts.append((snippet[pos:], False))
    return parts


def _when(dt: datetime | None) -> str | None:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else None


def _counts(alert: Alert) -> str:
    n = source_count(alert)
    langs = languages_of(alert)
    out = f"{n} source" + ("s" if n != 1 else "")
    if langs:
        out += f" in {len(langs)} language" + ("s" if len(langs) != 1 else "") + " (" + ", ".join(langs) + ")"
    return out


def _title(alert: Alert) -> str:
    return one_line(alert.title) or one_line(alert.url) or "(untitled)"


def subject(alert: Alert) -> str:
    """A one-line summary (an email subject, a notification), not yet escaped."""
    rule = one_line(alert.rule)
    if alert.kind == "digest":
        n = len(alert.entries)
        return f"[{rule}] digest: {n} stor" + ("ies" if n != 1 else "y")
    prefix = "update: " if alert.kind == "update" else ""
    extra = f" ({source_count(alert)} sources)" if source_count(alert) > 1 else ""
    return f"[{rule}] {prefix}{truncate(_title(alert), TITLE_LIMIT)}{extra}"


def _meta(alert: Alert) -> str:
    """`feed · language · date` for one source, `N sources in M languages (…) · date` for more."""
    if source_count(alert) == 1:
        bits = [one_line(alert.feed), one_line(alert.language or "")]
    else:
        bits = [_counts(alert)]
    if when := _when(alert.published_at):
        bits.append(when)
    return " · ".join(b for b in bits if b)


def _source_label(s: Source) -> str:
    feed = one_line(s.feed)
    lang = f" ({one_line(s.language)})" if s.language else ""
    return f"{feed}{lang}"


# Plain text -----------------------------------------------------------------


def _text_story(alert: Alert) -> list[str]:
    lines = [subject(alert)]
    if url := safe_link(alert.url):
        lines.append(url)
    lines.append(_meta(alert))
    if alert.terms:
        lines.append("Matched: " + ", ".join(f'"{one_line(t)}"' for t in alert.terms))
    if alert.snippet:
        lines.append(truncate(one_line(alert.snippet), SNIPPET_LIMIT))
    sources = sources_of(alert)
    if source_count(alert) > 1:
        lines.append("Sources:")
        for s in sources[:SOURCES_SHOWN]:
            link = safe_link(s.url)
            title = truncate(one_line(s.title), TITLE_LIMIT)
            lines.append(f"- {title} — {_source_label(s)}" + (f" {link}" if link else ""))
        if (more := source_count(alert) - min(len(sources), SOURCES_SHOWN)) > 0:
            lines.append(f"- and {more} more")
    return lines


def render_text(alert: Alert) -> str:
    """A plain-text alert: readable in a terminal, a log or an email body.

    Control characters are gone (no terminal escape sequences, no forged
    lines); the first line is `[rule] title`."""
    if alert.kind != "digest":
        return "\n".join(_text_story(alert))
    lines = [subject(alert)]
    for entry in alert.entries:
        lines.append("")
        lines.extend(_text_story(entry))
    return "\n".join(lines)


# HTML -----------------------------------------------------------------------


def _h(s: str) -> str:
    return html.escape(s, quote=True)


def _html_link(url: str, label: str) -> str:
    """`label` escaped, as a link only if `url` is http(s)."""
    link = safe_link(url)
    if link is None:
        return _h(label)
    return f'<a href="{_h(link)}">{_h(label)}</a>'


def _html_story(alert: Alert) -> list[str]:
    out = [
        f"<h2>{_html_link(alert.url, truncate(_title(alert), TITLE_LIMIT))}</h2>",
        f'<p style="color:#555">{_h(one_line(alert.rule))} · {_h(_meta(alert))}</p>',
    ]
    if alert.terms:
        out.append("<p>Matched: " + ", ".join(f"<strong>{_h(one_line(t))}</strong>" for t in alert.terms) + "</p>")
    if alert.snippet:
        snippet = truncate(one_line(alert.snippet), SNIPPET_LIMIT)
        body = "".join(f"<mark>{_h(t)}</mark>" if hit else _h(t) for t, hit in snippet_parts(snippet))
        out.append(f"<blockquote>{body}</blockquote>")
    sources = sources_of(alert)
    if source_count(alert) > 1:
        items = [
            f"<li>{_html_link(s.url, truncate(one_line(s.title), TITLE_LIMIT))} — {_h(_source_label(s))}</li>"
            for s in sources[:SOURCES_SHOWN]
        ]
        if (more := source_count(alert) - min(len(sources), SOURCES_SHOWN)) > 0:
            items.append(f"<li>and {more} more</li>")
        out.append("<ul>" + "".join(items) + "</ul>")
    return out


def render_html(alert: Alert) -> str:
    """An HTML alert (an email's HTML part): every piece of input escaped
    with html.escape, matched terms in <mark>, links only to http(s)."""
    parts = ['<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body style="font-family:sans-serif">']
    if alert.kind == "digest":
        parts.append(f"<h1>{_h(subject(alert))}</h1>")
        for entry in alert.entries:
            parts.extend(_html_story(entry))
            parts.append("<hr>")
    else:
        if alert.kind == "update":
            parts.append("<p><strong>Update</strong></p>")
        parts.extend(_html_story(alert))
    parts.append("</body></html>")
    return "\n".join(parts)


# Slack ----------------------------------------------------------------------


def _slack_fit(s: str, limit: int = SLACK_TEXT_LIMIT) -> str:
    return fit_escaped(one_line(s), limit, slack_escape, utf16_len)


def _slack_link(url: str, label: str) -> str:
    """`<url|label>` with an escaped label, or the label alone when the URL is
    not http(s). `|`, `<` and `>` in the URL are percent-encoded: they would
    end the link or let the URL carry a label of its own."""
    link = safe_link(url)
    if link is None:
        return label
    link = link.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{slack_escape(link)}|{label}>"


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: no automatic parsing of bare URLs, #channels or @mentions in our text.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _slack_snippet(snippet: str) -> str:
    return "".join(f"*{slack_escape(t)}*" if hit else slack_escape(t) for t, hit in snippet_parts(snippet))


def _slack_headline(alert: Alert, limit: int) -> str:
    """`*<url|title>*` and a line of context, within `limit` escaped characters."""
    prefix = "*Update:* " if alert.kind == "update" else ""
    meta = _slack_fit(f"{one_line(alert.rule)} · {_meta(alert)}", 500)
    title = truncate(_title(alert), TITLE_LIMIT)
    # The link, its markup and the meta line come out of the title's budget.
    budget = limit - utf16_len(f"{prefix}*{_slack_link(alert.url, '')}*\n{meta}")
    if budget > 0:
        return f"{prefix}*{_slack_link(alert.url, _slack_fit(title, budget))}*\n{meta}"
    # A URL too long to link: the title without it.
    return f"{prefix}*{_slack_fit(title, limit - utf16_len(prefix) - 3 - utf16_len(meta))}*\n{meta}"


def _slack_story(alert: Alert, full: bool) -> list[dict[str, Any]]:
    """The blocks of one story; `full` adds matched terms and sources."""
    blocks = [_section(_slack_headline(alert, SLACK_TEXT_LIMIT))]
    if alert.snippet:
        snippet = one_line(alert.snippet)
        text = fit_escaped(snippet, SLACK_TEXT_LIMIT, _slack_snippet, utf16_len)
        if text:
            blocks.append(_section(text))
    if not full:
        return blocks
    if alert.terms:
        terms = "Matched: " + ", ".join(f"“{one_line(t)}”" for t in alert.terms)
        blocks.append({"type": "context", "elements": [_mrkdwn(_slack_fit(terms))]})
    if source_count(alert) > 1:
        blocks.append(_section(_slack_sources(alert)))
    return blocks


def _slack_sources(alert: Alert) -> str:
    """One line per source while they fit in a section, then "and N more"."""
    lines = ["*Sources*"]
    used = len(lines[0])
    shown = 0
    for s in sources_of(alert)[:SOURCES_SHOWN]:
        label = _slack_fit(_source_label(s), 200)
        title = _slack_fit(s.title, 200)
        line = f"• {_slack_link(s.url, title)} — {label}"
        if utf16_len(line) > 600:  # an absurdly long URL: no link
            line = f"• {title} — {label}"
        if used + 1 + utf16_len(line) > SLACK_TEXT_LIMIT - 40:  # room for the "and N more" line
            break
        lines.append(line)
        used += 1 + utf16_len(line)
        shown += 1
    if (more := source_count(alert) - shown) > 0:
        lines.append(f"… and {more} more")
    return "\n".join(lines)


def render_slack(alert: Alert) -> dict[str, Any]:
    """A Slack Block Kit message: `text` is the plain fallback shown in
    notifications. Every section text is at most 3,000 characters after
    escaping and there are at most 50 blocks: a digest lists as many stories
    as fit and counts the rest."""
    fallback = _slack_fit(subject(alert))
    if alert.kind != "digest":
        return {"text": fallback, "blocks": _slack_story(alert, full=True)[:SLACK_MAX_BLOCKS]}
    blocks: list[dict[str, Any]] = [_section(f"*{_slack_fit(subject(alert), SLACK_TEXT_LIMIT - 2)}*")]
    entries = list(alert.entries)
    shown = 0
    for entry in entries:
        story = _slack_story(entry, full=False)
        # Keep one block free for the "and N more stories" line.
        reserve = 1 if shown + 1 < len(entries) else 0
        if len(blocks) + 1 + len(story) + reserve > SLACK_MAX_BLOCKS:
            break
        blocks.append({"type": "divider"})
        blocks.extend(story)
        shown += 1
    if (more := len(entries) - shown) > 0:
        blocks.append({"type": "context", "elements": [_mrkdwn(f"… and {more} more stor{'ies' if more > 1 else 'y'}")]})
    return {"text": fallback, "blocks": blocks}
