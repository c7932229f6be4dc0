"""The stack thread: sockets, a selector, a command queue with a wake-up, and the core's timers.

This is the only place where SIP meets the operating system. The pure core hands it
`Outgoing`s and a next deadline; it hands the core datagrams, stream messages and the time.
It never polls: it sleeps in `select()` until a socket is readable, a command is queued
(the wake-up socket) or the core's next deadline comes. Name resolution runs on a helper
thread, so a slow DNS server delays only the messages bound for that name.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from firmware.netwatch import drain, open_change_monitor
from firmware.sip.errors import ParseError
from firmware.sip.framing import KEEPALIVE_PING, KEEPALIVE_PONG, StreamFramer
from firmware.sip.wire import Outgoing

log = logging.getLogger("deskphone.transport")

Address = tuple[str, int]
MAX_DATAGRAM = 65535
RESOLVE_TTL = 300.0
"""Seconds a resolved name is kept; the PBX may move, and re-registration follows it."""
T = TypeVar("T")


class Core(Protocol):
    """What the stack thread needs of the pure SIP core."""

    def receive(self, data: bytes, source: Address, transport: str, now: float) -> None: ...

    def transport_failed(self, transport: str, host: str, port: int, now: float) -> None: ...

    def connection_lost(self, peer: Address, now: float) -> None: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def take_transmissions(self) -> list[Outgoing]: ...


@dataclass(slots=True)
class _Stream:
    connection: socket.socket
    peer: Address
    framer: StreamFramer
    connected: bool
    outbox: bytearray = field(default_factory=bytearray)


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`, as `sip.listen` has it (validated by the config already)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class StackThread:
    """Owns the sockets and the core; everything else talks to it through `call`/`post`."""

    def __init__(
        self,
        core_factory: Callable[[Address], Core],
        listen: str,
        *,
        after_step: Callable[[], None] = lambda: None,
        on_network_change: Callable[[float], None] | None = None,
    ) -> None:
        host, port = parse_listen(listen)
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        for end in (self._wake_reader, self._wake_writer):
            end.setblocking(False)
        self._udp, self._tcp = _bind_pair(host, port)
        self.local_address: Address = self._udp.getsockname()[:2]
        self.core = core_factory(self.local_address)
        self._after_step = after_step
        self._on_network_change = on_network_change
        self._network_monitor = open_change_monitor() if on_network_change else None
        self.trace = False
        self._commands: queue.SimpleQueue[Callable[[float], None]] = queue.SimpleQueue()
        self._streams: dict[Address, _Stream] = {}
        self._by_socket: dict[socket.socket, _Stream] = {}
        self._resolved: dict[str, tuple[str, float]] = {}
        self._awaiting_resolution: dict[str, list[Outgoing]] = {}
        self._resolver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resolver")
        self._stopping = False
        self.heartbeat = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="sip-stack", daemon=True)

    # -- other threads -------------------------------------------------------------------
    def start(self) -> None:
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._selector.register(self._udp, selectors.EVENT_READ)
        self._selector.register(self._tcp, selectors.EVENT_READ)
        if self._network_monitor is not None:
            self._selector.register(self._network_monitor, selectors.EVENT_READ)
        self._thread.start()

    def post(self, command: Callable[[float], None]) -> None:
        """Run `command(now)` on the stack thread."""
        self._commands.put(command)
        self._wake()

    def call(self, command: Callable[[float], T], timeout: float = 5.0) -> T:
        """Run `command(now)` on the stack thread and wait for its result."""
        result: Future[T] = Future()

        def run(now: float) -> None:
            try:
                result.set_result(command(now))
            except Exception as error:  # noqa: BLE001 - handed back to the caller's thread
                result.set_exception(error)

        self.post(run)
        return result.result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._resolver.shutdown(wait=False, cancel_futures=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")

    # -- the stack thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping:
                self._step()
        finally:
            self._close_all()

    def _step(self) -> None:
        now = time.monotonic()
        deadline = self.core.get_timer()
        timeout = None if deadline is None else max(0.0, deadline - now)
        ready = self._selector.select(timeout)
        now = time.monotonic()
        self.heartbeat = now
        for key, mask in ready:
            self._on_ready(key.fileobj, mask, now)  # type: ignore[arg-type]
        self._run_commands(now)
        deadline = self.core.get_timer()
        if deadline is not None and deadline <= now:
            self.core.handle_timer(now)
        self._flush(now)
        self._after_step()

    def _run_commands(self, now: float) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command(now)

    def _on_ready(self, fileobj: socket.socket, mask: int, now: float) -> None:
        if fileobj is self._wake_reader:
            with contextlib.suppress(BlockingIOError):
                self._wake_reader.recv(4096)
        elif fileobj is self._udp:
            self._read_datagrams(now)
        elif fileobj is self._tcp:
            self._accept(now)
        elif fileobj is self._network_monitor:
            if drain(fileobj) and self._on_network_change is not None:
                self._on_network_change(now)
        else:
            stream = self._by_socket.get(fileobj)
            if stream is None:
                return
            if mask & selectors.EVENT_WRITE:
                self._write_stream(stream, now)
            if mask & selectors.EVENT_READ and stream.connection in self._by_socket:
                self._read_stream(stream, now)

    def _read_datagrams(self, now: float) -> None:
        for _ in range(64):  # bounded, so a flood cannot starve timers and commands
            try:
                data, source = self._udp.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # ICMP port unreachable from an earlier send, on Linux
                log.debug("UDP receive error: %s", error)
                continue
            if data.strip(b"\r\n") == b"":
                continue  # RFC 5626 keep-alive: nothing to answer on UDP
            self._deliver(data, _address(source), "udp", now)

    def _deliver(self, data: bytes, peer: Address, transport: str, now: float) -> None:
        if self.trace:
            log.info("received from %s/%s:%d:\n%s", transport, *peer, _printable(data))
        self.core.receive(data, peer, transport, now)

    def _accept(self, now: float) -> None:
        try:
            connection, peer = self._tcp.accept()
        except (BlockingIOError, InterruptedError):
            return
        connection.setblocking(False)
        stream = _Stream(connection, _address(peer), StreamFramer(), connected=True)
        self._register_stream(stream)

    def _register_stream(self, stream: _Stream) -> None:
        old = self._streams.get(stream.peer)
        if old is not None:
            self._close_stream(old)
        self._streams[stream.peer] = stream
        self._by_socket[stream.connection] = stream
        events = selectors.EVENT_READ | (0 if stream.connected else selectors.EVENT_WRITE)
        self._selector.register(stream.connection, events)

    def _read_stream(self, stream: _Stream, now: float) -> None:
        try:
            data = stream.connection.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_stream(stream)
            self.core.connection_lost(stream.peer, now)
            return
        try:
            items = stream.framer.feed(data)
        except ParseError as error:
            log.info("closing TCP stream from %s:%d: %s", *stream.peer, error)
            self._close_stream(stream)
            self.core.connection_lost(stream.peer, now)
            return
        for item in items:
            if item is KEEPALIVE_PING:
                stream.outbox += KEEPALIVE_PONG  # RFC 5626 §4.4.1
                self._write_stream(stream, now)
            elif item is not KEEPALIVE_PONG:
                self._deliver(item, stream.peer, "tcp", now)

    def _write_stream(self, stream: _Stream, now: float) -> None:
        if not stream.connected:
            failure = stream.connection.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if failure:
                log.info(
                    "TCP connect to %s:%d failed: %s", *stream.peer, errno.errorcode.get(failure)
                )
                self._close_stream(stream)
                self.core.transport_failed("tcp", stream.peer[0], stream.peer[1], now)
                return
            stream.connected = True
        try:
            sent = stream.connection.send(stream.outbox) if stream.outbox else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close_stream(stream)
            self.core.transport_failed("tcp", stream.peer[0], stream.peer[1], now)
            self.core.connection_lost(stream.peer, now)
            return
        del stream.outbox[:sent]
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if stream.outbox else 0)
        self._selector.modify(stream.connection, wanted)

    def _close_stream(self, stream: _Stream) -> None:
        if self._by_socket.pop(stream.connection, None) is None:
            return
        if self._streams.get(stream.peer) is stream:
            del self._streams[stream.peer]
        self._selector.unregister(stream.connection)
        stream.connection.close()

    # -- sending -------------------------------------------------------------------------
    def _flush(self, now: float) -> None:
        for outgoing in self.core.take_transmissions():
            self._send(outgoing, now)

    def _send(self, outgoing: Outgoing, now: float) -> None:
        if self.trace:
            log.info(
                "sending to %s/%s:%d:\n%s",
                outgoing.transport,
                outgoing.host,
                outgoing.port,
                _printable(outgoing.data),
            )
        address = _literal_address(outgoing.host)
        if address is None:
            cached, expires = self._resolved.get(outgoing.host, (None, 0.0))
            address = cached if expires > now else None
        if address is None:
            self._resolve_then_send(outgoing)
            return
        if outgoing.transport == "udp":
            if self._udp.family == socket.AF_INET6 and ":" not in address:
                address = f"::ffff:{address}"  # IPv4 through the dual-stack socket
            try:
                self._udp.sendto(outgoing.data, (address, outgoing.port))
            except OSError as error:
                log.info("UDP send to %s:%d failed: %s", address, outgoing.port, error)
                self.core.transport_failed("udp", outgoing.host, outgoing.port, now)
        else:
            self._send_stream(address, outgoing, now)

    def _send_stream(self, address: str, outgoing: Outgoing, now: float) -> None:
        peer = (address, outgoing.port)
        stream = self._streams.get(peer)
        if stream is None:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            connection = socket.socket(family, socket.SOCK_STREAM)
            connection.setblocking(False)
            error = connection.connect_ex(peer)
            if error not in (0, errno.EINPROGRESS):
                connection.close()
                self.core.transport_failed("tcp", outgoing.host, outgoing.port, now)
                return
            stream = _Stream(connection, peer, StreamFramer(), connected=False)
            self._register_stream(stream)
        stream.outbox += outgoing.data
        if stream.connected:
            self._write_stream(stream, now)

    def _resolve_then_send(self, outgoing: Outgoing) -> None:
        waiting = self._awaiting_resolution.setdefault(outgoing.host, [])
        waiting.append(outgoing)
        if len(waiting) > 1:
            return  # a look-up for this name is already under way
        host = outgoing.host

        def deliver(done: Future[str | None]) -> None:
            self.post(lambda now: self._resolved_one(host, done, now))

        self._resolver.submit(_resolve, host, self._udp.family).add_done_callback(deliver)

    def _resolved_one(self, host: str, done: Future[str | None], now: float) -> None:
        address = None if done.cancelled() or done.exception() else done.result()
        waiting = self._awaiting_resolution.pop(host, [])
        if address is None:
            log.info("cannot resolve %s", host)
            for outgoing in waiting:
                self.core.transport_failed(outgoing.transport, host, outgoing.port, now)
            return
        self._resolved[host] = (address, now + RESOLVE_TTL)
        for outgoing in waiting:
            self._send(outgoing, now)

    def _close_all(self) -> None:
        for stream in list(self._by_socket.values()):
            self._close_stream(stream)
        for sock in (self._udp, self._tcp, self._wake_reader, self._wake_writer):
            sock.close()
        if self._network_monitor is not None:
            self._network_monitor.close()
        self._selector.close()


def _printable(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\r\n")


def _resolve(host: str, family: socket.AddressFamily) -> str | None:
    """An address our sockets can reach: IPv4 for an IPv4 socket (a name with both kinds of
    address lists IPv6 first), either for a dual-stack one."""
    wanted = socket.AF_INET if family == socket.AF_INET else socket.AF_UNSPEC
    try:
        infos = socket.getaddrinfo(host, None, wanted, socket.SOCK_DGRAM)
    except OSError:
        return None
    return str(infos[0][4][0]) if infos else None


def _literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _address(sockaddr: tuple[object, ...]) -> Address:
    return str(sockaddr[0]), int(str(sockaddr[1]))


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP on one port number; with port 0, retry until both get the same one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(20):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET6:
            for sock in (udp, tcp):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            udp.bind((host, port))
            tcp.bind((host, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue
        tcp.listen(16)
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {host}")
