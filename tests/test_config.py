from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config, parse_config

GOOD = """
[storage]
url = "sqlite:///x.db"

[fetch]
allow_private = ["127.0.0.1/32"]

[alerts.console]

[[feeds]]
name = "le-quotidien"
url = "https://news.invalid/rss.xml"
interval = "15m"
language = "fr"

[[rules]]
name = "garanties"
query = '"garanties de sécurité" OR "security guarantees"'
channels = ["console"]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "feeds.toml", {})
    return err.value.problems


def test_good_config() -> None:
    c = parse_config(GOOD, "feeds.toml", {})
    assert c.database_url == "sqlite:///x.db"
    assert c.feeds[0].interval == 900 and c.feeds[0].language == "fr"
    assert c.rules[0].channels == ("console",)
    assert c.channels["console"].type == "console"
    assert c.fetch.allow_private == ("127.0.0.1/32",)


def test_environment_overrides_database_url() -> None:
    assert (
        parse_config(GOOD, "feeds.toml", {"MONITOR_DATABASE_URL": "sqlite:///other.db"}).database_url
        == "sqlite:///other.db"
    )


def test_validation_does_no_dns() -> None:
    # news.invalid cannot resolve; the network guard would raise on any look-up.
    parse_config(GOOD, "feeds.toml", {})


def test_every_problem_is_reported_with_key_and_line() -> None:
    bad = (
        GOOD.replace('interval = "15m"', 'interval = "soon"\ncolour = "blue"')
        + """
[[feeds]]
name = "le-quotidien"
url = "ftp://example.invalid/feed"

[[feeds]]
name = "no-url"

