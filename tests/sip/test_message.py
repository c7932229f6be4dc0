"""Request/Response values, serialisation and the datagram parser's own checks."""

import pytest

from firmware.sip import Headers, ParseError, Request, Response, parse_message, parse_uri
from firmware.sip.message import reason_phrase

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Timestamp: 54\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def invite() -> Request:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    return message


def test_parse_fields() -> None:
    request = invite()
    assert (request.method, str(request.uri), request.body) == (
        "INVITE",
        "sip:bob@biloxi.example.com",
        b"v=0\n",
    )
    assert request.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert request.top_via.branch == "z9hG4bK776asdhds"
    assert request.from_.tag == "1928301774" and request.to.tag is None
    assert request.content_type is not None and request.content_type.mime == "application/sdp"
    assert "Content-Length" not in request.headers
    assert request.content_length == 4


def test_bytes_is_canonical_and_round_trips() -> None:
    request = invite()
    assert bytes(request) == INVITE.replace(b"Content-Length: 4\r\n", b"").replace(
        b"Content-Type: application/sdp\r\n",
        b"Content-Type: application/sdp\r\nContent-Length: 4\r\n",
    )
    assert parse_message(bytes(request)) == request


def test_content_length_always_follows_the_body() -> None:
    request = invite()
    request.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    request.headers.add("Content-Length", "999")
    data = bytes(request)
    assert data.count(b"Content-Length") == 1
    assert b"Content-Length: 31\r\n\r\n" in data
    assert parse_message(data).body == request.body


def test_equality() -> None:
    assert invite() == invite()
    changed = invite()
    changed.headers.set("Max-Forwards", "69")
    assert changed != invite()
    other_uri = invite()
    other_uri.uri = parse_uri("sip:carol@chicago.example.com")
    assert other_uri != invite()
    assert Response(200) == Response(200, "OK")
    assert Response(200) != Response(200, "Fine")
    assert invite() != Response(200)


