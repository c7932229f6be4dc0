"""The INVITE session usage: two phones' calls paired in memory over a lossy wire on a hand
clock. Each race of the brief is a test: CANCEL after 180, a 200 crossing the CANCEL, lost
INVITEs, 200s and ACKs, unanswered BYE and INVITE, failures and authentication, hold and resume
from both sides, DTMF in INFO, and what a call refuses."""

import pytest

from firmware.sip.auth import DigestChallenge, DigestClient, format_challenge
from firmware.sip.call import (
    CallClosed,
    CallEstablished,
    CallHeld,
    CallIncoming,
    CallOutgoing,
    CallProgress,
    CallResumed,
    CallRinging,
    CallState,
    CloseReason,
    DtmfReceived,
)
from firmware.sip.headers import Via
from firmware.sip.message import Message, Request, Response
from firmware.sip.sdp import (
    Direction,
    MediaSession,
    SessionDescription,
    answer_offer,
    parse_sdp,
    process_answer,
)
from firmware.sip.transaction import RequestReceived, ResponseReceived
from tests.sip.call_pairing import CallNetwork, Phone
from tests.sip.pairing import make_request

T1 = 0.5


def phones() -> tuple[CallNetwork, Phone, Phone]:
    network = CallNetwork()
    return network, network.add("alice", "192.0.2.1", 40000), network.add("bob", "192.0.2.2", 50000)


def label(message: Message) -> str:
    if isinstance(message, Request):
        return message.method
    assert isinstance(message, Response)
    return str(message.status)


def wire(network: CallNetwork, sender: Phone, receiver: Phone) -> list[str]:
    """What `sender` put on the wire to `receiver`, lost messages marked with a `~`."""
    return [
        ("~" if d.dropped else "") + label(d.message)
        for d in network.wire.sent(sender.node, receiver.node)
    ]


def ended(call_id: str, reason: CloseReason, status: int | None) -> CallClosed:
    return CallClosed(call_id=call_id, reason=reason, status=status)


def closed(phone: Phone) -> list[CallClosed]:
    return [e for e in phone.take_events() if isinstance(e, CallClosed)]


def established(network: CallNetwork, alice: Phone, bob: Phone) -> None:
    network.dial(alice, bob)
    bob.call.answer(network.now)
    network.pump()
    assert alice.call.state is CallState.ESTABLISHED
    assert bob.call.state is CallState.ESTABLISHED
    alice.take_events()
    bob.take_events()


def directions(network: CallNetwork, sender: Phone, receiver: Phone) -> list[str]:
    """The a= direction of every SDP body `sender` sent `receiver`, in order."""
    found = []
    for delivery in network.wire.sent(sender.node, receiver.node):
        if delivery.message.body and not delivery.dropped:
            description = parse_sdp(delivery.message.body)
            found.append(description.direction_of(description.media[0]).value)
    return found


def test_a_call_rings_is_answered_and_hung_up_by_the_caller() -> None:
    network, alice, bob = phones()
    network.dial(alice, bob)
    assert [type(e) for e in alice.take_events()] == [CallOutgoing]
    [incoming] = bob.take_events()
    assert isinstance(incoming, CallIncoming)
    assert incoming.remote.user == "alice"
    bob.call.ring(network.now)
    network.pump()
    assert alice.take_events() == [CallRinging(call_id="out")]
    assert alice.call.state is CallState.RINGING
    bob.call.answer(network.now)
    network.pump()
    [alice_up] = alice.take_events()
    [bob_up] = bob.take_events()
    assert isinstance(alice_up, CallEstablished) and isinstance(bob_up, CallEstablished)
    assert alice_up.media is not None and bob_up.media is not None
    assert (alice_up.media.remote_port, bob_up.media.remote_port) == (50000, 40000)
    assert alice_up.media.codec == bob_up.media.codec == "PCMU"
    assert wire(network, alice, bob) == ["INVITE", "ACK"]
    alice.call.hangup(network.now)
    network.pump()
    assert closed(alice) == [ended("out", CloseReason.LOCAL_HANGUP, None)]
    assert closed(bob) == [ended("in", CloseReason.REMOTE_HANGUP, None)]
    assert wire(network, bob, alice) == ["180", "200", "200"]


