"""Which addresses the fetcher may connect to, and the connection itself.

Feeds and the pages they link to are chosen by strangers: a feed entry
pointing at `http://169.254.169.254/` or `http://localhost:6379/` must not
make us a proxy into the user's network (SSRF). Every TCP connection of
every fetch (each redirect hop included) goes through
`monitor.transport.GuardedBackend`, which resolves the host once, refuses it if any address is private,
loopback, link-local, CGNAT, multicast, reserved or unspecified (IPv4-mapped,
NAT64 and 6to4 forms included) unless the user allowed that network in
`[fetch] allow_private`, and then connects to the very address it checked,
so a DNS answer that changes between check and connect (rebinding) cannot
switch it. Numeric host forms that resolvers accept (`2130706433`,
`0x7f.1`, `127.1`) are decoded here, without DNS, and checked the same way.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")
# Not global, though Python 3.11's tables do not say so: site-local and documentation.
_EXTRA_NON_PUBLIC = [ipaddress.ip_network("fec0::/10"), ipaddress.ip_network("3fff::/20")]


class BlockedDestination(Exception):
    pass


class ResolveError(Exception):
    pass


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def numeric_host(host: str) -> IPAddress | None:
    """The address a host written as a number stands for, decoded without DNS."""
    host = host.strip("[]").split("%")[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:  # inet_aton takes 127.1, 0x7f.0.0.1, 2130706433: what resolvers accept
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _6TO4:
        return ip.sixtofour
    return None


def is_public(ip: IPAddress) -> bool:
    inner = embedded_ipv4(ip)
    if inner is not None:
        return is_public(inner)
    if any(ip in net for net in _EXTRA_NON_PUBLIC):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_link_local)


class NetGuard:
    def __init__(self, allow_private: Iterable[str] = (), resolver: Resolver = system_resolver) -> None:
        self.allowed: list[IPNetwork] = [ipaddress.ip_network(c, strict=False) for c in allow_private]
        self.resolver = resolver

    def permitted(self, ip: IPAddress) -> bool:
        return is_public(ip) or any(ip in net for net in self.allowed)

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of `host`, all checked; BlockedDestination if any is refused."""
        literal = numeric_host(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [ipaddress.ip_address(a.split("%")[0]) for a in self.resolver(host, port)]
            except (OSError, UnicodeError, ValueError) as exc:
                raise ResolveError(f"cannot resolve {host}: {exc}") from None
            if not addresses:
                raise ResolveError(f"cannot resolve {host}: no address")
        for ip in addresses:
            if not self.permitted(ip):
                raise BlockedDestination(
                    f"{host} resolves to {ip}, a private or reserved address (allow it with [fetch] allow_private)"
                )
        return addresses
