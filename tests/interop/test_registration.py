"""Registration against a real Kamailio: digest auth, refreshes, a registrar restart, scanners.

Each test runs the real firmware process in simulation and drives it through the control
socket; what Kamailio stored (its location table) is the proof, not what the phone says.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.interop.lab.kamailio import Kamailio
from tests.interop.lab.util import wait_until
from tests.interop.phone import Phone, phone_config

pytestmark = pytest.mark.interop


def _registers_from(kamailio: Kamailio, port: int) -> int:
    pattern = re.compile(rf"REQ REGISTER \S+ from 127\.0\.0\.1:{port} ")
    return len(pattern.findall(kamailio.log_path.read_text(errors="replace")))


def _phone_port(phone: Phone) -> int:
    return int(phone.command("status")["listen"].rsplit(":", 1)[1])


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registers_with_digest_auth(
    kamailio: Kamailio, start_phone: Callable[[dict[str, Any]], Phone], transport: str
) -> None:
    phone = start_phone(phone_config(kamailio, transport=transport))
    phone.wait_registered()
    status = phone.command("status")
    assert status["ok"] is True
    assert status["accounts"] == [{"uri": kamailio.aor("1001"), "state": "registered"}]
    port = _phone_port(phone)
    bindings = kamailio.location("1001")
    assert len(bindings) == 1
    assert f"127.0.0.1:{port}" in bindings[0].contact
    if transport == "tcp":
        assert "transport=tcp" in bindings[0].contact.lower()


def test_wrong_password_fails_with_status_and_backs_off(
    kamailio: Kamailio, start_phone: Callable[[dict[str, Any]], Phone]
) -> None:
    phone = start_phone(phone_config(kamailio, password="wrong"))
    failed = phone.wait_event("registration_failed")
    assert failed["account"] == kamailio.aor("1001")
    assert failed["status"] in (401, 403)
    assert failed["retry_in"] >= 0.5
    second = phone.wait_event("registration_failed", timeout=15)
    assert second["retry_in"] >= failed["retry_in"] * 0.5
    # Over the two rounds: an unauthenticated REGISTER and one answer to each challenge.
    assert _registers_from(kamailio, _phone_port(phone)) <= 6
    assert kamailio.location("1001") == []


def test_refreshes_keep_the_binding_with_the_same_call_id(
    kamailio_factory: Callable[..., Kamailio], start_phone: Callable[[dict[str, Any]], Phone]
) -> None:
    kamailio = kamailio_factory(max_expires=20, min_expires=10)
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    first = kamailio.location("1001")
    assert len(first) == 1
    assert first[0].expires <= 20
    call_id, cseq = first[0].call_id, first[0].cseq
    for _ in range(3):
        previous = cseq

        def refreshed(previous: int = previous) -> bool:
            bindings = kamailio.location("1001")
            assert len(bindings) == 1, "the binding lapsed between refreshes"
            return bindings[0].cseq != previous

        wait_until(refreshed, 25, message="the next refresh")
        binding = kamailio.location("1001")[0]
        assert binding.call_id == call_id
        assert binding.cseq > previous
        cseq = binding.cseq


def test_reregisters_within_10_s_of_a_registrar_restart(
    kamailio_factory: Callable[..., Kamailio], start_phone: Callable[[dict[str, Any]], Phone]
) -> None:
    kamailio = kamailio_factory(max_expires=20, min_expires=10)
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    kamailio.kill()
    outage_end = time.monotonic() + 20
    phone.wait_event("registration_failed", timeout=40)
    # The outage itself lasts 20 s: that is the scenario, not a wait for an event.
    time.sleep(max(0.0, outage_end - time.monotonic()))
    kamailio.restart()
    restarted = time.monotonic()
    wait_until(lambda: len(kamailio.location("1001")) == 1, 10, message="re-registration")
    assert time.monotonic() - restarted <= 10


def test_scanners_and_direct_invites_are_refused_while_registered(
    kamailio: Kamailio, start_phone: Callable[[dict[str, Any]], Phone]
) -> None:
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    port = _phone_port(phone)
    scan = subprocess.run(
        [
            "svmap",
            "127.0.0.1",
            "-p",
            str(port),
            "-b",
            "127.0.0.1",
            "-x",
            "127.0.0.1",
            "-m",
            "INVITE",
            "-e",
            "1001",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HOME": str(phone.workdir), "PATH": "/usr/bin:/bin"},
    )
    assert scan.returncode == 0, scan.stderr
    direct = send_direct_invite(port, user_agent="Linphone/5.2")
    assert direct.startswith("SIP/2.0 403 "), direct
    assert phone.command("status")["accounts"][0]["state"] == "registered"
    assert phone.count_events("call_incoming") == 0
    assert len(kamailio.location("1001")) == 1


def send_direct_invite(port: int, *, user_agent: str) -> str:
    import socket

    request = (
        f"INVITE sip:1001@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKdirect1;rport\r\n"
        f"From: <sip:attacker@127.0.0.1>;tag=a1\r\nTo: <sip:1001@127.0.0.1>\r\n"
        f"Call-ID: direct-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:attacker@127.0.0.1:9>\r\nUser-Agent: {user_agent}\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.settimeout(5)
        peer.bind(("127.0.0.1", 0))
        peer.sendto(request, ("127.0.0.1", port))
        while True:
            reply = peer.recv(65535).decode(errors="replace")
            if not reply.startswith("SIP/2.0 100 "):
                return reply


def test_a_lost_tcp_connection_means_registering_again_at_once(
    kamailio: Kamailio, start_phone: Callable[[dict[str, Any]], Phone]
) -> None:
    phone = start_phone(phone_config(kamailio, transport="tcp"))
    phone.wait_registered()
    kamailio.kill()  # the connection goes with it, and so does the in-memory binding
    kamailio.restart()
    # The grant is 600 s, so the refresh is minutes away: only noticing the lost
    # connection can bring the binding back this soon.
    wait_until(lambda: len(kamailio.location("1001")) == 1, 15, message="re-registration")
    phone.wait_event("registered")


def test_a_dual_stack_phone_registers_with_an_ipv4_registrar(
    kamailio: Kamailio, start_phone: Callable[[dict[str, Any]], Phone]
) -> None:
    config = phone_config(kamailio)
    config["sip"]["listen"] = "[::]:0"
    phone = start_phone(config)
    phone.wait_registered()
    assert phone.command("status")["listen"].startswith("[::]:")
    port = _phone_port(phone)
    bindings = kamailio.location("1001")
    assert len(bindings) == 1
    assert f"@127.0.0.1:{port}" in bindings[0].contact
