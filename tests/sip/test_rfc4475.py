"""RFC 4475 torture messages: each behaves as tests/data/rfc4475/expected.json says."""

import json
from pathlib import Path

import pytest

from firmware.sip import ParseError, Request, Response, parse_message

CORPUS = Path(__file__).parent.parent / "data" / "rfc4475"
EXPECTED: dict[str, dict[str, str]] = json.loads((CORPUS / "expected.json").read_text())

VALID = sorted(name for name, case in EXPECTED.items() if case["expect"] == "valid")

# The cases the corpus README lets go either way, and what we do on purpose.
LIBERAL_ACCEPTED = {
    # Date is not parsed by a UA, so its malformation does not matter to us.
    "baddate",
}
INVALID_STATUS = {
    "badinv01": (400, "malformed parameter"),
    "clerr": (400, "Content-Length 9999 exceeds"),
    "ncl": (400, "Content-Length is not a number"),
    "scalar02": (400, "CSeq number out of range"),
    "scalarlg": (None, "CSeq number out of range"),
    "quotbal": (400, "unterminated quoted display name"),
    "ltgtruri": (400, "Request-URI"),
    "lwsruri": (400, "request line"),
    "lwsstart": (400, "request line"),
    "trws": (400, "request line"),
    "escruri": (400, "Request-URI must not carry headers"),
    "regbadct": (400, "must be enclosed in <>"),
    "badaspec": (400, "not a URI"),
    "baddn": (400, "header section not terminated"),
    "badvers": (505, "SIP version SIP/7.0 is not supported"),
    "mismatch01": (400, "CSeq method INVITE does not match request method OPTIONS"),
    "mismatch02": (400, "CSeq method INVITE does not match request method NEWMETHOD"),
    "bigcode": (None, "status code '4294967301' is not in 100-699"),
    "insuf": (400, "missing From header"),
    "multi01": (400, "more than one CSeq header"),
    "mcl01": (400, "more than one Content-Length header"),
}


def load(name: str) -> bytes:
    return (CORPUS / f"{name}.dat").read_bytes()


def test_every_case_has_a_decision() -> None:
    invalid = {name for name, case in EXPECTED.items() if case["expect"] == "invalid"}
    assert invalid == set(INVALID_STATUS) | LIBERAL_ACCEPTED
    assert not LIBERAL_ACCEPTED & set(INVALID_STATUS)


@pytest.mark.parametrize("name", VALID)
def test_valid_messages_parse_and_round_trip(name: str) -> None:
    message = parse_message(load(name))
    again = parse_message(bytes(message))
    assert again == message
    assert bytes(again) == bytes(message)


@pytest.mark.parametrize("name", sorted(INVALID_STATUS))
def test_invalid_messages_are_rejected_with_their_status(name: str) -> None:
    status, reason = INVALID_STATUS[name]
    with pytest.raises(ParseError, match=reason) as caught:
        parse_message(load(name))
    assert caught.value.status == status


@pytest.mark.parametrize("name", sorted(LIBERAL_ACCEPTED))
def test_liberal_cases_are_accepted_deliberately(name: str) -> None:
    message = parse_message(load(name))
    assert parse_message(bytes(message)) == message


def test_baddn_display_names_are_rejected_even_when_the_header_section_ends() -> None:
    with pytest.raises(ParseError, match="non-token characters") as caught:
        parse_message(load("baddn") + b"\r\n")
    assert caught.value.status == 400


def test_wsinv_values() -> None:
    message = parse_message(load("wsinv"))
    assert isinstance(message, Request)
    assert (message.method, str(message.uri)) == (
        "INVITE",
        "sip:vivekg@chair-dnrc.example.com;unknownparam",
    )
    assert message.to.tag == "1918181833n"
    assert message.from_.display_name == 'J Rosenberg \\"'
    assert message.from_.tag == "98asjd8"
    assert message.max_forwards == 68
    assert (message.cseq.seq, message.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in message.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert message.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert message.headers.get("Subject") == ""
    (contact,) = message.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert len(message.body) == 150


def test_intmeth_keeps_odd_tokens() -> None:
    message = parse_message(load("intmeth"))
    assert isinstance(message, Request)
    assert message.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert message.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert message.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert message.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"


def test_escapes() -> None:
    esc01 = parse_message(load("esc01"))
    assert isinstance(esc01, Request)
    assert esc01.uri.user == "sips:user@example.com"
    assert esc01.to.uri.user == "user"
    assert esc01.contacts[0].uri.params == (("lr", None), ("name", "value%41"))
    escnull = parse_message(load("escnull"))
    assert [c.uri.user for c in escnull.contacts] == ["\x00", "\x00\x00"]
    esc02 = parse_message(load("esc02"))
    assert isinstance(esc02, Request)
    assert esc02.method == "RE%47IST%45R"
    assert len(esc02.contacts) == 2
    assert esc02.headers.get("C%6Fntact") is not None


def test_framing_cases() -> None:
    dblreq = parse_message(load("dblreq"))
    assert isinstance(dblreq, Request)
    assert (dblreq.method, dblreq.body) == ("REGISTER", b"")
    mpart = parse_message(load("mpart01"))
    assert len(mpart.body) == 553 and b"\x00" in mpart.body
    inv2543 = parse_message(load("inv2543"))
    assert inv2543.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    assert inv2543.top_via.branch is None and inv2543.from_.tag is None


def test_responses() -> None:
    unreason = parse_message(load("unreason"))
    assert isinstance(unreason, Response)
    assert (unreason.status, unreason.reason) == (
        200,
        "= 2**3 * 5**2 но сто девяносто девять - простое",
    )
    noreason = parse_message(load("noreason"))
    assert isinstance(noreason, Response)
    assert (noreason.status, noreason.reason) == (100, "")


def test_contact_params_inside_and_outside_brackets() -> None:
    outside = parse_message(load("cparam01")).contacts[0]
    assert (outside.uri.params, outside.params) == ((), (("unknownparam", None),))
    inside = parse_message(load("cparam02")).contacts[0]
    assert inside.uri.has_param("unknownparam") and not inside.has_param("unknownparam")
    regescrt = parse_message(load("regescrt")).contacts[0]
    assert regescrt.uri.headers == (("Route", "<sip:sip.example.com>"),)


def test_unknown_schemes_parse() -> None:
    unkscm = parse_message(load("unkscm"))
    assert isinstance(unkscm, Request)
    assert not unkscm.uri.is_sip
    unksm2 = parse_message(load("unksm2"))
    assert (unksm2.to.uri.scheme, unksm2.contacts[0].uri.scheme) == ("isbn", "name")


def test_unreferenced_archive_message_lacks_a_version() -> None:
    with pytest.raises(ParseError, match="request line") as caught:
        parse_message((CORPUS / "unreferenced" / "test.dat").read_bytes())
    assert caught.value.status == 400
