"""The control socket: JSON lines over a Unix socket, for tests, scripts and home automation.

A request `{"id": ANY, "cmd": NAME, ...}` gets `{"id": ANY, "ok": true, ...}` or
`{"id": ANY, "ok": false, "error": TEXT}`; a line that is not a JSON object, or that has no
`cmd`, gets `{"id": null, "ok": false, ...}`. Every client also receives every event as
`{"event": NAME, ...}`. The server runs on its own thread so that a slow or hostile client
never stalls the SIP stack: commands reach the stack through the handler, which posts them
to the stack's queue, and events come back through `publish`, which only queues.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import selectors
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("deskphone.control")

MAX_LINE = 64 * 1024
"""A request longer than this is refused and the client disconnected: lines are small."""
MAX_BACKLOG = 1024 * 1024
"""A client that lets this much output pile up is disconnected rather than buffered forever."""


class CommandError(Exception):
    """A command that cannot be carried out; its text is the `error` of the reply."""


class UnknownCommand(CommandError):
    """Answered with `id: null`, as the control socket's contract has it."""


CommandHandler = Callable[[str, dict[str, Any]], dict[str, Any]]
"""Called on the control thread with the command name and the request's fields."""


class _Client:
    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.inbox = bytearray()
        self.outbox = bytearray()


class ControlServer:
    """Serves one Unix socket path until `close()`."""

    def __init__(self, path: Path, handler: CommandHandler) -> None:
        self.path = path
        self._handler = handler
        self._selector = selectors.DefaultSelector()
        self._events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._listener = self._bind(path)
        self._clients: dict[socket.socket, _Client] = {}
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)

    @staticmethod
    def _bind(path: Path) -> socket.socket:
        """Listen first, then rename into place: a client that sees the path can connect."""
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise FileExistsError(errno.EEXIST, "not a socket; not replacing it", str(path))
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(staging))
            os.chmod(staging, 0o660)
            listener.listen(8)
            os.replace(staging, path)  # replaces a stale socket from an earlier run
        except OSError:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            raise
        listener.setblocking(False)
        return listener

    def start(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._thread.start()

    def publish(self, event: str, **fields: Any) -> None:
        """Send an event to every client; safe to call from any thread."""
        self._events.put({"event": event, **fields})
        self._wake()

    def close(self) -> None:
        self._closing = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_writer.send(b"\0")

    def _serve(self) -> None:
        try:
            while not self._closing:
                for key, mask in self._selector.select():
                    self._dispatch(key.fileobj, mask)  # type: ignore[arg-type]
                self._flush_events()
        finally:
            for client in list(self._clients.values()):
                self._drop(client)
            self._selector.close()
            self._listener.close()
            self._wake_reader.close()
            self._wake_writer.close()

    def _dispatch(self, fileobj: socket.socket, mask: int) -> None:
        if fileobj is self._listener:
            self._accept()
        elif fileobj is self._wake_reader:
            with contextlib.suppress(BlockingIOError):
                self._wake_reader.recv(4096)
        else:
            client = self._clients.get(fileobj)
            if client is None:
                return
            if mask & selectors.EVENT_READ:
                self._read(client)
            if mask & selectors.EVENT_WRITE and fileobj in self._clients:
                self._write(client)

    def _accept(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except BlockingIOError:
            return
        connection.setblocking(False)
        client = _Client(connection)
        self._clients[connection] = client
        self._selector.register(connection, selectors.EVENT_READ)

    def _read(self, client: _Client) -> None:
        try:
            data = client.connection.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.inbox += data
        while (end := client.inbox.find(b"\n")) >= 0:
            line = bytes(client.inbox[:end])
            del client.inbox[: end + 1]
            if line.strip():
                self._send(client, self._answer(line))
        if len(client.inbox) > MAX_LINE:
            self._send(client, {"id": None, "ok": False, "error": "request line too long"})
            self._write(client)
            self._drop(client)

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return {"id": None, "ok": False, "error": f"bad JSON: {error}"}
        if not isinstance(request, dict):
            return {"id": None, "ok": False, "error": "a request is a JSON object"}
        request_id = request.pop("id", None)
        command = request.pop("cmd", None)
        if not isinstance(command, str):
            return {"id": None, "ok": False, "error": "missing 'cmd'"}
        try:
            result = self._handler(command, request)
        except UnknownCommand as error:
            return {"id": None, "ok": False, "error": str(error)}
        except CommandError as error:
            return {"id": request_id, "ok": False, "error": str(error)}
        except Exception:  # a bug in one command must not take the socket down
            log.exception("control command %r failed", command)
            return {"id": request_id, "ok": False, "error": f"internal error in {command!r}"}
        return {"id": request_id, "ok": True, **result}

    def _flush_events(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            for client in list(self._clients.values()):
                self._send(client, event)

    def _send(self, client: _Client, message: dict[str, Any]) -> None:
        client.outbox += json.dumps(message, separators=(",", ":")).encode() + b"\n"
        if len(client.outbox) > MAX_BACKLOG:
            log.warning("control client not reading; disconnected")
            self._drop(client)
            return
        self._write(client)

    def _write(self, client: _Client) -> None:
        try:
            sent = client.connection.send(client.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(client)
            return
        del client.outbox[:sent]
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbox else 0)
        self._selector.modify(client.connection, wanted)

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.connection, None) is None:
            return
        self._selector.unregister(client.connection)
        client.connection.close()
