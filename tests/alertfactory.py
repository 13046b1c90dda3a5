"""One sample alert for the channel and safety tests, varied per test by keyword."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.render import Alert


def make_alert(**kw: Any) -> Alert:
    base: dict[str, Any] = dict(
        delivery_id=1,
        rule="garanties",
        channel="console",
        story_id=42,
        item_id=7,
        title="Garanties de sécurité : le sommet de Paris",
        url="https://news.example/a",
        feed="quotidien-fr",
        language="fr",
        published_at=datetime(2026, 1, 6, 14, 30),
        terms=("garanties de sécurité",),
        snippet="… les **garanties de sécurité** pour l'Ukraine …",
    )
    base.update(kw)
    return Alert(**base)
