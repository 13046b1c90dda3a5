"""The console channel: alerts printed for a person watching the daemon."""

from __future__ import annotations

import sys

from alerts.render import Alert, render_text


class ConsoleChannel:
    def __init__(self, name: str = "console", stream: str = "stdout") -> None:
        self.name = name
        self.stream = stream

    def send(self, alert: Alert) -> str | None:
        out = sys.stderr if self.stream == "stderr" else sys.stdout
        out.write("=" * 72 + "\nALERT " + render_text(alert) + "\n")
        out.flush()
        return None
