"""URI and name-addr parsing, serialisation and RFC 3261 §19.1.4 comparison."""

import pytest

from firmware.sip import ParseError
from firmware.sip.uri import NameAddr, Uri, parse_name_addr, parse_params, parse_uri


def test_full_sip_uri_fields() -> None:
    uri = parse_uri("sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi&x=y")
    assert uri == Uri(
        scheme="sips",
        user="alice",
        password="secret",
        host="atlanta.example.com",
        port=5061,
        params=(("transport", "tcp"), ("lr", None)),
        headers=(("subject", "hi"), ("x", "y")),
    )
    assert uri.transport == "tcp"
    assert uri.has_param("LR")
    assert uri.host_port == "atlanta.example.com:5061"
    assert str(uri) == "sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi&x=y"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:192.0.2.4", "192.0.2.4", None),
        ("sip:bob@[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:[::1]", "[::1]", None),
        ("SIP:Example.COM", "Example.COM", None),
    ],
)
def test_hosts(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert (uri.scheme, uri.host, uri.port) == ("sip", host, port)


def test_escapes_are_decoded_once_and_reencoded_minimally() -> None:
    uri = parse_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.user == "caller"
    assert uri.params == (("lr", None), ("name", "value%41"))
    assert str(uri) == "sip:caller@host5.example.net;lr;name=value%2541"
    assert parse_uri(str(uri)) == uri


def test_user_with_escaped_at_and_semicolon() -> None:
    uri = parse_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert str(uri) == "sip:user;par=u%40example.net@example.com"


def test_nul_in_user_is_not_truncated() -> None:
    uri = parse_uri("sip:null-%00-null@example.com")
    assert uri.user == "null-\x00-null"
    assert str(uri) == "sip:null-%00-null@example.com"


def test_escaped_headers_stay_uri_headers() -> None:
    uri = parse_uri("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
    assert uri.headers == (("Route", "<sip:sip.example.com>"),)
    assert parse_uri(str(uri)) == uri


def test_non_utf8_escapes_round_trip() -> None:
    uri = parse_uri("sip:%ff%fe@example.com")
    assert str(uri) == "sip:%FF%FE@example.com"
    assert parse_uri(str(uri)) == uri


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert (uri.scheme, uri.user, uri.host) == ("tel", "+1-201-555-0123", "")
    assert uri.param("phone-context") == "example.com"
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"
    assert uri.equivalent(parse_uri("tel:+1201.555.0123;PHONE-CONTEXT=Example.com"))


def test_other_schemes_only_when_asked() -> None:
    with pytest.raises(ParseError, match="unsupported URI scheme 'http'") as caught:
        parse_uri("http://www.example.com")
    assert caught.value.status == 400
    uri = parse_uri("http://www.example.com", any_scheme=True)
    assert (uri.scheme, uri.opaque, uri.is_sip) == ("http", "//www.example.com", False)
    assert str(uri) == "http://www.example.com"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no scheme"),
        ("example.com", "no scheme"),
        ("sip:", "malformed SIP URI"),
        ("sip:user@", "malformed SIP URI"),
        ("sip:user@example.com; lr", "malformed SIP URI"),
        ("sip:user@exa mple.com", "malformed SIP URI"),
        ("<sip:user@example.com>", "no scheme"),
        ("sip:user@example.com:99999", "port out of range"),
        ("sip:user@[::zz]", "malformed SIP URI"),
        ("sip:user@[1:2:3]", "bad IPv6"),
        ("sip:us%zzer@example.com", "bad %-escape"),
        ("sip:user@example.com?noequals", "without name=value"),
        ("sip:user@example.com;=x", "malformed SIP URI"),
        ("tel:", "malformed tel URI"),
        ("sip:josé@example.com", "malformed SIP URI"),
    ],
)
def test_malformed_uris(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as caught:
        parse_uri(text)
    assert caught.value.status == 400


EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    ("sip:bob@[2001:db8::1]", "sip:bob@[2001:0db8:0:0::1]"),
]

NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com"),
]


@pytest.mark.parametrize(("left", "right"), EQUIVALENT)
def test_equivalent_uris(left: str, right: str) -> None:
    assert parse_uri(left).equivalent(parse_uri(right))
    assert parse_uri(right).equivalent(parse_uri(left))


