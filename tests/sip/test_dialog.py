"""Dialogs (RFC 3261 §12): creation on both sides, route sets, strict routing, CSeq rules, target
refresh, and the ACK of a 2xx."""

import pytest

from firmware.sip.dialog import Dialog, DialogId, DialogState, RemoteProtocolError
from firmware.sip.headers import Via
from firmware.sip.message import Request, Response
from firmware.sip.transaction import LocalProtocolError
from firmware.sip.uri import parse_name_addr, parse_uri
from tests.sip.pairing import make_request, make_response

ALICE_CONTACT = "<sip:alice@192.0.2.1:5060>"
BOB_CONTACT = "<sip:bob@192.0.2.2:5080;transport=udp>"
RECORD_ROUTES = ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]


def state(dialog: Dialog) -> DialogState:
    """The state, read through a call so that mypy does not pin it across method calls."""
    return dialog.state


def via(branch: str = "z9hG4bK-next") -> Via:
    return Via(transport="UDP", host="192.0.2.1", port=5060, params=(("branch", branch),))


def invite_from_alice() -> Request:
    return make_request(extra=[("Contact", ALICE_CONTACT)])


def answer(
    request: Request,
    status: int = 200,
    *,
    to_tag: str = "bob-tag",
    contact: str | None = BOB_CONTACT,
    record_routes: list[str] | None = None,
) -> Response:
    response = make_response(request, status, to_tag=to_tag)
    for value in RECORD_ROUTES if record_routes is None else record_routes:
        response.headers.add("Record-Route", value)
    if contact is not None:
        response.headers.add("Contact", contact)
    return response


def uac_dialog(record_routes: list[str] | None = None) -> tuple[Request, Dialog]:
    invite = invite_from_alice()
    return invite, Dialog.as_uac(invite, answer(invite, record_routes=record_routes))


def uas_dialog(record_routes: list[str] | None = None) -> tuple[Request, Dialog]:
    invite = invite_from_alice()
    for value in RECORD_ROUTES if record_routes is None else record_routes:
        invite.headers.add("Record-Route", value)
    ok = make_response(invite, 200, to_tag="bob-tag")
    ok.headers.add("Contact", BOB_CONTACT)
    return invite, Dialog.as_uas(invite, ok)


# Creation


def test_uac_dialog_from_a_2xx_reverses_record_route_and_targets_the_contact() -> None:
    _, dialog = uac_dialog()
    assert dialog.id == DialogId("call-1@192.0.2.1", "alice-tag", "bob-tag")
    assert dialog.state is DialogState.CONFIRMED
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert str(dialog.remote_target) == "sip:bob@192.0.2.2:5080;transport=udp"
    assert (dialog.local_seq, dialog.remote_seq) == (1, None)
    assert dialog.local_uri == parse_name_addr("Alice <sip:alice@192.0.2.1>")
    assert dialog.remote_uri == parse_name_addr("Bob <sip:bob@192.0.2.2>")
    assert dialog.local_contact == parse_name_addr(ALICE_CONTACT)
    assert dialog.secure is False


def test_uas_dialog_keeps_record_route_in_order_and_targets_the_request_contact() -> None:
    _, dialog = uas_dialog()
    assert dialog.id == DialogId("call-1@192.0.2.1", "bob-tag", "alice-tag")
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    assert str(dialog.remote_target) == "sip:alice@192.0.2.1:5060"
    assert (dialog.local_seq, dialog.remote_seq) == (None, 1)
    assert dialog.local_contact == parse_name_addr(BOB_CONTACT)


def test_early_dialog_is_confirmed_by_the_2xx_with_the_route_set_recomputed() -> None:
    invite = invite_from_alice()
    dialog = Dialog.as_uac(invite, answer(invite, 180, record_routes=["<sip:old.example;lr>"]))
    assert dialog.state is DialogState.EARLY
    dialog.receive_response(invite, answer(invite, 183, contact="<sip:bob@198.51.100.9>"))
    assert dialog.state is DialogState.EARLY
    dialog.receive_response(invite, answer(invite, 200))
    assert state(dialog) is DialogState.CONFIRMED
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]


def test_uas_early_dialog_is_confirmed_when_the_2xx_is_sent() -> None:
    invite = invite_from_alice()
    dialog = Dialog.as_uas(invite, answer(invite, 180))
    assert dialog.state is DialogState.EARLY
    dialog.confirm()
    assert state(dialog) is DialogState.CONFIRMED


