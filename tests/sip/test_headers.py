"""The Headers multimap and the typed header views."""

import pytest

from firmware.sip import Headers, ParseError
from firmware.sip.headers import (
    CSeq,
    Via,
    canonical_name,
    parse_challenge,
    parse_content_type,
    parse_cseq,
    parse_via,
    quote_string,
    split_list,
    unquote_string,
)


def test_lookup_is_case_insensitive_and_knows_compact_forms() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a"), ("VIA", "SIP/2.0/UDP b"), ("i", "abc@host")])
    assert list(headers) == [
        ("Via", "SIP/2.0/UDP a"),
        ("Via", "SIP/2.0/UDP b"),
        ("Call-ID", "abc@host"),
    ]
    assert headers.get("via") == "SIP/2.0/UDP a"
    assert headers.get_all("V") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert "call-id" in headers and "I" in headers and "To" not in headers
    assert headers.get("To") is None
    assert headers.get("To", "x") == "x"


@pytest.mark.parametrize(
    ("compact", "canonical"),
    [
        ("i", "Call-ID"), ("m", "Contact"), ("v", "Via"), ("f", "From"), ("t", "To"),
        ("l", "Content-Length"), ("c", "Content-Type"), ("k", "Supported"), ("s", "Subject"),
        ("e", "Content-Encoding"), ("o", "Event"), ("u", "Allow-Events"), ("r", "Refer-To"),
        ("b", "Referred-By"), ("x", "Session-Expires"), ("y", "Identity"),
    ],
)  # fmt: skip
def test_compact_forms(compact: str, canonical: str) -> None:
    assert canonical_name(compact) == canonical
    assert canonical_name(compact.upper()) == canonical


def test_unknown_headers_keep_their_spelling_and_value() -> None:
    headers = Headers([("NewFangledHeader", "newfangled value continued"), ("X-a", ";;,,;;,;")])
    assert list(headers) == [
        ("NewFangledHeader", "newfangled value continued"),
        ("X-a", ";;,,;;,;"),
    ]
    assert headers.get_all("x-A") == [";;,,;;,;"]
    assert headers.get("newfangledheader") == "newfangled value continued"


def test_list_headers_split_at_commas_outside_quotes_and_brackets() -> None:
    headers = Headers(
        [
            ("Contact", '"Doe, John" <sip:a@b;x=1,2>, <sip:c@d>'),
            ("Allow", "INVITE, ACK,BYE"),
            ("Allow", "CANCEL"),
            ("WWW-Authenticate", 'Digest realm="a", nonce="b"'),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
        ]
    )
    assert headers.get_all("Contact") == ['"Doe, John" <sip:a@b;x=1,2>', "<sip:c@d>"]
    assert headers.get_all("Allow") == ["INVITE", "ACK", "BYE", "CANCEL"]
    assert headers.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b"']
    assert headers.get("Date") == "Sat, 13 Nov 2010 23:29:00 GMT"
    assert headers.lines("Allow") == ["INVITE, ACK,BYE", "CANCEL"]
    assert split_list(' "a\\", b" , c ,, ') == ['"a\\", b"', "c"]


def test_mutation_keeps_order() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a"), ("To", "<sip:t@x>"), ("Via", "SIP/2.0/UDP b")])
    headers.add_first("Via", "SIP/2.0/UDP top")
    headers.add_first("Record-Route", "<sip:p;lr>")
    headers.set("To", "<sip:t@x>;tag=1")
    assert list(headers) == [
        ("Via", "SIP/2.0/UDP top"),
        ("Via", "SIP/2.0/UDP a"),
        ("To", "<sip:t@x>;tag=1"),
        ("Via", "SIP/2.0/UDP b"),
        ("Record-Route", "<sip:p;lr>"),
    ]
    assert headers.remove("via") == 3
    assert headers.remove("via") == 0
    assert len(headers) == 2


def test_remove_first_takes_one_value_of_a_list_line() -> None:
    headers = Headers([("Route", "<sip:a;lr>, <sip:b;lr>"), ("Route", "<sip:c;lr>")])
    assert headers.remove_first("Route") == "<sip:a;lr>"
    assert headers.get_all("Route") == ["<sip:b;lr>", "<sip:c;lr>"]
    assert headers.remove_first("route") == "<sip:b;lr>"
    assert headers.remove_first("Route") == "<sip:c;lr>"
    assert headers.remove_first("Route") is None


