"""Process and waiting helpers shared by the lab's peers.

Every peer runs as a child in its own session (so a whole process tree can be ended by the
leader's id) and, where util-linux's setpriv exists, with a parent-death signal, so a crashed
pytest worker does not leave a registrar bound to a port for the rest of the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import MappingProxyType

LOOPBACK = "127.0.0.1"

# Where each tool comes from, for the message when it is missing (Debian package names).
DEBIAN_PACKAGE: Mapping[str, str] = MappingProxyType(
    {
        "kamailio": "kamailio",
        "sipp": "sip-tester",
        "baresip": "baresip-core",
        "tshark": "tshark",
    }
)
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class LabError(RuntimeError):
    """A lab peer could not be started, driven or stopped as asked."""


class ToolMissingError(LabError):
    """A binary or data file the lab needs is not installed; the message names the package."""


class WaitTimeoutError(LabError):
    """A condition did not become true before its deadline."""


def find_tool(name: str) -> str:
    """Absolute path of `name`, also looking in sbin dirs (kamailio lives in /usr/sbin)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    found = shutil.which(name, path=search)
    if found is None:
        package = DEBIAN_PACKAGE.get(name, name)
        raise ToolMissingError(
            f"{name} is not installed: install the Debian package '{package}' "
            f"(apt-get install --no-install-recommends {package}), or run ./dev.sh test, "
            "which installs every test dependency"
        )
    return found


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> None:
    """Poll `predicate` until it is true; for states that announce no event (tables, files)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeoutError(f"{message} not met within {timeout:.1f} s")
        time.sleep(min(interval, remaining))


def _parent_death_prefix() -> list[str]:
    setpriv = shutil.which("setpriv", path=os.pathsep.join(["/usr/bin", "/bin", *_SBIN_DIRS]))
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stderr_log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session with stdout (and stderr unless split) appended to `log`."""
    with ExitStack() as files:
        out = files.enter_context(log.open("ab"))
        err = files.enter_context(stderr_log.open("ab")) if stderr_log else subprocess.STDOUT
        return subprocess.Popen(
            [*_parent_death_prefix(), *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=True,
        )


def end_process(proc: subprocess.Popen[bytes], first_signal: signal.Signals, grace: float) -> int:
    """Ask `proc` to end with `first_signal`; after `grace` seconds kill its whole session.

    Returns the leader's exit status once the rest of the session has gone too.
    """
    if proc.poll() is None:
        proc.send_signal(first_signal)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            kill_session(proc)
    _wait_session_gone(proc.pid, grace)
    return proc.wait()


def kill_session(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the session led by `proc` (a crash: no goodbyes, children included)."""
    if proc.poll() is None:
        # While the leader is unreaped its id cannot name anybody else's group.
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_session_gone(proc.pid, 5.0)


def _session_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still runs. Zombies do not count: they hold no
    ports, and where PID 1 reaps orphans slowly (or never, in some containers) they linger."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            return True
    return False


def _wait_session_gone(pgid: int, timeout: float) -> None:
    """Wait for children that outlive their leader (Kamailio's workers exit just after it).

    Linux keeps a group's id from being reused while any member exists, so the id still names
    only our processes here. Stragglers after `timeout` are killed.
    """
    try:
        wait_until(lambda: not _session_alive(pgid), timeout, interval=0.01)
    except WaitTimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def tail(path: Path, lines: int = 60) -> str:
    """The last `lines` lines of a log, for error messages and failure reports."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def process_has_socket(pid: int, port: int, proto: str) -> bool:
    """Whether process `pid` holds a socket bound to 127.0.0.1:`port` (`proto` udp or tcp).

    Used as the readiness test of peers that announce nothing when they have bound.
    """
    wanted = f"0100007F:{port:04X}"
    inodes: set[str] = set()
    try:
        with open(f"/proc/{pid}/net/{proto}", encoding="ascii") as table:
            next(table)
            for row in table:
                fields = row.split()
                if fields[1] == wanted and (proto == "udp" or fields[3] == "0A"):
                    inodes.add(fields[9])
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False
