"""Calls paired in memory: each phone is a transaction layer on the lossy wire of `pairing`
plus a minimal UA core that moves messages between the layer and its `Call`s the way the real
core is meant to (requests by transaction key, in-dialog requests by dialog id, CANCEL by the
INVITE it matches), and a clock that also fires the calls' own timers.
"""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from firmware.sip.auth import DigestClient
from firmware.sip.call import Call, CallEvent
from firmware.sip.dialog import DialogId
from firmware.sip.message import Request, Response
from firmware.sip.sdp import SessionDescription, build_offer
from firmware.sip.timers import TimerConfig
from firmware.sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTimeout,
    TransportFailed,
)
from firmware.sip.transport_types import Target
from firmware.sip.uri import NameAddr, Uri, parse_name_addr
from tests.sip.pairing import Network, Node


@dataclass(eq=False)
class Phone:
    name: str
    node: Node
    rtp_port: int
    calls: list[Call] = field(default_factory=list)
    events: list[CallEvent] = field(default_factory=list)
    keys: dict[TransactionKey, Call] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def host(self) -> str:
        return self.node.address.host

    @property
    def contact(self) -> Uri:
        return Uri(scheme="sip", user=self.name, host=self.host, port=self.node.address.port)

    @property
    def target(self) -> Target:
        return Target("udp", self.host, self.node.address.port)

    def fresh(self) -> str:
        return f"{self.name}{next(self.counter)}"

    @property
    def call(self) -> Call:
        [call] = self.calls
        return call

    def take_events(self) -> list[CallEvent]:
        events, self.events = self.events, []
        return events

    def offer(self) -> SessionDescription:
        return build_offer(
            address=self.host, rtp_port=self.rtp_port, session_id=1000, session_version=1
        )


class CallNetwork:
    """Two or more phones on one wire and one hand clock."""

    def __init__(self, config: TimerConfig | None = None) -> None:
        self.config = config or TimerConfig()
        self.wire = Network(self.config)
        self.phones: list[Phone] = []

    @property
    def now(self) -> float:
        return self.wire.now

    def add(self, name: str, host: str, rtp_port: int) -> Phone:
        phone = Phone(name, self.wire.add(name, host), rtp_port)
        self.phones.append(phone)
        return phone

    def dial(self, caller: Phone, callee: Phone, credentials: DigestClient | None = None) -> Call:
        to = NameAddr(uri=Uri(scheme="sip", user=callee.name, host=callee.host))
        call = Call.outgoing(
            "out",
            request_uri=to.uri,
            from_=parse_name_addr(f"<sip:{caller.name}@{caller.host}>;tag={caller.fresh()}"),
            to=to,
            contact=caller.contact,
            call_id=f"{caller.fresh()}@{caller.host}",
            local_sdp_offer=caller.offer(),
            target=callee.target,
            new_branch=caller.fresh,
            new_cnonce=caller.fresh,
            user_agent="test",
            timers=self.config,
            credentials=credentials,
        )
        caller.calls.append(call)
        self.pump()
        return call

    # -- moving messages ---------------------------------------------------------------------
    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for phone in self.phones:
                moved |= self._flush(phone)
            self.wire.pump()
            for phone in self.phones:
                for event in phone.node.events:
                    moved = True
                    self._dispatch(phone, event)
                phone.node.events = []

    def run_until(self, when: float) -> None:
        """Fire every deadline of layers and calls up to `when`, then stop the clock there."""
        self.pump()
        while (deadline := self._next_deadline()) is not None and deadline <= when:
            self.wire.now = max(self.wire.now, deadline)
            for phone in self.phones:
                phone.node.transactions.handle_timer(self.now)
                for call in phone.calls:
                    timer = call.get_timer()
                    if timer is not None and timer <= self.now:
                        call.handle_timer(self.now)
            self.pump()
        self.wire.now = max(self.wire.now, when)

    def _next_deadline(self) -> float | None:
        deadlines = [self.wire.next_deadline()]
        deadlines += [call.get_timer() for phone in self.phones for call in phone.calls]
        return min((d for d in deadlines if d is not None), default=None)

    def _flush(self, phone: Phone) -> bool:
        layer = phone.node.transactions
        moved = False
        for call in phone.calls:
            for ack, target in call.take_acks():
                layer.send_ack(ack, target)
                moved = True
            for request, target in call.take_requests():
                phone.keys[layer.send_request(request, target, self.now)] = call
                moved = True
            for key, response in call.take_responses():
                layer.respond(key, response, self.now)
                moved = True
            for key in call.take_terminations():
                layer.terminate(key)
            while (event := call.next_event()) is not None:
                phone.events.append(event)
                moved = True
        return moved

    def _dispatch(self, phone: Phone, event: object) -> None:
        if isinstance(event, ResponseReceived):
            owner = phone.keys.get(event.key)
            if owner is not None:
                owner.handle_response(event.key, event.response, self.now)
        elif isinstance(event, TransactionTimeout | TransportFailed):
            owner = phone.keys.get(event.key)
            if owner is not None:
                reason = "timeout" if isinstance(event, TransactionTimeout) else "transport"
                owner.handle_failure(event.key, self.now, reason, request=event.request)
        elif isinstance(event, AckReceived):
            call = self._in_dialog(phone, event.request)
            if call is not None:
                call.handle_request(event.key, event.request, self.now)
        elif isinstance(event, RequestReceived):
            self._on_request(phone, event)

    def _on_request(self, phone: Phone, event: RequestReceived) -> None:
        request = event.request
        if request.method == "INVITE" and not request.to.tag:
            call = Call.incoming(
                "in",
                request=request,
                server_key=event.key,
                contact=phone.contact,
                transport=event.transport,
                local_address=phone.host,
                rtp_port=phone.rtp_port,
                session_id=2000,
                new_tag=phone.fresh,
                new_branch=phone.fresh,
                new_cnonce=phone.fresh,
                user_agent="test",
                timers=self.config,
            )
            phone.keys[event.key] = call
            phone.calls.append(call)
            return
        if request.method == "CANCEL":
            invite = phone.node.transactions.matching_invite(request)
            owner = None
            if invite is not None:
                owner = next((c for c in phone.calls if c.invite_key == invite), None)
        else:
            owner = self._in_dialog(phone, request)
        if owner is None:
            response = Response.for_request(request, 481)
            phone.node.transactions.respond(event.key, response, self.now)
            return
        phone.keys[event.key] = owner
        owner.handle_request(event.key, request, self.now)

    @staticmethod
    def _in_dialog(phone: Phone, request: Request) -> Call | None:
        wanted = DialogId.of_request(request)
        return next((c for c in phone.calls if c.dialog_id == wanted), None)
