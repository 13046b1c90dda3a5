"""The channel interface and the registry of configured channels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from alerts.render import Alert


class DeliveryError(Exception):
    """A send that failed; `permanent` ones are not retried."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert or raise DeliveryError."""


def build_channels(configs: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict[str, Channel]:
    """Channels by name from {name: (type, options)}."""
    from alerts.console import ConsoleChannel

    out: dict[str, Channel] = {}
    for name, (ctype, options) in configs.items():
        if ctype == "console":
            out[name] = ConsoleChannel(name, stream=str(options.get("stream", "stdout")))
        else:
            raise ValueError(f"alerts.{name}: channel type {ctype!r} is not available in this version")
    return out
