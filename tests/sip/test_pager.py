"""The pager usage alone, against a proxy scripted with the message API. Every request is
serialised and parsed again, so what is checked is what would go on the wire; digest answers
are checked with the server half of `auth`. Received MESSAGEs are parsed from raw bytes.
"""

import pytest

from firmware.sip.auth import (
    DigestChallenge,
    DigestClient,
    Qop,
    auth_header_names,
    format_challenge,
    parse_credentials,
    verify,
)
from firmware.sip.dialog import Dialog
from firmware.sip.headers import Via
from firmware.sip.message import Request, Response
from firmware.sip.pager import (
    MAX_RECEIVED_BODY,
    MessageFailed,
    MessageReceived,
    MessageSent,
    MessageVerdict,
    Pager,
    PagerEvent,
    in_dialog_message,
    receive_message,
)
from firmware.sip.parser import parse_message
from firmware.sip.transport_types import Address, Target
from firmware.sip.uri import NameAddr, parse_name_addr, parse_uri

AOR = parse_uri("sip:1001@pbx.example")
BOB = parse_uri("sip:bob@example.org")
PROXY = parse_uri("sip:proxy.example")
LOCAL = Address("192.0.2.10", 5060)
UDP_PROXY = Target("udp", "proxy.example", 5060)
TCP_PROXY = Target("tcp", "proxy.example", 5060)
PASSWORD = "secret"
GREETING = "Grüße 👋"


class Counter:
    """A deterministic stand-in for the random generators: prefix1, prefix2, …"""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count}"


def make_pager(credentials: DigestClient | None = None) -> Pager:
    return Pager(
        from_=AOR,
        display_name="Front Door",
        local=LOCAL,
        user_agent="deskphone/test",
        credentials=credentials,
        new_tag=Counter("tag"),
        new_branch=Counter("b"),
        new_call_id=Counter("call"),
        new_cnonce=Counter("cnonce"),
    )


def with_password() -> Pager:
    return make_pager(DigestClient("1001", PASSWORD))


def sent(pager: Pager, target: Target = UDP_PROXY) -> Request:
    """The one request the pager asked to send since the last look, as a peer parses it."""
    [(request, to)] = pager.take_requests()
    assert to == target
    parsed = parse_message(bytes(request))
    assert isinstance(parsed, Request)
    return parsed


def events(pager: Pager) -> list[PagerEvent]:
    out = []
    while (event := pager.next_event()) is not None:
        out.append(event)
    return out


def answer(request: Request, status: int, *extra: tuple[str, str]) -> Response:
    response = Response.for_request(request, status, to_tag="far")
    for name, value in extra:
        response.headers.add(name, value)
    parsed = parse_message(bytes(response))
    assert isinstance(parsed, Response)
    return parsed


class DigestServer:
    """A proxy's (407) or the far end's (401) side of digest, a fresh nonce per challenge."""

    def __init__(self, status: int) -> None:
        self.names = auth_header_names(status)
        self.status = status
        self.nonces = Counter(f"nonce-{status}-")
        self.current: DigestChallenge | None = None

    def challenge(self, request: Request) -> Response:
        self.current = DigestChallenge(
            realm="pbx.example", nonce=self.nonces(), qop=(Qop.AUTH,), opaque="op"
        )
        return answer(request, self.status, (self.names.challenge, format_challenge(self.current)))

    def accepts(self, request: Request) -> bool:
        value = request.headers.get(self.names.credentials)
        if value is None or self.current is None:
            return False
        credentials = parse_credentials(value)
        return credentials.uri == str(request.uri) and verify(
            credentials, self.current, method="MESSAGE", password=PASSWORD
        )

    def nonce_count(self, request: Request) -> int | None:
        value = request.headers.get(self.names.credentials)
        assert value is not None
        return parse_credentials(value).nonce_count


# Sending: the request


