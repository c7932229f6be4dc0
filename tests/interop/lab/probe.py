"""A SIP OPTIONS ping from a plain socket: the readiness test of every SIP peer in the lab."""

from __future__ import annotations

import secrets
import socket
import time
from typing import Literal

from tests.interop.lab.util import LOOPBACK, WaitTimeoutError

Transport = Literal["udp", "tcp"]

_RETRANSMIT = 0.25


def _options_request(host: str, port: int, transport: Transport, local_port: int) -> bytes:
    return (
        f"OPTIONS sip:{host}:{port};transport={transport} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport.upper()} {LOOPBACK}:{local_port}"
        f";branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{LOOPBACK}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}@{LOOPBACK}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "User-Agent: interop-lab-probe\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _call_id(message: bytes) -> str | None:
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("call-id", "i"):
            return value.strip()
    return None


def _final_status_line(message: bytes, call_id: str | None) -> str | None:
    status_line = message.split(b"\r\n", 1)[0].decode("utf-8", errors="replace")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit():
        return None
    if int(parts[1]) < 200 or _call_id(message) != call_id:
        return None
    return status_line


def options_ping(
    port: int,
    *,
    host: str = LOOPBACK,
    transport: Transport = "udp",
    timeout: float = 2.0,
) -> str:
    """Send OPTIONS to host:port and return the final response's status line.

    UDP retransmits every 250 ms until `timeout`; TCP sends once per connection. Raises
    WaitTimeoutError when nothing answers and OSError when a TCP connect is refused.
    """
    deadline = time.monotonic() + timeout
    if transport == "udp":
        return _ping_udp(host, port, deadline, timeout)
    return _ping_tcp(host, port, deadline, timeout)


def _ping_udp(host: str, port: int, deadline: float, timeout: float) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        request = _options_request(host, port, "udp", sock.getsockname()[1])
        call_id = _call_id(request)
        next_send = 0.0
        while (now := time.monotonic()) < deadline:
            if now >= next_send:
                sock.sendto(request, (host, port))
                next_send = now + _RETRANSMIT
            sock.settimeout(max(0.001, min(next_send, deadline) - now))
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                continue  # ICMP port unreachable: nobody bound yet; keep trying
            status = _final_status_line(data, call_id)
            if status is not None:
                return status
    raise WaitTimeoutError(f"no final answer to OPTIONS from {host}:{port}/udp in {timeout} s")


def _ping_tcp(host: str, port: int, deadline: float, timeout: float) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        request = _options_request(host, port, "tcp", sock.getsockname()[1])
        call_id = _call_id(request)
        sock.sendall(request)
        buffer = b""
        while (now := time.monotonic()) < deadline:
            sock.settimeout(deadline - now)
            try:
                chunk = sock.recv(65535)
            except TimeoutError:
                break
            if not chunk:
                break
            buffer += chunk
            while b"\r\n\r\n" in buffer:
                message, buffer = _split_stream_message(buffer)
                if message is None:
                    break
                status = _final_status_line(message, call_id)
                if status is not None:
                    return status
    raise WaitTimeoutError(f"no final answer to OPTIONS from {host}:{port}/tcp in {timeout} s")


def _split_stream_message(buffer: bytes) -> tuple[bytes | None, bytes]:
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            length = int(value.strip() or b"0")
    if len(rest) < length:
        return None, buffer
    return head + b"\r\n\r\n" + rest[:length], rest[length:]