@pytest.mark.parametrize(("left", "right"), NOT_EQUIVALENT)
def test_not_equivalent_uris(left: str, right: str) -> None:
    assert not parse_uri(left).equivalent(parse_uri(right))
    assert not parse_uri(right).equivalent(parse_uri(left))


def test_param_helpers() -> None:
    uri = parse_uri("sip:a@b;transport=udp;lr")
    assert str(uri.with_param("transport", "tcp")) == "sip:a@b;transport=tcp;lr"
    assert str(uri.with_param("maddr", "10.0.0.1")) == "sip:a@b;transport=udp;lr;maddr=10.0.0.1"
    assert str(uri.without_param("LR")) == "sip:a@b;transport=udp"
    assert str(uri.replace(port=5080, user=None)) == "sip:b:5080;transport=udp;lr"
    assert uri.param("missing") is None


def test_name_addr_forms() -> None:
    quoted = parse_name_addr('"J Rosenberg \\\\\\""  <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert quoted.display_name == 'J Rosenberg \\"'
    assert quoted.tag == "98asjd8"
    assert str(quoted) == '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8'
    assert parse_name_addr(str(quoted)) == quoted

    token = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert (token.display_name, token.tag) == ("caller", "323")
    assert parse_name_addr("Bob   Smith <sip:bob@x>").display_name == "Bob Smith"

    bare = parse_name_addr("<sip:bob@biloxi.example.com>")
    assert (bare.display_name, bare.params, bare.uri.user) == (None, (), "bob")


def test_addr_spec_params_belong_to_the_header() -> None:
    contact = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
    assert contact.uri.params == ()
    assert contact.params == (("unknownparam", None),)
    inside = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert inside.uri.params == (("unknownparam", None),)
    assert inside.params == ()


def test_name_addr_with_other_scheme() -> None:
    assert parse_name_addr("isbn:2983792873").uri.opaque == "2983792873"
    assert parse_name_addr("<name:John_Smith>").uri.scheme == "name"


def test_display_name_control_characters_round_trip() -> None:
    value = '"\\\x00\\\x07\\\x7f é" <sip:a@b>'
    parsed = parse_name_addr(value)
    assert parsed.display_name == "\x00\x07\x7f é"
    assert parse_name_addr(str(parsed)) == parsed


def test_display_name_cannot_hold_line_breaks() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        NameAddr(uri=parse_uri("sip:a@b"), display_name="a\r\nVia: x")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('"Mr. J. User <sip:j.user@example.com>', "unterminated quoted"),
        ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", "non-token characters"),
        ('"Watson, Thomas" < sip:t.watson@example.org >', "no scheme"),
        ('"Joe" <sip:joe@example.org>;;;;', "malformed parameter"),
        ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", "enclosed in <>"),
        ("<sip:joe@example.org", "missing '>'"),
        ('"Joe" sip:joe@example.org', "not followed by <URI>"),
        ("<sip:joe@example.org> junk", "unexpected text"),
    ],
)
def test_malformed_name_addrs(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_name_addr(text)


def test_params_with_lws_and_quotes() -> None:
    assert parse_params(" ; newparam = newvalue ; secondparam ; q = 0.33") == (
        ("newparam", "newvalue"),
        ("secondparam", None),
        ("q", "0.33"),
    )
    assert parse_params(';x="a;b\\" c";received=[2001:db8::1]') == (
        ("x", '"a;b\\" c"'),
        ("received", "[2001:db8::1]"),
    )


def test_without_headers_and_name_addr_params() -> None:
    uri = parse_uri("sip:user@example.com;lr?Route=%3Csip:x%3E")
    assert str(uri.without_headers()) == "sip:user@example.com;lr"
    contact = parse_name_addr('<sip:a@b>;+sip.instance="<urn:x>";reg-id=1')
    assert contact.has_param("REG-ID") and not contact.has_param("expires")
    assert (
        str(contact.with_param("expires", "60"))
        == '<sip:a@b>;+sip.instance="<urn:x>";reg-id=1;expires=60'
    )
