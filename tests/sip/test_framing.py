"""StreamFramer: Content-Length framing on TCP, keep-alives and the size bound."""

from pathlib import Path

import pytest

from firmware.sip import ParseError, parse_message
from firmware.sip.framing import KEEPALIVE_PING, KEEPALIVE_PONG, StreamFramer

CORPUS = Path(__file__).parent.parent / "data"
INVITE = (CORPUS / "bench" / "rfc3665_3.1_F1_invite.txt").read_bytes()
OPTIONS = (
    b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
    b"From: <sip:c@d>;tag=1\r\nCall-ID: x@y\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"
)


def test_whole_messages_in_one_read() -> None:
    framer = StreamFramer()
    assert framer.feed(INVITE + OPTIONS + INVITE) == [INVITE, OPTIONS, INVITE]
    assert framer.buffered == 0


def test_every_split_point_gives_the_same_frames() -> None:
    stream = INVITE + KEEPALIVE_PING + OPTIONS + KEEPALIVE_PONG + INVITE
    ping_middle = len(INVITE) + 2
    for cut in range(1, len(stream)):
        if cut == ping_middle:
            continue
        framer = StreamFramer()
        frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert frames == [INVITE, KEEPALIVE_PING, OPTIONS, KEEPALIVE_PONG, INVITE], cut
        assert framer.buffered == 0


def test_byte_by_byte() -> None:
    framer = StreamFramer()
    frames = [frame for byte in INVITE + OPTIONS for frame in framer.feed(bytes([byte]))]
    assert frames == [INVITE, OPTIONS]
    assert parse_message(frames[0]).body.endswith(b"a=rtpmap:0 PCMU/8000\r\n")


def test_keepalives_are_reported_distinctly() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n\r\n") == [KEEPALIVE_PING, KEEPALIVE_PONG]
    assert framer.feed(b"\r\n" + OPTIONS) == [KEEPALIVE_PONG, OPTIONS]
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n\r") == []
    assert framer.feed(b"\n") == [KEEPALIVE_PING]


def test_a_lone_crlf_is_a_pong_even_when_a_ping_was_split_there() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == [KEEPALIVE_PONG]
    assert framer.feed(b"\r\n") == [KEEPALIVE_PONG]


def test_incomplete_body_waits() -> None:
    framer = StreamFramer()
    clerr = (CORPUS / "rfc4475" / "clerr.dat").read_bytes()
    assert framer.feed(clerr) == []
    assert framer.buffered == len(clerr)


def test_compact_and_folded_content_length() -> None:
    folded = OPTIONS.replace(b"l: 0", b"Content-Length:\r\n  0")
    assert StreamFramer().feed(folded) == [folded]


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (OPTIONS.replace(b"l: 0\r\n", b""), 400, "missing Content-Length on a stream"),
        (OPTIONS.replace(b"l: 0", b"l: -1"), 400, "Content-Length is not a valid length"),
        (OPTIONS.replace(b"l: 0", b"l: 0\r\nContent-Length: 5"), 400, "conflicting Content-Length"),
        (b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n", None, "missing Content-Length"),
        (b"\rX", 400, "CR not followed by LF"),
    ],
)
def test_framing_errors(data: bytes, status: int | None, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as caught:
        StreamFramer().feed(data)
    assert caught.value.status == status


def test_size_bound_on_headers_and_on_body() -> None:
    framer = StreamFramer(max_message_size=300)
    with pytest.raises(ParseError, match="header section longer than 300 bytes") as caught:
        for _ in range(100):
            framer.feed(b"INVITE sip:a@b SIP/2.0\r\nX-Padding: aaaaaaaaaa\r\n")
    assert caught.value.status == 513
    assert framer.buffered == 0
    with pytest.raises(ParseError, match="exceeds the limit of 300"):
        StreamFramer(max_message_size=300).feed(INVITE)


def test_failure_is_sticky() -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError, match="missing Content-Length"):
        framer.feed(OPTIONS.replace(b"l: 0\r\n", b""))
    with pytest.raises(ParseError, match="missing Content-Length"):
        framer.feed(OPTIONS)
