"""`monitor run`: APScheduler ticks; the schedule itself lives in the database.

Each tick polls the feeds whose `next_poll_at` has come and sends due
deliveries, so a restart loses nothing and several workers can share the
tables. SIGTERM and SIGINT set a stop flag that the pipeline checks between
entries: the entry in hand is finished and committed, then we exit.
"""

from __future__ import annotations

import logging
import signal
from datetime import datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from monitor.service import Monitor

log = logging.getLogger(__name__)


def run(monitor: Monitor, install_signals: bool = True) -> None:
    stop = monitor.stop

    def tick() -> None:
        try:
            report = monitor.tick()
            d = report.deliveries
            if report.polls or d.sent or d.retried or d.dead:
                log.info(
                    "tick: %d feeds polled, %d new items, %d alerts sent, %d retried, %d dead",
                    len(report.polls),
                    sum(p.new_items for p in report.polls),
                    d.sent,
                    d.retried,
                    d.dead,
                )
        except Exception:  # the next tick must still come
            log.exception("tick failed")

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the entry in hand, then exiting", signal.Signals(signum).name)
        stop.set()

    if install_signals:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        tick,
        "interval",
        seconds=monitor.config.schedule.tick,
        id="tick",
        next_run_time=datetime.now().astimezone(),
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    log.info(
        "monitor running: %d feeds, %d rules, tick every %ss",
        len(monitor.config.feeds),
        len(monitor.config.rules),
        monitor.config.schedule.tick,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)
        log.info("monitor stopped")
