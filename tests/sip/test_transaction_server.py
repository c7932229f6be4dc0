"""Server transactions (RFC 3261 §17.2, RFC 6026), request matching with the RFC 2543 fallback,
and where responses go (§18.2), on a hand-moved clock."""

import pytest

from firmware.sip.message import Request, Response
from firmware.sip.timers import TimerConfig
from firmware.sip.transaction import (
    AckReceived,
    Event,
    LocalProtocolError,
    RequestReceived,
    TransactionKey,
    TransactionLayer,
    TransactionTimeout,
    Transmit,
    TransportFailed,
)
from firmware.sip.transaction_server import ServerState
from firmware.sip.transport_types import Address, Target
from tests.sip.pairing import drain, make_request, make_response, timeline

CLIENT = Address("192.0.2.1", 5060)
BACK = Target("udp", "192.0.2.1", 5060)


def deliver(
    layer: TransactionLayer,
    request: Request,
    now: float,
    source: Address = CLIENT,
    transport: str = "udp",
) -> list[Event]:
    layer.receive(request, source, transport, now)
    return drain(layer)


def new_transaction(
    layer: TransactionLayer, request: Request, now: float = 0.0, transport: str = "udp"
) -> TransactionKey:
    events = deliver(layer, request, now, transport=transport)
    assert len(events) == 1
    assert isinstance(events[0], RequestReceived)
    return events[0].key


def sent(events: list[Event]) -> list[int]:
    """The statuses of the responses transmitted."""
    statuses = []
    for event in events:
        assert isinstance(event, Transmit)
        assert isinstance(event.message, Response)
        statuses.append(event.message.status)
    return statuses


def respond(layer: TransactionLayer, key: TransactionKey, response: Response, now: float) -> None:
    layer.respond(key, response, now)
    assert sent(drain(layer)) == [response.status]


# INVITE server: Proceeding


def test_a_new_invite_is_reported_once_with_its_source() -> None:
    layer = TransactionLayer()
    invite = make_request()
    [event] = deliver(layer, invite, 0.0)
    assert isinstance(event, RequestReceived)
    assert event == RequestReceived(key=event.key, request=invite, source=CLIENT, transport="udp")
    assert (event.key.is_server, event.key.method) == (True, "INVITE")
    assert sent(deliver(layer, invite, 0.1)) == [100]


def test_100_trying_goes_out_after_200_ms_of_tu_silence() -> None:
    layer = TransactionLayer()
    invite = make_request(extra=[("Timestamp", "54")])
    key = new_transaction(layer, invite, 1.0)
    assert layer.get_timer() == pytest.approx(1.2)
    [(at, events)] = timeline(layer, 10.0)
    assert at == pytest.approx(1.2)
    assert events == [Transmit(target=BACK, message=make_response(invite, 100), key=key)]
    assert layer.state_of(key) is ServerState.PROCEEDING
    assert layer.get_timer() is None


def test_no_100_trying_when_the_tu_answers_within_200_ms() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 180, to_tag="b"), 0.1)
    assert layer.get_timer() is None


def test_invite_retransmission_in_proceeding_resends_the_last_provisional() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 180, to_tag="b"), 0.1)
    respond(layer, key, make_response(invite, 183, to_tag="b"), 0.2)
    assert sent(deliver(layer, invite, 0.5)) == [183]


def test_invite_retransmission_before_any_provisional_is_answered_100_at_once() -> None:
    layer = TransactionLayer(TimerConfig(trying_delay=1.0))
    invite = make_request()
    new_transaction(layer, invite)
    assert sent(deliver(layer, invite, 0.5)) == [100]
    assert layer.get_timer() is None
    assert sent(deliver(layer, invite, 1.5)) == [100]


# INVITE server: non-2xx final


def test_non_2xx_final_is_retransmitted_at_timer_g_until_timer_h() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 486, to_tag="b"), 1.0)
    assert layer.state_of(key) is ServerState.COMPLETED
    steps = timeline(layer, 100.0)
    resent = [at for at, events in steps if events and isinstance(events[0], Transmit)]
    assert resent == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert steps[-1] == (33.0, [TransactionTimeout(key=key, request=invite)])
    assert len(layer) == 0


