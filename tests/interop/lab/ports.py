"""Free loopback ports for peers started by parallel pytest-xdist workers.

The kernel picks a free port when we bind port 0; we then check the other protocol on the same
number (SIP peers listen on UDP and TCP alike) and, for blocks, the neighbours. The port is
released before the peer binds it, so another process may take it in between: every peer's
start retries on fresh ports when its bind fails, which closes that window.

A port that must stay ours while nothing is bound to it (a registrar between `kill()` and
`restart()`) is leased: an advisory lock on a per-port file that every lab process honours and
that the kernel drops when its holder dies.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import tempfile
from pathlib import Path
from typing import BinaryIO, Literal

from tests.interop.lab.util import LOOPBACK, LabError

PortKind = Literal["udp", "tcp", "both"]

_ATTEMPTS = 200
_LEASE_DIR = Path(tempfile.gettempdir()) / f"interop-lab-ports-{os.getuid()}"


class PortLease:
    """A port held for one peer across restarts; `release()` (or process exit) frees it."""

    def __init__(self, port: int, lock: BinaryIO) -> None:
        self.port = port
        self._lock = lock

    def release(self) -> None:
        if not self._lock.closed:
            _lock_path(self.port).unlink(missing_ok=True)
            self._lock.close()


def _lock_path(port: int) -> Path:
    return _LEASE_DIR / f"{port}.lock"


def _acquire(port: int) -> BinaryIO | None:
    _LEASE_DIR.mkdir(exist_ok=True)
    path = _lock_path(port)
    lock = path.open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # A releasing holder unlinks the file: ours must still be the one at `path`.
        if os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino:
            return lock
    except (BlockingIOError, FileNotFoundError):
        pass
    lock.close()
    return None


def is_leased(port: int) -> bool:
    """Whether some live lab process (this one included) holds a lease on `port`."""
    try:
        probe = _lock_path(port).open("rb")
    except FileNotFoundError:
        return False
    with probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def _bindable(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _kinds(kind: PortKind) -> tuple[socket.SocketKind, ...]:
    if kind == "udp":
        return (socket.SOCK_DGRAM,)
    if kind == "tcp":
        return (socket.SOCK_STREAM,)
    return (socket.SOCK_STREAM, socket.SOCK_DGRAM)


def free_port(kind: PortKind = "both") -> int:
    """A port on 127.0.0.1 that is free right now for `kind` (both: UDP and TCP)."""
    return free_port_block(1, kind)


def free_port_block(size: int, kind: PortKind = "both") -> int:
    """The first of `size` consecutive ports on 127.0.0.1 that are all free for `kind`."""
    kinds = _kinds(kind)
    for _ in range(_ATTEMPTS):
        with socket.socket(socket.AF_INET, kinds[0]) as anchor:
            anchor.bind((LOOPBACK, 0))
            base: int = anchor.getsockname()[1]
            if base + size > 65536:
                continue
            rest_free = all(
                _bindable(port, sock_kind)
                for port in range(base, base + size)
                for sock_kind in kinds
                if not (port == base and sock_kind == kinds[0])
            )
        if rest_free and not any(is_leased(port) for port in range(base, base + size)):
            return base
    raise LabError(f"no block of {size} free {kind} port(s) on {LOOPBACK}")


def lease_port(kind: PortKind = "both") -> PortLease:
    """A free port that other lab processes will not be given until the lease is released."""
    for _ in range(_ATTEMPTS):
        port = free_port(kind)
        lock = _acquire(port)
        if lock is not None:
            return PortLease(port, lock)
    raise LabError(f"could not lease a free {kind} port on {LOOPBACK}")
