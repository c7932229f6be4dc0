"""Being told when the machine's addresses or routes change, without polling.

A phone on Wi-Fi or DHCP changes address under its registration; the registrar then holds
a Contact nobody answers at. Linux announces every address and route change on a netlink
socket, which the stack thread watches beside its SIP sockets: the event wakes it, it works
out the address peers should use again, and re-registers only when that changed.
"""

from __future__ import annotations

import contextlib
import socket

RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE


def open_change_monitor() -> socket.socket | None:
    """A non-blocking socket that becomes readable on any address or route change, or None
    where netlink is not available (not Linux, or a sandbox that forbids it)."""
    if not hasattr(socket, "AF_NETLINK"):
        return None
    try:
        monitor = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    except OSError:
        return None
    try:
        monitor.bind((0, GROUPS))
    except OSError:
        monitor.close()
        return None
    monitor.setblocking(False)
    return monitor


def drain(monitor: socket.socket) -> int:
    """Read every pending notification; how many there were. Their content does not
    matter: any change is a reason to look at our address again."""
    count = 0
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while monitor.recv(65536):
            count += 1
    return count