def test_timer_g_scales_with_t1_and_t2() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4, t4=0.5))
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 603, to_tag="b"), 0.0)
    steps = timeline(layer, 100.0)
    assert [at for at, _ in steps][:6] == pytest.approx([0.1, 0.3, 0.7, 1.1, 1.5, 1.9], abs=1e-9)
    assert steps[-1][0] == pytest.approx(6.4, abs=1e-9)


def test_invite_retransmission_in_completed_resends_the_final() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 404, to_tag="b"), 0.0)
    assert sent(deliver(layer, invite, 0.3)) == [404]


def test_ack_confirms_and_timer_i_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 486, to_tag="b"), 0.0)
    ack = make_request("ACK", to_tag="b")
    assert deliver(layer, ack, 0.7) == []
    assert layer.state_of(key) is ServerState.CONFIRMED
    assert layer.get_timer() == 5.7
    assert deliver(layer, ack, 1.0) == []
    assert deliver(layer, invite, 1.1) == []
    assert timeline(layer, 100.0) == [(5.7, [])]
    assert len(layer) == 0


def test_over_tcp_a_non_2xx_is_sent_once_and_the_ack_ends_the_transaction() -> None:
    layer = TransactionLayer()
    invite = make_request(transport="TCP")
    key = new_transaction(layer, invite, transport="tcp")
    layer.respond(key, make_response(invite, 486, to_tag="b"), 0.0)
    [transmit] = drain(layer)
    assert isinstance(transmit, Transmit)
    assert transmit.target == Target("tcp", "192.0.2.1", 5060)
    assert layer.get_timer() == 32.0
    deliver(layer, make_request("ACK", transport="TCP", to_tag="b"), 1.0, transport="tcp")
    assert layer.state_of(key) is None


# INVITE server: 2xx (RFC 6026 Accepted)


def test_2xx_is_retransmitted_until_the_ack_and_invite_retransmissions_are_absorbed() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 200, to_tag="b"), 0.0)
    assert layer.state_of(key) is ServerState.ACCEPTED
    steps = timeline(layer, 8.0)
    assert [(at, sent(events)) for at, events in steps] == [
        (0.5, [200]),
        (1.5, [200]),
        (3.5, [200]),
        (7.5, [200]),
    ]
    assert deliver(layer, invite, 8.0) == []
    ack = make_request("ACK", branch="z9hG4bK-ack", to_tag="b")
    assert deliver(layer, ack, 9.0) == [
        AckReceived(key=key, request=ack, source=CLIENT, transport="udp")
    ]
    assert layer.get_timer() == 32.0
    assert deliver(layer, ack, 9.5) == []
    assert timeline(layer, 100.0) == [(32.0, [])]
    assert len(layer) == 0


def test_2xx_without_ack_times_out_at_64_t1() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 200, to_tag="b"), 2.0)
    steps = timeline(layer, 100.0)
    assert [at for at, _ in steps][-3:] == [29.5, 33.5, 34.0]
    assert steps[-1] == (34.0, [TransactionTimeout(key=key, request=invite)])


def test_2xx_is_retransmitted_over_tcp_too_because_it_is_end_to_end() -> None:
    layer = TransactionLayer()
    invite = make_request(transport="TCP")
    key = new_transaction(layer, invite, transport="tcp")
    respond(layer, key, make_response(invite, 200, to_tag="b"), 0.0)
    assert [at for at, _ in timeline(layer, 4.0)] == [0.5, 1.5, 3.5]


def test_an_ack_reusing_the_invite_branch_acknowledges_the_2xx_too() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 200, to_tag="b"), 0.0)
    ack = make_request("ACK", to_tag="b")
    assert deliver(layer, ack, 0.1) == [
        AckReceived(key=key, request=ack, source=CLIENT, transport="udp")
    ]
    assert layer.get_timer() == 32.0


