"""Answers to requests that do not parse: a reason for the peer, never a crash."""

from __future__ import annotations

import pytest

from firmware.sip import ParseError, parse_message
from firmware.sip.message import Response
from firmware.sip.transport_types import Address
from firmware.sip.wire import rejection_for_unparsable

SOURCE = Address("127.0.0.1", 5099)
BAD_LENGTH = (
    b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n"
    b"f: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
    b"Max-Forwards: 70\r\nContent-Length: 9999\r\n\r\n"
)


def _error(data: bytes) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_message(data)
    return caught.value


def test_unparsable_request_gets_its_status_with_the_reason_and_dialog_headers() -> None:
    error = _error(BAD_LENGTH)
    outgoing = rejection_for_unparsable(BAD_LENGTH, error, SOURCE, "udp")
    assert outgoing is not None
    assert (outgoing.transport, outgoing.host, outgoing.port) == ("udp", "127.0.0.1", 5099)
    response = parse_message(outgoing.data)
    assert isinstance(response, Response)
    assert response.status == 400
    assert "Content-Length" in response.reason
    assert response.call_id == "c1"
    assert response.top_via.branch == "z9hG4bK1"
    assert str(response.from_.uri) == "sip:a@b"


def test_no_answer_without_via_for_ack_or_for_responses() -> None:
    no_via = BAD_LENGTH.replace(b"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n", b"")
    assert rejection_for_unparsable(no_via, _error(no_via), SOURCE, "udp") is None
    ack = BAD_LENGTH.replace(b"OPTIONS sip:", b"ACK sip:").replace(b"1 OPTIONS", b"1 ACK")
    assert rejection_for_unparsable(ack, _error(ack), SOURCE, "udp") is None
    response = b"SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert rejection_for_unparsable(response, _error(response), SOURCE, "udp") is None
