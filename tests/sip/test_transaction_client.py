"""Client transactions (RFC 3261 §17.1, RFC 6026) and the timer table, on a hand-moved clock.

Deadlines are asserted exactly: with the default T1 = 0.5 s every sum is exact in binary.
"""

from collections.abc import Callable

import pytest

from firmware.sip.message import Request, Response
from firmware.sip.timers import TimerConfig
from firmware.sip.transaction import (
    Event,
    LocalProtocolError,
    ResponseReceived,
    StrayResponse,
    TransactionLayer,
    TransactionTimeout,
    Transmit,
    TransportFailed,
    build_cancel,
)
from firmware.sip.transaction_client import ClientState
from firmware.sip.transport_types import Address, Target
from firmware.sip.uri import parse_uri
from tests.sip.pairing import drain, make_request, make_response, timeline

UDP = Target("udp", "192.0.2.2", 5060)
TCP = Target("tcp", "192.0.2.2", 5060)
SERVER = Address("192.0.2.2", 5060)


def sent_times(steps: list[tuple[float, list[Event]]]) -> list[float]:
    return [at for at, events in steps for e in events if isinstance(e, Transmit)]


def only_transmit(events: list[Event]) -> Transmit:
    assert len(events) == 1
    assert isinstance(events[0], Transmit)
    return events[0]


def receive(layer: TransactionLayer, response: Response, now: float) -> list[Event]:
    layer.receive(response, SERVER, "udp", now)
    return drain(layer)


# The timer table


def test_default_timer_values_are_those_of_rfc_3261_table_4() -> None:
    config = TimerConfig()
    assert (config.t1, config.t2, config.t4) == (0.5, 4.0, 5.0)
    assert config.timer_b == config.timer_f == config.timer_h == 32.0
    assert config.timer_l == config.timer_m == 32.0
    assert (config.timer_d(False), config.timer_d(True)) == (32.0, 0.0)
    assert (config.timer_i(False), config.timer_i(True)) == (5.0, 0.0)
    assert (config.timer_j(False), config.timer_j(True)) == (32.0, 0.0)
    assert (config.timer_k(False), config.timer_k(True)) == (5.0, 0.0)
    assert [config.doubled_capped(x) for x in (0.5, 1.0, 2.0, 4.0)] == [1.0, 2.0, 4.0, 4.0]


def test_timers_scale_with_t1_but_timer_d_stays_at_least_32_seconds() -> None:
    short = TimerConfig(t1=0.1, t2=0.4, t4=0.5)
    assert short.timer_b == pytest.approx(6.4)
    assert short.timer_j(False) == pytest.approx(6.4)
    assert short.timer_d(False) == 32.0
    assert TimerConfig(t1=1.0, t2=4.0).timer_d(False) == 64.0


@pytest.mark.parametrize(
    "changes",
    [{"t1": 0.0}, {"t2": -1.0}, {"t4": float("nan")}, {"trying_delay": 0.0}, {"t1": 5.0}],
)
def test_timer_config_rejects_nonsense(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerConfig(**changes)


# INVITE client


def test_invite_is_retransmitted_at_timer_a_until_timer_b_fires_at_64_t1() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = layer.send_request(invite, UDP, 0.0)
    assert drain(layer) == [Transmit(target=UDP, message=invite, key=key)]
    assert layer.get_timer() == 0.5
    steps = timeline(layer, 100.0)
    assert sent_times(steps) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert steps[-1] == (32.0, [TransactionTimeout(key=key, request=invite)])
    assert len(layer) == 0


def test_invite_deadlines_scale_with_a_shorter_t1() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4))
    layer.send_request(make_request(), UDP, 10.0)
    drain(layer)
    steps = timeline(layer, 100.0)
    assert sent_times(steps) == pytest.approx([10.1, 10.3, 10.7, 11.5, 13.1, 16.3], abs=1e-9)
    assert steps[-1][0] == pytest.approx(16.4, abs=1e-9)
    assert isinstance(steps[-1][1][0], TransactionTimeout)