def test_typed_values_follow_mutation() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1")])
    assert headers.vias()[0].branch == "z9hG4bK1"
    headers.add_first("Via", "SIP/2.0/TCP b:5080;branch=z9hG4bK2")
    assert [via.branch for via in headers.vias()] == ["z9hG4bK2", "z9hG4bK1"]


def test_rejects_what_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="line break"):
        Headers([("Subject", "hi\r\nVia: injected")])
    with pytest.raises(ValueError, match="not a token"):
        Headers([("Bad Name", "x")])


def test_equality_ignores_name_spelling_but_not_order() -> None:
    assert Headers([("v", "x"), ("X-A", "1")]) == Headers([("Via", "x"), ("x-a", "1")])
    assert Headers([("To", "a"), ("From", "b")]) != Headers([("From", "b"), ("To", "a")])


def test_via_fields() -> None:
    via = parse_via(
        "SIP / 2.0 / udp  [2001:db8::1] : 5070 ; branch = z9hG4bK77 ;rport;received=10.0.0.1"
    )
    assert via == Via(
        transport="UDP",
        host="[2001:db8::1]",
        port=5070,
        params=(("branch", "z9hG4bK77"), ("rport", None), ("received", "10.0.0.1")),
    )
    assert (via.branch, via.received, via.rport, via.has_rport) == (
        "z9hG4bK77",
        "10.0.0.1",
        None,
        True,
    )
    assert via.sent_by == "[2001:db8::1]:5070"
    filled = via.with_param("rport", "5071")
    assert filled.rport == 5071
    assert (
        str(filled)
        == "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK77;rport=5071;received=10.0.0.1"
    )
    assert parse_via(str(filled)) == filled


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("SIP/2.0/UDP", "malformed Via"),
        ("SIP/3.0/UDP host", "not SIP/2.0"),
        ("SIP/2.0/UDP host:70000", "port out of range"),
        ("SIP/2.0/UDP 192.0.2.15;;", "malformed parameter"),
        ("SIP/2.0/UDP host;rport=x", "rport is not a port"),
        ("SIP/2.0/UDP host junk", "malformed parameter"),
    ],
)
def test_malformed_via(value: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_via(value)


def test_cseq() -> None:
    assert parse_cseq("0009 INVITE") == CSeq(9, "INVITE")
    assert parse_cseq("4294967295 ACK").seq == 2**32 - 1
    assert str(CSeq(7, "BYE")) == "7 BYE"
    with pytest.raises(ParseError, match="out of range"):
        parse_cseq("4294967296 INVITE")
    with pytest.raises(ParseError, match="malformed CSeq"):
        parse_cseq("INVITE 1")


def test_core_accessors() -> None:
    headers = Headers(
        [
            ("f", '"Alice" <sip:alice@atlanta.example.com>;tag=1928301774'),
            ("t", "sip:bob@biloxi.example.com"),
            ("i", "a84b4c76e66710@pc33.atlanta.example.com"),
            ("CSeq", "314159 INVITE"),
            ("Max-Forwards", "70"),
            ("Expires", "3600"),
            ("m", "<sip:alice@pc33.atlanta.example.com>;expires=60;q=0.7, sip:x@y;q=1"),
            ("c", "application/SDP; charset=utf-8"),
            ("Route", "<sip:p1.example.com;lr>,<sip:p2.example.com;lr>"),
            ("Record-Route", "<sip:rr.example.com;lr>"),
        ]
    )
    from_ = headers.from_()
    assert from_ is not None and (from_.display_name, from_.tag) == ("Alice", "1928301774")
    to = headers.to()
    assert to is not None and to.tag is None and to.uri.user == "bob"
    assert headers.call_id() == "a84b4c76e66710@pc33.atlanta.example.com"
    assert headers.cseq() == CSeq(314159, "INVITE")
    assert (headers.max_forwards(), headers.expires()) == (70, 3600)
    contacts = headers.contacts()
    assert [(c.expires, c.q) for c in contacts] == [(60, 0.7), (None, 1.0)]
    content_type = headers.content_type()
    assert content_type is not None and content_type.mime == "application/sdp"
    assert content_type.param("charset") == "utf-8"
    assert [str(r.uri) for r in headers.routes()] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    assert [r.uri.host for r in headers.record_routes()] == ["rr.example.com"]
    assert not headers.is_wildcard_contact()


def test_absent_headers_are_none_or_empty() -> None:
    headers = Headers()
    assert (headers.from_(), headers.to(), headers.call_id(), headers.cseq()) == (None,) * 4
    assert (headers.max_forwards(), headers.expires(), headers.content_type()) == (None,) * 3
    assert (headers.vias(), headers.contacts(), headers.www_authenticate()) == ((), (), ())


def test_wildcard_contact() -> None:
    headers = Headers([("Contact", "*")])
    assert headers.is_wildcard_contact()
    assert headers.contacts() == ()
    headers.add("Contact", "<sip:a@b>")
    with pytest.raises(ParseError, match=r"Contact: \* must be the only"):
        headers.contacts()


@pytest.mark.parametrize(
    ("name", "value", "accessor", "reason"),
    [
        ("Max-Forwards", "256", Headers.max_forwards, "Max-Forwards out of range"),
        ("Max-Forwards", "-1", Headers.max_forwards, "not a number"),
        ("Expires", "4294967296", Headers.expires, "Expires out of range"),
        ("Expires", "1" * 5000, Headers.expires, "Expires out of range"),
        ("Contact", "<sip:a@b>;expires=4294967296", Headers.contacts, "Contact expires out of"),
        ("Contact", "<sip:a@b>;q=1.5", Headers.contacts, "not a qvalue"),
        ("Call-ID", "a b", Headers.call_id, "malformed Call-ID"),
        ("Content-Type", "sdp", Headers.content_type, "malformed Content-Type"),
    ],
)
def test_malformed_typed_values(name: str, value: str, accessor: object, reason: str) -> None:
    headers = Headers([(name, value)])
    with pytest.raises(ParseError, match=reason) as caught:
        accessor(headers)  # type: ignore[operator]
    assert caught.value.status == 400


def test_duplicate_singleton_is_an_error() -> None:
    headers = Headers([("Call-ID", "a@b"), ("i", "c@d")])
    with pytest.raises(ParseError, match="more than one Call-ID"):
        headers.call_id()


def test_challenges_and_credentials() -> None:
    headers = Headers(
        [
            (
                "WWW-Authenticate",
                'Digest realm="atlanta.example.com", qop="auth,auth-int", '
                'nonce="ea9c8e88df84f1cec4341ae6cbe5a359", opaque="", stale=FALSE, algorithm=MD5',
            ),
            ("Proxy-Authenticate", 'Digest realm="proxy", nonce="n\\"1"'),
            ("Authorization", "NoOneKnowsThisScheme opaque-data=here"),
        ]
    )
    (challenge,) = headers.www_authenticate()
    assert challenge.scheme == "Digest"
    assert challenge.realm == "atlanta.example.com"
    assert challenge.qop_options == ("auth", "auth-int")
    assert (challenge.opaque, challenge.stale, challenge.algorithm) == ("", False, "MD5")
    assert parse_challenge(str(challenge)) == challenge
    assert headers.proxy_authenticate()[0].nonce == 'n"1'
    (credentials,) = headers.authorization()
    assert (credentials.scheme, credentials.param("OPAQUE-DATA")) == (
        "NoOneKnowsThisScheme",
        "here",
    )
    assert headers.proxy_authorization() == ()
    with pytest.raises(ParseError, match="malformed authentication parameter"):
        parse_challenge('Digest realm="unterminated')


def test_quoting_helpers() -> None:
    assert quote_string('a"b\\c') == '"a\\"b\\\\c"'
    assert unquote_string(quote_string('a"b\\c')) == 'a"b\\c'
    assert unquote_string("token") == "token"


def test_content_type_round_trip() -> None:
    value = parse_content_type('multipart/signed;protocol="application/pkcs7-signature"')
    assert value.param("protocol") == "application/pkcs7-signature"
    assert parse_content_type(str(value)) == value


def test_copy_is_independent() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("Min-Expires", "120")])
    copied = headers.copy()
    copied.add_first("Via", "SIP/2.0/UDP b;branch=z9hG4bK2")
    assert [via.host for via in headers.vias()] == ["a"]
    assert [via.host for via in copied.vias()] == ["b", "a"]
    assert copied.min_expires() == 120


def test_via_maddr_and_received() -> None:
    via = parse_via("SIP/2.0/UDP a;maddr=239.255.255.1;received=192.0.2.9")
    assert (via.maddr, via.received, via.has_rport) == ("239.255.255.1", "192.0.2.9", False)
