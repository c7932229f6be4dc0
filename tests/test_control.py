"""The control socket over a real Unix socket: replies, events, and hostile clients."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.control import CommandError, ControlServer, UnknownCommand

TIMEOUT = 5.0


def _handler(command: str, args: dict[str, Any]) -> dict[str, Any]:
    if command == "echo":
        return {"args": args}
    if command == "fail":
        raise CommandError("it failed")
    if command == "crash":
        raise RuntimeError("bug")
    raise UnknownCommand(f"unknown command {command!r}")


class Client:
    def __init__(self, path: Path) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.settimeout(TIMEOUT)
        self.socket.connect(str(path))
        self.reader = self.socket.makefile("rb")

    def send_line(self, line: bytes) -> None:
        self.socket.sendall(line + b"\n")

    def request(self, **fields: Any) -> dict[str, Any]:
        self.send_line(json.dumps(fields).encode())
        return self.receive()

    def receive(self) -> dict[str, Any]:
        line = self.reader.readline()
        assert line, "server closed the connection"
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> None:
        self.reader.close()
        self.socket.close()


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


@pytest.fixture
def server(socket_path: Path) -> Iterator[ControlServer]:
    control = ControlServer(socket_path, _handler)
    control.start()
    yield control
    control.close()


@pytest.fixture
def client(server: ControlServer) -> Iterator[Client]:
    connection = Client(server.path)
    yield connection
    connection.close()


def test_reply_carries_the_request_id(client: Client) -> None:
    reply = client.request(id="a1", cmd="echo", x=1)
    assert reply == {"id": "a1", "ok": True, "args": {"x": 1}}


def test_failed_command_reports_its_error(client: Client) -> None:
    assert client.request(id=7, cmd="fail") == {"id": 7, "ok": False, "error": "it failed"}


def test_unknown_command_gets_null_id_and_connection_stays(client: Client) -> None:
    reply = client.request(id=3, cmd="nope")
    assert reply == {"id": None, "ok": False, "error": "unknown command 'nope'"}
    assert client.request(id=4, cmd="echo")["ok"] is True


def test_bad_json_gets_null_id_and_connection_stays(client: Client) -> None:
    client.send_line(b"{not json")
    reply = client.receive()
    assert reply["id"] is None
    assert reply["ok"] is False
    assert reply["error"].startswith("bad JSON")
    client.send_line(b"[1, 2]")
    assert client.receive() == {"id": None, "ok": False, "error": "a request is a JSON object"}
    client.send_line(b'{"id": 9}')
    assert client.receive() == {"id": None, "ok": False, "error": "missing 'cmd'"}
    assert client.request(id=5, cmd="echo")["id"] == 5


def test_a_bug_in_a_command_is_an_error_reply_not_a_dead_socket(client: Client) -> None:
    assert client.request(id=1, cmd="crash") == {
        "id": 1,
        "ok": False,
        "error": "internal error in 'crash'",
    }
    assert client.request(id=2, cmd="echo")["ok"] is True


def test_events_reach_every_client(server: ControlServer, client: Client) -> None:
    other = Client(server.path)
    try:
        other.request(id=0, cmd="echo")  # the second client is surely accepted now
        server.publish("registered", account="sip:1001@lab.test")
        expected = {"event": "registered", "account": "sip:1001@lab.test"}
        assert client.receive() == expected
        assert other.receive() == expected
    finally:
        other.close()


def test_socket_mode_is_0660(server: ControlServer) -> None:
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o660


def test_stale_socket_is_replaced(socket_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()
    control = ControlServer(socket_path, _handler)
    control.start()
    try:
        connection = Client(socket_path)
        assert connection.request(id=1, cmd="echo")["ok"] is True
        connection.close()
    finally:
        control.close()
    assert not socket_path.exists()


def test_a_regular_file_in_the_way_is_not_deleted(socket_path: Path) -> None:
    socket_path.write_text("precious")
    with pytest.raises(OSError):
        ControlServer(socket_path, _handler)
    assert socket_path.read_text() == "precious"


def test_overlong_line_disconnects_that_client_only(server: ControlServer, client: Client) -> None:
    hog = Client(server.path)
    try:
        hog.socket.sendall(b"x" * (70 * 1024))
        assert hog.receive() == {"id": None, "ok": False, "error": "request line too long"}
        assert hog.reader.readline() == b""
    finally:
        hog.close()
    assert client.request(id=1, cmd="echo")["ok"] is True


def test_the_socket_is_listening_when_its_path_appears(server: ControlServer) -> None:
    assert [p.name for p in server.path.parent.iterdir()] == [server.path.name]  # no staging
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(server.path))  # refused if the path existed before listen()
    finally:
        probe.close()
