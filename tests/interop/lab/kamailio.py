"""A real Kamailio registrar/proxy/presence server on loopback, one per test.

Accounts live in the lab domain (sip:1001@lab.test, realm lab.test); UAs reach the server at
sip:127.0.0.1:<port> (UDP and TCP on the same number). The location table is in memory, so
`restart()` brings the server back on the same ports and database with no bindings, which is
how a registrar outage looks to a phone.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self

from tests.interop.lab.ports import PortLease, lease_port
from tests.interop.lab.probe import Transport, options_ping
from tests.interop.lab.util import (
    LOOPBACK,
    LabError,
    ToolMissingError,
    WaitTimeoutError,
    end_process,
    find_tool,
    kill_session,
    spawn,
)

LAB_DOMAIN = "lab.test"
DEFAULT_USERS: Mapping[str, str] = MappingProxyType(
    {"1001": "pass1001", "1002": "pass1002", "2000": "pass2000"}
)
CONFIG = Path(__file__).with_name("kamailio.cfg")
SQL_DIR = Path("/usr/share/kamailio/db_sqlite")
SQL_SCRIPTS = ("standard-create.sql", "auth_db-create.sql", "presence-create.sql")

_START_ATTEMPTS = 5
_MODULE_PACKAGES = MappingProxyType(
    {
        "db_sqlite": "kamailio-sqlite-modules",
        "presence": "kamailio-presence-modules",
        "presence_xml": "kamailio-presence-modules",
    }
)
_NOT_SET = "[not set]"


class KamailioRpcError(LabError):
    """Kamailio answered a JSON-RPC call with an error object."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {code} {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class KamailioSettings:
    """What a test may change about the registrar; each field becomes a `-A` define."""

    max_expires: int = 3600
    min_expires: int = 10
    default_expires: int | None = None  # None: 3600, capped at max_expires
    reply_423_below_min: bool = False  # MIN_EXPIRES_MODE=1 instead of raising to the minimum
    noauth_calls: bool = False
    drop_scanners: bool = False
    sip_debug: bool = True  # every request and reply in the log printed on failure
    domain: str = LAB_DOMAIN
    users: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_USERS))

    def __post_init__(self) -> None:
        if self.max_expires and self.min_expires > self.max_expires:
            raise ValueError(
                f"min_expires {self.min_expires} exceeds max_expires {self.max_expires}"
            )
        if not re.fullmatch(r"[a-z0-9.-]+", self.domain):
            raise ValueError(f"domain {self.domain!r} is not a plain host name")

    def defines(self) -> list[str]:
        default = self.default_expires
        if default is None:
            default = min(3600, self.max_expires) if self.max_expires else 3600
        values = [
            f'SIP_DOMAIN="{self.domain}"',
            f"MAX_EXPIRES={self.max_expires}",
            f"MIN_EXPIRES={self.min_expires}",
            f"MIN_EXPIRES_MODE={int(self.reply_423_below_min)}",
            f"DEFAULT_EXPIRES={default}",
        ]
        flags = {
            "NOAUTH_CALLS": self.noauth_calls,
            "DROP_SCANNERS": self.drop_scanners,
            "SIPDEBUG": self.sip_debug,
        }
        values += [name for name, on in flags.items() if on]
        return values


@dataclass(frozen=True)
class Binding:
    """One contact in the usrloc table, as `ul.lookup` reports it."""

    aor: str
    contact: str
    expires: int  # seconds left (0 for a permanent binding)
    call_id: str
    cseq: int
    received: str | None
    user_agent: str | None
    socket: str | None
    path: str | None
    instance: str | None
    reg_id: int
    q: float | None
    permanent: bool = False  # added over RPC with no expiry; REGISTER never makes one


def _optional(value: object) -> str | None:
    text = str(value)
    return None if text == _NOT_SET else text


def _binding(aor: str, contact: Mapping[str, Any]) -> Binding:
    expires = contact["Expires"]
    q = float(contact["Q"])
    return Binding(
        aor=aor,
        contact=str(contact["Address"]),
        expires=expires if isinstance(expires, int) else 0,
        call_id=str(contact["Call-ID"]),
        cseq=int(contact["CSeq"]),
        received=_optional(contact["Received"]),
        user_agent=_optional(contact["User-Agent"]),
        socket=_optional(contact["Socket"]),
        path=_optional(contact["Path"]),
        instance=_optional(contact["Instance"]),
        reg_id=int(contact["Reg-Id"]),
        q=None if q < 0 else q,
        permanent=expires == "permanent",
    )


