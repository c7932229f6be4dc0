"""SDP parsing and writing, and offer/answer between two of our own sides and real peers."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.sip.sdp import (
    Answer,
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    MediaSession,
    NoCommonCodec,
    Origin,
    OtherLine,
    SdpError,
    SessionDescription,
    answer_offer,
    build_offer,
    next_version,
    parse_sdp,
    process_answer,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "sdp"
SAMPLES = sorted(DATA.glob("*.sdp"))
SR, SO, RO, IA = Direction.SENDRECV, Direction.SENDONLY, Direction.RECVONLY, Direction.INACTIVE


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def offer_from(text: str) -> SessionDescription:
    return parse_sdp(text.replace("\n", "\r\n").encode())


def answer(offer: SessionDescription | bytes, **overrides: object) -> Answer:
    """Answer as a phone at 192.0.2.7:4000 would, unless told otherwise."""
    options: dict[str, object] = {
        "address": "192.0.2.7",
        "rtp_port": 4000,
        "session_id": 77,
        "session_version": 1,
    }
    options.update(overrides)
    parsed = parse_sdp(offer) if isinstance(offer, bytes) else offer
    return answer_offer(parsed, **options)  # type: ignore[arg-type]


def our_offer(direction: Direction = SR, /, **overrides: object) -> SessionDescription:
    options: dict[str, object] = {
        "address": "198.51.100.1",
        "rtp_port": 5000,
        "session_id": 9,
        "session_version": 1,
        "direction": direction,
    }
    options.update(overrides)
    return build_offer(**options)  # type: ignore[arg-type]


def over_the_wire(description: SessionDescription) -> SessionDescription:
    return parse_sdp(bytes(description))


# --- parsing and writing -------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_every_sample_round_trips(path: Path) -> None:
    description = parse_sdp(path.read_bytes())
    assert parse_sdp(bytes(description)) == description
    assert bytes(description) == description.serialize()


@pytest.mark.parametrize(
    "name", ["baresip_offer.sdp", "asterisk_offer.sdp", "linphone_audio_video_offer.sdp"]
)
def test_well_ordered_crlf_samples_are_written_back_byte_for_byte(name: str) -> None:
    assert bytes(parse_sdp(sample(name))) == sample(name)


def test_lf_only_is_read_and_written_back_with_crlf() -> None:
    body = sample("lf_only_media_connection.sdp")
    assert b"\r" not in body
    assert bytes(parse_sdp(body)) == body.replace(b"\n", b"\r\n")


def test_baresip_offer_fields() -> None:
    description = parse_sdp(sample("baresip_offer.sdp"))
    assert description.origin == Origin(
        username="-", session_id=864098330, session_version=2078876049, address="127.0.0.1"
    )
    assert description.connection == Connection(address="127.0.0.1")
    assert description.attributes == (Attribute("tool", "baresip 1.0.0"),)
    (audio,) = description.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 30058, "RTP/AVP")
    assert audio.payload_types == (0, 8, 101)
    assert audio.ptime == 20
    assert audio.direction is SR
    assert audio.values("ssrc") == ("3216044515 cname:sip:1001@127.0.0.1",)
    assert Attribute("rtcp-rsize") in audio.attributes
    rtp_map = audio.rtp_map(101)
    assert rtp_map is not None
    assert (rtp_map.encoding, rtp_map.clock_rate, rtp_map.is_telephone_event) == (
        "telephone-event",
        8000,
        True,
    )


def test_rfc4566_example_keeps_its_lines_and_session_level_fallbacks() -> None:
    description = parse_sdp(sample("rfc4566_example.sdp"))
    assert [str(line) for line in description.other_lines] == [
        "i=A Seminar on the session description protocol",
        "u=http://www.example.com/seminars/sdp.pdf",
        "e=j.doe@example.com (Jane Doe)",
        "t=2873397496 2873404696",
    ]
    audio, video = description.media
    assert description.connection_for(video) == Connection(address="224.2.17.12/127")
    assert audio.direction is None
    assert description.direction_of(audio) is RO
    video_map = video.rtp_map(99)
    assert video_map is not None
    assert (video_map.encoding, video_map.clock_rate) == ("h263-1998", 90000)


def test_media_level_connection_wins_over_session_level() -> None:
    description = offer_from(
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
        "m=audio 6000 RTP/AVP 0\nc=IN IP4 192.0.2.99\nm=audio 6002 RTP/AVP 0\n"
    )
    first, second = description.media
    assert description.connection_for(first) == Connection(address="192.0.2.99")
    assert description.connection_for(second) == Connection(address="192.0.2.1")


def test_unknown_lines_and_attributes_are_kept_in_rfc_order() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nb=AS:64\r\n"
        b"c=IN IP4 192.0.2.1\r\ny=future\r\na=x-vendor:1\r\n"
        b"m=audio 6000/2 RTP/AVP 0\r\na=flag\r\na=empty:\r\nb=TIAS:64000\r\ni=voice\r\n"
    )
    description = parse_sdp(body)
    assert bytes(description) == (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nb=AS:64\r\n"
        b"t=0 0\r\ny=future\r\na=x-vendor:1\r\n"
        b"m=audio 6000/2 RTP/AVP 0\r\ni=voice\r\nb=TIAS:64000\r\na=flag\r\na=empty:\r\n"
    )
    (audio,) = description.media
    assert audio.port_count == 2
    assert audio.attributes == (Attribute("flag", None), Attribute("empty", ""))
    assert parse_sdp(bytes(description)) == description


def test_bytes_that_are_not_utf8_survive_unchanged() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=Sitzung M\xfcller\r\nt=0 0\r\n"
    assert bytes(parse_sdp(body)) == body


def test_blank_lines_and_a_session_name_of_one_space_are_accepted() -> None:
    description = parse_sdp(b"\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns= \r\n\r\nt=0 0\r\n\r\n")
    assert description.name == " "
    assert bytes(description).startswith(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns= \r\nt=0 0\r\n")


HEADER = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty description"),
        ("\r\n\r\n", "empty description"),
        ("v=0\n", "line 1: the description ends before its o= line"),
        ("v=0\no=- 1 1 IN IP4 h\n", "line 2: the description ends before its s= line"),
        ("v=1\n", "line 1: v=: unsupported SDP version '1'"),
        ("o=- 1 1 IN IP4 h\n", "line 1: o=: expected v= here"),
        ("v=0\ns=-\n", "line 2: s=: expected o= here"),
        ("v=0\no=- 1 IN IP4 h\ns=-\n", "line 2: o=: expected 6 fields, got 5: '- 1 IN IP4 h'"),
        ("v=0\no=- x 1 IN IP4 h\ns=-\n", "line 2: o=: session id is not a number: 'x'"),
        ("v=0\no=- 1 1 IN IP4 h\ns=-\nv=0\n", "line 4: v=: allowed only once, at the top"),
        (HEADER + "m=audio abc RTP/AVP 0\n", "line 5: m=: port is not a number: 'abc'"),
        (HEADER + "m=audio 70000 RTP/AVP 0\n", "line 5: m=: port is out of range: 70000"),
        (HEADER + "m=audio 0/0 RTP/AVP 0\n", "line 5: m=: port count must be positive: 0"),
        (HEADER + "m=audio 1 RTP/AVP 0 x\n", "line 5: m=: payload type is not a number: 'x'"),
        (
            HEADER + "m=audio 1 RTP/AVP x\nm=audio 2 RTP/AVP 0\n",
            "line 5: m=: payload type is not a number: 'x'",
        ),
        (HEADER + "m=audio 1 RTP/AVP 128\n", "line 5: m=: payload type is out of range: 128"),
        (
            HEADER + "m=audio 1\n",
            "line 5: m=: expected '<media> <port> <proto> <format>...', got 'audio 1'",
        ),
        (HEADER + "c=IN IP4\n", "line 5: c=: expected 3 fields, got 2: 'IN IP4'"),
        (HEADER + "c=IN IP4 a\nc=IN IP4 b\n", "line 6: c=: only one c= line is allowed here"),
        (
            HEADER + "m=audio 1 RTP/AVP 0\nc=IN IP4 a\nc=IN IP4 b\n",
            "line 7: c=: only one c= line is allowed here",
        ),
        (
            HEADER + "m=audio 1 RTP/AVP 0\na=rtpmap:0 PCMU\n",
            "line 6: a=: rtpmap: expected '<payload type> <name>/<rate>', got '0 PCMU'",
        ),
        (
            HEADER + "m=audio 1 RTP/AVP 0\na=rtpmap:0 PCMU/fast\n",
            "line 6: a=: rtpmap clock rate is not a number: 'fast'",
        ),
        (
            HEADER + "m=audio 1 RTP/AVP 0\na=ptime:twenty\n",
            "line 6: a=: ptime is not a number: 'twenty'",
        ),
        (HEADER + "m=audio 1 RTP/AVP 0\na=ptime:0\n", "line 6: a=: ptime must be positive"),
        (
            HEADER + "m=audio 1 RTP/AVP 0\na=sendrecv\na=sendonly\n",
            "line 7: a=: conflicting direction attributes: sendonly, sendrecv",
        ),
        (HEADER + "a=inactive:yes\n", "line 5: a=: inactive takes no value: 'yes'"),
        (HEADER + "a=\n", "line 5: a=: attribute name is empty or holds ':': ''"),
        (HEADER + "a=x\rpad\n", "line 5: a=: attribute name must be one non-empty word: 'x\\rpad'"),
        (HEADER + "a=x:1\rpad\n", "line 5: a=: a=x value contains a CR, LF or NUL: '1\\rpad'"),
        (HEADER + "b=AS\x0064\n", "line 5: b=: b= value contains a CR, LF or NUL: 'AS\\x0064'"),
        (HEADER + "no equals sign\n", "line 5: expected '<type>=<value>', got 'no equals sign'"),
        (HEADER + "1=one\n", "line 5: a line type is one ASCII letter, not '1'"),
    ],
)
def test_malformed_input_names_the_line(body: str, message: str) -> None:
    with pytest.raises(SdpError) as raised:
        parse_sdp(body.encode())
    assert str(raised.value) == message
    assert type(raised.value) is SdpError
    assert raised.value.status == 400


def test_sdp_error_carries_line_and_reason() -> None:
    with pytest.raises(SdpError) as raised:
        parse_sdp((HEADER + "m=audio abc RTP/AVP 0\n").encode())
    assert (raised.value.line, raised.value.reason) == (5, "m=: port is not a number: 'abc'")
    assert isinstance(raised.value, ValueError)


def test_descriptions_cannot_be_built_invalid() -> None:
    with pytest.raises(SdpError, match="port is out of range"):
        MediaDescription(media="audio", port=65536, formats=("0",))
    with pytest.raises(SdpError, match="rtpmap"):
        Attribute("rtpmap", "zero PCMU/8000")
    with pytest.raises(SdpError, match="own field"):
        OtherLine("a", "sendonly")
    with pytest.raises(SdpError, match="one non-empty word"):
        Origin(username="a b", session_id=1, session_version=1, address="h")
    with pytest.raises(SdpError, match="conflicting"):
        SessionDescription(
            origin=Origin(username="-", session_id=1, session_version=1, address="h"),
            attributes=(Attribute("sendonly"), Attribute("recvonly")),
        )
    with pytest.raises(SdpError, match="CR, LF or NUL"):
        replace(parse_sdp(sample("baresip_offer.sdp")), name="two\nlines")


# --- our offer -----------------------------------------------------------------------


def test_default_offer_bytes() -> None:
    assert bytes(our_offer()) == (
        b"v=0\r\n"
        b"o=- 9 1 IN IP4 198.51.100.1\r\n"
        b"s=-\r\n"
        b"c=IN IP4 198.51.100.1\r\n"
        b"t=0 0\r\n"
        b"m=audio 5000 RTP/AVP 0 8 101\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-15\r\n"
        b"a=ptime:20\r\n"
        b"a=sendrecv\r\n"
    )


def test_offer_options() -> None:
    offer = our_offer(
        Direction.RECVONLY,
        address="2001:db8::0:1",
        codecs=["pcma"],
        telephone_event_pt=None,
        ptime=30,
        username="deskphone",
    )
    assert bytes(offer) == (
        b"v=0\r\no=deskphone 9 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\n"
        b"t=0 0\r\nm=audio 5000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:30\r\n"
        b"a=recvonly\r\n"
    )
    assert our_offer(codecs=("PCMA", "PCMU"), telephone_event_pt=96).media[0].formats == (
        "8",
        "0",
        "96",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"codecs": ("G729",)},
        {"codecs": ()},
        {"codecs": ("PCMU", "pcmu")},
        {"telephone_event_pt": 8},
        {"rtp_port": 0},
        {"rtp_port": 65536},
        {"ptime": 0},
        {"address": "phone.example.com"},
    ],
)
def test_offer_refuses_bad_arguments(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        our_offer(**overrides)


def test_next_version_bumps_the_version_and_sets_the_direction_of_live_streams() -> None:
    offer = replace(
        our_offer(),
        media=(*our_offer().media, MediaDescription(media="video", port=0, formats=("96",))),
    )
    held = next_version(offer, direction=Direction.SENDONLY)
    assert held.origin == replace(offer.origin, session_version=2)
    audio, video = held.media
    assert audio.direction is SO
    assert [a for a in audio.attributes if a.name != "sendonly"] == [
        a for a in offer.media[0].attributes if a.name != "sendrecv"
    ]
    assert video == offer.media[1]
    resumed = next_version(held, direction=Direction.SENDRECV)
    assert resumed.origin.session_version == 3
    assert resumed.media[0].direction is SR
    assert next_version(resumed) == replace(
        resumed, origin=replace(resumed.origin, session_version=4)
    )


# --- answering an offer --------------------------------------------------------------


def test_answer_to_baresip() -> None:
    result = answer(sample("baresip_offer.sdp"))
    assert bytes(result.description) == (
        b"v=0\r\no=- 77 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
    assert result.media == MediaSession(
        remote_address="127.0.0.1",
        remote_port=30058,
        codec="PCMU",
        payload_type=0,
        telephone_event_pt=101,
        ptime=20,
        direction=SR,
        local_hold=False,
        remote_hold=False,
    )


def test_answer_takes_the_offerers_first_codec_not_ours() -> None:
    result = answer(sample("asterisk_offer.sdp"))
    assert result.description.media[0].formats == ("8", "101")
    assert (result.media.codec, result.media.payload_type) == ("PCMA", 8)
    only_pcmu = answer(sample("asterisk_offer.sdp"), codecs=("PCMU",))
    assert (only_pcmu.media.codec, only_pcmu.media.payload_type) == ("PCMU", 0)


def test_answer_to_audio_and_video_rejects_video_and_picks_8khz_events() -> None:
    result = answer(sample("linphone_audio_video_offer.sdp"))
    audio, video = result.description.media
    assert audio.formats == ("0", "100")
    assert audio.values("rtpmap") == ("0 PCMU/8000", "100 telephone-event/8000")
    assert (video.media, video.port, video.proto, video.formats) == (
        "video",
        0,
        "RTP/AVP",
        ("96", "97"),
    )
    assert video.attributes == ()
    assert result.media.telephone_event_pt == 100
    assert b"m=video 0 RTP/AVP 96 97\r\n" in bytes(result.description)


def test_answer_keeps_the_order_of_m_lines_when_video_comes_first() -> None:
    offer = offer_from(
        "v=0\no=- 5 5 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
        "m=video 6002 RTP/AVP 96\na=rtpmap:96 H264/90000\n"
        "m=audio 6000 RTP/AVP 112 113\na=rtpmap:112 pcma/8000\na=rtpmap:113 TELEPHONE-EVENT/8000\n"
        "m=audio 6004 RTP/AVP 0\n"
    )
    result = answer(offer)
    assert [(m.media, m.port, m.formats) for m in result.description.media] == [
        ("video", 0, ("96",)),
        ("audio", 4000, ("112", "113")),
        ("audio", 0, ("0",)),
    ]
    assert result.description.media[1].values("rtpmap") == (
        "112 PCMA/8000",
        "113 telephone-event/8000",
    )
    assert (result.media.payload_type, result.media.telephone_event_pt) == (112, 113)
    assert result.media.remote_port == 6000


def test_answer_skips_streams_we_cannot_carry_before_the_one_we_can() -> None:
    offer = offer_from(
        "v=0\no=- 5 5 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
        "m=audio 0 RTP/AVP 0\n"
        "m=audio 6002 RTP/SAVP 0\n"
        "m=audio 6004 RTP/AVP 96 0\na=rtpmap:96 PCMU/16000\n"
    )
    result = answer(offer)
    assert [m.port for m in result.description.media] == [0, 0, 4000]
    assert (result.media.payload_type, result.media.telephone_event_pt) == (0, None)
    assert result.description.media[2].formats == ("0",)


def test_answer_over_ipv6() -> None:
    result = answer(sample("ipv6_offer.sdp"), address="2001:db8::7")
    assert result.description.connection == Connection(address="2001:db8::7", address_type="IP6")
    assert result.description.origin.address_type == "IP6"
    assert result.media.remote_address == "2001:db8:0:1::20"
    assert (result.media.codec, result.media.ptime) == ("PCMA", 30)
    assert result.description.media[0].ptime == 20


def test_answer_to_lf_only_offer_uses_its_media_level_address() -> None:
    result = answer(sample("lf_only_media_connection.sdp"))
    assert (result.media.remote_address, result.media.remote_port) == ("192.0.2.51", 6000)
    assert result.media.telephone_event_pt is None


def test_answer_copies_the_offers_time_line() -> None:
    result = answer(parse_sdp(sample("rfc4566_example.sdp")))
    assert result.description.other_lines == (OtherLine("t", "2873397496 2873404696"),)


@pytest.mark.parametrize(
    ("offer", "why"),
    [
        (
            "m=audio 6000 RTP/AVP 18 4 96\na=rtpmap:96 PCMU/16000\n",
            "m= line 1 (audio): no common codec among 18 4 96",
        ),
        ("m=audio 6000 RTP/AVP 9\na=rtpmap:0 PCMU/8000\n", "no common codec among 9"),
        ("m=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000/2\n", "no common codec among 0"),
        (
            "m=video 6000 RTP/AVP 0\nm=audio 0 RTP/AVP 0\n",
            "m= line 1 (video): not RTP/AVP audio; m= line 2 (audio): disabled",
        ),
        ("", "the offer has no m= line"),
    ],
)
def test_no_common_codec(offer: str, why: str) -> None:
    with pytest.raises(NoCommonCodec) as raised:
        answer(
            offer_from(f"v=0\no=- 5 5 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n{offer}")
        )
    assert why in str(raised.value)
    assert raised.value.status == 488


def test_an_offer_of_the_other_address_family_is_not_acceptable() -> None:
    with pytest.raises(NoCommonCodec, match=r"IP6 only, we have IN IP4 192\.0\.2\.7"):
        answer(sample("ipv6_offer.sdp"))


def test_an_offer_without_any_address_is_not_acceptable() -> None:
    with pytest.raises(NoCommonCodec, match="no c= line"):
        answer(offer_from("v=0\no=- 5 5 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 6000 RTP/AVP 0\n"))


# RFC 3264 §6.1: (offered direction, our wish) -> the direction our answer must carry.
ANSWER_DIRECTIONS = {
    (SR, SR): SR, (SR, SO): SO, (SR, RO): RO, (SR, IA): IA,
    (SO, SR): RO, (SO, SO): IA, (SO, RO): RO, (SO, IA): IA,
    (RO, SR): SO, (RO, SO): SO, (RO, RO): IA, (RO, IA): IA,
    (IA, SR): IA, (IA, SO): IA, (IA, RO): IA, (IA, IA): IA,
}  # fmt: skip


@pytest.mark.parametrize(("offered", "wish"), sorted(ANSWER_DIRECTIONS))
def test_every_direction_pair_between_two_phones(offered: Direction, wish: Direction) -> None:
    offer = our_offer(offered)
    reply = answer(over_the_wire(offer), direction=wish)
    expected = ANSWER_DIRECTIONS[offered, wish]
    assert reply.description.media[0].direction is expected
    assert reply.media.direction is expected
    offerer = process_answer(offer, over_the_wire(reply.description))
    assert (offerer.can_send, offerer.can_receive) == (expected.can_receive, expected.can_send)
    assert offerer.codec == reply.media.codec == "PCMU"
    assert offerer.telephone_event_pt == reply.media.telephone_event_pt == 101
    assert (offerer.remote_address, offerer.remote_port) == ("192.0.2.7", 4000)
    assert (reply.media.remote_address, reply.media.remote_port) == ("198.51.100.1", 5000)


# --- hold ----------------------------------------------------------------------------


def test_hold_and_resume_by_re_offer() -> None:
    offer = our_offer()
    established = answer(over_the_wire(offer)).media
    assert not established.on_hold

    hold = next_version(offer, direction=Direction.SENDONLY)
    peer = answer(over_the_wire(hold), session_version=2)
    assert peer.description.media[0].direction is RO
    assert (peer.media.remote_hold, peer.media.local_hold) == (True, False)
    assert (peer.media.can_send, peer.media.can_receive) == (False, True)
    ours = process_answer(hold, over_the_wire(peer.description))
    assert (ours.local_hold, ours.remote_hold, ours.on_hold) == (True, False, True)
    assert (ours.can_send, ours.can_receive) == (True, False)

    resume = next_version(hold, direction=Direction.SENDRECV)
    ours = process_answer(resume, answer(over_the_wire(resume), session_version=3).description)
    assert not ours.on_hold
    assert ours.direction is SR


def test_inactive_offer_is_hold_from_the_offerer_only() -> None:
    reply = answer(over_the_wire(our_offer(Direction.INACTIVE)))
    assert reply.description.media[0].direction is IA
    assert (reply.media.remote_hold, reply.media.local_hold) == (True, False)


def test_a_recvonly_offer_is_not_hold() -> None:
    reply = answer(over_the_wire(our_offer(Direction.RECVONLY)))
    assert not reply.media.on_hold
    assert (reply.media.can_send, reply.media.can_receive) == (True, False)


def test_answering_while_we_hold_is_local_hold() -> None:
    reply = answer(over_the_wire(our_offer()), direction=Direction.SENDONLY)
    assert (reply.media.local_hold, reply.media.remote_hold) == (True, False)


@pytest.mark.parametrize("hold_address", ["0.0.0.0", "::"])
def test_rfc2543_hold_by_unspecified_address_in_an_offer(hold_address: str) -> None:
    family = "IP6" if ":" in hold_address else "IP4"
    address = "2001:db8::7" if family == "IP6" else "192.0.2.7"
    reply = answer(
        offer_from(
            f"v=0\no=- 5 6 IN {family} {address}\ns=-\nc=IN {family} {hold_address}\nt=0 0\n"
            "m=audio 6000 RTP/AVP 0\n"
        ),
        address=address,
    )
    assert reply.description.media[0].direction is RO
    assert reply.media.remote_hold
    assert (reply.media.can_send, reply.media.can_receive) == (False, True)


def test_rfc2543_hold_by_unspecified_address_in_an_answer() -> None:
    offer = our_offer()
    held = replace(
        answer(over_the_wire(offer)).description, connection=Connection(address="0.0.0.0")
    )
    session = process_answer(offer, over_the_wire(held))
    assert session.remote_hold
    assert not session.can_send


def test_sendonly_answer_to_a_sendrecv_offer_is_remote_hold() -> None:
    offer = our_offer()
    reply = answer(over_the_wire(offer), direction=Direction.SENDONLY).description
    session = process_answer(offer, over_the_wire(reply))
    assert (session.remote_hold, session.local_hold) == (True, False)
    assert (session.can_send, session.can_receive) == (False, True)


# --- processing an answer ------------------------------------------------------------


def peer_answer(media: str, connection: str = "c=IN IP4 192.0.2.20\n") -> SessionDescription:
    return offer_from(f"v=0\no=peer 1 1 IN IP4 192.0.2.20\ns=-\n{connection}t=0 0\n{media}")


def test_answer_from_a_peer_that_picked_pcma_and_its_own_ptime() -> None:
    session = process_answer(
        our_offer(),
        peer_answer("m=audio 7000 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\na=ptime:30\n"),
    )
    assert session == MediaSession(
        remote_address="192.0.2.20",
        remote_port=7000,
        codec="PCMA",
        payload_type=8,
        telephone_event_pt=101,
        ptime=30,
        direction=SR,
        local_hold=False,
        remote_hold=False,
    )


def test_we_send_with_the_peers_payload_numbers_when_it_renumbers() -> None:
    media = "m=audio 7000 RTP/AVP 97 96\na=rtpmap:97 PCMU/8000\na=rtpmap:96 telephone-event/8000\n"
    session = process_answer(our_offer(), peer_answer(media))
    assert (session.codec, session.payload_type, session.telephone_event_pt) == ("PCMU", 97, 96)


def test_telephone_event_we_did_not_offer_is_not_used() -> None:
    media = "m=audio 7000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n"
    session = process_answer(our_offer(telephone_event_pt=None), peer_answer(media))
    assert session.telephone_event_pt is None


def test_answer_without_telephone_event_or_ptime() -> None:
    session = process_answer(our_offer(ptime=40), peer_answer("m=audio 7000 RTP/AVP 0\n"))
    assert (session.telephone_event_pt, session.ptime) == (None, 40)


def test_answer_with_media_level_address_only() -> None:
    session = process_answer(
        our_offer(), peer_answer("m=audio 7000 RTP/AVP 0\nc=IN IP4 192.0.2.30\n", connection="")
    )
    assert session.remote_address == "192.0.2.30"


@pytest.mark.parametrize(
    "media",
    [
        "m=audio 0 RTP/AVP 0\n",  # rejected
        "m=audio 7000 RTP/AVP 3\n",  # GSM, which we never offered
        "m=audio 7000 RTP/AVP 8\n",  # PCMA, which this offer left out
    ],
)
def test_answer_accepting_nothing_we_offered(media: str) -> None:
    with pytest.raises(NoCommonCodec, match="accepted none of our audio streams"):
        process_answer(our_offer(codecs=("PCMU",)), peer_answer(media))


def test_answer_with_a_different_number_of_m_lines_is_malformed() -> None:
    media = "m=audio 7000 RTP/AVP 0\nm=video 0 RTP/AVP 96\n"
    with pytest.raises(SdpError, match="the answer has 2 m= lines, the offer 1") as raised:
        process_answer(our_offer(), peer_answer(media))
    assert not isinstance(raised.value, NoCommonCodec)


def test_answer_without_an_address_is_malformed() -> None:
    with pytest.raises(SdpError, match="m= line 1 has no c= line"):
        process_answer(our_offer(), peer_answer("m=audio 7000 RTP/AVP 0\n", connection=""))


# --- robustness ----------------------------------------------------------------------

FRAGMENTS = [
    b"\r\n", b"\n", b"=", b" ", b":", b"/", b"0", b"-1", b"99999", b"\x00", b"\xff", b"\r",
    b"m=audio 0 RTP/AVP 0\r\n", b"m=video 9 RTP/AVP 96\r\n", b"a=sendonly\r\n", b"a=inactive\r\n",
    b"c=IN IP4 0.0.0.0\r\n", b"c=IN IP6 ::\r\n", b"a=rtpmap:96 PCMU/8000\r\n", b"a=ptime:\r\n",
    b"v=0\r\n", b"t=0 0\r\n", b"x=y\r\n", b"a=rtpmap:101 telephone-event/8000\r\n",
]  # fmt: skip


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """A real description with a few bytes, fragments or whole lines changed."""
    body = draw(st.sampled_from([path.read_bytes() for path in SAMPLES]))
    for _ in range(draw(st.integers(1, 4))):
        lines = body.split(b"\n")
        where = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["insert", "delete", "swap", "repeat", "drop"]))
        if kind == "insert":
            new = draw(st.sampled_from(FRAGMENTS) | st.binary(min_size=1, max_size=3))
            body = body[:where] + new + body[where:]
        elif kind == "delete":
            body = body[:where] + body[where + draw(st.integers(1, 8)) :]
        else:
            line = draw(st.integers(0, len(lines) - 1))
            other = draw(st.integers(0, len(lines) - 1))
            if kind == "swap":
                lines[line], lines[other] = lines[other], lines[line]
            elif kind == "repeat":
                lines.insert(other, lines[line])
            else:
                del lines[line]
            body = b"\n".join(lines)
    return body


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_samples())
def test_mutated_descriptions_fail_only_with_sdp_error_and_otherwise_round_trip(
    body: bytes,
) -> None:
    try:
        description = parse_sdp(body)
    except SdpError as error:
        assert error.line is None or error.line >= 1
        return
    assert parse_sdp(bytes(description)) == description
    with contextlib.suppress(NoCommonCodec):
        answer(description)
    with contextlib.suppress(SdpError):
        process_answer(our_offer(), description)


WORDS = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=6)
TEXT = st.text(st.characters(blacklist_characters="\r\n\x00", codec="utf-8"), max_size=8)
ATTRIBUTES = st.builds(
    Attribute, WORDS.filter(lambda w: ":" not in w and w not in {"rtpmap", "ptime"}), TEXT
) | st.sampled_from([Attribute("rtpmap", "96 opus/48000/2"), Attribute("ptime", "20")])
OTHER_LINES = st.builds(OtherLine, st.sampled_from("iuepbtrzkxY"), TEXT)
CONNECTIONS = st.none() | st.builds(Connection, address=WORDS, address_type=WORDS)


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        SessionDescription,
        origin=st.builds(
            Origin,
            username=WORDS,
            session_id=st.integers(0, 2**64),
            session_version=st.integers(0, 2**64),
            address=WORDS,
        ),
        name=TEXT,
        connection=CONNECTIONS,
        attributes=st.lists(ATTRIBUTES, max_size=3).map(tuple),
        other_lines=st.lists(OTHER_LINES, max_size=4).map(tuple),
        media=st.lists(
            st.builds(
                MediaDescription,
                media=WORDS,
                port=st.integers(0, 65535),
                port_count=st.none() | st.integers(1, 9),
                proto=st.sampled_from(["RTP/AVP", "udptl", "TCP/BFCP"]),
                formats=st.lists(st.integers(0, 127).map(str), max_size=3).map(tuple),
                connection=CONNECTIONS,
                attributes=st.lists(ATTRIBUTES, max_size=3).map(tuple),
                other_lines=st.lists(OTHER_LINES, max_size=3).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    )
)
def test_any_valid_description_round_trips(description: SessionDescription) -> None:
    assert parse_sdp(bytes(description)) == description
