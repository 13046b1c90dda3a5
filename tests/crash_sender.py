"""`monitor --config CONFIG run` with a short outbox lease, for the crash test
(tests/test_delivery_crash.py):

    python tests/crash_sender.py CONFIG LEASE_SECONDS

The daemon builds its outbox with the default lease (five minutes), and the
configuration has no key for it. A delivery claimed by a process that was
then killed waits for its lease to expire, so a test that kills the daemon
repeatedly would wait five minutes per kill. This is the real command line
(the CLI's logging, `monitor.service.Monitor.open`, the APScheduler daemon
and its signal handling) with one change: every outbox gets the lease given
here. Nothing else in the library is touched.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from alerts.outbox import Outbox
from monitor.cli import main


def shorten_lease(seconds: float) -> None:
    """Make every Outbox built from now on lease its claims for `seconds`."""
    init = Outbox.__init__

    def with_short_lease(self: Outbox, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.lease = timedelta(seconds=seconds)

    Outbox.__init__ = with_short_lease  # type: ignore[method-assign]


if __name__ == "__main__":
    config, lease = sys.argv[1], float(sys.argv[2])
    shorten_lease(lease)
    raise SystemExit(main(["--config", config, "run"]))
