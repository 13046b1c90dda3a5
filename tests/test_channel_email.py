"""The email channel against a real SMTP server on 127.0.0.1 (aiosmtpd):
STARTTLS and implicit TLS with a test CA, AUTH, and every refusal a server
can give, mapped to transient or permanent failures."""

from __future__ import annotations

import email
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from alertfactory import make_alert
from smtpserver import LocalCA, Received, SMTPServer, closed_port, self_signed_context, silent_port

from alerts.channels import DeliveryError, build_channels
from alerts.email import EmailChannel, Security
from alerts.render import Alert, Source, message_id

SENDER = "monitor@example.org"
TO = ["desk@example.org", "editor@example.org"]
USERS = {"monitor": "s3cret"}


def alert(**kw: Any) -> Alert:
    return make_alert(
        **{
            **dict(
                channel="mail",
                sources=(
                    Source("Garanties de sécurité", "https://news.example/a", "quotidien-fr", "fr"),
                    Source("Security guarantees", "https://wire.example/b", "world-wire", "en"),
                ),
                source_count=2,
                created_at=datetime(2026, 1, 6, 14, 31),
            ),
            **kw,
        }
    )


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path)


@pytest.fixture
def smtp() -> Iterator[Callable[..., SMTPServer]]:
    started: list[SMTPServer] = []

    def start(**kw: Any) -> SMTPServer:
        s = SMTPServer(**kw).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def channel(
    server: SMTPServer | None,
    security: Security,
    ctx: ssl.SSLContext | None,
    username: str | None = None,
    password: str | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 5.0,
    to: list[str] | None = None,
) -> EmailChannel:
    return EmailChannel(
        "mail",
        smtp_host=host,
        smtp_port=port if port is not None else server.port if server else 0,
        security=security,
        username=username,
        password=password,
        sender=SENDER,
        to=to or TO,
        timeout=timeout,
        ssl_context=ctx,
        local_hostname="localhost",
    )


def parse(m: Received) -> EmailMessage:
    msg = email.message_from_bytes(m.data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_starttls_with_auth_delivers_one_multipart_message(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(starttls=ca.server_context(), users=USERS)
    note = channel(server, "starttls", ca.client_context(), "monitor", "s3cret").send(alert())
    assert note is None
    assert len(server.messages) == 1
    m = server.messages[0]
    assert (m.mail_from, m.rcpt_tos, m.tls, m.login) == (SENDER, TO, True, "monitor")
    msg = parse(m)
    # aiosmtpd adds X-Peer and X-MailFrom/X-RcptTo only with decode_data; none here.
    assert [k for k in msg.keys()] == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        "MIME-Version",
        "Content-Type",
    ]
    assert msg["From"] == SENDER and msg["To"] == ", ".join(TO)
    assert msg["Subject"] == "[garanties] Garanties de sécurité : le sommet de Paris (2 sources)"
    assert msg["Message-ID"] == f"<{message_id(alert())}>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"] == "Tue, 06 Jan 2026 14:31:00 +0000"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    assert "2 sources in 2 languages (fr, en)" in text.get_content()
    assert "<mark>garanties de sécurité</mark>" in html.get_content()
    assert '<a href="https://wire.example/b">Security guarantees</a>' in html.get_content()


