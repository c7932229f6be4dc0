"""tshark on lo for the SIP that crossed given ports (capturing needs root).

tshark's "Capturing on" line means packets are being captured from then on. Stopping is the
delicate part: dumpcap writes its file in batches (about every 0.5 s) and drops what it has
not written when interrupted. So `stop()` first sends a random token to a port of our own
inside the capture filter and waits until the token is in the file: everything captured
before it is then on disk too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.interop.lab.util import (
    LOOPBACK,
    LabError,
    WaitTimeoutError,
    end_process,
    find_tool,
    spawn,
    tail,
    wait_until,
)

_FIELDS = (
    "frame.time_epoch",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.dstport",
    "sip.Method",
    "sip.Status-Code",
    "sip.Call-ID",
    "sip.CSeq.method",
)


@dataclass(frozen=True)
class SipPacket:
    """One SIP message seen on the wire (the first in its frame, for TCP)."""

    time: float
    transport: str
    src_port: int
    dst_port: int
    method: str | None
    status: int | None
    call_id: str | None
    cseq_method: str | None

    @property
    def summary(self) -> str:
        """ "REGISTER" for a request, "401 REGISTER" for a response."""
        if self.status is None:
            return self.method or "?"
        return f"{self.status} {self.cseq_method or '?'}"


def parse_fields(text: str) -> list[SipPacket]:
    """Rows of `tshark -T fields` over _FIELDS (tab-separated) into packets."""
    packets = []
    for row in text.splitlines():
        if not row.strip():
            continue
        stamp, usrc, udst, tsrc, tdst, method, status, call_id, cseq_method = (
            row.split("\t") + [""] * len(_FIELDS)
        )[: len(_FIELDS)]
        transport = "udp" if usrc else "tcp"
        packets.append(
            SipPacket(
                time=float(stamp),
                transport=transport,
                src_port=int(usrc or tsrc),
                dst_port=int(udst or tdst),
                method=method or None,
                status=int(status) if status else None,
                call_id=call_id or None,
                cseq_method=cseq_method or None,
            )
        )
    return packets


class Capture:
    """A tshark capture of traffic to and from `ports` on 127.0.0.1, into a pcapng file."""

    def __init__(self, workdir: Path, ports: Iterable[int], *, interface: str = "lo") -> None:
        self.workdir = workdir
        self.ports = sorted(set(ports))
        if not self.ports:
            raise ValueError("a capture needs at least one port")
        self.interface = interface
        self.pcap_path = workdir / "capture.pcapng"
        self.log_path = workdir / "tshark.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._marker.bind((LOOPBACK, 0))
        self._marker_port: int = self._marker.getsockname()[1]

    def describe(self) -> str:
        return f"tshark on {self.interface} ports {self.ports} ({self.workdir.name})"

    @property
    def capture_filter(self) -> str:
        ports = " or ".join(f"port {port}" for port in [*self.ports, self._marker_port])
        return f"host {LOOPBACK} and ({ports})"

    def start(self, timeout: float = 10.0) -> Self:
        """Start tshark and return once it reports capturing."""
        tshark = find_tool("tshark")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc = spawn(
            [tshark, "-i", self.interface, "-f", self.capture_filter, "-w", str(self.pcap_path)],
            log=self.workdir / "tshark.out",
            stderr_log=self.log_path,
            cwd=self.workdir,
        )
        proc = self._proc
        try:
            wait_until(
                lambda: proc.poll() is not None or "Capturing on" in self._log_text(),
                timeout,
                message="tshark 'Capturing on'",
            )
        except WaitTimeoutError:
            self.stop()
            raise
        if proc.poll() is not None:
            self._proc = None
            raise LabError(f"tshark exited at start; log:\n{tail(self.log_path)}")
        return self

    def _log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Make sure everything seen so far is on disk, then stop tshark."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            token = os.urandom(16).hex().encode()
            self._marker.sendto(token, (LOOPBACK, self._marker_port))
            deadline = time.monotonic() + timeout
            while token not in self._pcap_bytes() and self._proc.poll() is None:
                if time.monotonic() > deadline:
                    break  # stop anyway; what is on disk is what we report
                time.sleep(0.02)
        end_process(self._proc, signal.SIGINT, 5.0)
        self._proc = None

    def _pcap_bytes(self) -> bytes:
        try:
            return self.pcap_path.read_bytes()
        except FileNotFoundError:
            return b""

    def close(self) -> None:
        self.stop()
        self._marker.close()

    def __enter__(self) -> Self:
        return self.start() if self._proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def sip_messages(self) -> list[SipPacket]:
        """Stop the capture (if running) and return the SIP messages in it, in order."""
        self.stop()
        decode_as = [
            arg
            for port in self.ports
            for proto in ("udp", "tcp")
            for arg in ("-d", f"{proto}.port=={port},sip")
        ]
        fields = [arg for name in _FIELDS for arg in ("-e", name)]
        result = subprocess.run(
            [
                find_tool("tshark"),
                "-r",
                str(self.pcap_path),
                *decode_as,
                "-Y",
                "sip",
                "-T",
                "fields",
                "-E",
                "separator=/t",
                "-E",
                "occurrence=f",
                *fields,
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise LabError(f"tshark -r failed: {result.stderr.decode(errors='replace')}")
        return parse_fields(result.stdout.decode("utf-8", errors="replace"))
