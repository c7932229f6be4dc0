"""Two transaction layers (and a strict router) paired in memory over a lossy wire, on one hand
clock: retransmissions recover each lost message, nothing reaches a TU twice, an unanswered
INVITE times out at exactly 64·T1, RFC 2543 peers are matched, strict routing works end to end."""

import pytest

from firmware.sip.dialog import Dialog
from firmware.sip.headers import Via
from firmware.sip.message import Message, Request, Response
from firmware.sip.timers import TimerConfig
from firmware.sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
)
from firmware.sip.transport_types import Address, Target
from firmware.sip.uri import parse_name_addr
from tests.sip.pairing import Network, Node, make_request, make_response

ALICE = Target("udp", "192.0.2.1", 5060)
BOB = Target("udp", "192.0.2.2", 5060)


def pair(config: TimerConfig | None = None) -> tuple[Network, Node, Node]:
    network = Network(config)
    return network, network.add("alice", "192.0.2.1"), network.add("bob", "192.0.2.2")


def send(network: Network, node: Node, request: Request, target: Target) -> None:
    node.transactions.send_request(request, target, network.now)
    network.pump()


def alice_via(branch: str) -> Via:
    return Via(transport="UDP", host="192.0.2.1", port=5060, params=(("branch", branch),))


def one_request(node: Node) -> RequestReceived:
    [received] = node.take(RequestReceived)
    return received


def answer(network: Network, node: Node, received: RequestReceived, status: int) -> Response:
    response = make_response(received.request, status, to_tag="bob-tag")
    node.transactions.respond(received.key, response, network.now)
    network.pump()
    return response


def times(network: Network, sender: Node, receiver: Node, method_or_status: str) -> list[float]:
    """When `sender` put a given request method or response status on the wire to `receiver`."""
    return [d.at for d in network.sent(sender, receiver) if label(d.message) == method_or_status]


def label(message: Message) -> str:
    if isinstance(message, Request):
        return message.method
    assert isinstance(message, Response)
    return str(message.status)


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_a_request_lost_twice_arrives_with_the_second_retransmission(method: str) -> None:
    network, alice, bob = pair()
    network.drop(alice, bob, 1, 2)
    send(network, alice, make_request(method), BOB)
    network.run_until(1.4)
    assert bob.take(RequestReceived) == []
    network.run_until(1.5)
    received = one_request(bob)
    assert received.request.method == method
    answer(network, bob, received, 486 if method == "INVITE" else 200)
    network.run_until(40.0)
    assert times(network, alice, bob, method) == [0.0, 0.5, 1.5]
    assert [e.response.status for e in alice.take(ResponseReceived)] == [
        486 if method == "INVITE" else 200
    ]
    assert bob.events == []
    assert alice.events == []


def test_a_lost_final_response_is_resent_when_the_request_is_retransmitted() -> None:
    network, alice, bob = pair()
    network.drop(bob, alice, 1)
    send(network, alice, make_request("REGISTER"), BOB)
    answer(network, bob, one_request(bob), 200)
    network.run_until(0.5)
    assert times(network, bob, alice, "200") == [0.0, 0.5]
    assert [e.response.status for e in alice.take(ResponseReceived)] == [200]
    network.run_until(40.0)
    assert times(network, alice, bob, "REGISTER") == [0.0, 0.5]
    assert (bob.events, alice.events) == ([], [])
    assert len(alice.transactions) == len(bob.transactions) == 0


def test_a_lost_ack_for_a_non_2xx_is_recovered_by_timer_g() -> None:
    network, alice, bob = pair()
    network.drop(alice, bob, 2)
    send(network, alice, make_request(), BOB)
    answer(network, bob, one_request(bob), 486)
    assert times(network, alice, bob, "ACK") == [0.0]
    network.run_until(40.0)
    assert times(network, bob, alice, "486") == [0.0, 0.5]
    assert times(network, alice, bob, "ACK") == [0.0, 0.5]
    assert [e.response.status for e in alice.take(ResponseReceived)] == [486]
    assert bob.events == []


@pytest.mark.parametrize("t1", [0.5, 0.1, 1.0])
def test_an_unanswered_invite_times_out_after_exactly_64_t1(t1: float) -> None:
    network, alice, bob = pair(TimerConfig(t1=t1, t2=max(4.0, t1)))
    network.drop(alice, bob, *range(1, 20))
    invite = make_request()
    send(network, alice, invite, BOB)
    network.run_until(1000.0)
    [timeout] = alice.take(TransactionTimeout)
    assert timeout.request == invite
    deliveries = network.sent(alice, bob)
    assert len(deliveries) == 7
    assert [d.at for d in deliveries] == pytest.approx(
        [t1 * n for n in (0, 1, 3, 7, 15, 31, 63)], abs=1e-9
    )
    assert network.now == 1000.0
    assert alice.events == bob.events == []


def test_a_timeout_is_reported_at_64_t1_on_the_clock() -> None:
    network, alice, bob = pair()
    network.drop(alice, bob, *range(1, 20))
    send(network, alice, make_request(), BOB)
    network.run_until(31.999)
    assert alice.take(TransactionTimeout) == []
    assert network.advance() == 32.0
    assert len(alice.take(TransactionTimeout)) == 1


