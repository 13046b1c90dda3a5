"""Progress of long commands: a bar redrawn with \\r on a terminal, plain lines elsewhere (issue 9)."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from newssite import NewsSite, config_toml

from monitor.progress import Progress, on_terminal

SITECUSTOM = str(Path(__file__).parent / "sitecustom")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_when_not_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    with Progress("pruning", 3, out, every=0, clock=clock) as bar:
        for i in (1, 2, 3):
            bar.update(i, f"{i} deleted")
    assert out.getvalue() == "pruning: 1/3 1 deleted\npruning: 2/3 2 deleted\npruning: 3/3 3 deleted\n"
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_plain_lines_are_spaced_out_and_the_last_state_is_always_written() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress("backfill r", None, out, every=2.0, clock=clock)
    for i in range(1, 11):  # ten updates in 0.9 s: one line, then the last state at close
        clock.now = i / 10
        bar.update(i * 200)
    bar.close()
    bar.close()  # closing twice writes nothing more
    assert out.getvalue() == "backfill r: 200\nbackfill r: 2000\n"


def test_plain_mode_without_counter_lines_prints_only_messages() -> None:
    out = io.StringIO()
    with Progress("polling", 2, out, every=None) as bar:
        bar.message("feed-a: ok: 3 entries")
        bar.advance()
        bar.message("feed-b: ok: 1 entries")
        bar.advance()
    assert out.getvalue() == "feed-a: ok: 3 entries\nfeed-b: ok: 1 entries\n"


def test_terminal_gets_one_line_redrawn_with_carriage_returns() -> None:
    out, clock = FakeTerminal(), Clock()
    with Progress("polling", 4, out, clock=clock) as bar:
        assert bar.tty
        for i in range(4):
            clock.now += 1
            bar.advance(detail=f"feed-{i}")
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "polling [" + "#" * 6 + "." * 18 + "] 1/4  25% feed-0\x1b[K" in text
    assert "] 4/4 100% feed-3\x1b[K\n" in text


def test_terminal_redraws_at_most_ten_times_a_second_but_always_the_end() -> None:
    out, clock = FakeTerminal(), Clock()
    with Progress("backfill", 1000, out, clock=clock) as bar:
        for _ in range(1000):  # all in the same instant
            bar.advance()
    text = out.getvalue()
    assert text.count("\r") == 2  # the first update, then the finished bar
    assert "1000/1000 100%" in text


def test_a_message_on_a_terminal_goes_above_the_bar() -> None:
    out, clock = FakeTerminal(), Clock()
    with Progress("polling", 2, out, clock=clock) as bar:
        bar.advance()
        bar.message("feed-a: ok: 3 entries")
    lines = out.getvalue().split("\n")
    assert lines[0].endswith("\r\x1b[Kfeed-a: ok: 3 entries")  # the bar erased, the message on its own line
    assert lines[1].startswith("\rpolling [") and "1/2" in lines[1]  # the bar drawn again under it


def test_nothing_drawn_when_nothing_happened() -> None:
    out = FakeTerminal()
    Progress("polling", 3, out).close()
    assert out.getvalue() == ""


def test_unknown_total_on_a_terminal_is_a_count() -> None:
    out = FakeTerminal()
    with Progress("backfill r", None, out) as bar:
        bar.update(400, "matching items")
    assert out.getvalue() == "\rbackfill r: 400 matching items\x1b[K\n"


def test_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert not on_terminal(FakeTerminal())
    monkeypatch.setenv("TERM", "xterm-256color")
    assert on_terminal(FakeTerminal())
    assert not on_terminal(io.StringIO())


def test_a_real_pseudo_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    parent, child = pty.openpty()
    with os.fdopen(child, "w", encoding="utf-8") as stream:
        with Progress("pruning", 2, stream) as bar:
            assert bar.tty
            bar.update(2)
        written = os.read(parent, 4096).decode("utf-8")
    os.close(parent)
    assert written.startswith("\rpruning [") and "2/2 100%" in written


def test_advance_from_many_threads() -> None:
    bar = Progress("polling", 800, io.StringIO(), every=None)
    threads = [threading.Thread(target=lambda: [bar.advance() for _ in range(100)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bar.done == 800


# --- the commands -------------------------------------------------------------------------


def _env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    e["PYTHONPATH"] = SITECUSTOM + os.pathsep + e.get("PYTHONPATH", "")
    e["TERM"] = "xterm"
    return e


def _on_pty(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run `monitor ARGS` with stderr on a pseudo-terminal; (exit code, what it wrote there)."""
    parent, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=child,
    )
    os.close(child)
    chunks = []
    while True:
        ready, _, _ = select.select([parent], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(parent, 65536)
        except OSError:  # EIO: the child side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(parent)
    proc.communicate(timeout=60)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_poll_and_backfill_draw_a_bar_on_a_terminal_and_plain_lines_elsewhere(tmp_path: Path, site: NewsSite) -> None:
    (tmp_path / "feeds.toml").write_text(
        config_toml("sqlite:///monitor.db", {"quotidien-fr": site.rss_url, "world-wire": site.atom_url}),
        encoding="utf-8",
    )
    code, tty = _on_pty(["poll", "--once"], tmp_path)
    assert code == 0, tty
    assert "\rpolling [" in tty and "2/2 100%" in tty
    assert "quotidien-fr: ok:" in tty and "world-wire: ok:" in tty

    plain = subprocess.run(
        [sys.executable, "-m", "monitor", "poll", "--once", "--log-level", "WARNING"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 0, plain.stderr
    assert "\r" not in plain.stderr and "\x1b" not in plain.stderr
    lines = plain.stderr.splitlines()
    assert any(line.startswith("quotidien-fr: ") for line in lines)
    assert any(line.startswith("world-wire: ") for line in lines)

    code, tty = _on_pty(["rules", "backfill", "garanties-fr"], tmp_path)
    assert code == 0, tty
    assert "\rbackfill garanties-fr: " in tty and "matching items" in tty
