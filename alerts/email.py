"""The email channel: one multipart (text + HTML) message per alert over SMTP.

Transport security is never downgraded: `starttls` fails permanently when
the server does not offer STARTTLS (rather than sending, and logging in, in
plaintext), and certificates are checked against the system's trust store
or the CA given in `ssl_context`.

The Message-ID is derived from the delivery's idempotency key, so an alert
sent again after a crash carries the same id and mail clients show one.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal

from alerts.channels import DeliveryError
from alerts.render import Alert, message_id, original_message_id, render_html, render_text, subject
from alerts.safety import header_safe, one_line, truncate

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
SUBJECT_LIMIT = 200


def _reply_text(message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return truncate(one_line(text), 300)


def _response_error(what: str, code: int, message: bytes | str) -> DeliveryError:
    """4xx is a temporary refusal (421 closing, 451 local error, 454 TLS or
    auth unavailable): retry. 5xx is final (550 no such user, 554 rejected,
    535 bad credentials): do not."""
    return DeliveryError(f"{what}: {code} {_reply_text(message)}", permanent=500 <= code < 600)


class EmailChannel:
    def __init__(
        self,
        name: str,
        smtp_host: str,
        smtp_port: int,
        security: Security,
        username: str | None,
        password: str | None,
        sender: str,
        to: list[str],
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be starttls, tls or none, not {security!r}")
        if username is not None and security == "none":
            raise ValueError("refusing to send an SMTP password unencrypted (security = 'none')")
        if not to:
            raise ValueError("no recipients")
        self.name = name
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.security = security
        self.username = username
        self._password = password
        self.sender = sender
        self.to = list(to)
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        # EHLO name; None lets smtplib use socket.getfqdn().
        self.local_hostname = local_hostname
        self.where = f"SMTP {smtp_host}:{smtp_port}"

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r}, {self.where}, security={self.security!r})"

    def compose(self, alert: Alert, now: datetime | None = None) -> EmailMessage:
        """The message, headers made only from sanitised text (header_safe)."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = header_safe(subject(alert), SUBJECT_LIMIT)
        when = alert.created_at or now or datetime.now(UTC)
        msg["Date"] = format_datetime(when if when.tzinfo else when.replace(tzinfo=UTC))
        msg["Message-ID"] = f"<{message_id(alert)}>"
        if alert.kind == "update" and not alert.message_id:
            # Thread the update under the story's first alert.
            msg["In-Reply-To"] = msg["References"] = f"<{original_message_id(alert)}>"
        # RFC 3834: auto-responders must not answer this.
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(render_text(alert))
        msg.add_alternative(render_html(alert), subtype="html")
        return msg

    def _open(self) -> smtplib.SMTP:
        """Connected, encrypted as configured, logged in."""
        # The host goes to the constructor (which connects): it is what
        # STARTTLS and SMTPS check the certificate against (smtplib's _host).
        # A greeting other than 220 raises SMTPConnectError with the code.
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(
                self.smtp_host,
                self.smtp_port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self.ssl_context,
            )
        else:
            smtp = smtplib.SMTP(
                self.smtp_host, self.smtp_port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        try:
            smtp.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(
                        f"{self.where} does not offer STARTTLS; refusing to send in plaintext "
                        "(security = 'starttls'; use 'tls' for port 465)",
                        permanent=True,
                    )
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            if self.username is not None:
                self._login(smtp)
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        """AUTH with one mechanism (PLAIN, else LOGIN, else CRAM-MD5): smtplib's
        login() would try each in turn, a failed attempt per mechanism."""
        if self._password is None or self.username is None:
            raise DeliveryError(f"{self.where}: username set but no password", permanent=True)
        offered = smtp.esmtp_features.get("auth", "").upper().split()
        smtp.user, smtp.password = self.username, self._password
        for mechanism, method in (
            ("PLAIN", smtp.auth_plain),
            ("LOGIN", smtp.auth_login),
            ("CRAM-MD5", smtp.auth_cram_md5),
        ):
            if mechanism in offered:
                try:
                    smtp.auth(mechanism, method)
                except smtplib.SMTPAuthenticationError as exc:
                    what = f"{self.where} login as {self.username}"
                    raise _response_error(what, exc.smtp_code, exc.smtp_error) from exc
                return
        raise DeliveryError(
            f"{self.where} offers no AUTH mechanism we support (offered: {' '.join(offered) or 'none'}; "
            "we speak PLAIN, LOGIN, CRAM-MD5)",
            permanent=True,
        )

    def send(self, alert: Alert) -> str | None:
        """Send, or raise DeliveryError; the note lists recipients refused
        while others accepted (the message was sent: retrying would repeat it
        to those who have it)."""
        msg = self.compose(alert)
        try:
            smtp = self._open()
            try:
                refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=self.to)
            finally:
                _close(smtp)
        except DeliveryError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(500 <= c < 600 for c in codes)
            raise DeliveryError(
                f"{self.where}: every recipient refused: {_refusals(exc.recipients)}", permanent
            ) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, DATA refused, 421, STARTTLS refused
            raise _response_error(self.where, exc.smtp_code, exc.smtp_error) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"{self.where}: the server's TLS certificate did not verify ({exc.verify_message})", permanent=True
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"{self.where}: {exc}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, resets, timeouts, TLS errors
            raise DeliveryError(f"{self.where}: {type(exc).__name__}: {one_line(str(exc))}") from exc
        if refused:
            log.warning("email %s: some recipients refused: %s", self.name, _refusals(refused))
            return "refused: " + _refusals(refused)
        return None


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{addr} ({code} {_reply_text(msg)})" for addr, (code, msg) in refused.items())


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely; a failure here does not undo a message already accepted."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()
