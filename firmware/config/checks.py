"""Checks for setting values: each returns the value to store or raises ValueError(message).

Messages say what was expected and show the offending value (shortened), because they end up
after `FILE:LINE: key.path:` on an installer's terminal.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

from firmware.sip.errors import ParseError
from firmware.sip.uri import parse_uri

_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNIX_PATH_MAX = 107
"""sun_path is 108 bytes on Linux, including the terminating NUL."""


def show(value: object) -> str:
    """repr() of a value, cut short so one bad value cannot flood a line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def split_host_port(text: str) -> tuple[str, int]:
    """Split 'host:port', '[ipv6]:port' into host (without brackets) and port.

    The host is an IPv4 address, a bracketed IPv6 address or a DNS name; the port is 0-65535.
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"not a host:port: {show(text)} (no closing ']')")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not a host:port: {show(text)} (bad IPv6 address)") from None
        colon, port_text = rest[:1], rest[1:]
        if colon != ":":
            raise ValueError(f"not a host:port: {show(text)} (no ':port' after ']')")
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise ValueError(f"not a host:port: {show(text)} (no ':port', e.g. '0.0.0.0:5060')")
        if ":" in host:
            raise ValueError(f"not a host:port: {show(text)} (write IPv6 as '[::1]:5060')")
        _check_host(host, text)
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise ValueError(f"not a host:port: {show(text)} (port must be 0-65535)")
    return host, int(port_text)


def _check_host(host: str, text: str) -> None:
    labels = host.split(".")
    if all(label.isascii() and label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"not a host:port: {show(text)} (bad IPv4 address)") from None
        return
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"not a host:port: {show(text)} (bad host name)")


def host_port(text: str) -> str:
    split_host_port(text)
    return text


def network(text: str) -> str:
    """An IPv4 or IPv6 network in CIDR notation; a bare address is a /32 or /128."""
    try:
        ipaddress.ip_network(text)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"not a CIDR network: {show(text)}") from None
        raise ValueError(
            f"not a CIDR network: {show(text)} (host bits set; did you mean '{loose}'?)"
        ) from None
    return text


def sip_uri(text: str) -> str:
    """A sip: or sips: URI."""
    try:
        uri = parse_uri(text)
    except ParseError:
        raise ValueError(f"not a SIP URI: {show(text)}") from None
    if uri.scheme not in ("sip", "sips"):
        raise ValueError(f"not a SIP URI: {show(text)} (expected sip: or sips:)")
    return text


def address_of_record(text: str) -> str:
    """A sip: or sips: URI with a user part, as an account registers it."""
    sip_uri(text)
    if parse_uri(text).user is None:
        raise ValueError(f"not a SIP URI with a user: {show(text)} (e.g. 'sip:1001@pbx.example')")
    return text


def header_text(text: str) -> str:
    """Text that goes into a SIP header: no control characters (they would split it)."""
    if _CONTROL.search(text):
        raise ValueError(f"control characters are not allowed: {show(text)}")
    return text


def nonempty_header_text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return header_text(text)


def nonempty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def unix_socket_path(path: Path) -> Path:
    size = len(bytes(path))
    if size > _UNIX_PATH_MAX:
        raise ValueError(
            f"too long for a unix socket path ({size} bytes, at most {_UNIX_PATH_MAX})"
        )
    return path


def between(low: float, high: float, unit: str = "") -> Callable[[float], float]:
    """A number in [low, high]; `unit` is named in the message."""
    suffix = f" {unit}" if unit else ""

    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}{suffix}, got {show(value)}")
        return value

    return check
