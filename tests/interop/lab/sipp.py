"""SIPp runs on private loopback ports, with every message they exchanged kept for asserts.

SIPp binds four UDP ports (SIP, media and media+2, remote control) and would take 6000 and
8888 by default, on every address for the control socket; each run here gets its own free
ports, all on 127.0.0.1.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.interop.lab.kamailio import LAB_DOMAIN
from tests.interop.lab.ports import free_port, free_port_block
from tests.interop.lab.util import (
    LOOPBACK,
    LabError,
    WaitTimeoutError,
    end_process,
    find_tool,
    process_has_socket,
    spawn,
    tail,
    wait_until,
)

SCENARIO_DIR = Path(__file__).with_name("sipp")
BUILTIN_SCENARIOS = frozenset(
    {
        "uac",
        "uas",
        "regexp",
        "branchc",
        "branchs",
        "3pcc-A",
        "3pcc-B",
        "3pcc-C-A",
        "3pcc-C-B",
    }
)
SippTransport = Literal["udp", "tcp"]

_EXIT_BIND_ERROR = 254
_START_ATTEMPTS = 5
_MESSAGE_HEADER = re.compile(
    r"^(?P<transport>UDP|TCP|TLS|SCTP) message (?P<direction>sent|received)\b.*$", re.M
)
_SEPARATOR = re.compile(r"^-{20,} \d{4}-\d\d-\d\d.*$", re.M)
_SCREEN_COUNT = re.compile(r"^\s*(Successful|Failed) call\s*\|\s*(\d+)\s*\|\s*(\d+)", re.M)


@dataclass(frozen=True)
class SippMessage:
    """One SIP message from SIPp's -trace_msg log, as SIPp sent or received it."""

    direction: Literal["sent", "received"]
    transport: str
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        parts = self.start_line.split(" ", 2)
        if parts[0] == "SIP/2.0" and len(parts) > 1 and parts[1].isdigit():
            return int(parts[1])
        return None

    @property
    def method(self) -> str | None:
        """The request method, or the CSeq method of a response."""
        if self.status is None:
            return self.start_line.split(" ", 1)[0]
        cseq = self.header("CSeq")
        return cseq.split()[-1] if cseq else None

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive, full names only)."""
        for line in self.text.split("\n")[1:]:
            if not line.strip():
                break
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def parse_message_log(text: str) -> list[SippMessage]:
    """Split a -trace_msg log into messages (blocks start with a dashed, dated separator)."""
    messages = []
    for block in _SEPARATOR.split(text):
        match = _MESSAGE_HEADER.search(block)
        if match is None:
            continue
        body = block[match.end() :].strip("\n").replace("\r\n", "\n")
        direction: Literal["sent", "received"] = (
            "sent" if match["direction"] == "sent" else "received"
        )
        messages.append(SippMessage(direction, match["transport"].lower(), body.strip() + "\n"))
    return messages


@dataclass(frozen=True)
class SippResult:
    """How a SIPp run ended: exit code (0 all calls passed, 1 some failed) and its traffic."""

    returncode: int
    messages: tuple[SippMessage, ...]
    message_log: str
    output_tail: str
    successful_calls: int | None
    failed_calls: int | None
    rundir: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def received(
        self, *, status: int | None = None, method: str | None = None
    ) -> list[SippMessage]:
        return [
            message
            for message in self.messages
            if message.direction == "received"
            and (status is None or message.status == status)
            and (method is None or message.method == method)
        ]

    def describe(self) -> str:
        return (
            f"sipp exit {self.returncode} (ok {self.successful_calls}, failed "
            f"{self.failed_calls}) in {self.rundir}:\n{self.output_tail}"
        )


class SippRun:
    """A SIPp process started in the background (a UAS waiting for calls, say)."""

    def __init__(self, proc: subprocess.Popen[bytes], rundir: Path, local_port: int) -> None:
        self._proc = proc
        self.rundir = rundir
        self.local_port = local_port

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def messages(self) -> list[SippMessage]:
        """What it has sent and received so far (SIPp writes its trace as it goes)."""
        return parse_message_log(_read(self.rundir / "messages.log"))

    def wait_for_message(
        self, predicate: Callable[[SippMessage], bool], timeout: float = 10.0
    ) -> SippMessage:
        """The first traced message satisfying `predicate`, once there is one."""
        found: list[SippMessage] = []

        def seen() -> bool:
            found[:] = [message for message in self.messages() if predicate(message)][:1]
            return bool(found)

        wait_until(seen, timeout, message=f"sipp message in {self.rundir.name}")
        return found[0]

    def wait(self, timeout: float) -> SippResult:
        """Wait for SIPp to finish its calls; kill it and raise if it overruns `timeout`."""
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as error:
            result = self.stop()
            raise WaitTimeoutError(
                f"sipp did not finish within {timeout} s; {result.describe()}"
            ) from error
        return self._result()

    def stop(self, grace: float = 3.0) -> SippResult:
        """End it now (SIGINT lets SIPp write its logs), whatever state its calls are in."""
        end_process(self._proc, signal.SIGINT, grace)
        return self._result()

    def _result(self) -> SippResult:
        message_log = _read(self.rundir / "messages.log")
        screen = _read(self.rundir / "screen.log")
        counts = {kind: int(cumulated) for kind, _, cumulated in _SCREEN_COUNT.findall(screen)}
        return SippResult(
            returncode=self._proc.wait(),
            messages=tuple(parse_message_log(message_log)),
            message_log=message_log,
            output_tail=tail(self.rundir / "output.log", 25),
            successful_calls=counts.get("Successful"),
            failed_calls=counts.get("Failed"),
            rundir=self.rundir,
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _scenario_args(scenario: str | Path) -> tuple[list[str], str]:
    if isinstance(scenario, Path):
        return ["-sf", str(scenario)], scenario.stem
    bundled = SCENARIO_DIR / f"{scenario}.xml"
    if bundled.is_file():
        return ["-sf", str(bundled)], scenario
    if scenario in BUILTIN_SCENARIOS:
        return ["-sn", scenario], scenario
    raise ValueError(f"no bundled or built-in SIPp scenario {scenario!r}")


class Sipp:
    """Runs SIPp scenarios for one test; each run gets a numbered dir under `workdir`."""

    def __init__(self, workdir: Path, *, domain: str = LAB_DOMAIN) -> None:
        self.workdir = workdir
        self.domain = domain
        self._runs = 0
        self._started: list[SippRun] = []

    def start(
        self,
        scenario: str | Path,
        remote_port: int | None = None,
        *,
        service: str | None = None,
        auth: tuple[str, str] | None = None,
        keys: Mapping[str, str] | None = None,
        calls: int = 1,
        rate: float | None = None,
        transport: SippTransport = "udp",
        extra_args: Sequence[str] = (),
        ready_timeout: float = 5.0,
    ) -> SippRun:
        """Start SIPp in the background and return once its SIP socket is bound.

        `scenario` is a bundled name (reg_auth, uas_rr, ...), a built-in (-sn uas) or a Path.
        `remote_port` is a port on 127.0.0.1 (None for a UAS). Keys `domain`, `expires` (120),
        `caller` (the auth user) and `contact_port` (SIPp's own port) are always set; `keys`
        adds or overrides.
        """
        find_tool("sipp")
        scenario_args, label = _scenario_args(scenario)
        all_keys = {"domain": self.domain, "expires": "120"}
        if auth is not None:
            all_keys["caller"] = auth[0]
        all_keys.update(keys or {})
        self._runs += 1
        rundir = self.workdir / f"{self._runs:02d}-{label}"
        rundir.mkdir(parents=True, exist_ok=True)
        for _ in range(_START_ATTEMPTS):
            local_port = free_port("udp" if transport == "udp" else "both")
            run_keys = {"contact_port": str(local_port), **all_keys}
            argv = [
                find_tool("sipp"),
                *([f"{LOOPBACK}:{remote_port}"] if remote_port is not None else []),
                *scenario_args,
                *("-i", LOOPBACK, "-p", str(local_port), "-t", transport[0] + "1"),
                *("-mi", LOOPBACK, "-mp", str(free_port_block(3, "udp"))),
                *("-ci", LOOPBACK, "-cp", str(free_port("udp"))),
                *("-m", str(calls), "-nostdin"),
                *("-trace_msg", "-message_file", str(rundir / "messages.log")),
                *("-trace_err", "-error_file", str(rundir / "errors.log")),
                *("-trace_screen", "-screen_file", str(rundir / "screen.log")),
                *(["-s", service] if service is not None else []),
                *(["-au", auth[0], "-ap", auth[1]] if auth is not None else []),
                *(["-r", f"{rate:g}"] if rate is not None else []),
                *[arg for name, value in run_keys.items() for arg in ("-key", name, value)],
                *extra_args,
            ]
            proc = spawn(argv, log=rundir / "output.log", cwd=rundir)
            run = SippRun(proc, rundir, local_port)
            if transport == "tcp" and remote_port is not None:
                # A TCP client connects from an ephemeral port: nothing to wait for on -p.
                self._started.append(run)
                return run
            if self._wait_bound(run, transport, ready_timeout):
                self._started.append(run)
                return run
            if proc.wait() != _EXIT_BIND_ERROR:
                self._started.append(run)
                return run  # it ran and ended already (a failure the result will show)
        raise LabError(f"sipp could not bind free ports in {_START_ATTEMPTS} tries ({rundir})")

    @staticmethod
    def _wait_bound(run: SippRun, transport: SippTransport, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while run.running:
            if process_has_socket(run.pid, run.local_port, transport):
                return True
            if time.monotonic() > deadline:
                result = run.stop()
                raise WaitTimeoutError(
                    f"sipp did not bind {LOOPBACK}:{run.local_port}; {result.describe()}"
                )
            time.sleep(0.01)
        return False

    def run(
        self,
        scenario: str | Path,
        remote_port: int | None = None,
        *,
        timeout: float = 30.0,
        service: str | None = None,
        auth: tuple[str, str] | None = None,
        keys: Mapping[str, str] | None = None,
        calls: int = 1,
        rate: float | None = None,
        transport: SippTransport = "udp",
        extra_args: Sequence[str] = (),
    ) -> SippResult:
        """Run a scenario to completion (see `start` for the arguments)."""
        started = self.start(
            scenario,
            remote_port,
            service=service,
            auth=auth,
            keys=keys,
            calls=calls,
            rate=rate,
            transport=transport,
            extra_args=extra_args,
        )
        return started.wait(timeout)

    def register(
        self,
        remote_port: int,
        user: str,
        password: str,
        *,
        contact_port: int | None = None,
        expires: int = 120,
        timeout: float = 10.0,
    ) -> SippResult:
        """REGISTER `user` with digest auth (reg_auth); the Contact points at `contact_port`
        (a SIPp UAS started earlier) or at this run's own port."""
        keys = {"expires": str(expires)}
        if contact_port is not None:
            keys["contact_port"] = str(contact_port)
        return self.run(
            "reg_auth",
            remote_port,
            service=user,
            auth=(user, password),
            keys=keys,
            timeout=timeout,
        )

    def options_load(
        self, remote_port: int, *, calls: int, rate: float, timeout: float = 60.0
    ) -> SippResult:
        """`calls` OPTIONS at `rate` per second, each expecting 200: the benchmark load."""
        return self.run(
            "options_uac",
            remote_port,
            calls=calls,
            rate=rate,
            timeout=timeout,
            extra_args=("-l", str(max(1, int(rate * 2)))),
        )

    def close(self) -> None:
        """Stop every run still going (a UAS whose caller never came, say)."""
        for run in self._started:
            if run.running:
                run.stop()
        self._started.clear()
