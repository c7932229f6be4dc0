"""Where a message goes or came from, as the pure core names it; the transport thread owns the
sockets behind these names.

A `Target` is what RFC 3263 resolution produces (transport, address, port). The core resolves
nothing: `Target.from_uri` only applies the defaults of RFC 3261 §19.1.2 to a URI whose host is
already an address, or leaves a name for the transport thread to resolve.
"""

from dataclasses import dataclass
from typing import NamedTuple

from firmware.sip.uri import Uri

TRANSPORTS = frozenset({"udp", "tcp", "tls"})
RELIABLE_TRANSPORTS = frozenset({"tcp", "tls"})

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


class Address(NamedTuple):
    """A host and a port: where a message came from, as the socket reported it (IPv6 with or
    without brackets; the core compares both spellings alike)."""

    host: str
    port: int


def check_transport(transport: str) -> str:
    """`transport` if it is one the stack speaks (lower case), else ValueError."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}; expected one of {sorted(TRANSPORTS)}")
    return transport


@dataclass(frozen=True, slots=True)
class Target:
    """The next hop of a message: transport (`udp`, `tcp`, `tls`), host and port.

    Over a reliable transport the transaction layer runs no retransmission timers and sets
    Timers D, I, J and K to zero (RFC 3261 §17).
    """

    transport: str
    host: str
    port: int

    def __post_init__(self) -> None:
        check_transport(self.transport)
        if not self.host:
            raise ValueError("a target needs a host")
        if not 0 < self.port < 65536:
            raise ValueError(f"port out of range: {self.port}")

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    @property
    def address(self) -> Address:
        return Address(self.host, self.port)

    @property
    def via_transport(self) -> str:
        """The transport as a Via writes it (`UDP`, `TCP`, `TLS`)."""
        return self.transport.upper()

    @classmethod
    def from_uri(cls, uri: Uri) -> "Target":
        """The target a SIP or SIPS URI names before any DNS lookup (§19.1.2, RFC 3263 §4.1
        with an explicit or numeric host): `maddr` overrides the host, `transport` picks the
        transport (TLS for `sips:`, else UDP), the port defaults per transport."""
        if not uri.is_sip:
            raise ValueError(f"cannot send to a {uri.scheme}: URI")
        transport = uri.transport or ("tls" if uri.scheme == "sips" else "udp")
        return cls(
            check_transport(transport),
            uri.param("maddr") or uri.host,
            uri.port or DEFAULT_PORTS[transport],
        )
