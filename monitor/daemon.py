"""`monitor run`: APScheduler ticks; the schedule itself lives in the database.

Each tick polls the feeds whose `next_poll_at` has come and sends due
deliveries, so a restart loses nothing and several workers can share the
tables. SIGTERM and SIGINT set a stop flag that the pipeline checks between
entries: the entry in hand is finished and committed, then we exit.
Several daemons may share one database (PostgreSQL for several machines):
each claims due feeds and deliveries under a lease (storage.repository), so
none polls a feed or sends an alert another one holds.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from monitor import metrics
from monitor.config import ConfigError, load_config
from monitor.health import write_heartbeat
from monitor.service import Monitor
from storage.repository import worker_name

log = logging.getLogger(__name__)


# SIGTERM to exit must stay under 10 s (systemd and Docker send SIGKILL after
# 10 s by default): a fetch still hanging after this grace is abandoned, and
# its entry, never committed, is fetched again at the next start.
GRACE_SECONDS = 8.0


def run(monitor: Monitor, install_signals: bool = True) -> bool:
    """Run until SIGTERM/SIGINT. False if a tick was still busy after the grace
    period: the caller must then exit the process without waiting for it."""
    stop = monitor.stop
    heartbeat = monitor.config.metrics.heartbeat
    reload_requested = threading.Event()
    monitor.pipeline.extractor.start()
    idle = threading.Event()
    idle.set()

    def beat() -> None:
        metrics.observe_tick()
        if heartbeat:
            try:
                write_heartbeat(heartbeat, worker_name())
            except OSError as exc:  # healthcheck will say so; the daemon goes on
                log.error("cannot write the heartbeat file %s: %s", heartbeat, exc)

    def reload() -> None:
        """Re-read the configuration file: a file that does not load keeps the old configuration."""
        reload_requested.clear()
        path = monitor.config.path
        try:
            config = load_config(path)
            restart = monitor.reconfigure(config)
        except ConfigError as exc:
            log.error("SIGHUP: %s does not load; keeping the running configuration:\n%s", path, exc)
            return
        except Exception:  # e.g. the database, while syncing the feeds: tried again at the next tick
            log.exception("SIGHUP: reloading %s failed; keeping the running configuration, retrying", path)
            reload_requested.set()
            return
        log.info(
            "SIGHUP: reloaded %s: %d feeds, %d rules, %d channels",
            path,
            len(config.feeds),
            len(config.rules),
            len(config.channels),
        )
        if restart:
            log.warning("SIGHUP: %s changed; that takes effect at the next restart", ", ".join(restart))

    def tick() -> None:
        idle.clear()
        beat()
        try:
            if reload_requested.is_set():
                reload()
            report = monitor.tick()
            d = report.deliveries
            if report.polls or d.sent or d.retried or d.dead:
                failed = sum(1 for p in report.polls if p.status == "error")
                log.info(
                    "tick: %d feeds polled (%d failed), %d new items, %d alerts sent, %d retried, %d dead",
                    len(report.polls),
                    failed,
                    sum(p.new_items for p in report.polls),
                    d.sent,
                    d.retried,
                    d.dead,
                )
        except Exception:  # the next tick must still come
            log.exception("tick failed")
        finally:
            beat()
            idle.set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the entry in hand, then exiting", signal.Signals(signum).name)
        stop.set()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        log.info("received SIGHUP: re-reading the configuration at the next tick")
        reload_requested.set()

    if install_signals:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_hangup)
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
    server = metrics.serve(monitor.config.metrics, monitor.store.engine)
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
        stop.set()
        scheduler.shutdown(wait=False)
        if server is not None:
            server.close()
        clean = idle.wait(GRACE_SECONDS)
        if clean:
            log.info("monitor stopped")
        else:
            log.warning(
                "monitor stopped: the entry in hand did not finish within %ss and will be fetched again", GRACE_SECONDS
            )
    return clean
