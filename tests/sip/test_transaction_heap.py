"""Many live transactions: the layer's next deadline is exact and finished ones are forgotten."""

from __future__ import annotations

from firmware.sip import parse_message
from firmware.sip.message import Request, Response
from firmware.sip.timers import TimerConfig
from firmware.sip.transaction import RequestReceived, TransactionLayer
from firmware.sip.transport_types import Address

PEER = Address("127.0.0.1", 5099)
CONFIG = TimerConfig()


def _options(i: int) -> Request:
    message = parse_message(
        (
            f"OPTIONS sip:u@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{i}\r\n"
            f"From: <sip:p@127.0.0.1>;tag=p\r\nTo: <sip:u@127.0.0.1>\r\n"
            f"Call-ID: c{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


def _answer_all(layer: TransactionLayer, now: float) -> None:
    while (event := layer.next_event()) is not None:
        if isinstance(event, RequestReceived):
            response = Response.for_request(event.request, 200, to_tag="t")
            layer.respond(event.key, response, now)


def test_timer_j_of_many_answered_requests_expires_in_order() -> None:
    layer = TransactionLayer(CONFIG)
    count = 500
    for i in range(count):
        now = i * 0.01
        layer.receive(_options(i), PEER, "udp", now)
        _answer_all(layer, now)
    assert len(layer) == count
    assert layer.get_timer() == CONFIG.timer_j(reliable=False)  # the first answer's Timer J
    halfway = CONFIG.timer_j(reliable=False) + (count // 2) * 0.01 - 0.005
    layer.handle_timer(halfway)
    assert len(layer) == count // 2
    assert layer.get_timer() == CONFIG.timer_j(reliable=False) + (count // 2) * 0.01
    layer.handle_timer(1000.0)
    assert len(layer) == 0
    assert layer.get_timer() is None


def test_a_retransmission_does_not_leave_a_stale_deadline_behind() -> None:
    layer = TransactionLayer(CONFIG)
    layer.receive(_options(1), PEER, "udp", 0.0)
    _answer_all(layer, 0.0)
    layer.receive(_options(1), PEER, "udp", 1.0)  # absorbed, the 200 re-sent
    _answer_all(layer, 1.0)
    assert layer.get_timer() == CONFIG.timer_j(reliable=False)
    layer.handle_timer(CONFIG.timer_j(reliable=False))
    assert len(layer) == 0
    assert layer.get_timer() is None