def test_an_ack_for_another_dialog_or_cseq_matches_nothing() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 200, to_tag="b"), 0.0)
    for ack in (
        make_request("ACK", branch="z9hG4bK-x", to_tag="other"),
        make_request("ACK", branch="z9hG4bK-y", to_tag="b", cseq=2),
        make_request("ACK", branch="z9hG4bK-z", to_tag="b", call_id="other"),
    ):
        assert deliver(layer, ack, 0.1) == [
            AckReceived(key=None, request=ack, source=CLIENT, transport="udp")
        ]
    assert layer.get_timer() == 0.5


# Non-INVITE server


def test_non_invite_server_absorbs_then_answers_retransmissions_until_timer_j() -> None:
    layer = TransactionLayer()
    options = make_request("OPTIONS")
    key = new_transaction(layer, options)
    assert layer.state_of(key) is ServerState.TRYING
    assert layer.get_timer() is None
    assert deliver(layer, options, 0.5) == []
    respond(layer, key, make_response(options, 100), 0.6)
    assert layer.state_of(key) is ServerState.PROCEEDING
    assert sent(deliver(layer, options, 1.5)) == [100]
    respond(layer, key, make_response(options, 200, to_tag="b"), 2.0)
    assert layer.state_of(key) is ServerState.COMPLETED
    assert sent(deliver(layer, options, 3.5)) == [200]
    assert layer.get_timer() == 34.0
    assert timeline(layer, 100.0) == [(34.0, [])]
    assert len(layer) == 0


def test_non_invite_server_over_tcp_ends_with_its_final() -> None:
    layer = TransactionLayer()
    bye = make_request("BYE", transport="TCP", to_tag="b")
    key = new_transaction(layer, bye, transport="tcp")
    layer.respond(key, make_response(bye, 200), 1.0)
    assert layer.state_of(key) is None


# Matching


def test_cancel_is_its_own_transaction_and_finds_its_invite() -> None:
    layer = TransactionLayer()
    invite = make_request()
    invite_key = new_transaction(layer, invite)
    cancel = make_request("CANCEL")
    cancel_key = new_transaction(layer, cancel)
    assert cancel_key != invite_key
    assert layer.matching_invite(cancel) == invite_key
    assert layer.matching_invite(make_request("CANCEL", branch="z9hG4bK-zz")) is None


def test_the_same_branch_from_another_sent_by_is_another_transaction() -> None:
    layer = TransactionLayer()
    new_transaction(layer, make_request("OPTIONS"))
    new_transaction(layer, make_request("OPTIONS", sent_by="192.0.2.1:5070"))
    new_transaction(layer, make_request("REGISTER"))
    assert len(layer) == 3


def test_rfc_2543_requests_are_matched_on_uri_tags_call_id_cseq_and_top_via() -> None:
    layer = TransactionLayer()
    invite = make_request(branch=None)
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 180, to_tag="b"), 0.1)
    assert sent(deliver(layer, make_request(branch=None), 0.5)) == [180]
    assert layer.matching_invite(make_request("CANCEL", branch=None)) == key
    for different in (
        make_request(branch=None, cseq=2),
        make_request(branch=None, uri="sip:carol@192.0.2.2"),
        make_request(branch=None, from_tag="other"),
        make_request(branch=None, call_id="other"),
        make_request(branch=None, sent_by="192.0.2.1:5070"),
        make_request(branch=None, to_tag="b"),
        make_request(branch="old-style-branch"),
    ):
        events = deliver(layer, different, 1.0)
        assert [type(e) for e in events] == [RequestReceived]
    assert len(layer) == 8


def test_rfc_2543_ack_matches_on_the_to_tag_of_the_final_response() -> None:
    layer = TransactionLayer()
    invite = make_request(branch=None)
    key = new_transaction(layer, invite)
    respond(layer, key, make_response(invite, 486, to_tag="b"), 0.0)
    stranger = make_request("ACK", branch=None, to_tag="not-ours")
    assert deliver(layer, stranger, 0.2) == [
        AckReceived(key=None, request=stranger, source=CLIENT, transport="udp")
    ]
    assert deliver(layer, make_request("ACK", branch=None, to_tag="b"), 0.3) == []
    assert layer.state_of(key) is ServerState.CONFIRMED