def test_invite_over_tcp_is_sent_once_and_still_times_out_at_timer_b() -> None:
    layer = TransactionLayer()
    layer.send_request(make_request(transport="TCP"), TCP, 0.0)
    drain(layer)
    assert layer.get_timer() == 32.0
    steps = timeline(layer, 100.0)
    assert [at for at, _ in steps] == [32.0]
    assert [type(e) for e in steps[0][1]] == [TransactionTimeout]


def test_provisional_stops_retransmission_and_timer_b() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = layer.send_request(invite, UDP, 0.0)
    timeline(layer, 0.5)
    ringing = make_response(invite, 180, to_tag="bob")
    assert receive(layer, ringing, 0.7) == [
        ResponseReceived(key=key, response=ringing, source=SERVER)
    ]
    assert layer.state_of(key) is ClientState.PROCEEDING
    assert layer.get_timer() is None
    assert receive(layer, ringing, 0.9) == [
        ResponseReceived(key=key, response=ringing, source=SERVER)
    ]


def test_non_2xx_final_is_acked_to_the_same_target_per_17_1_1_3() -> None:
    layer = TransactionLayer()
    invite = make_request(extra=[("Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>")])
    key = layer.send_request(invite, UDP, 0.0)
    drain(layer)
    busy = make_response(invite, 486, to_tag="bob")
    events = receive(layer, busy, 1.0)
    assert isinstance(events[0], Transmit)
    assert events[1:] == [ResponseReceived(key=key, response=busy, source=SERVER)]
    ack = events[0].message
    assert isinstance(ack, Request)
    assert events[0].target == UDP
    assert (ack.method, ack.uri) == ("ACK", invite.uri)
    assert ack.headers.get_all("Via") == invite.headers.get_all("Via")
    assert ack.headers.get_all("Route") == invite.headers.get_all("Route")
    assert ack.to.tag == "bob"
    assert ack.from_ == invite.from_
    assert (ack.call_id, str(ack.cseq)) == (invite.call_id, "1 ACK")
    assert ack.body == b""
    assert layer.state_of(key) is ClientState.COMPLETED
    assert layer.get_timer() == 33.0


def test_completed_invite_re_acks_retransmitted_finals_without_telling_the_tu() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = layer.send_request(invite, UDP, 0.0)
    busy = make_response(invite, 486, to_tag="bob")
    receive(layer, busy, 1.0)
    again = only_transmit(receive(layer, busy, 3.0)).message
    assert isinstance(again, Request)
    assert again.method == "ACK"
    assert timeline(layer, 100.0) == [(33.0, [])]
    assert layer.state_of(key) is None


def test_non_2xx_over_tcp_terminates_at_once_after_the_ack() -> None:
    layer = TransactionLayer()
    invite = make_request(transport="TCP")
    key = layer.send_request(invite, TCP, 0.0)
    drain(layer)
    layer.receive(make_response(invite, 404, to_tag="bob"), SERVER, "tcp", 2.0)
    assert [type(e) for e in drain(layer)] == [Transmit, ResponseReceived]
    assert layer.state_of(key) is None
    assert layer.get_timer() is None


def test_2xx_enters_accepted_and_hands_up_every_2xx_until_timer_m() -> None:
    layer = TransactionLayer()
    invite = make_request()
    key = layer.send_request(invite, UDP, 0.0)
    drain(layer)
    ok = make_response(invite, 200, to_tag="bob")
    fork = make_response(invite, 200, to_tag="bob-2")
    assert receive(layer, ok, 2.0) == [ResponseReceived(key=key, response=ok, source=SERVER)]
    assert layer.state_of(key) is ClientState.ACCEPTED
    assert layer.get_timer() == 34.0
    assert receive(layer, ok, 2.5) == [ResponseReceived(key=key, response=ok, source=SERVER)]
    assert receive(layer, fork, 3.0) == [ResponseReceived(key=key, response=fork, source=SERVER)]
    assert receive(layer, make_response(invite, 500, to_tag="x"), 3.5) == []
    assert timeline(layer, 100.0) == [(34.0, [])]
    stray = receive(layer, ok, 40.0)
    assert stray == [StrayResponse(response=ok, source=SERVER, transport="udp")]


# Non-INVITE client