def test_message_has_the_shape_rfc_3428_asks_and_no_contact() -> None:
    pager = make_pager()
    pager.send("m1", BOB, GREETING, UDP_PROXY, 0.0, route=PROXY)
    request = sent(pager)
    assert (request.method, request.uri) == ("MESSAGE", BOB)
    assert list(request.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKb1;rport"),
        ("Max-Forwards", "70"),
        ("Route", "<sip:proxy.example;lr>"),
        ("From", '"Front Door" <sip:1001@pbx.example>;tag=tag1'),
        ("To", "<sip:bob@example.org>"),
        ("Call-ID", "call1"),
        ("CSeq", "1 MESSAGE"),
        ("Content-Type", "text/plain;charset=UTF-8"),
        ("User-Agent", "deskphone/test"),
    ]
    assert b"\r\nContent-Length: 12\r\n\r\n" in bytes(request)
    assert request.body == b"Gr\xc3\xbc\xc3\x9fe \xf0\x9f\x91\x8b"
    assert events(pager) == []


def test_text_survives_the_wire_and_our_own_reading_exactly() -> None:
    pager = make_pager()
    text = f"{GREETING}\r\n\ttab\x07bell\r\n"
    pager.send("m1", BOB, text, UDP_PROXY, 0.0)
    request = sent(pager)
    assert "Route" not in request.headers
    assert receive_message(request) == MessageVerdict(
        200, "OK", MessageReceived(from_uri=AOR, display="Front Door", text=text)
    )


def test_each_message_has_its_own_call_id_tag_and_branch() -> None:
    pager = make_pager()
    pager.send("m1", BOB, "one", UDP_PROXY, 0.0)
    pager.send("m2", BOB, "two", UDP_PROXY, 0.0)
    first, second = (parse_message(bytes(r)) for r, _ in pager.take_requests())
    assert first.call_id != second.call_id
    assert first.from_.tag != second.from_.tag
    assert first.top_via.branch != second.top_via.branch
    assert second.cseq.seq == 1


def test_the_request_uri_and_to_drop_uri_headers() -> None:
    pager = make_pager()
    pager.send("m1", parse_uri("sip:bob@example.org?Subject=hi"), "x", UDP_PROXY, 0.0)
    request = sent(pager)
    assert request.uri == BOB
    assert request.to.uri == BOB


def test_a_message_id_still_in_flight_cannot_be_reused() -> None:
    pager = make_pager()
    pager.send("m1", BOB, "one", UDP_PROXY, 0.0)
    with pytest.raises(ValueError, match="still being sent"):
        pager.send("m1", BOB, "again", UDP_PROXY, 0.0)
    pager.handle_response(answer(sent(pager), 200), 0.1)
    pager.send("m1", BOB, "again", UDP_PROXY, 0.2)
    assert sent(pager).body == b"again"


def test_text_that_has_no_utf8_form_is_refused() -> None:
    with pytest.raises(UnicodeEncodeError):
        make_pager().send("m1", BOB, "lone \udc80", UDP_PROXY, 0.0)


def test_a_message_too_large_for_udp_fails_but_goes_over_tcp() -> None:
    pager = make_pager()
    pager.send("m1", BOB, "x" * 1200, UDP_PROXY, 0.0)
    assert pager.take_requests() == []
    assert events(pager) == [MessageFailed(message_id="m1", status=None, reason="too-large")]
    pager.send("m2", BOB, "x" * 1200, TCP_PROXY, 0.0)
    assert sent(pager, TCP_PROXY).top_via.transport == "TCP"


# Sending: outcomes


def test_a_2xx_reports_sent_and_provisionals_and_strangers_are_ignored() -> None:
    pager = make_pager()
    pager.send("m1", BOB, "hi", UDP_PROXY, 0.0)
    request = sent(pager)
    pager.handle_response(answer(request, 100), 0.1)
    stranger = answer(request, 200)
    stranger.headers.set("Call-ID", "someone-else")
    pager.handle_response(stranger, 0.1)
    assert events(pager) == []
    pager.handle_response(answer(request, 202), 0.2)
    assert events(pager) == [MessageSent(message_id="m1")]
    pager.handle_response(answer(request, 200), 0.3)  # a second answer finds nothing pending
    assert events(pager) == []