def test_implicit_tls_with_auth(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(implicit_tls=ca.server_context(), users=USERS)
    assert channel(server, "tls", ca.client_context(), "monitor", "s3cret").send(alert()) is None
    assert len(server.messages) == 1
    assert server.messages[0].tls and server.messages[0].login == "monitor"


def test_host_name_is_verified_too(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(starttls=ca.server_context(dns=["localhost"], ips=["127.0.0.1"]))
    assert channel(server, "starttls", ca.client_context(), host="localhost").send(alert()) is None
    assert len(server.messages) == 1


def test_plain_relay_without_tls(smtp: Callable[..., SMTPServer]) -> None:
    server = smtp()
    assert channel(server, "none", None).send(alert()) is None
    assert len(server.messages) == 1 and not server.messages[0].tls


def test_a_retried_alert_keeps_its_message_id(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    """The same delivery sent again (a crash before our commit) is recognisable."""
    server = smtp(starttls=ca.server_context())
    ch = channel(server, "starttls", ca.client_context())
    ch.send(alert(delivery_id=1))
    time.sleep(1.1)  # a different second: nothing time-based may leak into the id
    ch.send(alert(delivery_id=1))
    ch.send(alert(story_id=43))
    ids = [parse(m)["Message-ID"] for m in server.messages]
    assert len(ids) == 3
    assert ids[0] == ids[1] != ids[2]


def test_an_update_is_threaded_under_the_first_alert(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(starttls=ca.server_context())
    ch = channel(server, "starttls", ca.client_context())
    ch.send(alert())
    ch.send(alert(kind="update"))
    first, update = (parse(m) for m in server.messages)
    assert len(server.messages) == 2
    assert update["In-Reply-To"] == update["References"] == first["Message-ID"] != update["Message-ID"]
    assert update["Subject"].startswith("[garanties] update: ")


def test_no_starttls_offered_fails_permanently_without_sending(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp()  # no STARTTLS
    with pytest.raises(DeliveryError) as e:
        channel(server, "starttls", ca.client_context()).send(alert())
    assert e.value.permanent
    assert "does not offer STARTTLS" in str(e.value) and "plaintext" in str(e.value)
    assert server.handler.mail_commands == 0 and len(server.messages) == 0


def test_no_starttls_offered_never_sends_the_password(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(users=USERS)
    with pytest.raises(DeliveryError) as e:
        channel(server, "starttls", ca.client_context(), "monitor", "s3cret").send(alert())
    assert e.value.permanent
    assert server.handler.auth_attempts == [] and len(server.messages) == 0


@pytest.mark.parametrize("security", ["starttls", "tls"])
@pytest.mark.parametrize("bad", ["self-signed", "wrong-name", "untrusted-ca"])
def test_a_certificate_that_does_not_verify_is_refused(
    tmp_path: Path, ca: LocalCA, smtp: Callable[..., SMTPServer], security: Security, bad: str
) -> None:
    if bad == "self-signed":
        server_ctx = self_signed_context(tmp_path)
    elif bad == "wrong-name":
        server_ctx = ca.server_context(dns=["mail.other.example"], ips=[])
    else:
        other = tmp_path / "other"
        other.mkdir()
        server_ctx = LocalCA(other, "another CA").server_context()
    server = smtp(starttls=server_ctx, users=USERS) if security == "starttls" else smtp(implicit_tls=server_ctx)
    with pytest.raises(DeliveryError) as e:
        channel(server, security, ca.client_context(), "monitor", "s3cret").send(alert())
    assert e.value.permanent
    assert "certificate did not verify" in str(e.value)
    assert len(server.messages) == 0 and server.handler.auth_attempts == []


def test_system_trust_store_refuses_the_test_ca(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    """Without a context the channel uses ssl.create_default_context()."""
    server = smtp(starttls=ca.server_context())
    with pytest.raises(DeliveryError) as e:
        channel(server, "starttls", None).send(alert())
    assert e.value.permanent and "certificate did not verify" in str(e.value)
    assert len(server.messages) == 0


def test_bad_password_is_permanent(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(starttls=ca.server_context(), users=USERS)
    with pytest.raises(DeliveryError) as e:
        channel(server, "starttls", ca.client_context(), "monitor", "wrong").send(alert())
    assert e.value.permanent and "535" in str(e.value)
    assert server.handler.auth_attempts == [("monitor", "wrong")]
    assert len(server.messages) == 0


def test_temporary_auth_failure_is_transient(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(starttls=ca.server_context(), users=USERS)
    server.script.auth = "454 4.7.0 Temporary authentication failure"
    with pytest.raises(DeliveryError) as e:
        channel(server, "starttls", ca.client_context(), "monitor", "s3cret").send(alert())
    assert not e.value.permanent and "454" in str(e.value)
    assert len(server.handler.auth_attempts) == 1 and len(server.messages) == 0


def test_auth_required_but_no_username_is_permanent(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(starttls=ca.server_context(), users=USERS)
    with pytest.raises(DeliveryError) as e:
        channel(server, "starttls", ca.client_context()).send(alert())
    assert e.value.permanent and "530" in str(e.value)
    assert len(server.messages) == 0


@pytest.mark.parametrize(
    "where,reply,permanent",
    [
        ("mail", "421 4.3.2 Service shutting down", False),
        ("mail", "451 4.3.0 Local error", False),
        ("mail", "550 5.7.1 Sender rejected", True),
        ("data", "451 4.3.0 Try again later", False),
        ("data", "554 5.7.1 Message rejected", True),
        ("rcpt", "550 5.1.1 No such user", True),
        ("rcpt", "450 4.2.1 Mailbox busy", False),
    ],
)
def test_refusals_map_to_transient_or_permanent(
    ca: LocalCA, smtp: Callable[..., SMTPServer], where: str, reply: str, permanent: bool
) -> None:
    server = smtp(starttls=ca.server_context())
    if where == "mail":
        server.script.mail = reply
    elif where == "data":
        server.script.data = reply
    else:
        server.script.rcpt = {a: reply for a in TO}
    with pytest.raises(DeliveryError) as e:
        channel(server, "starttls", ca.client_context()).send(alert())
    assert e.value.permanent is permanent
    assert reply.split()[0] in str(e.value)
    assert len(server.messages) == 0


def test_recipients_refused_with_mixed_codes_are_retried(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(starttls=ca.server_context())
    server.script.rcpt = {TO[0]: "550 5.1.1 No such user", TO[1]: "451 4.3.0 Try later"}
    with pytest.raises(DeliveryError) as e:
        channel(server, "starttls", ca.client_context()).send(alert())
    assert not e.value.permanent
    assert TO[0] in str(e.value) and TO[1] in str(e.value)


def test_one_recipient_refused_is_recorded_not_ignored(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(starttls=ca.server_context())
    server.script.rcpt = {TO[1]: "550 5.1.1 No such user"}
    note = channel(server, "starttls", ca.client_context()).send(alert())
    assert note == "refused: editor@example.org (550 5.1.1 No such user)"
    assert len(server.messages) == 1 and server.messages[0].rcpt_tos == [TO[0]]


def test_connection_refused_is_transient() -> None:
    with pytest.raises(DeliveryError) as e:
        channel(None, "starttls", None, port=closed_port()).send(alert())
    assert not e.value.permanent and "ConnectionRefusedError" in str(e.value)


def test_a_server_that_never_greets_times_out_transiently() -> None:
    sock, port = silent_port()
    try:
        start = time.monotonic()
        with pytest.raises(DeliveryError) as e:
            channel(None, "starttls", None, port=port, timeout=0.5).send(alert())
        assert time.monotonic() - start < 5
        assert not e.value.permanent
    finally:
        sock.close()


def test_hostile_subject_is_delivered_without_extra_recipients(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    """CVE-2024-6923 end to end: the envelope has only our recipients and the
    message parses with no Bcc header."""
    server = smtp(starttls=ca.server_context())
    hostile = "=?UTF-8?Q?=0A?=Bcc: victim@example.com"
    channel(server, "starttls", ca.client_context(), to=["desk@example.org"]).send(alert(title=hostile, rule=hostile))
    assert len(server.messages) == 1
    m = server.messages[0]
    assert m.rcpt_tos == ["desk@example.org"]
    msg = parse(m)
    assert msg["Bcc"] is None and msg["Cc"] is None
    assert b"\nBcc:" not in m.data and b"\r\nBcc:" not in m.data


def test_password_over_plaintext_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="unencrypted"):
        channel(None, "none", None, "monitor", "s3cret", port=25)


# build_channels ---------------------------------------------------------------


def email_options(server: SMTPServer, ca: LocalCA, **kw: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "username": "monitor",
        "from": SENDER,
        "to": TO,
        "ca_file": str(ca.ca_file),
        "timeout": 5,
        "local_hostname": "localhost",
    }
    opts.update(kw)
    return opts


def test_build_channels_email_with_ca_file_and_password_from_env(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(starttls=ca.server_context(), users=USERS)
    channels = build_channels(
        {"mail": ("email", email_options(server, ca))}, environ={"MONITOR_SMTP_PASSWORD": "s3cret"}
    )
    assert channels["mail"].send(alert()) is None
    assert len(server.messages) == 1 and server.messages[0].login == "monitor"


def test_build_channels_email_password_env_and_ssl_context(ca: LocalCA, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(implicit_tls=ca.server_context(), users=USERS)
    opts = email_options(server, ca, security="tls", password_env="MAIL_PW", ssl_context=ca.client_context())
    del opts["ca_file"]
    channels = build_channels({"mail": ("email", opts)}, environ={"MAIL_PW": "s3cret"})
    assert channels["mail"].send(alert()) is None
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    "change,error",
    [
        ({"from": None}, "alerts.mail.from: required"),
        ({"smtp_host": None}, "alerts.mail.smtp_host: required"),
        ({"to": []}, "alerts.mail.to: must be a non-empty list"),
        ({"security": "ssl"}, "alerts.mail.security: must be one of"),
        ({"smtp_port": "25"}, "alerts.mail.smtp_port: must be a port"),
        ({"ca_file": "/nonexistent/ca.pem"}, "alerts.mail.ca_file: cannot load"),
        ({"password_env": "NOPE"}, "alerts.mail.password_env: username is set but $NOPE"),
        ({"security": "none"}, "alerts.mail.security: 'none' would send the password unencrypted"),
    ],
)
def test_build_channels_email_errors_name_the_option(ca: LocalCA, change: dict[str, Any], error: str) -> None:
    opts = {
        "smtp_host": "127.0.0.1",
        "username": "monitor",
        "from": SENDER,
        "to": TO,
        "ca_file": str(ca.ca_file),
    }
    for k, v in change.items():
        if v is None:
            del opts[k]
        else:
            opts[k] = v
    with pytest.raises(ValueError) as e:
        build_channels({"mail": ("email", opts)}, environ={"MONITOR_SMTP_PASSWORD": "x"})
    assert str(e.value).startswith(error)


@pytest.mark.parametrize("security,port", [("starttls", 587), ("tls", 465), ("none", 25)])
def test_build_channels_email_default_ports(security: str, port: int) -> None:
    opts = {"smtp_host": "127.0.0.1", "security": security, "from": SENDER, "to": "desk@example.org"}
    ch = build_channels({"mail": ("email", opts)}, environ={})["mail"]
    assert isinstance(ch, EmailChannel)
    assert (ch.smtp_port, ch.security, ch.to, ch.username) == (port, security, ["desk@example.org"], None)