def test_non_invite_retransmits_doubling_up_to_t2_until_timer_f() -> None:
    layer = TransactionLayer()
    key = layer.send_request(make_request("OPTIONS"), UDP, 0.0)
    drain(layer)
    steps = timeline(layer, 100.0)
    assert sent_times(steps) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert steps[-1][0] == 32.0
    assert [type(e) for e in steps[-1][1]] == [TransactionTimeout]
    assert layer.state_of(key) is None


def test_non_invite_timer_e_scales_with_t1_and_t2() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4, t4=0.5))
    layer.send_request(make_request("OPTIONS"), UDP, 0.0)
    drain(layer)
    steps = timeline(layer, 100.0)
    assert sent_times(steps)[:5] == pytest.approx([0.1, 0.3, 0.7, 1.1, 1.5], abs=1e-9)
    assert steps[-1][0] == pytest.approx(6.4, abs=1e-9)


def test_timer_e_runs_at_t2_once_a_provisional_arrived() -> None:
    layer = TransactionLayer()
    register = make_request("REGISTER")
    key = layer.send_request(register, UDP, 0.0)
    timeline(layer, 0.5)
    receive(layer, make_response(register, 100), 0.6)
    assert layer.state_of(key) is ClientState.PROCEEDING
    assert layer.get_timer() == 1.5
    steps = timeline(layer, 10.0)
    assert sent_times(steps) == [1.5, 5.5, 9.5]


def test_non_invite_final_completes_and_timer_k_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    register = make_request("REGISTER")
    key = layer.send_request(register, UDP, 0.0)
    drain(layer)
    ok = make_response(register, 200, to_tag="r")
    assert receive(layer, ok, 1.0) == [ResponseReceived(key=key, response=ok, source=SERVER)]
    assert layer.state_of(key) is ClientState.COMPLETED
    assert layer.get_timer() == 6.0
    assert receive(layer, ok, 2.0) == []
    assert timeline(layer, 100.0) == [(6.0, [])]
    assert len(layer) == 0


def test_non_invite_over_tcp_has_no_timer_e_and_no_timer_k() -> None:
    layer = TransactionLayer()
    register = make_request("REGISTER", transport="TCP")
    key = layer.send_request(register, TCP, 0.0)
    drain(layer)
    assert layer.get_timer() == 32.0
    layer.receive(make_response(register, 200, to_tag="r"), SERVER, "tcp", 1.0)
    assert [type(e) for e in drain(layer)] == [ResponseReceived]
    assert layer.state_of(key) is None
    assert layer.get_timer() is None


# Matching, errors, helpers


def test_responses_match_on_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = make_request()
    invite_key = layer.send_request(invite, UDP, 0.0)
    cancel = build_cancel(invite)
    cancel_key = layer.send_request(cancel, UDP, 0.0)
    drain(layer)
    ok_cancel = make_response(cancel, 200, to_tag="b")
    terminated = make_response(invite, 487, to_tag="b")
    assert [type(e) for e in receive(layer, ok_cancel, 1.0)] == [ResponseReceived]
    assert layer.state_of(cancel_key) is ClientState.COMPLETED
    assert layer.state_of(invite_key) is ClientState.CALLING
    events = receive(layer, terminated, 1.1)
    assert events[1:] == [ResponseReceived(key=invite_key, response=terminated, source=SERVER)]
    other = make_response(make_request(branch="z9hG4bK-other"), 200)
    assert receive(layer, other, 1.2) == [
        StrayResponse(response=other, source=SERVER, transport="udp")
    ]


def test_build_cancel_copies_what_section_9_1_requires() -> None:
    invite = make_request(extra=[("Route", "<sip:proxy.example.com;lr>"), ("Subject", "hi")])
    cancel = build_cancel(invite)
    assert (cancel.method, cancel.uri, str(cancel.cseq)) == ("CANCEL", invite.uri, "1 CANCEL")
    assert cancel.headers.get_all("Via") == invite.headers.get_all("Via")
    assert cancel.headers.get_all("Route") == invite.headers.get_all("Route")
    assert (cancel.from_, cancel.to, cancel.call_id) == (invite.from_, invite.to, invite.call_id)
    assert "Subject" not in cancel.headers
    with pytest.raises(LocalProtocolError):
        build_cancel(make_request("BYE"))