def test_build_request_from_fields() -> None:
    request = Request(
        "OPTIONS",
        parse_uri("sip:carol@chicago.example.com"),
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@atlanta.example.com>;tag=88"),
            ("To", "<sip:carol@chicago.example.com>"),
            ("Call-ID", "x1@192.0.2.1"),
            ("CSeq", "1 OPTIONS"),
        ],
    )
    assert bytes(request).startswith(b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nVia: ")
    assert bytes(request).endswith(b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    assert parse_message(bytes(request)) == request


def test_response_for_request_copies_the_dialog_headers() -> None:
    request = invite()
    request.headers.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK2")
    trying = Response.for_request(request, 100)
    assert (trying.status, trying.reason) == (100, "Trying")
    assert [name for name, _ in trying.headers] == [
        "Via", "To", "From", "Call-ID", "CSeq", "Timestamp", "Via",
    ]  # fmt: skip
    assert [via.branch for via in trying.vias] == ["z9hG4bK776asdhds", "z9hG4bK2"]
    ringing = Response.for_request(request, 180, to_tag="a6c85cf")
    assert ringing.to.tag == "a6c85cf"
    assert ringing.to.display_name == "Bob"
    assert "Timestamp" not in ringing.headers
    assert ringing.cseq == request.cseq and ringing.call_id == request.call_id
    decline = Response.for_request(request, 603, "Not today")
    assert decline.reason == "Not today"
    parsed = parse_message(bytes(ringing))
    assert parsed == ringing


def test_in_dialog_to_tag_is_kept() -> None:
    request = invite()
    request.headers.set("To", "<sip:bob@biloxi.example.com>;tag=existing")
    assert Response.for_request(request, 200, to_tag="new").to.tag == "existing"


def test_reason_phrases() -> None:
    assert reason_phrase(486) == "Busy Here"
    assert reason_phrase(499) == "Bad Request"
    assert reason_phrase(299) == "OK"
    assert reason_phrase(198) == "Trying"


def test_missing_core_header_on_a_built_message() -> None:
    with pytest.raises(ParseError, match="missing CSeq header") as caught:
        _ = Response(200).cseq
    assert caught.value.status is None
    with pytest.raises(ParseError, match="missing Via header") as caught:
        _ = Request("BYE", parse_uri("sip:a@b")).top_via
    assert caught.value.status == 400


def replace(old: bytes, new: bytes) -> bytes:
    assert old in INVITE
    return INVITE.replace(old, new)


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (INVITE[: INVITE.index(b"\r\n\r\n")], 400, "not terminated by an empty line"),
        (
            replace(b"CSeq: 314159 INVITE\r\n", b"CSeq: 314159 INVITE\nX: y\r\n"),
            400,
            "bare CR or LF",
        ),
        (replace(b"Timestamp: 54", b"Timestamp 54"), 400, "header line without ':'"),
        (replace(b"Timestamp: 54", b"Time stamp: 54"), 400, "invalid header name"),
        (replace(b"Content-Length: 4", b"Content-Length: 5"), 400, "Content-Length 5 exceeds"),
        (replace(b"Content-Length: 4", b"Content-Length: 4x"), 400, "Content-Length is not a"),
        (replace(b"Content-Length: 4", b"Content-Length: 99999999999"), 400, "Content-Length too"),
        (replace(b"SIP/2.0\r\n", b"SIP/2.1\r\n"), 505, "SIP version SIP/2.1 is not supported"),
        (replace(b"SIP/2.0\r\n", b"HTTP/1.1\r\n"), 400, "malformed SIP version"),
        (replace(b"INVITE sip", b"INV(TE sip"), 400, "method is not a token"),
        (replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), 400, "Max-Forwards out of range"),
        (
            replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b""),
            400,
            "missing Call-ID",
        ),
        (replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/"), 400, "malformed Via"),
        (replace(b"To: Bob", b"To: Bob,"), 400, "non-token characters"),
        (replace(b"To: Bob", b"To: <sip:b@c>\r\nTo: Bob"), 400, "more than one To header"),
        (replace(b"Contact: <", b"Contact: ;<"), 400, "non-token characters"),
    ],
)
def test_malformed_requests(data: bytes, status: int, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as caught:
        parse_message(data)
    assert caught.value.status == status


def test_cseq_method_must_match() -> None:
    with pytest.raises(ParseError, match="CSeq method INVITE does not match request method BYE"):
        parse_message(INVITE.replace(b"INVITE sip:", b"BYE sip:"))


def test_too_large_request_gets_513_and_response_is_dropped() -> None:
    with pytest.raises(ParseError, match="exceeds the limit of 100") as caught:
        parse_message(INVITE, max_size=100)
    assert caught.value.status == 513
    response = bytes(Response.for_request(invite(), 200))
    with pytest.raises(ParseError, match="exceeds the limit") as caught:
        parse_message(response, max_size=100)
    assert caught.value.status is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"SIP/2.0 99 Low", "status code '99'"),
        (b"SIP/2.0 700 High", "status code '700'"),
        (b"SIP/2.0 2OO OK", "status code '2OO'"),
        (b"SIP/3.0 200 OK", "SIP version 'SIP/3.0'"),
    ],
)
def test_malformed_responses_have_no_status(line: bytes, reason: str) -> None:
    good = bytes(Response.for_request(invite(), 200))
    with pytest.raises(ParseError, match=reason) as caught:
        parse_message(good.replace(b"SIP/2.0 200 OK", line))
    assert caught.value.status is None


def test_malformed_header_in_a_response_has_no_status() -> None:
    good = bytes(Response.for_request(invite(), 200))
    with pytest.raises(ParseError, match="CSeq number out of range") as caught:
        parse_message(good.replace(b"CSeq: 314159", b"CSeq: 99999999999"))
    assert caught.value.status is None


def test_leading_crlf_and_missing_reason() -> None:
    good = bytes(Response.for_request(invite(), 200))
    response = parse_message(b"\r\n\r\n" + good.replace(b" 200 OK\r\n", b" 200\r\n"))
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (200, "")


def test_non_utf8_bytes_survive_a_round_trip() -> None:
    data = INVITE.replace(b"Timestamp: 54", b"Subject: caf\xe9 \xff")
    message = parse_message(data)
    assert b"Subject: caf\xe9 \xff\r\n" in bytes(message)
    assert parse_message(bytes(message)) == message


def test_headers_object_is_shared_not_copied() -> None:
    headers = Headers([("Call-ID", "a@b")])
    request = Request("OPTIONS", parse_uri("sip:a@b"), headers)
    assert request.headers is headers


def test_status_class_and_lazy_request_uri() -> None:
    assert Response(183).status_class == 1 and Response(486).status_class == 4
    request = invite()
    assert request.uri == parse_uri("sip:bob@biloxi.example.com")
    request.uri = parse_uri("sip:bob@192.0.2.4:5070")
    assert bytes(request).startswith(b"INVITE sip:bob@192.0.2.4:5070 SIP/2.0\r\n")
