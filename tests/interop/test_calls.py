"""Calls between the phone and a real baresip through a real Kamailio (registrar + proxy).

The phone is driven through its control socket; baresip through ctrl_tcp. What each side
reports is checked against the other, so a call the phone thinks is up is up at baresip.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.interop.lab.factories import BaresipFactory
from tests.interop.lab.kamailio import Kamailio
from tests.interop.lab.sipp import Sipp
from tests.interop.phone import Phone, phone_config
from tests.interop.test_registration import send_direct_invite

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "scenarios"
StartPhone = Callable[[dict[str, Any]], Phone]


def _is(call: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event.get("call") == call


@pytest.mark.parametrize("who_hangs_up", ["phone", "baresip"])
def test_phone_calls_baresip_which_answers_then_each_side_hangs_up(
    kamailio: Kamailio,
    baresip_factory: BaresipFactory,
    start_phone: StartPhone,
    who_hangs_up: str,
) -> None:
    baresip = baresip_factory("1002", kamailio=kamailio)
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    reply = phone.command("dial", uri=kamailio.aor("1002"))
    assert reply["ok"] is True, reply
    call = reply["call"]
    assert phone.wait_event("call_outgoing", where=_is(call))["remote"] == kamailio.aor("1002")
    baresip.wait_event("CALL_INCOMING")
    baresip.accept()
    established = phone.wait_event("call_established", where=_is(call))
    assert established["account"] == kamailio.aor("1001")
    baresip.wait_event("CALL_ESTABLISHED")
    assert phone.command("status")["calls"][0]["state"] == "established"
    if who_hangs_up == "phone":
        assert phone.command("hangup")["ok"] is True
        closed = phone.wait_event("call_closed", where=_is(call))
        assert closed["reason"] == "local_hangup"
    else:
        baresip.hangup()
        closed = phone.wait_event("call_closed", where=_is(call))
        assert closed["reason"] == "remote_hangup"
    baresip.wait_event("CALL_CLOSED")
    assert phone.command("status")["calls"] == []
    assert phone.count_events("call_closed") == 1


def test_phone_cancels_before_answer(
    kamailio: Kamailio, baresip_factory: BaresipFactory, start_phone: StartPhone
) -> None:
    baresip = baresip_factory("1002", kamailio=kamailio)
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    call = phone.command("dial", uri=kamailio.aor("1002"))["call"]
    baresip.wait_event("CALL_INCOMING")
    phone.wait_event("call_ringing", where=_is(call))
    assert phone.command("hangup", call=call)["ok"] is True
    closed = phone.wait_event("call_closed", where=_is(call))
    assert (closed["reason"], closed["status"]) == ("cancelled", 487)
    baresip.wait_event("CALL_CLOSED")


def test_baresip_calls_and_cancels(
    kamailio: Kamailio, baresip_factory: BaresipFactory, start_phone: StartPhone
) -> None:
    baresip = baresip_factory("1002", kamailio=kamailio)
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    baresip.dial(kamailio.aor("1001"))
    incoming = phone.wait_event("call_incoming")
    assert incoming["account"] == kamailio.aor("1001")
    assert incoming["remote"] == kamailio.aor("1002")
    baresip.wait_event("CALL_RINGING")
    baresip.hangup()
    closed = phone.wait_event("call_closed", where=_is(incoming["call"]))
    assert closed["reason"] == "cancelled"
    baresip.wait_event("CALL_CLOSED")


def test_phone_rejects_with_486_when_told(
    kamailio: Kamailio, baresip_factory: BaresipFactory, start_phone: StartPhone
) -> None:
    baresip = baresip_factory("1002", kamailio=kamailio)
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    baresip.dial(kamailio.aor("1001"))
    call = phone.wait_event("call_incoming")["call"]
    assert phone.command("hangup", call=call, status=486)["ok"] is True
    closed = phone.wait_event("call_closed", where=_is(call))
    assert (closed["reason"], closed["status"]) == ("rejected", 486)
    assert "486" in (baresip.wait_event("CALL_CLOSED").param or "")


def test_auto_answer_through_the_proxy(
    kamailio: Kamailio, baresip_factory: BaresipFactory, start_phone: StartPhone
) -> None:
    baresip = baresip_factory("1002", kamailio=kamailio)
    config = phone_config(kamailio)
    config["sip"]["accounts"][0]["auto_answer"] = True
    phone = start_phone(config)
    phone.wait_registered()
    baresip.dial(kamailio.aor("1001"))
    call = phone.wait_event("call_incoming")["call"]
    phone.wait_event("call_established", where=_is(call))
    baresip.wait_event("CALL_ESTABLISHED")
    baresip.hangup()
    assert phone.wait_event("call_closed", where=_is(call))["reason"] == "remote_hangup"


def test_hold_and_resume_from_each_side(
    kamailio: Kamailio, baresip_factory: BaresipFactory, start_phone: StartPhone
) -> None:
    baresip = baresip_factory("1002", kamailio=kamailio)
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    call = phone.command("dial", uri=kamailio.aor("1002"))["call"]
    baresip.wait_event("CALL_INCOMING")
    baresip.accept()
    phone.wait_event("call_established", where=_is(call))
    assert phone.command("hold")["ok"] is True
    assert phone.wait_event("call_held", where=_is(call))["by"] == "local"
    assert phone.command("resume")["ok"] is True
    assert phone.wait_event("call_resumed", where=_is(call))["by"] == "local"
    baresip.command("hold")
    assert phone.wait_event("call_held", where=_is(call))["by"] == "remote"
    baresip.command("resume")
    assert phone.wait_event("call_resumed", where=_is(call))["by"] == "remote"
    assert phone.command("hangup")["ok"] is True
    baresip.wait_event("CALL_CLOSED")


def test_a_peer_that_never_answers_times_out_after_64_t1(start_phone: StartPhone) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives the INVITEs, never answers
        port = silent.getsockname()[1]
        phone = start_phone(
            {"sip": {"listen": "127.0.0.1:0", "timers": {"t1": 0.1, "t2": 0.4, "t4": 0.5}}}
        )
        started = time.monotonic()
        call = phone.command("dial", uri=f"sip:nobody@127.0.0.1:{port}")["call"]
        closed = phone.wait_event("call_closed", timeout=20, where=_is(call))
        elapsed = time.monotonic() - started
    assert (closed["reason"], closed["status"]) == ("timeout", None)
    assert elapsed >= 64 * 0.1 - 0.2  # Timer B, not an earlier give-up


def test_a_200_crossing_our_cancel_is_acked_then_ended_with_bye(
    sipp: Sipp, start_phone: StartPhone
) -> None:
    callee = sipp.start(SCENARIOS / "uas_200_crosses_cancel.xml")
    phone = start_phone(
        {"sip": {"listen": "127.0.0.1:0", "timers": {"t1": 0.1, "t2": 0.4, "t4": 0.5}}}
    )
    call = phone.command("dial", uri=f"sip:sipp@127.0.0.1:{callee.local_port}")["call"]
    phone.wait_event("call_ringing", where=_is(call))
    assert phone.command("hangup", call=call)["ok"] is True
    closed = phone.wait_event("call_closed", where=_is(call))
    assert closed["reason"] == "local_hangup"
    result = callee.wait(timeout=15)
    assert result.ok, result.describe()
    assert [m.method for m in result.received() if m.method] == ["INVITE", "CANCEL", "ACK", "BYE"]
    assert phone.count_events("call_closed") == 1


def test_auto_answer_does_not_answer_a_direct_call_from_an_untrusted_source(
    kamailio: Kamailio, start_phone: StartPhone
) -> None:
    config = phone_config(kamailio)
    config["sip"]["accounts"][0]["auto_answer"] = True
    phone = start_phone(config)
    phone.wait_registered()
    port = int(phone.command("status")["listen"].rsplit(":", 1)[1])
    reply = send_direct_invite(port, user_agent="Linphone/5.2")
    assert reply.startswith("SIP/2.0 403 "), reply
    assert phone.count_events("call_incoming") == 0
    assert phone.command("status")["calls"] == []