def test_transport_error_fails_the_transaction_or_everything_sent_to_a_target() -> None:
    layer = TransactionLayer()
    elsewhere = Target("udp", "198.51.100.7", 5060)
    invite = make_request(branch="z9hG4bK-a")
    options = make_request("OPTIONS", branch="z9hG4bK-b")
    first = layer.send_request(invite, UDP, 0.0)
    second = layer.send_request(options, UDP, 0.0)
    third = layer.send_request(make_request("OPTIONS", branch="z9hG4bK-c"), elsewhere, 0.0)
    drain(layer)
    layer.transport_error(first)
    assert drain(layer) == [TransportFailed(key=first, request=invite)]
    layer.transport_error(UDP)
    assert drain(layer) == [TransportFailed(key=second, request=options)]
    layer.transport_error(first)
    assert drain(layer) == []
    assert layer.state_of(third) is ClientState.TRYING


@pytest.mark.parametrize(
    ("request_", "target"),
    [
        (make_request("ACK"), UDP),
        (make_request(branch="abc"), UDP),
        (make_request(branch="z9hG4bK"), UDP),
        (make_request(branch=None), UDP),
        (make_request(), TCP),
        (Request("INVITE", make_request().uri, make_request("BYE").headers), UDP),
    ],
)
def test_send_request_refuses_what_cannot_be_a_client_transaction(
    request_: Request, target: Target
) -> None:
    with pytest.raises(LocalProtocolError):
        TransactionLayer().send_request(request_, target, 0.0)


def test_a_branch_cannot_be_reused_for_the_same_method() -> None:
    layer = TransactionLayer()
    layer.send_request(make_request(), UDP, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request(), UDP, 1.0)


def test_the_layer_retransmits_its_own_copy_of_the_request() -> None:
    layer = TransactionLayer()
    invite = make_request()
    layer.send_request(invite, UDP, 0.0)
    invite.headers.add("Subject", "changed afterwards")
    drain(layer)
    retransmission = only_transmit(timeline(layer, 0.5)[0][1])
    assert "Subject" not in retransmission.message.headers


def test_terminate_drops_a_transaction_silently() -> None:
    layer = TransactionLayer()
    key = layer.send_request(make_request(), UDP, 0.0)
    drain(layer)
    layer.terminate(key)
    layer.terminate(key)
    assert (layer.state_of(key), layer.get_timer(), drain(layer)) == (None, None, [])


def test_send_ack_transmits_once_without_a_transaction() -> None:
    layer = TransactionLayer()
    ack = make_request("ACK", branch="z9hG4bK-ack", to_tag="bob")
    layer.send_ack(ack, UDP)
    assert drain(layer) == [Transmit(target=UDP, message=ack, key=None)]
    assert (len(layer), layer.get_timer()) == (0, None)
    with pytest.raises(LocalProtocolError):
        layer.send_ack(make_request("BYE"), UDP)


@pytest.mark.parametrize(
    ("uri", "target"),
    [
        ("sip:bob@192.0.2.2", Target("udp", "192.0.2.2", 5060)),
        ("sip:192.0.2.2:5080;transport=TCP", Target("tcp", "192.0.2.2", 5080)),
        ("sips:bob@example.com", Target("tls", "example.com", 5061)),
        ("sip:example.com;maddr=239.255.255.1", Target("udp", "239.255.255.1", 5060)),
    ],
)
def test_a_target_from_a_uri_takes_the_defaults_of_section_19_1_2(uri: str, target: Target) -> None:
    assert Target.from_uri(parse_uri(uri)) == target
    assert target.reliable is (target.transport != "udp")


@pytest.mark.parametrize(
    "build",
    [
        lambda: Target("sctp", "192.0.2.2", 5060),
        lambda: Target("udp", "", 5060),
        lambda: Target("udp", "192.0.2.2", 0),
        lambda: Target.from_uri(parse_uri("tel:+15551234")),
        lambda: Target.from_uri(parse_uri("sip:x;transport=ws")),
    ],
)
def test_targets_refuse_what_the_transport_cannot_reach(build: Callable[[], Target]) -> None:
    with pytest.raises(ValueError):
        build()