def test_caller_cancels_after_180() -> None:
    network, alice, bob = phones()
    network.dial(alice, bob)
    bob.call.ring(network.now)
    network.pump()
    alice.call.hangup(network.now)
    network.pump()
    network.run_until(100.0)
    assert closed(alice) == [ended("out", CloseReason.CANCELLED, 487)]
    assert closed(bob) == [ended("in", CloseReason.CANCELLED, None)]
    assert wire(network, alice, bob) == ["INVITE", "CANCEL", "ACK"]
    assert wire(network, bob, alice) == ["180", "200", "487"]


def test_hangup_before_any_provisional_waits_for_one_then_cancels() -> None:
    network, alice, bob = phones()
    network.wire.drop(bob.node, alice.node, 1)  # the 100 Trying is lost
    network.dial(alice, bob)
    alice.call.hangup(network.now)
    network.run_until(0.3)
    assert wire(network, alice, bob) == ["INVITE"]
    bob.call.ring(network.now)
    network.pump()
    assert wire(network, alice, bob) == ["INVITE", "CANCEL", "ACK"]
    assert closed(alice) == [ended("out", CloseReason.CANCELLED, 487)]


def test_a_200_crossing_the_cancel_is_acked_then_byed() -> None:
    network, alice, bob = phones()
    network.dial(alice, bob)
    bob.call.ring(network.now)
    network.pump()
    alice.call.hangup(network.now)  # CANCEL queued, not yet on the wire
    bob.call.answer(network.now)  # 200 queued: both cross
    network.pump()
    network.run_until(100.0)
    assert wire(network, alice, bob) == ["INVITE", "CANCEL", "ACK", "BYE"]
    assert wire(network, bob, alice) == ["180", "200", "200", "200"]
    assert closed(alice) == [ended("out", CloseReason.LOCAL_HANGUP, None)]
    assert closed(bob) == [ended("in", CloseReason.REMOTE_HANGUP, None)]


def test_lost_invites_and_a_lost_200_still_establish() -> None:
    network, alice, bob = phones()
    network.wire.drop(alice.node, bob.node, 1, 2)
    network.wire.drop(bob.node, alice.node, 1)
    network.dial(alice, bob)
    network.run_until(1.5)  # Timer A: 0, 0.5, 1.5
    assert wire(network, alice, bob) == ["~INVITE", "~INVITE", "INVITE"]
    bob.call.answer(network.now)
    network.run_until(10.0)
    assert wire(network, bob, alice) == ["~200", "200"]
    assert wire(network, alice, bob) == ["~INVITE", "~INVITE", "INVITE", "ACK"]
    assert alice.call.state is CallState.ESTABLISHED
    assert not closed(bob)


def test_a_lost_ack_is_sent_again_for_the_retransmitted_200() -> None:
    network, alice, bob = phones()
    network.wire.drop(alice.node, bob.node, 2)
    network.dial(alice, bob)
    bob.call.answer(network.now)
    network.run_until(100.0)
    assert wire(network, alice, bob) == ["INVITE", "~ACK", "ACK"]
    assert wire(network, bob, alice) == ["200", "200"]
    assert alice.call.state is bob.call.state is CallState.ESTABLISHED
    assert not closed(bob)


def test_an_unacked_200_ends_the_call_with_bye_after_timer_l() -> None:
    network, alice, bob = phones()
    network.wire.drop(alice.node, bob.node, *range(2, 20))
    network.dial(alice, bob)
    bob.call.answer(network.now)
    network.run_until(31.9)
    assert bob.call.state is CallState.ESTABLISHED
    network.run_until(32.0)
    assert bob.call.state in (CallState.TERMINATING,)  # a BYE is out
    network.run_until(100.0)
    assert closed(bob) == [ended("in", CloseReason.TIMEOUT, None)]


def test_an_unanswered_bye_closes_the_call_after_64_t1() -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    network.wire.drop(alice.node, bob.node, *range(3, 30))
    network.run_until(5.0)
    alice.call.hangup(network.now)
    network.run_until(5.0 + 64 * T1 - 0.01)
    assert alice.call.state is CallState.TERMINATING
    network.run_until(5.0 + 64 * T1)
    assert closed(alice) == [ended("out", CloseReason.LOCAL_HANGUP, None)]


