"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), and a test CA.

The server records every message with its envelope, and answers as a test
scripts it: a reply for MAIL, for given recipients, or for DATA (421, 451,
550, 554...), AUTH against a dict of users, STARTTLS or implicit TLS with a
certificate from `LocalCA` (made here with `cryptography`, nothing on disk
outside the test's tmp_path).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates ---------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _sans(dns: Sequence[str], ips: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    return x509.SubjectAlternativeName(names)


def _leaf(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    dns: Sequence[str],
    ips: Sequence[str],
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_sans(dns, ips), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _server_context(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> ssl.SSLContext:
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem_key(key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


class LocalCA:
    """A certificate authority for one test: server certificates for
    127.0.0.1 / localhost, and a client context (or a CA file) trusting it."""

    def __init__(self, directory: Path, name: str = "news-monitor test CA") -> None:
        self.directory = directory
        self.key = _key()
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.ca_file = directory / "test-ca.pem"
        self.ca_file.write_bytes(self.pem)
        self._n = 0

    def server_context(
        self, dns: Sequence[str] = ("localhost",), ips: Sequence[str] = ("127.0.0.1",)
    ) -> ssl.SSLContext:
        """A server context whose certificate this CA signed for these names."""
        self._n += 1
        key = _key()
        cert = _leaf(dns[0] if dns else "server", key, self.cert.subject, self.key, dns, ips)
        return _server_context(self.directory, f"server{self._n}", cert, key)

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting this CA only, checking host names."""
        return ssl.create_default_context(cadata=self.pem.decode("ascii"))


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server context whose certificate names 127.0.0.1 but nobody vouches for."""
    key = _key()
    cert = _leaf("127.0.0.1", key, _name("127.0.0.1"), key, ["localhost"], ["127.0.0.1"])
    return _server_context(directory, "self-signed", cert, key)


# The SMTP server ------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None  # the user who logged in, if any


@dataclass
class Script:
    """Replies to give instead of accepting; None accepts."""

    mail: str | None = None  # e.g. "421 4.3.2 Service shutting down"
    rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply, e.g. "550 5.1.1 No such user"
    data: str | None = None  # e.g. "554 5.7.1 Rejected as spam"
    auth: str | None = None  # e.g. "454 4.7.0 Temporary authentication failure"


class Recorder:
    """The aiosmtpd handler: records messages, follows the script."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.script = Script()
        self.auth_attempts: list[tuple[str, str]] = []
        self.mail_commands = 0

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.mail_commands += 1
        if self.script.mail:
            return self.script.mail
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if reply := self.script.rcpt.get(address):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.script.data:
            return self.script.data
        auth = session.auth_data
        self.messages.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=bytes(envelope.original_content or envelope.content),
                tls=session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None,
                login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class _Controller(Controller):
    """A Controller on a socket bound to an ephemeral port before starting
    (aiosmtpd's own needs a fixed port)."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **kwargs)

    def factory(self) -> Any:
        # SMTPS is TLS too, but aiosmtpd warns about AUTH without STARTTLS.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return super().factory()  # type: ignore[no-untyped-call]

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class SMTPServer:
    """An SMTP server on 127.0.0.1.

    starttls: a server context offered through STARTTLS; implicit_tls: a
    server context for SMTPS (TLS from the first byte); users: required
    logins (AUTH PLAIN/LOGIN, only after TLS)."""

    def __init__(
        self,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.handler = Recorder()
        self.users = users
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.host = "127.0.0.1"
        self.port: int = sock.getsockname()[1]
        kwargs: dict[str, Any] = {"server_hostname": "localhost", "ssl_context": implicit_tls}
        if starttls is not None:
            kwargs["tls_context"] = starttls
        if users is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # aiosmtpd counts only STARTTLS as TLS; SMTPS is TLS too.
                auth_require_tls=implicit_tls is None,
            )
        self.controller = _Controller(self.handler, sock, **kwargs)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.handler.auth_attempts.append((login, password))
        if self.handler.script.auth:
            return AuthResult(success=False, handled=False, message=self.handler.script.auth)
        if self.users is not None and self.users.get(login) == password:
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def script(self) -> Script:
        return self.handler.script

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def silent_port() -> tuple[socket.socket, int]:
    """A listening socket that never accepts: connections open, no greeting
    ever comes (a hung server). Close the socket when done."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, sock.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port
