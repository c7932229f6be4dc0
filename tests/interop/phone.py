"""The real firmware as a process, driven through its control socket like home automation.

`Phone` starts `python -m firmware run --sim` with a YAML file written from a dict, connects
to the control socket, and collects every event on a reader thread so tests wait on the
event stream with a timeout — never on a sleep.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.interop.lab.kamailio import Kamailio
from tests.interop.lab.util import wait_until

Event = dict[str, Any]
START_TIMEOUT = 15.0


class Phone:
    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config_path = workdir / "deskphone.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.control_path = workdir / "control.sock"
        self.log_path = workdir / "phone.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "firmware",
                "run",
                "--sim",
                "--config",
                str(self.config_path),
                "--control",
                str(self.control_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        wait_until(
            lambda: self.control_path.exists() or self.process.poll() is not None,
            START_TIMEOUT,
            message="control socket to appear",
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"phone exited with {self.process.returncode}: {self.log_tail()}")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.connect(str(self.control_path))
        self._reader = self._socket.makefile("rb")
        self._replies: queue.Queue[Event] = queue.Queue()
        self.events: list[Event] = []
        self._events_changed = threading.Condition()
        self._seen = 0
        self._next_id = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._reader:
            message = json.loads(line)
            if "event" in message:
                with self._events_changed:
                    self.events.append(message)
                    self._events_changed.notify_all()
            else:
                self._replies.put(message)

    def command(self, cmd: str, timeout: float = 10.0, **fields: Any) -> Event:
        self._next_id += 1
        request = {"id": self._next_id, "cmd": cmd, **fields}
        self._socket.sendall(json.dumps(request).encode() + b"\n")
        reply = self._replies.get(timeout=timeout)
        assert reply.get("id") in (self._next_id, None), reply
        return reply

    def wait_event(
        self, name: str, timeout: float = 10.0, where: Callable[[Event], bool] = lambda e: True
    ) -> Event:
        """The first event named `name` matching `where`, after those already returned."""
        deadline = time.monotonic() + timeout

        def found() -> Event | None:
            for index in range(self._seen, len(self.events)):
                event = self.events[index]
                if event["event"] == name and where(event):
                    self._seen = index + 1
                    return event
            return None

        with self._events_changed:
            result = found()
            while result is None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._events_changed.wait(left):
                    raise AssertionError(
                        f"no {name!r} event within {timeout} s; events: {self.events}\n"
                        f"{self.log_tail()}"
                    )
                result = found()
        return result

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Registered already when we connected (the status says so), or an event says so.

        Events are recorded from the moment of connecting, so nothing falls between the two.
        """
        accounts = self.command("status")["accounts"]
        if not all(account["state"] == "registered" for account in accounts):
            self.wait_event("registered", timeout)

    def count_events(self, name: str) -> int:
        with self._events_changed:
            return sum(1 for event in self.events if event["event"] == name)

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._socket.close()
        self._log.close()
        return self.process.returncode


FAST_TIMERS = {"t1": 0.1, "t2": 0.4, "t4": 0.5}


def phone_config(
    kamailio: Kamailio, *, password: str = "pass1001", transport: str = "udp", **sip: Any
) -> dict[str, Any]:
    registrar = kamailio.registrar_uri + (";transport=tcp" if transport == "tcp" else "")
    return {
        "sip": {
            "listen": "127.0.0.1:0",
            "trusted": [],
            "timers": FAST_TIMERS,
            "register_retry_min": 1,
            "register_retry_max": 4,
            "keepalive_interval": 5,
            "accounts": [
                {"uri": kamailio.aor("1001"), "password": password, "registrar": registrar}
            ],
            **sip,
        },
        "log": {"level": "debug"},
    }