def test_forked_2xx_make_dialogs_told_apart_by_the_remote_tag() -> None:
    invite = invite_from_alice()
    first = answer(invite, to_tag="bob-desk")
    second = answer(invite, to_tag="bob-mobile")
    dialogs = {d.id: d for d in (Dialog.as_uac(invite, first), Dialog.as_uac(invite, second))}
    assert len(dialogs) == 2
    assert DialogId.of_response(second) in dialogs
    assert DialogId.of_response(make_response(invite, 100)) is None


def test_dialog_id_of_a_received_request_is_seen_from_our_side() -> None:
    _, dialog = uas_dialog()
    bye = make_request("BYE", cseq=2, from_tag="alice-tag", to_tag="bob-tag")
    assert DialogId.of_request(bye) == dialog.id
    assert DialogId.of_request(make_request()) is None


def test_only_101_to_299_with_a_to_tag_create_dialogs() -> None:
    invite = invite_from_alice()
    for response in (answer(invite, 100), answer(invite, 486), make_response(invite, 200)):
        with pytest.raises(LocalProtocolError):
            Dialog.as_uac(invite, response)
        with pytest.raises(LocalProtocolError):
            Dialog.as_uas(invite, response)
    with pytest.raises(LocalProtocolError):
        Dialog.as_uac(make_request(from_tag=None), answer(invite))


def test_an_rfc_2543_peer_without_from_tag_gets_a_dialog_with_an_empty_remote_tag() -> None:
    invite = make_request(from_tag=None)
    dialog = Dialog.as_uas(invite, answer(invite))
    assert dialog.id.remote_tag == ""
    bye = dialog.create_request("BYE", via=via())
    assert bye.to.tag is None
    assert bye.from_.tag == "bob-tag"


# Requests inside the dialog


def test_loose_routing_keeps_the_remote_target_as_request_uri() -> None:
    _, dialog = uac_dialog()
    bye = dialog.create_request("BYE", via=via("z9hG4bK-bye"))
    assert bye.uri == dialog.remote_target
    assert bye.headers.get_all("Route") == [
        "<sip:p2.example.com;lr>",
        "<sip:p1.example.com;lr>",
    ]
    assert dialog.next_hop == parse_uri("sip:p2.example.com;lr")
    assert bye.top_via.branch == "z9hG4bK-bye"
    assert str(bye.cseq) == "2 BYE"
    assert bye.from_ == parse_name_addr("Alice <sip:alice@192.0.2.1>;tag=alice-tag")
    assert bye.to == parse_name_addr("Bob <sip:bob@192.0.2.2>;tag=bob-tag")
    assert (bye.call_id, bye.max_forwards) == ("call-1@192.0.2.1", 70)
    assert "Contact" not in bye.headers


def test_without_a_route_set_requests_go_straight_to_the_remote_target() -> None:
    _, dialog = uac_dialog(record_routes=[])
    info = dialog.create_request("INFO", via=via())
    assert info.uri == dialog.next_hop == dialog.remote_target
    assert "Route" not in info.headers


def test_a_strict_router_takes_the_request_uri_and_the_target_joins_the_route() -> None:
    _, dialog = uac_dialog(
        record_routes=["<sip:loose.example.com;lr>", "<sip:strict.example.com;method=INVITE?x=y>"]
    )
    assert dialog.strict_routing
    bye = dialog.create_request("BYE", via=via())
    assert bye.uri == parse_uri("sip:strict.example.com")
    assert dialog.next_hop == parse_uri("sip:strict.example.com;method=INVITE?x=y")
    assert bye.headers.get_all("Route") == [
        "<sip:loose.example.com;lr>",
        "<sip:bob@192.0.2.2:5080;transport=udp>",
    ]


def test_local_cseq_increases_by_one_per_request_and_starts_at_1_for_a_uas() -> None:
    _, dialog = uas_dialog()
    assert [str(dialog.create_request(m, via=via()).cseq) for m in ("INFO", "BYE")] == [
        "1 INFO",
        "2 BYE",
    ]
    assert dialog.local_seq == 2