def test_a_lost_2xx_ack_makes_the_2xx_come_again_and_the_ua_acks_it_again() -> None:
    network, alice, bob = pair()
    network.drop(alice, bob, 2)
    invite = make_request(extra=[("Contact", "<sip:alice@192.0.2.1>")])
    send(network, alice, invite, BOB)
    received = one_request(bob)
    ok = make_response(received.request, 200, to_tag="bob-tag")
    ok.headers.add("Contact", "<sip:bob@192.0.2.2>")
    bob.transactions.respond(received.key, ok, network.now)
    network.pump()
    dialog: Dialog | None = None
    acks = 0
    for _ in range(3):
        for event in alice.take(ResponseReceived):
            dialog = dialog or Dialog.as_uac(invite, event.response)
            acks += 1
            ack = dialog.create_ack(invite, via=alice_via(f"z9hG4bK-a{acks}"))
            alice.transactions.send_ack(ack, Target.from_uri(dialog.next_hop))
            network.pump()
        network.advance()
    assert acks == 2
    assert times(network, bob, alice, "200") == [0.0, 0.5]
    [acked] = bob.take(AckReceived)
    assert (acked.key, acked.request.top_via.branch) == (received.key, "z9hG4bK-a2")
    network.run_until(40.0)
    assert bob.events == []
    assert times(network, bob, alice, "200") == [0.0, 0.5]


def test_an_rfc_2543_retransmission_is_absorbed_by_the_fallback_matching() -> None:
    network, _, bob = pair()
    legacy_inbox: list[Message] = []

    def legacy_ua(message: Message, source: Address) -> list[tuple[Target, Message]]:
        legacy_inbox.append(message)
        return []

    legacy = network.add("legacy", "192.0.2.9", relay=legacy_ua)
    invite = make_request(branch=None, sent_by="192.0.2.9:5060")
    network.send_raw(legacy, BOB, invite)
    received = one_request(bob)
    network.drop(bob, legacy, 1)
    answer(network, bob, received, 180)
    assert legacy_inbox == []
    network.run_until(0.5)
    network.send_raw(legacy, BOB, make_request(branch=None, sent_by="192.0.2.9:5060"))
    assert [label(m) for m in legacy_inbox] == ["180"]
    assert bob.take(RequestReceived) == []
    answer(network, bob, received, 486)
    ack = make_request("ACK", branch=None, sent_by="192.0.2.9:5060", to_tag="bob-tag")
    network.send_raw(legacy, BOB, ack)
    network.run_until(40.0)
    assert [label(m) for m in legacy_inbox] == ["180", "486"]
    assert bob.events == []
    assert len(bob.transactions) == 0


# A strict router between two UAs (RFC 3261 §12.2.1.1, §16.4)

ROUTER = Address("192.0.2.50", 5060)


def strict_router(message: Message, source: Address) -> list[tuple[Target, Message]]:
    """A stateless RFC 2543 proxy that record-routes without `lr`: it expects its own URI as
    Request-URI and takes the next hop from the end of Route (§16.4)."""
    headers = message.headers.copy()
    if isinstance(message, Response):
        headers.remove_first("Via")
        back = headers.vias()[0]
        response = Response(message.status, message.reason, headers, message.body)
        return [(Target("udp", back.host, back.port or 5060), response)]
    assert isinstance(message, Request)
    uri = message.uri
    if uri.host == ROUTER.host and uri.user is None:
        routes = headers.get_all("Route")
        headers.remove("Route")
        for route in routes[:-1]:
            headers.add("Route", route)
        uri = parse_name_addr(routes[-1]).uri
    if message.method == "INVITE" and message.to.tag is None:
        headers.add_first("Record-Route", f"<sip:{ROUTER.host}>")
    branch = f"z9hG4bK-r{message.top_via.branch}"
    headers.add_first("Via", f"SIP/2.0/UDP {ROUTER.host}:5060;branch={branch}")
    return [(Target.from_uri(uri), Request(message.method, uri, headers, message.body))]


def test_a_strict_router_in_the_route_set_gets_the_request_uri_and_forwards_end_to_end() -> None:
    network, alice, bob = pair()
    router = network.add("router", ROUTER.host, relay=strict_router)
    invite = make_request(extra=[("Contact", "<sip:alice@192.0.2.1:5060>")])
    send(network, alice, invite, Target("udp", *ROUTER))
    received = one_request(bob)
    assert received.request.headers.get_all("Record-Route") == ["<sip:192.0.2.50>"]
    ok = make_response(received.request, 200, to_tag="bob-tag")
    ok.headers.add("Record-Route", "<sip:192.0.2.50>")
    ok.headers.add("Contact", "<sip:bob@192.0.2.2:5060>")
    bob_dialog = Dialog.as_uas(received.request, ok)
    bob.transactions.respond(received.key, ok, network.now)
    network.pump()
    [answered] = alice.take(ResponseReceived)
    alice_dialog = Dialog.as_uac(invite, answered.response)
    assert alice_dialog.strict_routing and bob_dialog.strict_routing

    ack = alice_dialog.create_ack(invite, via=alice_via("z9hG4bK-ack"))
    alice.transactions.send_ack(ack, Target.from_uri(alice_dialog.next_hop))
    network.pump()
    [acked] = bob.take(AckReceived)
    assert acked.key == received.key

    bye = alice_dialog.create_request("BYE", via=alice_via("z9hG4bK-bye"))
    send(network, alice, bye, Target.from_uri(alice_dialog.next_hop))
    [on_the_wire] = [d.message for d in network.sent(alice, router) if label(d.message) == "BYE"]
    assert isinstance(on_the_wire, Request)
    assert str(on_the_wire.uri) == "sip:192.0.2.50"
    assert on_the_wire.headers.get_all("Route") == ["<sip:bob@192.0.2.2:5060>"]
    bye_received = one_request(bob)
    assert str(bye_received.request.uri) == "sip:bob@192.0.2.2:5060"
    assert "Route" not in bye_received.request.headers
    bob_dialog.receive_request(bye_received.request)
    answer(network, bob, bye_received, 200)
    assert [e.response.status for e in alice.take(ResponseReceived)] == [200]
    network.run_until(40.0)
    assert alice.events == bob.events == []
    assert len(alice.transactions) == len(bob.transactions) == 0
