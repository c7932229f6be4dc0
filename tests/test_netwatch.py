"""The netlink change monitor, in a network namespace of the test's own (root only)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from firmware.netwatch import open_change_monitor

WATCHER = """
import select, sys
from firmware.netwatch import drain, open_change_monitor
monitor = open_change_monitor()
print("ready" if monitor else "unavailable", flush=True)
readable, _, _ = select.select([monitor], [], [], 10)
print("changed" if readable and drain(monitor) else "silent", flush=True)
"""


@pytest.fixture
def namespace() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a network namespace to change addresses in")
    name = f"dp-netwatch-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_monitor_opens_here() -> None:
    monitor = open_change_monitor()
    assert monitor is not None
    monitor.close()


def test_an_address_change_wakes_the_monitor(namespace: str) -> None:
    watcher = subprocess.Popen(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", WATCHER],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    try:
        assert watcher.stdout.readline().strip() == "ready"
        subprocess.run(
            ["ip", "netns", "exec", namespace, "ip", "addr", "add", "10.201.0.1/32", "dev", "lo"],
            check=True,
        )
        assert watcher.stdout.readline().strip() == "changed"
    finally:
        watcher.kill()
        watcher.wait()