@pytest.mark.parametrize(
    ("status", "reason"), [(404, "Not Found"), (480, "Away"), (603, "Decline")]
)
def test_another_final_response_reports_failed(status: int, reason: str) -> None:
    pager = make_pager()
    pager.send("m1", BOB, "hi", UDP_PROXY, 0.0)
    response = answer(sent(pager), status)
    response.reason = reason
    pager.handle_response(response, 0.1)
    assert events(pager) == [MessageFailed(message_id="m1", status=status, reason=reason)]
    assert pager.take_requests() == []


@pytest.mark.parametrize("reason", ["timeout", "transport"])
def test_no_answer_reports_failed_without_a_status(reason: str) -> None:
    pager = make_pager()
    pager.send("m1", BOB, "hi", UDP_PROXY, 0.0)
    request = sent(pager)
    pager.handle_failure(request, 32.0, reason)
    assert events(pager) == [MessageFailed(message_id="m1", status=None, reason=reason)]
    pager.handle_response(answer(request, 200), 33.0)
    assert events(pager) == []


@pytest.mark.parametrize("status", [407, 401])
def test_a_challenge_gets_one_authenticated_retry(status: int) -> None:
    server = DigestServer(status)
    pager = with_password()
    pager.send("m1", BOB, GREETING, UDP_PROXY, 0.0, route=PROXY)
    first = sent(pager)
    assert server.names.credentials not in first.headers
    pager.handle_response(server.challenge(first), 0.1)
    assert events(pager) == []
    retry = sent(pager)
    assert (retry.call_id, retry.cseq.seq, retry.cseq.method) == (first.call_id, 2, "MESSAGE")
    assert retry.from_ == first.from_
    assert retry.top_via.branch != first.top_via.branch
    assert retry.body == first.body
    assert server.accepts(retry)
    assert server.nonce_count(retry) == 1
    pager.handle_response(server.challenge(first), 0.2)  # a late answer to the first try
    pager.handle_failure(first, 0.2, "timeout")  # and its transaction ending: both stale
    assert events(pager) == []
    pager.handle_response(answer(retry, 200), 0.3)
    assert events(pager) == [MessageSent(message_id="m1")]


def test_a_second_challenge_means_the_credentials_were_refused() -> None:
    server = DigestServer(407)
    pager = with_password()
    pager.send("m1", BOB, "hi", UDP_PROXY, 0.0)
    pager.handle_response(server.challenge(sent(pager)), 0.1)
    pager.handle_response(server.challenge(sent(pager)), 0.2)
    assert pager.take_requests() == []
    assert events(pager) == [
        MessageFailed(
            message_id="m1",
            status=407,
            reason="Proxy Authentication Required (credentials refused)",
        )
    ]


def test_later_messages_reuse_the_nonce_with_the_next_count() -> None:
    server = DigestServer(407)
    pager = with_password()
    pager.send("m1", BOB, "one", UDP_PROXY, 0.0)
    pager.handle_response(server.challenge(sent(pager)), 0.1)
    pager.handle_response(answer(sent(pager), 200), 0.2)
    pager.send("m2", BOB, "two", UDP_PROXY, 1.0)
    second = sent(pager)
    assert second.cseq.seq == 1
    assert server.accepts(second)
    assert server.nonce_count(second) == 2


def test_a_reused_nonce_that_is_refused_still_gets_its_one_retry() -> None:
    server = DigestServer(407)
    pager = with_password()
    pager.send("m1", BOB, "one", UDP_PROXY, 0.0)
    pager.handle_response(server.challenge(sent(pager)), 0.1)
    pager.handle_response(answer(sent(pager), 200), 0.2)
    pager.send("m2", BOB, "two", UDP_PROXY, 1.0)
    pager.handle_response(server.challenge(sent(pager)), 1.1)  # the proxy forgot the nonce
    retry = sent(pager)
    assert server.accepts(retry)
    assert server.nonce_count(retry) == 1
    pager.handle_response(answer(retry, 200), 1.2)
    assert events(pager) == [MessageSent(message_id="m1"), MessageSent(message_id="m2")]


