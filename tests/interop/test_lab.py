"""The interop lab itself, proved against the real peers it starts."""

from __future__ import annotations

import re
import socket
from typing import TypeVar

import pytest

from tests.interop.lab.factories import BaresipFactory, CaptureFactory, KamailioFactory
from tests.interop.lab.kamailio import Kamailio
from tests.interop.lab.ports import free_port, free_port_block, is_leased, lease_port
from tests.interop.lab.probe import options_ping
from tests.interop.lab.sipp import Sipp, SippResult
from tests.interop.lab.util import LOOPBACK, ToolMissingError, WaitTimeoutError, find_tool

pytestmark = pytest.mark.interop

T = TypeVar("T")


def _without_retransmissions(items: list[T]) -> list[T]:
    """Drop consecutive repeats: a loaded machine may make SIPp retransmit after 500 ms."""
    return [item for index, item in enumerate(items) if index == 0 or items[index - 1] != item]


def _statuses(result: SippResult) -> list[int | None]:
    return _without_retransmissions([message.status for message in result.received()])


def _contact_uri(header: str | None) -> str:
    assert header is not None
    match = re.search(r"<([^>]+)>", header)
    assert match is not None, header
    return match.group(1)


def test_free_ports_are_bindable_on_udp_and_tcp() -> None:
    port = free_port("both")
    base = free_port_block(3, "udp")
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        tcp.bind((LOOPBACK, port))
        udp.bind((LOOPBACK, port))
    for offset in range(3):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, base + offset))


def test_a_leased_port_is_withheld_until_released() -> None:
    lease = lease_port("both")
    assert is_leased(lease.port)
    lease.release()
    assert not is_leased(lease.port)


def test_missing_tool_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError, match="install the Debian package 'sip-tester'"):
        find_tool("sipp")


def test_kamailio_answers_options_on_udp_and_tcp(kamailio: Kamailio) -> None:
    assert kamailio.options("udp") == "SIP/2.0 200 Keepalive"
    assert kamailio.options("tcp") == "SIP/2.0 200 Keepalive"
    assert kamailio.registrar_uri == f"sip:127.0.0.1:{kamailio.port}"


def test_sipp_registers_with_digest_in_the_lab_realm(kamailio: Kamailio, sipp: Sipp) -> None:
    result = sipp.register(kamailio.port, "1001", "pass1001")

    assert result.ok, result.describe()
    assert _statuses(result) == [401, 200]
    challenge = result.received(status=401)[0].header("WWW-Authenticate")
    assert challenge is not None and 'realm="lab.test"' in challenge
    register = result.messages[-2]
    [binding] = kamailio.location("1001")
    assert binding.contact == _contact_uri(register.header("Contact"))
    assert binding.call_id == register.header("Call-ID")
    assert binding.cseq == 2
    assert binding.user_agent == "sipp-lab"
    assert 110 <= binding.expires <= 120
    assert kamailio.registered_users() == ["1001"]


def test_wrong_password_is_refused(kamailio: Kamailio, sipp: Sipp) -> None:
    result = sipp.run("reg_auth", kamailio.port, service="1001", auth=("1001", "wrong"))

    assert result.returncode == 1
    statuses = [message.status for message in result.received()]
    assert statuses.count(401) >= 2 and 200 not in statuses
    assert kamailio.location("1001") == []


def test_users_added_while_running_can_register(kamailio: Kamailio, sipp: Sipp) -> None:
    kamailio.add_user("3001", "pass3001")

    assert sipp.register(kamailio.port, "3001", "pass3001").ok
    assert len(kamailio.location("3001")) == 1


@pytest.mark.parametrize(
    ("settings", "asked", "granted"),
    [
        ({"max_expires": 20}, 120, 20),
        ({}, 120, 120),
        ({"min_expires": 60}, 30, 60),
    ],
)
def test_registrar_grants_expires_within_its_limits(
    kamailio_factory: KamailioFactory,
    sipp: Sipp,
    settings: dict[str, int],
    asked: int,
    granted: int,
) -> None:
    server = kamailio_factory(**settings)

    result = sipp.register(server.port, "1001", "pass1001", expires=asked)

    assert result.ok, result.describe()
    contact = result.received(status=200)[0].header("Contact")
    assert contact is not None and contact.endswith(f";expires={granted}")
    [binding] = server.location("1001")
    assert granted - 2 <= binding.expires <= granted