[[rules]]
name = "broken"
query = '"garanties de sécurité'
channels = ["console", "pager"]
"""
    )
    ps = problems(bad)
    text = "\n".join(ps)
    assert len(ps) == 7, text
    assert "feeds.toml:13: feeds[0] (le-quotidien).interval" in text
    assert "feeds[0] (le-quotidien).colour: unknown key" in text
    assert "feeds[1] (le-quotidien).name: duplicate name" in text
    assert "feeds[1] (le-quotidien).url: must start with http:// or https://" in text
    assert "feeds[2] (no-url).url: required" in text
    assert "rules[1] (broken).query: unterminated quoted phrase at position 1" in text
    assert "rules[1] (broken).channels: unknown channel 'pager'" in text


def test_query_error_shows_a_caret() -> None:
    (p,) = problems(GOOD.replace('\'"garanties de sécurité" OR "security guarantees"\'', "'\"a\" OR )'"))
    assert p.startswith("feeds.toml:18: rules[0] (garanties).query: ")
    assert p.splitlines()[-1] == "        ^"  # under the OR that has no right-hand term


@pytest.mark.parametrize(
    "snippet,fragment",
    [
        ('[alerts.pager]\ntype = "pigeon"\n', "alerts.pager.type: unknown channel type 'pigeon'"),
        ("[alerts.desk]\n", "alerts.desk.type: required"),
        ("[alerts.email]\n", "alerts.email.smtp_host: required"),
        ("[storage2]\n", "storage2: unknown key"),
        ("[fetch2]\nx = 1\n", "fetch2: unknown key"),
    ],
)
def test_bad_tables(snippet: str, fragment: str) -> None:
    assert any(fragment in p for p in problems(GOOD + "\n" + snippet)), problems(GOOD + "\n" + snippet)


def test_bad_values() -> None:
    text = GOOD.replace('allow_private = ["127.0.0.1/32"]', 'allow_private = ["localhost"]\ntimeout = -1')
    ps = "\n".join(problems(text))
    assert "fetch.allow_private[0]: not a network in CIDR notation: 'localhost'" in ps
    assert "feeds.toml:7: fetch.timeout: must be a number of at least 0.001, got -1" in ps


def test_toml_syntax_error_names_file_and_line() -> None:
    (p,) = problems("[storage\nurl = 1\n")
    assert p.startswith("feeds.toml: invalid TOML") and "line 1" in p


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.toml")
    assert "nope.toml: file not found" in err.value.problems[0]


def test_shipped_feeds_toml_is_valid() -> None:
    c = load_config(Path(__file__).parent.parent / "feeds.toml")
    assert {f.language for f in c.feeds} >= {"fr", "en", "uk", "ru", "de"}
    assert len(c.rules) >= 5


def test_unknown_dotted_table_names_its_line() -> None:
    (p,) = problems("\n\n[alert.console]\n")
    assert p.startswith("feeds.toml:3: alert: unknown key")


def test_invalid_name_is_not_called_missing() -> None:
    ps = "\n".join(problems(GOOD.replace('name = "le-quotidien"', 'name = "Le Quotidien"')))
    assert "feeds[0] (Le Quotidien).name: 'Le Quotidien' is not a valid name" in ps


def test_rule_needs_channels_and_unknown_channel_gets_a_suggestion() -> None:
    ps = "\n".join(problems(GOOD.replace('channels = ["console"]', "")))
    assert "rules[0] (garanties).channels: required" in ps
    ps = "\n".join(problems(GOOD.replace('channels = ["console"]', 'channels = ["consol"]')))
    assert "unknown channel 'consol' (did you mean 'console'?)" in ps
    assert (
        parse_config(GOOD.replace('channels = ["console"]', "channels = []"), "feeds.toml", {}).rules[0].channels == ()
    )


@pytest.mark.parametrize(
    "query",
    ["ukr*", "(ukraine OR russia) AND NOT crimea", 'NEAR(ukraine "force multinationale", 5)', "title:ukraine lang:fr"],
)
def test_full_query_language_is_accepted(query: str) -> None:
    good = GOOD.replace('\'"garanties de sécurité" OR "security guarantees"\'', repr(query))
    assert parse_config(good, "feeds.toml", {}).rules[0].query == query


@pytest.mark.parametrize(
    "query,fragment",
    [
        ("(ukraine OR russia", "("),
        ("ukraine AND", "AND"),
        ("foo:ukraine", "foo"),
    ],
)
def test_query_syntax_errors_name_the_rule_with_a_caret(query: str, fragment: str) -> None:
    ps = "\n".join(problems(GOOD.replace('\'"garanties de sécurité" OR "security guarantees"\'', repr(query))))
    assert "rules[0] (garanties).query" in ps, ps
    assert fragment in ps and "^" in ps


def test_rule_options_are_checked() -> None:
    base = GOOD.replace(
        'channels = ["console"]', 'channels = ["console"]\nlanguages = ["fr", "en"]\nstem = true\nfuzzy = 1'
    )
    rule = parse_config(base, "feeds.toml", {}).rules[0]
    assert (rule.languages, rule.stem, rule.fuzzy) == (("fr", "en"), True, 1)
    bad = GOOD.replace('channels = ["console"]', 'channels = ["console"]\nlanguages = "fr"\nstem = "yes"\nfuzzy = 2')
    ps = "\n".join(problems(bad))
    assert ".languages: must be a list of ISO 639-1 codes" in ps
    assert ".stem: must be true or false" in ps
    assert ".fuzzy: must be 0 or 1" in ps


def test_every_rule_error_is_listed_at_once() -> None:
    two = GOOD + '\n[[rules]]\nname = "second"\nquery = "a AND"\nchannels = ["console"]\n'
    two = two.replace('\'"garanties de sécurité" OR "security guarantees"\'', "'(b'")
    ps = problems(two)
    assert sum("query" in p for p in ps) == 2, ps


def test_database_urls_are_checked_without_connecting() -> None:
    ps = "\n".join(problems(GOOD.replace('url = "sqlite:///x.db"', 'url = "mysql://u@h/db"')))
    assert "storage.url: database 'mysql' is not supported" in ps
    with pytest.raises(ConfigError) as err:
        parse_config(GOOD, "feeds.toml", {"MONITOR_DATABASE_URL": "nonsense"})
    assert err.value.problems == [
        "environment: MONITOR_DATABASE_URL: not a database URL: 'nonsense' "
        "(e.g. sqlite:///monitor.db or postgresql+psycopg://user@host/db)"
    ]


@pytest.mark.parametrize("seconds,text", [(900, "15m"), (7200, "2h"), (90, "90s"), (86400, "1d"), (3900, "65m")])
def test_durations_round_trip(seconds: int, text: str) -> None:
    from monitor.durations import format_duration, parse_duration

    assert format_duration(seconds) == text and parse_duration(text) == seconds


def test_alert_settings() -> None:
    c = parse_config(
        GOOD.replace('language = "fr"', 'language = "fr"\nalert_on_backlog = true').replace(
            "[alerts.console]", '[alerts.console]\ndigest = "daily"'
        )
        + 'max_alerts_per_hour = 5\ndigest = "hourly"\n',
        "feeds.toml",
        {},
    )
    assert c.feeds[0].alert_on_backlog is True
    assert (c.rules[0].max_alerts_per_hour, c.rules[0].digest) == (5, "hourly")
    assert c.channels["console"].digest == "daily" and "digest" not in c.channels["console"].options
    d = parse_config(GOOD, "feeds.toml", {})
    assert d.feeds[0].alert_on_backlog is False
    assert (d.rules[0].max_alerts_per_hour, d.rules[0].digest, d.channels["console"].digest) == (20, None, None)


def test_alert_settings_are_checked() -> None:
    found = problems(
        GOOD.replace('language = "fr"', 'language = "fr"\nalert_on_backlog = "yes"').replace(
            "[alerts.console]", '[alerts.console]\ndigest = "weekly"'
        )
        + 'max_alerts_per_hour = 0\ndigest = "often"\n'
    )
    text = "\n".join(found)
    assert "feeds.toml:16: feeds[0] (le-quotidien).alert_on_backlog: must be true or false" in text
    assert "feeds.toml:9: alerts.console.digest: must be one of 'hourly', 'daily', got 'weekly'" in text
    assert (
        "feeds.toml:22: rules[0] (garanties).max_alerts_per_hour: must be a whole number of at least 1, got 0" in text
    )
    assert "feeds.toml:23: rules[0] (garanties).digest: must be one of 'hourly', 'daily', got 'often'" in text
    assert len(found) == 4