def test_a_challenge_without_credentials_fails_at_once() -> None:
    pager = make_pager()
    pager.send("m1", BOB, "hi", UDP_PROXY, 0.0)
    pager.handle_response(DigestServer(401).challenge(sent(pager)), 0.1)
    assert pager.take_requests() == []
    assert events(pager) == [
        MessageFailed(
            message_id="m1", status=401, reason="Unauthorized (no credentials for this account)"
        )
    ]


def test_an_unusable_challenge_fails_with_why() -> None:
    pager = with_password()
    pager.send("m1", BOB, "hi", UDP_PROXY, 0.0)
    pager.handle_response(answer(sent(pager), 407, ("Proxy-Authenticate", 'Basic realm="x"')), 0.1)
    assert pager.take_requests() == []
    [failed] = events(pager)
    assert isinstance(failed, MessageFailed)
    assert failed.status == 407
    assert failed.reason.startswith("Proxy Authentication Required (unusable challenge: ")
    assert "not Digest" in failed.reason


# Sending inside a dialog


def test_in_dialog_message_follows_the_dialog() -> None:
    dialog = Dialog(
        call_id="call-9",
        local_tag="ours",
        remote_tag="theirs",
        local_uri=NameAddr(uri=AOR),
        remote_uri=NameAddr(uri=BOB),
        remote_target=parse_uri("sip:bob@198.51.100.7:5062"),
        route_set=(parse_name_addr("<sip:proxy.example;lr>"),),
        local_seq=4,
        local_contact=NameAddr(uri=parse_uri("sip:k7Qz1@192.0.2.10")),
    )
    via = Via(transport="UDP", host="192.0.2.10", port=5060, params=(("branch", "z9hG4bKd1"),))
    request = in_dialog_message(dialog, via, GREETING)
    assert (request.method, str(request.uri)) == ("MESSAGE", "sip:bob@198.51.100.7:5062")
    assert (request.call_id, request.cseq.seq, request.cseq.method) == ("call-9", 5, "MESSAGE")
    assert (request.from_.tag, request.to.tag) == ("ours", "theirs")
    assert request.headers.get("Route") == "<sip:proxy.example;lr>"
    assert request.headers.get("Content-Type") == "text/plain;charset=UTF-8"
    assert "Contact" not in request.headers
    assert request.body == GREETING.encode()
    assert in_dialog_message(dialog, via, "again").cseq.seq == 6


# Receiving


def incoming(body: bytes, *headers: str) -> Request:
    lines = [
        "MESSAGE sip:k7Qz1@192.0.2.10 SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK-in",
        "Max-Forwards: 70",
        'From: "Bob" <sip:bob@example.org>;tag=b1',
        "To: <sip:1001@pbx.example>",
        "Call-ID: in-1",
        "CSeq: 7 MESSAGE",
        *headers,
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    request = parse_message("\r\n".join(lines).encode() + body)
    assert isinstance(request, Request)
    return request


def received(text: str) -> MessageVerdict:
    return MessageVerdict(200, "OK", MessageReceived(from_uri=BOB, display="Bob", text=text))


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("text/plain;charset=UTF-8", GREETING.encode(), GREETING),
        ("text/plain", GREETING.encode(), GREETING),
        ('Text/Plain ; charset="utf-8"', b"quoted", "quoted"),
        ("text/plain;charset=ISO-8859-1", b"Gr\xfc\xdfe", "Grüße"),
        ("text/plain;charset=windows-1252", b"\x80 5", "€ 5"),
        ("text/plain;charset=utf-16", "hé".encode("utf-16"), "hé"),
        ("text/plain;charset=us-ascii", b"plain", "plain"),
        ("text/plain;format=flowed", b"no charset: UTF-8", "no charset: UTF-8"),
    ],
)
def test_text_plain_in_any_known_charset_is_accepted(
    content_type: str, body: bytes, text: str
) -> None:
    assert receive_message(incoming(body, f"Content-Type: {content_type}")) == received(text)


def test_the_text_is_kept_exactly_as_sent() -> None:
    text = "line\r\n\x1b[31mred\x00\r\n"
    request = incoming(text.encode(), "Content-Type: text/plain")
    assert receive_message(request) == received(text)