def test_kill_and_restart_keeps_port_and_empties_location(kamailio: Kamailio, sipp: Sipp) -> None:
    port = kamailio.port
    assert sipp.register(port, "1001", "pass1001").ok
    assert kamailio.location("1001")

    kamailio.kill()
    assert not kamailio.running
    with pytest.raises(WaitTimeoutError):
        options_ping(port, timeout=0.5)

    kamailio.restart()
    assert kamailio.port == port
    assert kamailio.options() == "SIP/2.0 200 Keepalive"
    assert kamailio.location("1001") == []
    assert kamailio.registered_users() == []
    assert sipp.register(port, "1001", "pass1001").ok


def test_two_kamailios_run_side_by_side(kamailio_factory: KamailioFactory, sipp: Sipp) -> None:
    first, second = kamailio_factory(), kamailio_factory(max_expires=30)
    assert first.port != second.port

    assert sipp.register(first.port, "1001", "pass1001").ok

    assert len(first.location("1001")) == 1
    assert second.location("1001") == []
    assert second.options() == "SIP/2.0 200 Keepalive"


def test_bundled_sipp_call_scenarios_pass_through_kamailio(kamailio: Kamailio, sipp: Sipp) -> None:
    callee = sipp.start("uas_rr", calls=1)
    assert sipp.register(kamailio.port, "2000", "pass2000", contact_port=callee.local_port).ok

    cancel = sipp.run("uac_cancel", kamailio.port, service="2000", auth=("1002", "pass1002"))

    assert cancel.ok, cancel.describe()
    assert [m.start_line.split()[0] for m in cancel.messages if m.direction == "sent"] == [
        "INVITE",
        "ACK",
        "INVITE",
        "CANCEL",
        "ACK",
    ]
    assert callee.wait(timeout=10).ok


def test_bundled_message_and_presence_scenarios(kamailio: Kamailio, sipp: Sipp) -> None:
    inbox = sipp.start("message_uas")
    assert sipp.register(kamailio.port, "1001", "pass1001", contact_port=inbox.local_port).ok
    message = sipp.run("message_uac", kamailio.port, service="1001", auth=("1002", "pass1002"))
    assert message.ok, message.describe()
    assert inbox.wait(timeout=10).ok

    watcher = sipp.start("presence_sub", kamailio.port, service="1001", auth=("1002", "pass1002"))
    watcher.wait_for_message(lambda m: m.direction == "received" and m.method == "NOTIFY")
    published = sipp.run("presence_pub", kamailio.port, service="1001", auth=("1001", "pass1001"))
    assert published.ok, published.describe()
    watched = watcher.wait(timeout=20)
    assert watched.ok, watched.describe()
    notifies = watched.received(method="NOTIFY")
    assert "<note>lab-online</note>" in notifies[-1].text


def test_malformed_request_gets_400(kamailio: Kamailio, sipp: Sipp) -> None:
    result = sipp.run("malformed", kamailio.port, service="1001")

    assert result.ok
    assert result.received(status=400)


def test_options_load_mode(kamailio: Kamailio, sipp: Sipp) -> None:
    result = sipp.options_load(kamailio.port, calls=50, rate=100)

    assert result.ok, result.describe()
    assert (result.successful_calls, result.failed_calls) == (50, 0)


def test_baresip_call_through_kamailio_is_set_up_and_closed(
    kamailio: Kamailio, baresip_factory: BaresipFactory
) -> None:
    caller = baresip_factory("1001", kamailio=kamailio)
    callee = baresip_factory("1002", kamailio=kamailio)
    [binding] = kamailio.location("1002")
    assert binding.contact.endswith(f"@127.0.0.1:{callee.sip_port}")
    assert binding.user_agent is not None and "baresip" in binding.user_agent

    caller.dial(kamailio.aor("1002"))
    incoming = callee.wait_event("CALL_INCOMING")
    assert incoming.peer == kamailio.aor("1001")
    callee.accept()
    caller.wait_event("CALL_ESTABLISHED")
    callee.wait_event("CALL_ESTABLISHED")
    callee.wait_event("CALL_RTPESTAB")

    caller.hangup()
    callee.wait_event("CALL_CLOSED")
    caller.wait_event("CALL_CLOSED")


@pytest.mark.root
def test_capture_sees_the_registration(
    kamailio: Kamailio, sipp: Sipp, capture_factory: CaptureFactory
) -> None:
    capture = capture_factory([kamailio.port])

    result = sipp.register(kamailio.port, "1001", "pass1001")
    packets = capture.sip_messages()

    assert result.ok
    assert _without_retransmissions([packet.summary for packet in packets]) == [
        "REGISTER",
        "401 REGISTER",
        "REGISTER",
        "200 REGISTER",
    ]
    assert {packet.call_id for packet in packets} == {result.messages[0].header("Call-ID")}
    assert packets[0].dst_port == kamailio.port
    assert packets[1].src_port == kamailio.port
