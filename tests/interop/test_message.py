"""Instant messages through a real Kamailio that challenges them (407), both ways, in UTF-8."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.interop.lab.kamailio import Kamailio
from tests.interop.lab.sipp import Sipp
from tests.interop.phone import Phone, phone_config

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "scenarios"
TEXT = "Grüße 👋 an der Tür"


def test_phone_sends_a_message_through_the_proxy_with_auth(
    kamailio: Kamailio, sipp: Sipp, start_phone: Callable[[dict[str, Any]], Phone]
) -> None:
    inbox = sipp.start("message_uas")
    assert sipp.register(kamailio.port, "1002", "pass1002", contact_port=inbox.local_port).ok
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    reply = phone.command("message", to=kamailio.aor("1002"), text=TEXT)
    assert reply["ok"] is True, reply
    sent = phone.wait_event("message_sent", where=lambda e: e["message"] == reply["message"])
    assert sent["message"] == reply["message"]
    received = inbox.wait(timeout=10)
    assert received.ok, received.describe()
    (message,) = received.received(method="MESSAGE")
    assert message.text.rstrip("\r\n").endswith(TEXT)
    assert "charset=UTF-8" in (message.header("Content-Type") or "")


def test_phone_receives_a_message_relayed_by_the_proxy(
    kamailio: Kamailio, sipp: Sipp, start_phone: Callable[[dict[str, Any]], Phone]
) -> None:
    phone = start_phone(phone_config(kamailio))
    phone.wait_registered()
    result = sipp.run(
        SCENARIOS / "message_utf8_uac.xml",
        kamailio.port,
        service="1001",
        auth=("1002", "pass1002"),
    )
    assert result.ok, result.describe()
    event = phone.wait_event("message")
    assert event["text"] == TEXT + "\r\n"  # SIPp ends the body line with CRLF: kept exactly
    assert event["from"] == "sip:1002@lab.test"


def test_message_to_a_bad_address_is_refused_by_the_command(
    kamailio: Kamailio, start_phone: Callable[[dict[str, Any]], Phone]
) -> None:
    phone = start_phone(phone_config(kamailio))
    reply = phone.command("message", to="not a uri", text="x")
    assert reply["ok"] is False
    assert "not a SIP URI" in reply["error"]
