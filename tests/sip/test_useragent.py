"""The UA core in memory: what it answers itself, and the origin rules, on a hand-moved clock."""

from __future__ import annotations

import ipaddress
import itertools

from firmware.sip import parse_message
from firmware.sip.message import Request, Response
from firmware.sip.registration import RegistrationSettings
from firmware.sip.transport_types import Address
from firmware.sip.uri import parse_uri
from firmware.sip.useragent import ALLOWED_METHODS, CoreSettings, UserAgentCore

LOCAL = Address("127.0.0.1", 5070)
TRUSTED_PEER = ("127.0.0.1", 5099)
STRANGER = ("192.0.2.7", 5099)  # responses go to the Via port (no rport asked)


def _core(trusted: tuple[str, ...] = ("127.0.0.0/8",)) -> UserAgentCore:
    counter = itertools.count()
    return UserAgentCore(
        CoreSettings(trusted=tuple(ipaddress.ip_network(n) for n in trusted)),
        LOCAL,
        new_token=lambda: f"t{next(counter)}",
        jitter=lambda: 0.5,
    )


def _request(method: str, *, branch: str = "z9hG4bKa1") -> bytes:
    return (
        f"{method} sip:1001@127.0.0.1:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch={branch}\r\n"
        f"From: <sip:peer@127.0.0.1>;tag=p1\r\nTo: <sip:1001@127.0.0.1>\r\n"
        f"Call-ID: c-{branch}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def _answer(core: UserAgentCore, data: bytes, source: tuple[str, int]) -> Response:
    core.receive(data, source, "udp", now=0.0)
    sent = core.take_transmissions()
    assert len(sent) == 1, sent
    assert (sent[0].host, sent[0].port) == source
    response = parse_message(sent[0].data)
    assert isinstance(response, Response)
    return response


def test_options_gets_200_with_capabilities() -> None:
    response = _answer(_core(), _request("OPTIONS"), TRUSTED_PEER)
    assert response.status == 200
    assert response.headers.get_all("Allow") == list(ALLOWED_METHODS)
    assert response.headers.get("Accept") == "application/sdp"
    assert response.headers.lines("Supported") == [""]
    assert response.to.tag


def test_known_but_unsupported_method_is_405_and_unknown_is_501() -> None:
    core = _core()
    refused = _answer(core, _request("SUBSCRIBE", branch="z9hG4bKs"), TRUSTED_PEER)
    assert refused.status == 405
    assert refused.headers.get_all("Allow") == list(ALLOWED_METHODS)
    assert _answer(core, _request("FROBNICATE", branch="z9hG4bKf"), TRUSTED_PEER).status == 501


def test_untrusted_source_is_refused_without_an_account() -> None:
    response = _answer(_core(), _request("OPTIONS"), STRANGER)
    assert response.status == 403
    assert "untrusted" in response.reason


def test_ipv4_peer_through_a_dual_stack_socket_is_judged_as_ipv4() -> None:
    response = _answer(_core(), _request("OPTIONS"), ("::ffff:127.0.0.1", 5099))
    assert response.status == 200


def test_retransmitted_request_is_answered_from_the_transaction() -> None:
    core = _core()
    first = _answer(core, _request("OPTIONS"), TRUSTED_PEER)
    again = _answer(core, _request("OPTIONS"), TRUSTED_PEER)
    assert bytes(again) == bytes(first)


def test_malformed_request_gets_a_reasoned_400() -> None:
    bad = _request("OPTIONS").replace(b"Content-Length: 0", b"Content-Length: 99")
    response = _answer(_core(), bad, TRUSTED_PEER)
    assert response.status == 400
    assert "Content-Length" in response.reason


def test_garbage_is_dropped_silently() -> None:
    core = _core()
    core.receive(b"\x00\xff garbage", TRUSTED_PEER, "udp", now=0.0)
    assert core.take_transmissions() == []


def _account_core() -> UserAgentCore:
    counter = itertools.count()
    account = RegistrationSettings(
        aor=parse_uri("sip:1001@lab.test"),
        registrars=(parse_uri("sip:127.0.0.1:5060"),),
        username="1001",
        password="pass1001",
        user_agent="deskphone-test",
    )
    return UserAgentCore(
        CoreSettings(accounts=(account,)),
        LOCAL,
        new_token=lambda: f"t{next(counter)}",
        jitter=lambda: 0.5,
    )


def _sent_register_contact(core: UserAgentCore) -> str:
    sent = core.take_transmissions()
    assert len(sent) == 1
    request = parse_message(sent[0].data)
    assert isinstance(request, Request)
    assert request.method == "REGISTER"
    return str(request.contacts[-1].uri)


def test_a_new_local_address_moves_the_contact_at_once() -> None:
    core = _account_core()
    core.register(now=0.0)
    assert "@127.0.0.1:5070" in _sent_register_contact(core)
    core.local_address_changed("192.0.2.50", now=1.0)
    assert "@192.0.2.50:5070" in _sent_register_contact(core)
    core.local_address_changed("192.0.2.50", now=2.0)  # no change, nothing sent
    assert core.take_transmissions() == []
