"""`monitor explain`: what the service decided about one article, read back from
a real database (both engines) and told in plain statements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from itemfactory import new_item
from sqlalchemy import text

from alerts.channels import DeliveryError
from alerts.digest import build_digests
from alerts.outbox import Outbox
from alerts.policy import RulePolicy
from alerts.render import Alert
from monitor.explain import Explanation, explain, find_item, load_facts
from monitor.rules import RuleSpec, compile_rules
from storage.db import make_engine, upgrade
from storage.models import utcnow
from storage.repository import FeedSpec, MatchRecord, Store

RULES = compile_rules(
    [
        RuleSpec("garanties", '"garanties de sécurité"', ("console", "desk")),
        RuleSpec("kyiv-only", "garanties", ("console",), languages=("uk",)),
        RuleSpec("witkoff", "Witkoff", ("console",)),
        RuleSpec("silent", "garanties", ()),
    ]
)


class Channel:
    def __init__(self, fail: DeliveryError | None = None) -> None:
        self.fail = fail

    def send(self, alert: Alert) -> str | None:
        if self.fail:
            raise self.fail
        return None


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    upgrade(engine)
    s = Store(engine)
    s.sync_feeds(
        [FeedSpec("quotidien", "http://127.0.0.1/q", 600, 1800), FeedSpec("wire", "http://127.0.0.1/w", 600, 1800)]
    )
    yield s
    engine.dispose()


def add(
    store: Store, n: int, rules: tuple[str, ...], backlog: bool = False, story: int | None = None, budget: int = 20
) -> int:
    feed_id = store.feeds()[0].id
    assert feed_id is not None
    url = f"http://127.0.0.1/fr/{n}"
    channels = {r.name: r.channels for r in RULES.rules}
    new = new_item(
        feed_id,
        url,
        title=f"Garanties de sécurité {n}",
        language_probability=0.99,
        language_source="detected",
        content_hash=f"h{n}",
        matches=[
            MatchRecord(r, ("garanties de sécurité",), "**garanties de sécurité**", channels[r], RulePolicy(budget))
            for r in rules
        ],
        backlog=backlog,
    )
    with store.serialised() as ingest:
        return ingest.add_item(new, story)


def told(store: Store, key: str, policies: dict[str, RulePolicy] | None = None) -> Explanation:
    facts = load_facts(store.engine, key)
    assert facts is not None
    return explain(facts, RULES, policies or {})


def section(expl: Explanation, title: str) -> list[str]:
    return dict(expl.sections)[title]


def test_sent_and_dead_alerts_and_rules_that_did_not_match(store: Store) -> None:
    item = add(store, 1, ("garanties", "silent"))
    Outbox(
        store.engine, {"console": Channel(), "desk": Channel(DeliveryError("550 no such user", permanent=True))}
    ).deliver_due()
    expl = told(store, str(item))
    rules = section(expl, "rules")
    assert rules[0].startswith("garanties: matched (garanties de sécurité)")
    assert rules[1] == "kyiv-only: not checked: the rule is for uk and the item is fr"
    assert rules[2] == "witkoff: no match"
    alerts = section(expl, "alerts")
    assert alerts[0].startswith("garanties -> console: sent ")
    assert alerts[1].startswith("garanties -> desk: dead after 1 attempts (permanent): 550 no such user")
    assert alerts[2] == "silent: the rule has channels = []: matches are recorded, never alerted"
    assert section(expl, "language") == ["fr: detected from the text (probability 0.99)"]
    assert section(expl, "text") == ["from the article page (extracted): 6 words"]
    assert section(expl, "story")[1] == "this item started the story"


def test_backlog_hold_and_an_item_of_the_same_story(store: Store) -> None:
    first = add(store, 1, ("garanties",), backlog=True)
    story = store.stories(1)[0].id
    second = add(store, 2, (), backlog=True, story=story)
    alerts = section(told(store, str(second)), "alerts")
    assert len(alerts) == 2
    assert alerts[0].startswith("garanties -> console (matched by another item of the story): held: from the backlog")
    assert alerts[0].endswith(f"raised by item {first})")
    assert section(told(store, str(second)), "story")[1] == f"joined the story first seen with item {first}"


def test_budget_hold_then_digest(store: Store) -> None:
    ids = [add(store, n, ("garanties",), budget=1) for n in range(2)]
    policies = {"garanties": RulePolicy(1)}
    held = section(told(store, str(ids[1]), policies), "alerts")[0]
    assert "held: over the rule's budget of 1 alerts per hour on this channel; the hourly digest goes out after" in held
    later = utcnow() + timedelta(hours=1)
    (digest_id, _) = build_digests(store.engine, policies, later)
    carried = section(told(store, str(ids[1]), policies), "alerts")[0]
    assert f"held (budget), carried by digest {digest_id}: pending, due" in carried


def test_rule_added_after_the_item_was_stored(store: Store) -> None:
    item = add(store, 1, ())
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE items SET text = 'Steve Witkoff à Paris' WHERE id = :i"), {"i": item})
    rules = section(told(store, str(item)), "rules")
    assert "witkoff: matches now, but not when the item was stored (the rule was added or changed since)" in rules
    assert section(told(store, str(item)), "alerts") == ["no rule matched this item or its story: nothing to alert"]


def test_found_by_url_of_a_copy_and_by_tracking_url(store: Store) -> None:
    item = add(store, 1, ())
    wire = store.feeds()[1].id
    assert wire is not None
    store.add_source(item, wire, "http://127.0.0.1/syndicated/1", "s1", via="content")
    assert find_item(store.engine, "http://127.0.0.1/syndicated/1") == item
    assert find_item(store.engine, "http://127.0.0.1/fr/1?utm_source=rss#top") == item
    assert find_item(store.engine, "http://127.0.0.1/fr/404") is None
    expl = told(store, "http://127.0.0.1/syndicated/1")
    assert any(
        "a copy recorded as a source of this item (wire, matched by exactly the same text)" in line
        for line in section(expl, "item")
    )
    feeds = section(expl, "feeds")
    assert feeds[0].endswith("the entry that brought it)") and feeds[1].endswith("exactly the same text)")
    tracked = told(store, "http://127.0.0.1/fr/1?utm_source=rss")
    assert "the URL asked about, normalised (tracking parameters dropped), is this item's URL" in section(
        tracked, "item"
    )
    assert tracked.as_json()["item_id"] == item