def test_an_unanswered_invite_times_out_after_64_t1() -> None:
    network, alice, bob = phones()
    network.wire.drop(alice.node, bob.node, *range(1, 20))
    network.dial(alice, bob)
    network.run_until(64 * T1 - 0.01)
    assert alice.call.state is CallState.OUTGOING
    network.run_until(64 * T1)
    assert closed(alice) == [ended("out", CloseReason.TIMEOUT, None)]


def test_a_cancel_without_a_final_response_gives_up_after_64_t1() -> None:
    network, alice, bob = phones()
    network.dial(alice, bob)
    bob.call.ring(network.now)
    network.pump()
    network.wire.drop(alice.node, bob.node, *range(2, 30))
    alice.call.hangup(network.now)
    network.run_until(64 * T1 - 0.01)
    assert alice.call.state is CallState.TERMINATING
    network.run_until(64 * T1)
    assert closed(alice) == [ended("out", CloseReason.CANCELLED, None)]
    invite = alice.call.invite_key
    assert invite is not None and alice.node.transactions.state_of(invite) is None  # dropped


@pytest.mark.parametrize(
    ("status", "reason"),
    [(486, CloseReason.BUSY), (603, CloseReason.REJECTED), (404, CloseReason.REJECTED)],
)
def test_a_refusal_closes_the_call_with_its_status(status: int, reason: CloseReason) -> None:
    network, alice, bob = phones()
    network.dial(alice, bob)
    bob.call.reject(network.now, status)
    network.pump()
    assert closed(alice) == [CallClosed(call_id="out", reason=reason, status=status)]
    # The callee refused: for it the call was rejected, whatever the status says to the caller.
    assert closed(bob) == [CallClosed(call_id="in", reason=CloseReason.REJECTED, status=status)]
    assert wire(network, alice, bob) == ["INVITE", "ACK"]


def challenge_every_invite(network: CallNetwork, alice: Phone, bob: Phone) -> list[Request]:
    """Bob's node as a proxy that answers every INVITE with 407."""
    seen = []
    network.pump()
    for event in bob.node.take(RequestReceived):
        seen.append(event.request)
        response = Response.for_request(event.request, 407, to_tag="proxy")
        challenge = DigestChallenge(realm="example.org", nonce="abc")
        response.headers.add("Proxy-Authenticate", format_challenge(challenge))
        bob.node.transactions.respond(event.key, response, network.now)
    network.pump()
    return seen


def test_a_407_is_answered_once_with_credentials() -> None:
    network, alice, bob = phones()
    network.phones.remove(bob)  # bob's node plays a proxy, answered by hand
    network.dial(alice, bob, credentials=DigestClient("alice", "secret"))
    first = challenge_every_invite(network, alice, bob)
    second = challenge_every_invite(network, alice, bob)
    assert challenge_every_invite(network, alice, bob) == []
    assert [r.cseq.seq for r in first + second] == [1, 2]
    assert "Proxy-Authorization" not in first[0].headers
    assert "Proxy-Authorization" in second[0].headers
    assert second[0].call_id == first[0].call_id
    assert second[0].from_.tag == first[0].from_.tag
    assert second[0].top_via.branch != first[0].top_via.branch
    assert closed(alice) == [ended("out", CloseReason.REJECTED, 407)]


def test_hold_and_resume_by_the_caller() -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    alice.call.hold(network.now)
    network.pump()
    assert directions(network, alice, bob)[-1] == "sendonly"
    assert directions(network, bob, alice)[-1] == "recvonly"
    [held] = alice.take_events()
    assert held == CallHeld(call_id="out", by="local", media=alice.call.media)
    [bob_held] = bob.take_events()
    assert isinstance(bob_held, CallHeld) and bob_held.by == "remote"
    assert alice.call.local_hold and bob.call.remote_hold
    assert alice.call.media is not None and alice.call.media.direction is Direction.SENDONLY
    alice.call.resume(network.now)
    network.pump()
    assert directions(network, alice, bob)[-1] == "sendrecv"
    assert directions(network, bob, alice)[-1] == "sendrecv"
    assert [type(e) for e in alice.take_events()] == [CallResumed]
    assert [type(e) for e in bob.take_events()] == [CallResumed]
    assert not (alice.call.local_hold or bob.call.remote_hold)


