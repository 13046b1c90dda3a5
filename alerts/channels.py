"""The channel interface and the registry of configured channels."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from alerts.render import Alert

if TYPE_CHECKING:
    from alerts.email import Security


class DeliveryError(Exception):
    """A send that failed; `permanent` ones are not retried."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> str | None:
        """Deliver one alert or raise DeliveryError.

        Returns a note to record on the delivery when the channel accepted
        the alert with a reservation (an email recipient refused while the
        others accepted), else None."""


REQUIRED = object()


class _Options:
    """Typed access to one channel's options; errors name `alerts.NAME.key`."""

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.options = options

    def where(self, key: str) -> str:
        return f"alerts.{self.name}.{key}"

    def _get(self, key: str, default: object) -> Any:
        value = self.options.get(key)
        if value is None:
            if default is REQUIRED:
                raise ValueError(f"{self.where(key)}: required")
            return default
        return value

    def _text(self, key: str, default: object) -> Any:
        value = self._get(key, default)
        if value is not default and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{self.where(key)}: must be a non-empty string")
        return value

    def required(self, key: str) -> str:
        value: str = self._text(key, REQUIRED)
        return value

    def optional(self, key: str, default: str | None = None) -> str | None:
        value: str | None = self._text(key, default)
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"{self.where(key)}: must be a positive number")
        return float(value)

    def port(self, key: str, default: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise ValueError(f"{self.where(key)}: must be a port number (1-65535)")
        return value

    def addresses(self, key: str) -> list[str]:
        value = self._get(key, REQUIRED)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"{self.where(key)}: must be a non-empty list of addresses")
        return list(value)

    def env(self, key: str, default_var: str, environ: Mapping[str, str]) -> str | None:
        """The value of the environment variable named by option `key`."""
        var = self.optional(key, default_var)
        return environ.get(var or default_var) or None

    def ssl_context(self) -> ssl.SSLContext | None:
        """`ssl_context` (an SSLContext, from code) or `ca_file` (a CA bundle
        for a private CA); None means the system's trust store."""
        ctx = self.options.get("ssl_context")
        if ctx is not None:
            if not isinstance(ctx, ssl.SSLContext):
                raise ValueError(f"{self.where('ssl_context')}: must be an ssl.SSLContext")
            return ctx
        ca_file = self.optional("ca_file", None)
        if ca_file is None:
            return None
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"{self.where('ca_file')}: cannot load CA bundle {ca_file!r}: {exc}") from exc


DEFAULT_SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def _email(o: _Options, environ: Mapping[str, str]) -> Channel:
    from alerts.email import EmailChannel

    security = o.optional("security", "starttls")
    if security not in DEFAULT_SMTP_PORTS:
        raise ValueError(f"{o.where('security')}: must be one of {', '.join(DEFAULT_SMTP_PORTS)}")
    sec = cast("Security", security)
    username = o.optional("username", None)
    password = o.env("password_env", "MONITOR_SMTP_PASSWORD", environ)
    if username is not None and password is None:
        var = o.optional("password_env", "MONITOR_SMTP_PASSWORD")
        raise ValueError(f"{o.where('password_env')}: username is set but ${var} is empty or not set")
    if username is not None and sec == "none":
        raise ValueError(f"{o.where('security')}: 'none' would send the password unencrypted; use starttls or tls")
    return EmailChannel(
        o.name,
        smtp_host=o.required("smtp_host"),
        smtp_port=o.port("smtp_port", DEFAULT_SMTP_PORTS[sec]),
        security=sec,
        username=username,
        password=password,
        sender=o.required("from"),
        to=o.addresses("to"),
        timeout=o.number("timeout", 30.0),
        ssl_context=o.ssl_context(),
        local_hostname=o.optional("local_hostname", None),
    )


def _slack(o: _Options, environ: Mapping[str, str]) -> Channel:
    from alerts.slack import SlackChannel

    url = o.optional("webhook_url", None)
    if url is None:
        url = o.env("webhook_url_env", "MONITOR_SLACK_WEBHOOK_URL", environ)
        if url is None:
            var = o.optional("webhook_url_env", "MONITOR_SLACK_WEBHOOK_URL")
            raise ValueError(f"{o.where('webhook_url_env')}: ${var} is empty or not set (the Slack webhook URL)")
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{o.where('webhook_url_env')}: the Slack webhook URL must start with https://")
    return SlackChannel(o.name, url, timeout=o.number("timeout", 10.0), min_interval=o.number("min_interval", 1.0))


def _webhook(o: _Options, environ: Mapping[str, str]) -> Channel:
    from alerts.webhook import WebhookChannel

    url = o.required("url")
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{o.where('url')}: must start with http:// or https://")
    secret = o.env("secret_env", "MONITOR_WEBHOOK_SECRET", environ)
    if secret is None and "secret_env" in o.options:
        raise ValueError(f"{o.where('secret_env')}: ${o.options['secret_env']} is empty or not set")
    return WebhookChannel(o.name, url, secret=secret, timeout=o.number("timeout", 10.0), ssl_context=o.ssl_context())


def build_channels(
    configs: Mapping[str, tuple[str, Mapping[str, Any]]], environ: Mapping[str, str] | None = None
) -> dict[str, Channel]:
    """Channels by name from {name: (type, options)}.

    Secrets come from the environment (`environ`, default os.environ), read
    here once: a missing one stops the start with a message naming the
    option, instead of every delivery failing later."""
    from alerts.console import ConsoleChannel

    env = os.environ if environ is None else environ
    out: dict[str, Channel] = {}
    for name, (ctype, options) in configs.items():
        o = _Options(name, options)
        if ctype == "console":
            out[name] = ConsoleChannel(name, stream=str(options.get("stream", "stdout")))
        elif ctype == "email":
            out[name] = _email(o, env)
        elif ctype == "slack":
            out[name] = _slack(o, env)
        elif ctype == "webhook":
            out[name] = _webhook(o, env)
        else:
            raise ValueError(f"alerts.{name}: unknown channel type {ctype!r}")
    return out
