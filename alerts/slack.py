"""The Slack channel: Block Kit messages to an incoming webhook.

Slack allows about one message per second per webhook and answers 429 with
Retry-After beyond that (api.slack.com/docs/rate-limits). The pace is kept
per webhook URL in a module-level `Pacer`, so two channels posting to the
same webhook share it; a 429 pauses that webhook for every channel, and a
send that would wait longer than a few seconds is handed back to the outbox
(a transient DeliveryError with retry_after) instead of holding a thread.

The webhook URL is a secret: it never appears in messages or reprs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from alerts.channels import DeliveryError
from alerts.render import Alert, render_slack
from alerts.webhook import http_client, http_failure, post

MAX_WAIT = 5.0  # seconds a send may wait for its turn before it is deferred


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_at: float = float("-inf")  # clock time before which nothing is posted


class Pacer:
    """At most one post per `interval` per key, across threads and channels."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}

    def _slot(self, key: str) -> _Slot:
        with self._lock:
            return self._slots.setdefault(key, _Slot())

    @contextmanager
    def turn(self, key: str, interval: float, what: str) -> Iterator[_Slot]:
        """Wait for `key`'s turn and hold it while posting. Raises a transient
        DeliveryError when the wait would exceed max_wait (a 429 pause)."""
        slot = self._slot(key)
        with slot.lock:
            wait = slot.next_at - self.clock()
            if wait > self.max_wait:
                raise DeliveryError(f"{what}: paused after a 429 for {wait:.0f} s more", retry_after=wait)
            if wait > 0:
                self.sleep(wait)
            slot.next_at = self.clock() + interval
            yield slot

    def pause(self, slot: _Slot, seconds: float) -> None:
        """Nothing to this key for `seconds` (call inside its turn)."""
        slot.next_at = max(slot.next_at, self.clock() + seconds)


PACER = Pacer()


class SlackChannel:
    def __init__(
        self,
        name: str,
        webhook_url: str,
        timeout: float = 10.0,
        min_interval: float = 1.0,
        pacer: Pacer | None = None,
    ) -> None:
        self.name = name
        self._url = webhook_url
        self.min_interval = min_interval
        self.pacer = pacer or PACER
        self.client = http_client(timeout)
        self.what = f"Slack webhook {name}"

    def __repr__(self) -> str:
        return f"SlackChannel({self.name!r})"

    def send(self, alert: Alert) -> str | None:
        body = json.dumps(render_slack(alert), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        with self.pacer.turn(self._url, self.min_interval, self.what) as slot:
            reply = post(self.client, self._url, body, headers, self.what)
            err = http_failure(reply, self.what)
            if err is not None and reply.status == 429:
                self.pacer.pause(slot, err.retry_after or self.min_interval)
        if err is not None:
            raise err
        return None

    def close(self) -> None:
        self.client.close()
