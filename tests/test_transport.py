"""The stack thread over real loopback sockets, with a recording core in place of SIP."""

from __future__ import annotations

import queue
import socket
from collections.abc import Iterator

import pytest

from firmware.sip.wire import Outgoing
from firmware.transport import Address, StackThread, parse_listen

TIMEOUT = 5.0


class RecordingCore:
    """Echoes every message back to its sender and records what the thread told it."""

    def __init__(self, local: Address) -> None:
        self.local = local
        self.received: queue.Queue[tuple[bytes, Address, str]] = queue.Queue()
        self.failures: queue.Queue[tuple[str, str, int]] = queue.Queue()
        self.lost: queue.Queue[Address] = queue.Queue()
        self.timer_fired: queue.Queue[float] = queue.Queue()
        self.deadline: float | None = None
        self.outgoing: list[Outgoing] = []

    def receive(self, data: bytes, source: Address, transport: str, now: float) -> None:
        self.received.put((data, source, transport))
        self.outgoing.append(
            Outgoing(transport=transport, host=source[0], port=source[1], data=b"echo " + data)
        )

    def transport_failed(self, transport: str, host: str, port: int, now: float) -> None:
        self.failures.put((transport, host, port))

    def connection_lost(self, peer: Address, now: float) -> None:
        self.lost.put(peer)

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.deadline = None
        self.timer_fired.put(now)

    def take_transmissions(self) -> list[Outgoing]:
        outgoing, self.outgoing = self.outgoing, []
        return outgoing


@pytest.fixture
def stack() -> Iterator[StackThread]:
    thread = StackThread(RecordingCore, "127.0.0.1:0")
    thread.start()
    yield thread
    thread.stop()
    assert not thread.alive


def _core(stack: StackThread) -> RecordingCore:
    assert isinstance(stack.core, RecordingCore)
    return stack.core


def test_listen_parsing() -> None:
    assert parse_listen("127.0.0.1:5070") == ("127.0.0.1", 5070)
    assert parse_listen("[::]:5060") == ("::", 5060)


def test_udp_and_tcp_share_the_ephemeral_port(stack: StackThread) -> None:
    host, port = stack.local_address
    assert port != 0
    with socket.create_connection((host, port), timeout=TIMEOUT):
        pass


def test_udp_datagram_reaches_the_core_and_the_reply_goes_back(stack: StackThread) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.settimeout(TIMEOUT)
        peer.bind(("127.0.0.1", 0))
        peer.sendto(b"hello", stack.local_address)
        data, source, transport = _core(stack).received.get(timeout=TIMEOUT)
        assert (data, source, transport) == (b"hello", peer.getsockname(), "udp")
        assert peer.recv(100) == b"echo hello"


def test_udp_keepalive_is_not_a_message(stack: StackThread) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.sendto(b"\r\n\r\n", stack.local_address)
        peer.sendto(b"after", stack.local_address)
        assert _core(stack).received.get(timeout=TIMEOUT)[0] == b"after"


def test_tcp_stream_is_framed_and_pinged(stack: StackThread) -> None:
    message = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 2\r\n\r\nhi"
    with socket.create_connection(stack.local_address, timeout=TIMEOUT) as peer:
        peer.sendall(b"\r\n\r\n" + message[:10])
        assert peer.recv(2) == b"\r\n"  # the pong to our ping
        peer.sendall(message[10:])
        data, _, transport = _core(stack).received.get(timeout=TIMEOUT)
        assert (data, transport) == (message, "tcp")
        expected = b"echo " + message
        reply = b""
        while len(reply) < len(expected):
            reply += peer.recv(4096)
        assert reply == expected


def test_malformed_stream_is_closed(stack: StackThread) -> None:
    with socket.create_connection(stack.local_address, timeout=TIMEOUT) as peer:
        peer.sendall(b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n")  # no Content-Length on TCP
        assert peer.recv(100) == b""
        assert _core(stack).lost.get(timeout=TIMEOUT) == peer.getsockname()


def test_a_peer_closing_its_stream_is_reported(stack: StackThread) -> None:
    with socket.create_connection(stack.local_address, timeout=TIMEOUT) as peer:
        me = peer.getsockname()
        peer.sendall(b"\r\n\r\n")
        assert peer.recv(2) == b"\r\n"
    assert _core(stack).lost.get(timeout=TIMEOUT) == me


def test_timer_fires_at_the_core_deadline(stack: StackThread) -> None:
    def arm(now: float) -> float:
        _core(stack).deadline = now + 0.05
        return now

    armed_at = stack.call(arm)
    fired_at = _core(stack).timer_fired.get(timeout=TIMEOUT)
    assert fired_at >= armed_at + 0.05


def test_call_returns_results_and_exceptions(stack: StackThread) -> None:
    assert stack.call(lambda now: 42) == 42

    def fail(now: float) -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        stack.call(fail)
    assert stack.call(lambda now: "still running") == "still running"


def test_names_are_resolved_off_thread(stack: StackThread) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.settimeout(TIMEOUT)
        peer.bind(("127.0.0.1", 0))
        port = peer.getsockname()[1]

        def send(now: float) -> None:
            _core(stack).outgoing.append(
                Outgoing(transport="udp", host="localhost", port=port, data=b"by name")
            )

        stack.post(send)
        assert peer.recv(100) == b"by name"


def test_unresolvable_name_is_a_transport_failure(stack: StackThread) -> None:
    def send(now: float) -> None:
        _core(stack).outgoing.append(
            Outgoing(transport="udp", host="no-such-host.invalid", port=5060, data=b"x")
        )

    stack.post(send)
    assert _core(stack).failures.get(timeout=TIMEOUT) == ("udp", "no-such-host.invalid", 5060)


def test_refused_tcp_connection_is_a_transport_failure(stack: StackThread) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connect is refused

        def send(now: float) -> None:
            _core(stack).outgoing.append(
                Outgoing(transport="tcp", host="127.0.0.1", port=port, data=b"x")
            )

        stack.post(send)
        assert _core(stack).failures.get(timeout=TIMEOUT) == ("tcp", "127.0.0.1", port)


def test_dual_stack_listen_serves_ipv4_and_ipv6() -> None:
    thread = StackThread(RecordingCore, "[::]:0")
    thread.start()
    try:
        port = thread.local_address[1]
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family, socket.SOCK_DGRAM) as peer:
                peer.settimeout(TIMEOUT)
                peer.bind((host, 0))
                peer.sendto(b"ping", (host, port))
                assert peer.recv(100) == b"echo ping"
    finally:
        thread.stop()