def test_target_refresh_requests_carry_our_contact_body_and_extra_headers() -> None:
    _, dialog = uac_dialog()
    reinvite = dialog.create_request(
        "INVITE",
        via=via(),
        body=b"v=0\r\n",
        content_type="application/sdp",
        extra_headers=[("Supported", "timer")],
    )
    assert reinvite.contacts == (parse_name_addr(ALICE_CONTACT),)
    assert reinvite.content_type is not None
    assert reinvite.content_type.mime == "application/sdp"
    assert reinvite.headers.get("Supported") == "timer"
    assert reinvite.body == b"v=0\r\n"


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
def test_ack_and_cancel_are_not_new_requests_of_the_dialog(method: str) -> None:
    _, dialog = uac_dialog()
    with pytest.raises(LocalProtocolError):
        dialog.create_request(method, via=via())


def test_ack_for_2xx_reuses_the_invite_cseq_and_credentials_with_a_new_branch() -> None:
    invite = invite_from_alice()
    invite.headers.add("Proxy-Authorization", 'Digest username="alice", realm="x"')
    dialog = Dialog.as_uac(invite, answer(invite))
    ack = dialog.create_ack(invite, via=via("z9hG4bK-ack"))
    assert (ack.method, str(ack.cseq)) == ("ACK", "1 ACK")
    assert ack.top_via.branch == "z9hG4bK-ack"
    assert ack.uri == dialog.remote_target
    assert ack.headers.get_all("Route") == [
        "<sip:p2.example.com;lr>",
        "<sip:p1.example.com;lr>",
    ]
    assert ack.headers.get("Proxy-Authorization") == 'Digest username="alice", realm="x"'
    assert ack.to.tag == "bob-tag"
    assert dialog.local_seq == 1


# Requests and responses received in the dialog


def test_out_of_order_requests_are_refused_with_500_and_change_nothing() -> None:
    _, dialog = uas_dialog()
    info = make_request("INFO", cseq=5, to_tag="bob-tag")
    dialog.receive_request(info)
    assert dialog.remote_seq == 5
    for stale in (5, 4):
        request = make_request("BYE", cseq=stale, to_tag="bob-tag")
        with pytest.raises(RemoteProtocolError) as caught:
            dialog.check_request(request)
        assert caught.value.status == 500
        with pytest.raises(RemoteProtocolError):
            dialog.receive_request(request)
    assert dialog.remote_seq == 5
    dialog.receive_request(make_request("ACK", cseq=1, to_tag="bob-tag"))
    dialog.receive_request(make_request("CANCEL", cseq=1, to_tag="bob-tag"))
    assert dialog.remote_seq == 5
    dialog.receive_request(make_request("BYE", cseq=9, to_tag="bob-tag"))
    assert dialog.remote_seq == 9


def test_a_uac_dialog_takes_the_first_remote_cseq_whatever_it_is() -> None:
    _, dialog = uac_dialog()
    dialog.receive_request(make_request("INFO", cseq=4711, to_tag="alice-tag"))
    assert dialog.remote_seq == 4711


def test_a_received_target_refresh_replaces_the_remote_target() -> None:
    _, dialog = uas_dialog()
    moved = "<sip:alice@198.51.100.20:5062>"
    dialog.receive_request(make_request("INFO", cseq=2, extra=[("Contact", moved)]))
    assert str(dialog.remote_target) == "sip:alice@192.0.2.1:5060"
    dialog.receive_request(make_request("INVITE", cseq=3, extra=[("Contact", moved)]))
    assert str(dialog.remote_target) == "sip:alice@198.51.100.20:5062"
    dialog.receive_request(make_request("UPDATE", cseq=4))
    assert str(dialog.remote_target) == "sip:alice@198.51.100.20:5062"


def test_a_2xx_to_our_target_refresh_replaces_the_remote_target() -> None:
    _, dialog = uac_dialog()
    reinvite = dialog.create_request("INVITE", via=via())
    dialog.receive_response(reinvite, answer(reinvite, 491, contact="<sip:bob@203.0.113.5>"))
    assert str(dialog.remote_target) == "sip:bob@192.0.2.2:5080;transport=udp"
    dialog.receive_response(reinvite, answer(reinvite, 200, contact="<sip:bob@203.0.113.5>"))
    assert str(dialog.remote_target) == "sip:bob@203.0.113.5"
    info = dialog.create_request("INFO", via=via())
    dialog.receive_response(info, answer(info, 200, contact="<sip:bob@203.0.113.6>"))
    assert str(dialog.remote_target) == "sip:bob@203.0.113.5"
    assert len(dialog.route_set) == 2
