"""Headless baresip as the far-end phone, driven over ctrl_tcp (netstring-framed JSON).

No sound card: the source is a WAV file (aufile), the sink the in-process aubridge, and the
sndfile filter records both directions under `<workdir>/rec`. Everything is pinned to
127.0.0.1, including the DNS server, so no query leaves loopback. (baresip 1.0's DNS client
still binds two idle wildcard UDP sockets on ephemeral ports; it sends nothing from them.)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from tests.interop.lab.audio import write_tone_wav
from tests.interop.lab.kamailio import LAB_DOMAIN
from tests.interop.lab.ports import free_port, free_port_block
from tests.interop.lab.util import (
    LOOPBACK,
    LabError,
    ToolMissingError,
    WaitTimeoutError,
    end_process,
    find_tool,
    process_has_socket,
    spawn,
    tail,
    wait_until,
)

MODULE_PATH = Path("/usr/lib/baresip/modules")
RTP_PORT_COUNT = 10
_START_ATTEMPTS = 3
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class BaresipEvent:
    """One ctrl_tcp event (REGISTER_OK, CALL_INCOMING, CALL_ESTABLISHED, CALL_CLOSED, ...)."""

    type: str
    klass: str
    account: str | None
    direction: str | None
    peer: str | None
    call_id: str | None
    param: str | None
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, message: Mapping[str, Any]) -> BaresipEvent:
        def text(key: str) -> str | None:
            value = message.get(key)
            return None if value is None else str(value)

        return cls(
            type=str(message.get("type", "")),
            klass=str(message.get("class", "")),
            account=text("accountaor"),
            direction=text("direction"),
            peer=text("peeruri"),
            call_id=text("id"),
            param=text("param"),
            raw=dict(message),
        )


@dataclass(frozen=True)
class BaresipResponse:
    """A command's answer: `ok` and the text baresip's menu would have printed."""

    ok: bool
    data: str


EventMatch = str | Callable[[BaresipEvent], bool]


def netstring(payload: bytes) -> bytes:
    """ctrl_tcp framing: b"<length>:<payload>,"."""
    return str(len(payload)).encode() + b":" + payload + b","


class CtrlClient:
    """The ctrl_tcp connection: a reader thread files responses by token and queues events."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self._sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self._sock.settimeout(None)
        self._changed = threading.Condition()
        self._responses: dict[str, BaresipResponse] = {}
        self._events: list[BaresipEvent] = []
        self._consumed: set[int] = set()
        self._closed = False
        self._tokens = itertools.count(1)
        self._reader = threading.Thread(target=self._read_loop, name=f"bsctl-{port}", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        buffer = b""
        try:
            while chunk := self._sock.recv(65536):
                buffer += chunk
                while True:
                    length_text, colon, rest = buffer.partition(b":")
                    if not colon or len(rest) < int(length_text) + 1:
                        break
                    length = int(length_text)
                    self._dispatch(json.loads(rest[:length]))
                    buffer = rest[length + 1 :]
        except OSError:
            pass
        finally:
            with self._changed:
                self._closed = True
                self._changed.notify_all()

    def _dispatch(self, message: Mapping[str, Any]) -> None:
        with self._changed:
            if message.get("event"):
                self._events.append(BaresipEvent.from_json(message))
            elif message.get("response"):
                token = str(message.get("token"))
                self._responses[token] = BaresipResponse(
                    bool(message.get("ok")), str(message.get("data", ""))
                )
            self._changed.notify_all()

    def command(
        self, command: str, params: str | None = None, timeout: float = 5.0
    ) -> BaresipResponse:
        token = f"t{next(self._tokens)}"
        request: dict[str, str] = {"command": command, "token": token}
        if params is not None:
            request["params"] = params
        self._sock.sendall(netstring(json.dumps(request).encode()))
        with self._changed:
            if (
                not self._changed.wait_for(
                    lambda: token in self._responses or self._closed, timeout
                )
                or token not in self._responses
            ):
                raise WaitTimeoutError(f"baresip gave no answer to {command!r} in {timeout} s")
            return self._responses.pop(token)

    @property
    def events(self) -> list[BaresipEvent]:
        with self._changed:
            return list(self._events)

    def wait_event(self, match: EventMatch, timeout: float) -> BaresipEvent:
        """The oldest event not yet returned that matches (a type name or a predicate)."""
        predicate = (lambda event: event.type == match) if isinstance(match, str) else match
        found: list[BaresipEvent] = []

        def take() -> bool:
            for index, event in enumerate(self._events):
                if index not in self._consumed and predicate(event):
                    self._consumed.add(index)
                    found.append(event)
                    return True
            return self._closed

        with self._changed:
            self._changed.wait_for(take, timeout)
            if found:
                return found[0]
            seen = ", ".join(event.type for event in self._events) or "none"
            state = "connection closed" if self._closed else f"{timeout} s passed"
            raise WaitTimeoutError(f"no event matching {match!r} ({state}); events: {seen}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(timeout=5)


class Baresip:
    """One baresip process: a single account, its own ports, config dir, log and recordings."""

    def __init__(
        self,
        workdir: Path,
        user: str,
        password: str,
        *,
        registrar_port: int | None,
        domain: str = LAB_DOMAIN,
        answermode: str = "manual",
        wav: Path | None = None,
        regint: int = 60,
    ) -> None:
        self.workdir = workdir
        self.user = user
        self.password = password
        self.registrar_port = registrar_port
        self.domain = domain
        self.answermode = answermode
        self.regint = regint
        self.wav = wav
        self.log_path = workdir / "baresip.log"
        self.sip_port = 0
        self.ctrl_port = 0
        self.rtp_ports = (0, 0)
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctrl: CtrlClient | None = None

    @property
    def aor(self) -> str:
        if self.registrar_port is None:
            return f"sip:{self.user}@{LOOPBACK}:{self.sip_port}"
        return f"sip:{self.user}@{self.domain}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def recordings(self) -> list[Path]:
        """WAVs the sndfile filter wrote: dump-<time>-enc.wav (sent) and -dec.wav (heard)."""
        return sorted((self.workdir / "rec").glob("*.wav"))

    def describe(self) -> str:
        return f"baresip {self.user} sip {LOOPBACK}:{self.sip_port} ({self.workdir.name})"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Self:
        """Start, connect ctrl_tcp and, with a registrar, wait until registered."""
        find_tool("baresip")
        if not (MODULE_PATH / "ctrl_tcp.so").is_file():
            raise ToolMissingError(
                f"{MODULE_PATH}/ctrl_tcp.so missing: install the Debian package 'baresip-core'"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.wav is None:
            self.wav = write_tone_wav(self.workdir / "tone-700hz.wav")
        deadline = time.monotonic() + timeout
        for _ in range(_START_ATTEMPTS):
            self._pick_ports()
            self._write_config()
            self._proc = spawn(
                [find_tool("baresip"), "-4", "-f", str(self.workdir / "config-dir")],
                log=self.log_path,
                cwd=self.workdir,
            )
            if self._connect(self._proc, deadline):
                break
            if self._proc.poll() is None:
                self.stop()
                raise LabError(
                    f"baresip ctrl_tcp not listening on {LOOPBACK}:{self.ctrl_port} within "
                    f"{timeout} s; log:\n{tail(self.log_path)}"
                )
            # It exited: most likely another process took one of its ports. Fresh ports.
        else:
            raise LabError(
                f"baresip exited at start {_START_ATTEMPTS} times; log:\n{tail(self.log_path)}"
            )
        if self.registrar_port is not None:
            self.wait_registered(max(0.5, deadline - time.monotonic()))
        return self

    def _pick_ports(self) -> None:
        # baresip binds SIP on UDP+TCP and TLS on the next port: two ports, both protocols.
        self.sip_port = free_port_block(2, "both")
        self.ctrl_port = free_port("tcp")
        first_rtp = free_port_block(RTP_PORT_COUNT, "udp")
        self.rtp_ports = (first_rtp, first_rtp + RTP_PORT_COUNT - 1)

    def _connect(self, proc: subprocess.Popen[bytes], deadline: float) -> bool:
        """Connect once baresip itself listens on the ctrl port; False if it exited first."""
        while proc.poll() is None:
            if process_has_socket(proc.pid, self.ctrl_port, "tcp"):
                self._ctrl = CtrlClient(self.ctrl_port)
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return False

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Until the account shows OK (REGISTER_OK may come before our connection does, so
        `reginfo` is polled as well); a refused registration raises at once."""

        def settled() -> bool:
            state = self._registration_state()
            if state == "failed" or self._saw("REGISTER_FAIL"):
                raise LabError(
                    f"baresip {self.user} registration refused; log:\n{tail(self.log_path)}"
                )
            return state == "ok" or self._saw("REGISTER_OK")

        try:
            wait_until(settled, timeout, interval=0.1, message=f"baresip {self.user} registration")
        except WaitTimeoutError as error:
            raise WaitTimeoutError(f"{error}; log:\n{tail(self.log_path)}") from error

    def registered(self) -> bool:
        """Whether `reginfo` shows the account OK."""
        return self._registration_state() == "ok"

    def _registration_state(self) -> Literal["ok", "failed", "pending"]:
        data = _ANSI.sub("", self.command("reginfo").data)
        if re.search(r"\sOK\s", data):
            return "ok"
        if re.search(r"\sERR\s", data):
            return "failed"
        return "pending"

    def _saw(self, event_type: str) -> bool:
        return any(event.type == event_type for event in self.ctrl.events)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM (baresip unregisters first), SIGKILL after `grace`; ctrl link closed."""
        if self._proc is not None:
            end_process(self._proc, signal.SIGTERM, grace)
            self._proc = None
        if self._ctrl is not None:
            self._ctrl.close()
            self._ctrl = None

    def __enter__(self) -> Self:
        return self.start() if self._proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- control ---------------------------------------------------------------------------

    @property
    def ctrl(self) -> CtrlClient:
        if self._ctrl is None:
            raise LabError("baresip is not running")
        return self._ctrl

    def command(
        self, command: str, params: str | None = None, timeout: float = 5.0
    ) -> BaresipResponse:
        return self.ctrl.command(command, params, timeout)

    def _checked(self, command: str, params: str | None = None) -> BaresipResponse:
        response = self.command(command, params)
        if not response.ok:
            raise LabError(f"baresip {command} {params or ''} failed: {response.data.strip()}")
        return response

    def dial(self, uri: str) -> None:
        self._checked("dial", uri)

    def accept(self) -> None:
        self._checked("accept")

    def hangup(self) -> None:
        self._checked("hangup")

    def wait_event(self, match: EventMatch, timeout: float = 10.0) -> BaresipEvent:
        """Next not-yet-returned event of that type (or satisfying the predicate)."""
        return self.ctrl.wait_event(match, timeout)

    @property
    def events(self) -> list[BaresipEvent]:
        return self.ctrl.events

    # --- configuration ---------------------------------------------------------------------

    def _write_config(self) -> None:
        confdir = self.workdir / "config-dir"
        confdir.mkdir(exist_ok=True)
        (self.workdir / "rec").mkdir(exist_ok=True)
        name = f"{self.user}-{self.sip_port}"
        settings = [
            ("poll_method", "epoll"),
            ("sip_listen", f"{LOOPBACK}:{self.sip_port}"),
            ("call_local_timeout", "120"),
            ("call_max_calls", "4"),
            ("audio_player", f"aubridge,{name}"),
            ("audio_source", f"aufile,{self.wav}"),
            ("audio_alert", f"aubridge,alert{name}"),
            ("audio_level", "no"),
            ("ausrc_format", "s16"),
            ("auplay_format", "s16"),
            ("auenc_format", "s16"),
            ("audec_format", "s16"),
            ("audio_buffer", "20-160"),
            ("rtcp_mux", "no"),
            ("jitter_buffer_delay", "5-10"),
            ("rtp_stats", "yes"),
            ("rtp_ports", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}"),
            ("rtp_timeout", "60"),
            ("net_interface", LOOPBACK),  # "lo" fails: "could not get IPv4 address"
            ("dns_server", f"{LOOPBACK}:53"),  # never the machine's resolver
            ("module_path", str(MODULE_PATH)),
            ("module", "g711.so"),
            ("module", "aufile.so"),
            ("module", "aubridge.so"),
            ("module", "sndfile.so"),
            ("module_tmp", "uuid.so"),
            ("module_tmp", "account.so"),
            ("module_app", "menu.so"),
            ("module_app", "ctrl_tcp.so"),
            ("ctrl_tcp_listen", f"{LOOPBACK}:{self.ctrl_port}"),
            ("snd_path", str(self.workdir / "rec")),
        ]
        (confdir / "config").write_text("".join(f"{k}\t\t{v}\n" for k, v in settings))
        (confdir / "accounts").write_text(self._account_line() + "\n")
        (confdir / "contacts").write_text("")

    def _account_line(self) -> str:
        media = f";answermode={self.answermode};audio_codecs=PCMU,PCMA;ptime=20"
        if self.registrar_port is None:
            return f"<sip:{self.user}@{LOOPBACK}:{self.sip_port};transport=udp>;regint=0{media}"
        proxy = f"sip:{LOOPBACK}:{self.registrar_port};transport=udp"
        return (
            f"<sip:{self.user}@{self.domain};transport=udp>;auth_pass={self.password}"
            f';outbound="{proxy}";regint={self.regint}{media}'
        )