# Where responses go (§18.2.1, §18.2.2, RFC 3581)


@pytest.mark.parametrize(
    ("sent_by", "params", "top_via", "target"),
    [
        ("192.0.2.1:5060", "", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1", BACK),
        (
            "phone.example.com",
            "",
            "SIP/2.0/UDP phone.example.com;branch=z9hG4bK-1;received=192.0.2.1",
            BACK,
        ),
        (
            "10.0.0.5:5062",
            ";rport",
            "SIP/2.0/UDP 10.0.0.5:5062;rport=40000;branch=z9hG4bK-1;received=192.0.2.1",
            Target("udp", "192.0.2.1", 40000),
        ),
        (
            "10.0.0.5:5062",
            "",
            "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-1;received=192.0.2.1",
            Target("udp", "192.0.2.1", 5062),
        ),
        (
            "192.0.2.1",
            ";maddr=239.1.1.1",
            "SIP/2.0/UDP 192.0.2.1;maddr=239.1.1.1;branch=z9hG4bK-1",
            Target("udp", "239.1.1.1", 5060),
        ),
    ],
)
def test_the_top_via_records_the_source_and_responses_go_back_to_it(
    sent_by: str, params: str, top_via: str, target: Target
) -> None:
    layer = TransactionLayer()
    invite = make_request(sent_by=sent_by + params)
    source = Address("192.0.2.1", 40000 if "rport" in params else 5060)
    [event] = deliver(layer, invite, 0.0, source=source)
    assert isinstance(event, RequestReceived)
    assert event.request.headers.get("Via") == top_via
    layer.respond(event.key, make_response(event.request, 180, to_tag="b"), 0.0)
    [transmit] = drain(layer)
    assert isinstance(transmit, Transmit)
    assert transmit.target == target
    assert transmit.message.headers.get("Via") == top_via


# Errors and transport failures


def test_respond_refuses_what_the_transaction_cannot_send() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    client_key = layer.send_request(make_request("OPTIONS", branch="z9hG4bK-c"), BACK, 0.0)
    for bad_key, response in (
        (client_key, make_response(invite, 200, to_tag="b")),
        (key, Response(700, "Weird", make_response(invite, 200).headers)),
        (key, make_response(invite, 200)),
        (key, make_response(make_request(cseq=7), 486, to_tag="b")),
    ):
        with pytest.raises(LocalProtocolError):
            layer.respond(bad_key, response, 0.1)
    layer.respond(key, make_response(invite, 486, to_tag="b"), 0.1)
    with pytest.raises(LocalProtocolError):
        layer.respond(key, make_response(invite, 500, to_tag="b"), 0.2)


def test_transport_error_ends_a_server_transaction() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = new_transaction(layer, invite)
    layer.respond(key, make_response(invite, 486, to_tag="b"), 0.0)
    drain(layer)
    layer.transport_error(BACK)
    assert drain(layer) == [TransportFailed(key=key, request=invite)]
    assert len(layer) == 0
    with pytest.raises(LocalProtocolError):
        layer.respond(key, make_response(invite, 486, to_tag="b"), 0.1)


def test_an_ipv6_source_matches_its_bracketed_sent_by() -> None:
    layer = TransactionLayer()
    source = Address("2001:db8::1", 5060)
    [event] = deliver(layer, make_request(sent_by="[2001:db8::1]:5060"), 0.0, source=source)
    assert isinstance(event, RequestReceived)
    assert event.request.headers.get("Via") == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-1"
    layer.respond(event.key, make_response(event.request, 404, to_tag="b"), 0.0)
    [transmit] = drain(layer)
    assert isinstance(transmit, Transmit)
    assert transmit.target == Target("udp", "2001:db8::1", 5060)