def test_hold_by_both_sides_is_inactive_and_resumes_one_at_a_time() -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    bob.call.hold(network.now)
    network.pump()
    assert directions(network, bob, alice)[-1] == "sendonly"
    assert directions(network, alice, bob)[-1] == "recvonly"
    alice.call.hold(network.now)
    network.pump()
    assert directions(network, alice, bob)[-1] == "inactive"
    assert directions(network, bob, alice)[-1] == "inactive"
    assert alice.call.local_hold and alice.call.remote_hold
    assert bob.call.local_hold and bob.call.remote_hold
    bob.call.resume(network.now)
    network.pump()
    assert directions(network, bob, alice)[-1] == "sendrecv"
    assert directions(network, alice, bob)[-1] == "sendonly"
    assert alice.call.local_hold and not alice.call.remote_hold
    assert not bob.call.local_hold and bob.call.remote_hold
    alice_events = alice.take_events()
    assert [(type(e).__name__, getattr(e, "by", None)) for e in alice_events] == [
        ("CallHeld", "remote"),
        ("CallHeld", "local"),
        ("CallResumed", "remote"),
    ]


def test_each_sdp_version_counts_up_by_one() -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    alice.call.hold(network.now)
    network.pump()
    alice.call.resume(network.now)
    network.pump()
    versions = [
        parse_sdp(d.message.body).origin.session_version
        for d in network.wire.sent(bob.node, alice.node)
        if d.message.body
    ]
    assert versions == [1, 2, 3]


def test_crossing_reinvites_get_491_and_retry_on_disjoint_delays() -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    alice.call.hold(network.now)
    bob.call.hold(network.now)
    network.pump()
    assert "491" in wire(network, alice, bob) and "491" in wire(network, bob, alice)
    network.run_until(1.0)  # bob, the callee, retries first
    assert bob.call.local_hold and alice.call.remote_hold
    network.run_until(3.0)
    assert alice.call.local_hold and bob.call.remote_hold
    assert directions(network, alice, bob)[-1] == "inactive"


def in_dialog(
    network: CallNetwork, sender: Phone, receiver: Phone, method: str, **headers: str
) -> Response:
    """Send `method` in `sender`'s call dialog by hand; the final response it got."""
    dialog = sender.call.dialog
    assert dialog is not None
    body = headers.pop("body", "").encode()
    content_type = headers.pop("content_type", None)
    via = Via(
        transport="UDP",
        host=sender.host,
        port=5060,
        params=(("branch", f"z9hG4bK{sender.fresh()}"), ("rport", None)),
    )
    request = dialog.create_request(
        method,
        via=via,
        body=body,
        content_type=content_type,
        extra_headers=[(name.replace("_", "-"), value) for name, value in headers.items()],
    )
    layer = sender.node.transactions
    key = layer.send_request(request, receiver.target, network.now)
    network.pump()
    responses = [e for e in sender.node.take(ResponseReceived) if e.key == key]
    return responses[-1].response


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"), ("application/dtmf", "5")],
)
def test_info_dtmf_is_reported(content_type: str, body: str) -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    network.phones.remove(alice)  # alice's node takes its responses by hand
    response = in_dialog(network, alice, bob, "INFO", content_type=content_type, body=body)
    network.phones.insert(0, alice)
    network.pump()
    assert response.status == 200
    assert bob.take_events() == [DtmfReceived(call_id="in", digit="5")]


@pytest.mark.parametrize(("method", "status"), [("REFER", 501), ("FOO", 501), ("SUBSCRIBE", 405)])
def test_requests_a_call_does_not_serve_are_refused(method: str, status: int) -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    network.phones.remove(alice)
    response = in_dialog(network, alice, bob, method)
    assert response.status == status
    assert ("Allow" in response.headers) == (status == 405)


def test_a_session_refresh_echoes_session_expires() -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    network.phones.remove(alice)
    response = in_dialog(network, alice, bob, "UPDATE", Session_Expires="1800;refresher=uac")
    assert response.status == 200
    assert response.headers.get("Session-Expires") == "1800;refresher=uac"
    assert response.headers.get("Require") == "timer"
    assert not response.body
    assert in_dialog(network, alice, bob, "UPDATE", Session_Expires="30").status == 422


