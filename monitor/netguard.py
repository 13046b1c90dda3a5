"""Which addresses the fetcher may connect to.

Feeds and the pages they link to are chosen by strangers: a feed entry
pointing at `http://169.254.169.254/` or `http://localhost:6379/` must not
make us a proxy into the user's network (SSRF). Every hop of every fetch is
resolved and refused if any address is private, loopback, link-local,
multicast or reserved, unless the user allowed that network in
`[fetch] allow_private`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]


class BlockedDestination(Exception):
    pass


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_public(ip.ipv4_mapped)
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class NetGuard:
    def __init__(self, allow_private: Iterable[str] = (), resolver: Resolver = system_resolver) -> None:
        self.allowed: list[IPNetwork] = [ipaddress.ip_network(c, strict=False) for c in allow_private]
        self.resolver = resolver

    def permitted(self, ip: IPAddress) -> bool:
        return is_public(ip) or any(ip in net for net in self.allowed)

    def check(self, host: str, port: int) -> None:
        """Raise BlockedDestination unless every address of `host` is permitted."""
        host = host.strip("[]")
        try:
            addresses: Sequence[str] = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = self.resolver(host, port)
            except OSError as exc:
                raise OSError(f"cannot resolve {host}: {exc}") from exc
        for a in addresses:
            ip = ipaddress.ip_address(a.split("%")[0])
            if not self.permitted(ip):
                raise BlockedDestination(
                    f"{host} resolves to {ip}, a private or reserved address (allow it with [fetch] allow_private)"
                )
