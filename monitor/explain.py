"""`monitor explain URL_OR_ITEM_ID`: everything the service decided about one
article, to answer "why no alert?" in one command.

`load_facts` reads what the database recorded (I/O); `explain` turns facts and
the current configuration into sections of plain statements (pure, tested
without a database); `render` prints them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from alerts.policy import RulePolicy, digest_period, period_start
from monitor.rules import CompiledRule, RuleSet, match_rules
from monitor.urls import host_of, normalize_url
from storage.models import Delivery, Feed, Item, ItemSource, Match, Story
from storage.repository import Store


@dataclass(frozen=True)
class SourceFact:
    feed: str
    url: str
    guid: str | None
    first_seen_at: datetime
    via: str | None
    alert_on_backlog: bool


@dataclass(frozen=True)
class DeliveryFact:
    id: int
    rule: str
    channel: str
    kind: str
    status: str
    hold: str | None
    attempts: int
    item_id: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    error_kind: str | None
    note: str | None
    digest: DeliveryFact | None = None  # the digest that carried a held alert


@dataclass(frozen=True)
class MatchFact:
    rule: str
    item_id: int
    terms: tuple[str, ...]
    snippet: str | None


@dataclass(frozen=True)
class Facts:
    asked: str
    asked_url: str | None  # the asked URL normalised (None for an item id)
    item: Item
    feed: str  # the feed that brought the item
    asked_source: SourceFact | None  # the source the asked URL names, when it is not the item's own URL
    sources: list[SourceFact]
    duplicate_of: tuple[int, str | None] | None
    near_copies: list[tuple[int, str | None]]
    story: Story | None
    story_first_item: int | None
    matches: list[MatchFact]  # of this item
    story_matches: list[MatchFact]  # of the other items of its story
    deliveries: list[DeliveryFact]  # of its story


@dataclass
class Explanation:
    item_id: int | None
    sections: list[tuple[str, list[str]]] = field(default_factory=list)

    def add(self, title: str, *lines: str) -> None:
        self.sections.append((title, [line for line in lines if line]))

    def as_json(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "sections": {title: lines for title, lines in self.sections}}


def find_item(engine: Engine, key: str) -> int | None:
    """An item id from an id, or from a URL as the item's own, its canonical URL or a source's."""
    if key.strip().isdigit():
        return int(key)
    store = Store(engine)
    for url in dict.fromkeys((normalize_url(key.strip()), key.strip())):
        if (found := store.find_by_url(url)) is not None:
            return found
    return None


def load_facts(engine: Engine, key: str) -> Facts | None:
    item_id = find_item(engine, key)
    if item_id is None:
        return None
    with Session(engine, expire_on_commit=False) as s:
        item = s.get(Item, item_id)
        if item is None:
            return None
        feed = s.get(Feed, item.feed_id)
        sources = [
            SourceFact(name, src.url, src.guid, src.first_seen_at, src.via, backlog)
            for src, name, backlog in s.exec(
                select(ItemSource, Feed.name, Feed.alert_on_backlog)
                .join(Feed, col(Feed.id) == col(ItemSource.feed_id))
                .where(col(ItemSource.item_id) == item_id)
                .order_by(col(ItemSource.id))
            ).all()
        ]
        wanted = normalize_url(key.strip()) if not key.strip().isdigit() else None
        asked = next((x for x in sources if wanted and x.url == wanted and x.url != item.url), None)
        dup = None
        if item.duplicate_of is not None:
            dup = (item.duplicate_of, s.exec(select(Item.title).where(col(Item.id) == item.duplicate_of)).first())
        copies = [
            (i, t)
            for i, t in s.exec(select(Item.id, Item.title).where(col(Item.duplicate_of) == item_id))
            if i is not None
        ]
        story = s.get(Story, item.story_id) if item.story_id is not None else None
        first = None
        if story is not None:
            first = s.exec(select(func.min(Item.id)).where(col(Item.story_id) == story.id)).one()
        mine = col(Match.item_id) == item_id
        all_matches = s.exec(
            select(Match).where(mine if item.story_id is None else mine | (col(Match.story_id) == item.story_id))
        ).all()
        matches = [_match(m) for m in all_matches if m.item_id == item_id]
        story_matches = [_match(m) for m in all_matches if m.item_id != item_id]
        deliveries: list[DeliveryFact] = []
        if story is not None:
            rows = s.exec(
                select(Delivery)
                .where(col(Delivery.story_id) == story.id, col(Delivery.kind) != "digest")
                .order_by(col(Delivery.id))
            ).all()
            for d in rows:
                digest = s.get(Delivery, d.digest_id) if d.digest_id is not None else None
                deliveries.append(_delivery(d, _delivery(digest) if digest is not None else None))
    return Facts(
        asked=key,
        asked_url=wanted,
        item=item,
        feed=feed.name if feed else "?",
        asked_source=asked,
        sources=sources,
        duplicate_of=dup,
        near_copies=copies,
        story=story,
        story_first_item=first,
        matches=matches,
        story_matches=story_matches,
        deliveries=deliveries,
    )


def _match(m: Match) -> MatchFact:
    return MatchFact(m.rule, m.item_id, tuple(json.loads(m.terms)), m.snippet)


def _delivery(d: Delivery, digest: DeliveryFact | None = None) -> DeliveryFact:
    assert d.id is not None
    return DeliveryFact(
        d.id,
        d.rule,
        d.channel,
        d.kind,
        d.status,
        d.hold,
        d.attempts,
        d.item_id,
        d.created_at,
        d.next_attempt_at,
        d.sent_at,
        d.last_error,
        d.error_kind,
        d.note,
        digest,
    )


def _t(when: datetime | None) -> str:
    if when is None:
        return "?"
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).strftime("%Y-%m-%d %H:%M UTC")


VIA = {
    "first": "the entry that brought it",
    "guid": "the same GUID in the same feed",
    "url": "the same normalised URL",
    "canonical": "the page's canonical URL",
    "content": "exactly the same text",
}


def explain(facts: Facts, rules: RuleSet, policies: Mapping[str, RulePolicy]) -> Explanation:
    """Statements about one item, in the order the pipeline made its decisions."""
    item = facts.item
    out = Explanation(item.id)
    out.add(
        "item",
        f"item {item.id}: {item.title or '(untitled)'}",
        f"url: {item.url}" + (f" (canonical: {item.canonical_url})" if item.canonical_url else ""),
        f"published {_t(item.published_at)}, fetched {_t(item.fetched_at)}",
        f"the URL asked about is a copy recorded as a source of this item ({facts.asked_source.feed}, "
        f"matched by {VIA.get(facts.asked_source.via or '', 'an earlier version')})"
        if facts.asked_source
        else "",
        "the URL asked about, normalised (tracking parameters dropped), is this item's URL"
        if facts.asked_url != facts.asked and facts.asked_url == item.url
        else "",
    )
    out.add(
        "feeds",
        *(
            f"{x.feed}: {x.url} (first seen {_t(x.first_seen_at)}; "
            f"{VIA.get(x.via or '', 'recorded before version 0007')})"
            for x in facts.sources
        ),
    )
    words = len((item.text or "").split())
    text_from = {
        "page": "the article page (extracted)",
        "feed_content": "the feed's content (the page gave no better text)",
        "feed_summary": "the feed's summary (the page gave no better text)",
        "title": "the title only (neither page nor feed had text)",
    }.get(item.text_source, item.text_source)
    out.add(
        "text",
        f"from {text_from}: {words} words" + (f", revision {item.revision}" if item.revision > 1 else ""),
    )
    lang_from = {
        "detected": "detected from the text",
        "page": "declared by the page",
        "feed": "the feed's configured language",
    }.get(item.language_source or "", item.language_source or "unknown")
    prob = f" (probability {item.language_probability:.2f})" if item.language_probability is not None else ""
    out.add("language", f"{item.language or 'unknown'}: {lang_from}{prob}")
    dedupe = ["a new article: no stored item had its URL, canonical URL or text"]
    if facts.duplicate_of is not None:
        dedupe = [f"a near-duplicate (MinHash) of item {facts.duplicate_of[0]}: {facts.duplicate_of[1] or ''}"]
    copies = [x for x in facts.sources if x.via not in (None, "first")]
    if copies:
        dedupe.append(f"{len(copies)} copies recorded as sources (see feeds)")
    for i, title in facts.near_copies:
        dedupe.append(f"item {i} is a near-duplicate of this one: {title or ''}")
    out.add("dedupe", *dedupe)
    if facts.story is not None:
        st = facts.story
        started = facts.story_first_item == item.id
        out.add(
            "story",
            f"story {st.id}: {st.title or ''}",
            "this item started the story"
            if started
            else f"joined the story first seen with item {facts.story_first_item}",
            f"{st.item_count} items, {st.source_count} sources, languages {st.languages or '?'}; "
            f"first seen {_t(st.first_seen_at)}, last {_t(st.last_seen_at)}",
        )
    out.add("rules", *_rules(facts, rules))
    out.add("alerts", *_alerts(facts, rules.rules, policies))
    return out


def _rules(facts: Facts, rules: RuleSet) -> list[str]:
    item = facts.item
    recorded = {m.rule: m for m in facts.matches}
    now_matching = {
        rule.name
        for rule, _ in match_rules(
            rules,
            item.title,
            item.text or "",
            language=item.language,
            site=host_of(item.canonical_url or item.url),
            feed=facts.feed,
        )
    }
    lines = []
    for rule in rules.rules:
        m = recorded.get(rule.name)
        if m is not None:
            lines.append(f"{rule.name}: matched ({', '.join(m.terms)})" + (f": {m.snippet}" if m.snippet else ""))
        elif not rule.applies_to(item.language):
            lines.append(
                f"{rule.name}: not checked: the rule is for {', '.join(rule.languages)} "
                f"and the item is {item.language or 'of unknown language'}"
            )
        elif rule.name in now_matching:
            lines.append(
                f"{rule.name}: matches now, but not when the item was stored (the rule was added or changed since)"
            )
        else:
            lines.append(f"{rule.name}: no match")
    configured = {r.name for r in rules.rules}
    for name, m in recorded.items():
        if name not in configured:
            lines.append(f"{name}: matched ({', '.join(m.terms)}), but the rule is no longer configured")
    return lines


def _alerts(facts: Facts, rules: Sequence[CompiledRule], policies: Mapping[str, RulePolicy]) -> list[str]:
    matched = {m.rule for m in facts.matches}
    story_rules = matched | {m.rule for m in facts.story_matches}
    if not story_rules:
        return ["no rule matched this item or its story: nothing to alert"]
    channels = {r.name: r.channels for r in rules}
    by_key = {(d.rule, d.channel): d for d in facts.deliveries}
    lines = []
    for rule in sorted(story_rules):
        via_story = "" if rule in matched else " (matched by another item of the story)"
        wanted = channels.get(rule, ())
        if rule in channels and not wanted:
            lines.append(f"{rule}{via_story}: the rule has channels = []: matches are recorded, never alerted")
            continue
        for channel in sorted(set(wanted) | {c for r, c in by_key if r == rule}):
            d = by_key.get((rule, channel))
            if d is None:
                lines.append(
                    f"{rule} -> {channel}{via_story}: no alert queued (the channel was added to the rule "
                    "after the story's items were stored)"
                )
                continue
            raised = "" if d.item_id == facts.item.id else f", raised by item {d.item_id}"
            policy = policies.get(rule, RulePolicy())
            lines.append(f"{rule} -> {channel}{via_story}: {_status(d, policy)} (delivery {d.id}{raised})")
    return lines


def _status(d: DeliveryFact, policy: RulePolicy) -> str:
    if d.status == "sent":
        return f"sent {_t(d.sent_at)}" + (f"; note: {d.note}" if d.note else "")
    if d.status == "pending":
        retry = f", attempt {d.attempts + 1}, last error: {d.last_error}" if d.attempts else ""
        return f"pending, due {_t(d.next_attempt_at)}{retry}"
    if d.status == "sending":
        return f"being sent (attempt {d.attempts})"
    if d.status == "dead":
        return f"dead after {d.attempts} attempts ({d.error_kind or 'error'}): {d.last_error or '?'}"
    if d.status == "digested" and d.digest is not None:
        g = d.digest
        return f"held ({d.hold}), carried by digest {g.id}: {_status(g, policy)}"
    if d.hold == "backlog":
        return (
            "held: from the backlog of a newly added feed (alert_on_backlog = false); "
            "fresh news of the story from a new entry would release it"
        )
    period = digest_period(d.hold, policy.period(d.channel))
    when = ""
    if period is not None:
        created = d.created_at if d.created_at.tzinfo else d.created_at.replace(tzinfo=UTC)
        step = timedelta(hours=1) if period == "hourly" else timedelta(days=1)
        when = f"; the {period} digest goes out after {_t(period_start(period, created) + step)}"
    if d.hold == "budget":
        return f"held: over the rule's budget of {policy.max_per_hour} alerts per hour on this channel{when}"
    if d.hold == "digest":
        return f"held for the {period} digest{when}"
    return d.status


def render(expl: Explanation) -> str:
    lines = []
    for title, body in expl.sections:
        lines.append(f"{title}:")
        lines.extend(f"  {line}" for line in body)
    return "\n".join(lines)