def test_an_invite_requiring_100rel_gets_420_and_never_rings() -> None:
    network, alice, bob = phones()
    network.phones.remove(alice)
    invite = make_request(
        "INVITE",
        sent_by="192.0.2.1:5060",
        extra=[("Require", "100rel"), ("Contact", "<sip:alice@192.0.2.1>")],
    )
    alice.node.transactions.send_request(invite, bob.target, network.now)
    network.pump()
    assert bob.call.state is CallState.CLOSED
    assert bob.take_events() == []
    [answer] = [d.message for d in network.wire.sent(bob.node, alice.node)]
    assert isinstance(answer, Response) and answer.status == 420
    assert answer.headers.get("Unsupported") == "100rel"


def test_an_offer_without_a_common_codec_gets_488() -> None:
    network, alice, bob = phones()
    offer = alice.offer()
    body = (
        bytes(offer)
        .replace(b"RTP/AVP 0 8 101", b"RTP/AVP 9")
        .replace(b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", b"a=rtpmap:9 G722/8000\r\n")
    )
    assert b"G722" in body
    network.phones.remove(alice)
    invite = make_request(
        "INVITE",
        extra=[("Contact", "<sip:alice@192.0.2.1>"), ("Content-Type", "application/sdp")],
    )
    invite = Request("INVITE", invite.uri, invite.headers, body)
    alice.node.transactions.send_request(invite, bob.target, network.now)
    network.pump()
    assert bob.call.state is CallState.CLOSED and bob.take_events() == []
    [answer] = [d.message for d in network.wire.sent(bob.node, alice.node)]
    assert isinstance(answer, Response) and answer.status == 488


def test_early_media_from_a_183_with_sdp() -> None:
    network, alice, bob = phones()
    network.phones.remove(bob)  # bob's phone answers by hand with a 183 and its SDP
    network.dial(alice, bob)
    [received] = bob.node.take(RequestReceived)
    answer = answer_offer(
        parse_sdp(received.request.body),
        address=bob.host,
        rtp_port=50000,
        session_id=7,
        session_version=1,
    )
    progress = Response(
        183,
        None,
        [
            *Response.for_request(received.request, 183, to_tag="bob").headers,
            ("Contact", "<sip:bob@192.0.2.2>"),
            ("Content-Type", "application/sdp"),
        ],
        bytes(answer.description),
    )
    bob.node.transactions.respond(received.key, progress, network.now)
    network.pump()
    [outgoing, early] = alice.take_events()
    assert isinstance(outgoing, CallOutgoing)
    assert early == CallProgress(call_id="out", media=answer_for_caller(alice, answer.description))
    assert alice.call.state is CallState.EARLY


def answer_for_caller(alice: Phone, answer: SessionDescription) -> MediaSession:
    return process_answer(alice.offer(), answer)


def test_the_callee_hangs_up() -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    bob.call.hangup(network.now)
    network.pump()
    assert closed(bob) == [ended("in", CloseReason.LOCAL_HANGUP, None)]
    assert closed(alice) == [ended("out", CloseReason.REMOTE_HANGUP, None)]
    assert wire(network, bob, alice) == ["200", "BYE"]


def test_a_hangup_by_the_callee_before_the_ack_waits_for_it() -> None:
    network, alice, bob = phones()
    network.wire.drop(alice.node, bob.node, 2)  # the ACK
    network.dial(alice, bob)
    bob.call.answer(network.now)
    bob.call.hangup(network.now)
    network.pump()
    assert wire(network, bob, alice) == ["200"]
    network.run_until(T1)
    assert wire(network, bob, alice) == ["200", "200", "BYE"]
    assert closed(alice) == [ended("out", CloseReason.REMOTE_HANGUP, None)]


def test_an_info_with_another_body_gets_415() -> None:
    network, alice, bob = phones()
    established(network, alice, bob)
    network.phones.remove(alice)
    response = in_dialog(network, alice, bob, "INFO", content_type="text/plain", body="hi")
    assert response.status == 415
    assert bob.take_events() == []