@pytest.mark.parametrize("headers", [(), ("Content-Type: text/plain;charset=klingon",)])
def test_an_empty_body_is_an_empty_message(headers: tuple[str, ...]) -> None:
    assert receive_message(incoming(b"", *headers)) == received("")


@pytest.mark.parametrize(
    "body",
    [
        b"\xff",  # never UTF-8
        b"caf\xe9",  # Latin-1 labelled UTF-8
        b"\xed\xa0\x80",  # an encoded surrogate (CESU-8)
        b"\xc0\xaf",  # an overlong '/'
        b"cut \xf0\x9f\x91",  # a sequence cut short
    ],
)
def test_a_body_that_is_not_valid_in_its_charset_is_a_400(body: bytes) -> None:
    verdict = receive_message(incoming(body, "Content-Type: text/plain;charset=UTF-8"))
    assert (verdict.status, verdict.event, verdict.headers) == (400, None, ())
    assert verdict.reason.startswith("Bad Request (body is not valid 'UTF-8' at byte ")


def test_a_body_without_content_type_is_a_400() -> None:
    verdict = receive_message(incoming(b"hello"))
    assert verdict == MessageVerdict(400, "Bad Request (a body without Content-Type)", None)


def test_a_malformed_content_type_is_a_400() -> None:
    verdict = receive_message(incoming(b"hello", "Content-Type: text"))
    assert (verdict.status, verdict.event) == (400, None)
    assert "Content-Type" in verdict.reason


@pytest.mark.parametrize(
    "content_type", ["application/im-iscomposing+xml", "text/html", "message/cpim"]
)
def test_another_media_type_is_a_415_that_says_what_we_accept(content_type: str) -> None:
    verdict = receive_message(incoming(b"<x/>", f"Content-Type: {content_type}"))
    assert verdict == MessageVerdict(
        415, f"Unsupported Media Type ({content_type})", None, (("Accept", "text/plain"),)
    )


@pytest.mark.parametrize("charset", ["klingon", "unicode-escape", "idna", "base64", "rot13"])
def test_a_charset_we_cannot_decode_as_text_is_a_415(charset: str) -> None:
    verdict = receive_message(incoming(b"aGk=", f"Content-Type: text/plain;charset={charset}"))
    assert verdict == MessageVerdict(
        415,
        f"Unsupported Media Type (charset '{charset}')",
        None,
        (("Accept", "text/plain;charset=UTF-8"),),
    )


def test_a_hostile_charset_name_is_escaped_and_cut_in_the_reason() -> None:
    request = incoming(b"x", 'Content-Type: text/plain;charset="\x01' + "é" * 100 + '"')
    verdict = receive_message(request)
    assert verdict.status == 415
    assert verdict.reason.isascii() and verdict.reason.isprintable()
    assert len(verdict.reason) < 250


def test_a_content_coding_is_a_415_asking_for_identity() -> None:
    verdict = receive_message(
        incoming(b"\x1f\x8b", "Content-Type: text/plain", "Content-Encoding: gzip")
    )
    assert verdict == MessageVerdict(
        415, "Unsupported Media Type (content coding)", None, (("Accept-Encoding", "identity"),)
    )
    plain = incoming(b"hi", "Content-Type: text/plain", "Content-Encoding: identity")
    assert receive_message(plain) == received("hi")


def test_a_body_over_64_kib_is_a_513() -> None:
    small = incoming(b"", "Content-Type: text/plain")
    largest = Request("MESSAGE", small.uri, small.headers, b"a" * MAX_RECEIVED_BODY)
    assert receive_message(largest) == received("a" * MAX_RECEIVED_BODY)
    too_large = Request("MESSAGE", small.uri, small.headers, b"a" * (MAX_RECEIVED_BODY + 1))
    assert receive_message(too_large) == MessageVerdict(
        513, "Message Too Large (over 65536 bytes)", None
    )


def test_only_a_message_is_read() -> None:
    request = incoming(b"")
    request.method = "INFO"
    with pytest.raises(ValueError, match="not a MESSAGE"):
        receive_message(request)
