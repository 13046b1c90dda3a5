"""What an alert says, independent of the channel that carries it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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


def render_text(alert: Alert) -> str:
    """A plain-text alert: readable in a terminal, a log or an email body."""
    meta = [alert.feed]
    if alert.language:
        meta.append(alert.language)
    if alert.published_at:
        meta.append(alert.published_at.strftime("%Y-%m-%d %H:%M UTC"))
    lines = [
        f"[{alert.rule}] {alert.title}",
        alert.url,
        " · ".join(meta),
    ]
    if alert.terms:
        lines.append("Matched: " + ", ".join(f'"{t}"' for t in alert.terms))
    if alert.snippet:
        lines.append(alert.snippet)
    return "\n".join(lines)