def build_database(path: Path, users: Mapping[str, str], domain: str = LAB_DOMAIN) -> None:
    """Create the SQLite DB from Kamailio's own schema scripts and add `users`."""
    missing = [name for name in SQL_SCRIPTS if not (SQL_DIR / name).is_file()]
    if missing:
        raise ToolMissingError(
            f"{SQL_DIR} lacks {', '.join(missing)}: install the Debian package "
            "'kamailio-sqlite-modules', or run ./dev.sh test"
        )
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        # db_sqlite sets no busy timeout: in the default rollback journal a digest check in
        # one Kamailio worker fails ("database is locked") while another stores a PUBLISH.
        # WAL lets readers run beside the writer; the mode is stored in the file.
        db.execute("PRAGMA journal_mode=WAL")
        for name in SQL_SCRIPTS:
            db.executescript((SQL_DIR / name).read_text(encoding="utf-8"))
    for user, password in users.items():
        add_subscriber(path, user, password, domain)


def add_subscriber(path: Path, user: str, password: str, domain: str = LAB_DOMAIN) -> None:
    """Add or replace one account; Kamailio reads the table on every challenge."""
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT OR REPLACE INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
            (user, domain, password),
        )


class Kamailio:
    """One Kamailio process tree with its own port, database, run dir and log."""

    def __init__(self, workdir: Path, settings: KamailioSettings | None = None) -> None:
        self.workdir = workdir
        self.settings = settings or KamailioSettings()
        self.db_path = workdir / "kamailio.sqlite"
        self.log_path = workdir / "kamailio.log"
        self._lease: PortLease | None = None
        self._rundir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._users = dict(self.settings.users)

    # --- addresses -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        if self._lease is None:
            raise LabError("kamailio has not been started")
        return self._lease.port

    @property
    def domain(self) -> str:
        return self.settings.domain

    @property
    def registrar_uri(self) -> str:
        """Where UAs send everything (registrar and outbound proxy): sip:127.0.0.1:PORT."""
        return f"sip:{LOOPBACK}:{self.port}"

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.domain}"

    @property
    def users(self) -> dict[str, str]:
        return dict(self._users)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def describe(self) -> str:
        port = "-" if self._lease is None else self._lease.port
        return f"kamailio 127.0.0.1:{port} ({self.workdir.name})"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Self:
        """Start on fresh free ports, retrying when another process wins a port race.

        The port stays leased until `close()`, so no other lab peer is given it while this
        server is down between `kill()` and `restart()`.
        """
        find_tool("kamailio")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.db_path.exists():
            build_database(self.db_path, self._users, self.domain)
        failure = ""
        for _ in range(_START_ATTEMPTS):
            self._release_port()
            self._lease = lease_port("both")
            failure = self._launch_and_wait(timeout)
            if not failure:
                return self
            if "Address already in use" not in failure:
                break
        raise LabError(failure)

    def restart(self, timeout: float = 10.0) -> None:
        """Stop if running, then start again on the same ports and database."""
        if self._lease is None:
            raise LabError("restart() before start()")
        self.stop()
        failure = self._launch_and_wait(timeout)
        if failure:
            raise LabError(failure)

    def stop(self, grace: float = 5.0) -> None:
        """Orderly shutdown (SIGTERM); the process tree is killed after `grace` seconds."""
        if self._proc is not None:
            end_process(self._proc, signal.SIGTERM, grace)
            self._proc = None

    def kill(self) -> None:
        """Crash it: SIGKILL the main process and every child at once."""
        if self._proc is not None:
            kill_session(self._proc)
            self._proc = None

    def close(self) -> None:
        self.stop()
        self._release_port()
        if self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir = None

    def _release_port(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def __enter__(self) -> Self:
        return self.start() if self._proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _socket_paths(self) -> tuple[Path, Path]:
        if self._rundir is None:
            # Unix socket paths are limited to 107 bytes: keep them out of pytest's long dirs.
            self._rundir = Path(tempfile.mkdtemp(prefix="kam-"))
        return self._rundir / "kamailio_rpc.sock", self._rundir / "kamailio_ctl"

    def _launch_and_wait(self, timeout: float) -> str:
        """Launch once on self.port; return "" when ready, else why it failed."""
        rpc_sock, ctl_sock = self._socket_paths()
        for stale in (rpc_sock, ctl_sock):
            stale.unlink(missing_ok=True)
        rundir = rpc_sock.parent
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [
            find_tool("kamailio"),
            *("-f", str(CONFIG), "-DD", "-E", "-m", "64", "-M", "8"),
            *("-Y", str(rundir), "-P", str(rundir / "kamailio.pid")),
            *("-A", f"LISTEN_IP={LOOPBACK}", "-A", f"SIP_PORT={self.port}"),
            *("-A", f'DBURL="sqlite://{self.db_path}"'),
            *("-A", f'RPCSOCK="{rpc_sock}"', "-A", f'CTLSOCK="unix:{ctl_sock}"'),
        ]
        for define in self.settings.defines():
            argv += ["-A", define]
        self._proc = spawn(argv, log=self.log_path, cwd=self.workdir)
        if self._wait_ready(self._proc, timeout):
            return ""
        self.kill()
        with self.log_path.open("rb") as log:
            log.seek(log_offset)
            since_launch = log.read().decode("utf-8", errors="replace")
        return (
            f"kamailio did not answer OPTIONS on {LOOPBACK}:{self.port} (UDP and TCP) "
            f"within {timeout} s{_hint(since_launch)}; log {self.log_path}:\n"
            + "\n".join(since_launch.splitlines()[-40:])
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for transport in ("udp", "tcp"):
            while True:
                remaining = deadline - time.monotonic()
                if proc.poll() is not None or remaining <= 0:
                    return False
                try:
                    options_ping(self.port, transport=transport, timeout=min(0.5, remaining))
                    break
                except (WaitTimeoutError, ConnectionError):
                    if transport == "tcp":
                        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return proc.poll() is None

    # --- inspection ------------------------------------------------------------------------

    def options(self, transport: Transport = "udp", timeout: float = 2.0) -> str:
        """Status line of Kamailio's answer to an OPTIONS ping ("SIP/2.0 200 Keepalive")."""
        return options_ping(self.port, transport=transport, timeout=timeout)

    def add_user(self, user: str, password: str) -> None:
        """Create an account; works while running (auth_db reads the DB per request)."""
        self._users[user] = password
        if self.db_path.exists():
            add_subscriber(self.db_path, user, password, self.domain)

    def rpc(self, method: str, *params: str | int, timeout: float = 2.0) -> Any:
        """Call a Kamailio RPC over the JSON-RPC datagram socket and return its result."""
        rpc_sock, _ = self._socket_paths()
        reply_path = rpc_sock.parent / f"reply-{secrets.token_hex(4)}.sock"
        request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(reply_path))
            try:
                sock.settimeout(timeout)
                sock.sendto(json.dumps(request).encode(), str(rpc_sock))
                reply = json.loads(sock.recv(1 << 20))
            except TimeoutError as error:
                raise LabError(f"kamailio RPC {method} unanswered in {timeout} s") from error
            finally:
                reply_path.unlink(missing_ok=True)
        if "error" in reply:
            raise KamailioRpcError(
                method, int(reply["error"]["code"]), str(reply["error"]["message"])
            )
        return reply["result"]

    def location(self, user: str) -> list[Binding]:
        """The live (unexpired) bindings of `user`, straight from usrloc (`ul.lookup`)."""
        try:
            result = self.rpc("ul.lookup", "location", user)
        except KamailioRpcError as error:
            if error.message in ("AOR not found in location table", "AOR has no contacts"):
                return []
            raise
        aor = str(result["AoR"])
        return [_binding(aor, item["Contact"]) for item in result["Contacts"]]

    def registered_users(self) -> list[str]:
        """Every AoR in the location table (`ul.dump brief`), expired ones until purged."""
        domains = self.rpc("ul.dump", "brief")["Domains"]
        return sorted(str(aor["AoR"]) for entry in domains for aor in entry["Domain"]["AoRs"])


def _hint(log_text: str) -> str:
    for module, package in _MODULE_PACKAGES.items():
        if f"could not find module <{module}>" in log_text:
            return f" (module {module} missing: install the Debian package '{package}')"
    if "Address already in use" in log_text:
        return " (port taken by another process)"
    return ""
