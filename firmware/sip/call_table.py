"""Every call of the UA and the routing between them and the transaction layer.

The core hands it what concerns calls — new INVITEs, CANCELs, in-dialog requests, ACKs,
responses and failures of call transactions — and it finds the call each belongs to: by
transaction key, by dialog id, or (for a CANCEL) by the INVITE transaction it cancels. An
in-dialog request that matches no call gets 481, as §12.2.2 requires. Events come out with
the call they concern, so the core can name its account, remote and display.
"""

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from firmware.sip.auth import DigestClient
from firmware.sip.call import Call, CallEvent, CallState
from firmware.sip.dialog import DialogId
from firmware.sip.message import Request, Response
from firmware.sip.sdp import build_offer
from firmware.sip.timers import TimerConfig
from firmware.sip.transaction import (
    AckReceived,
    RequestReceived,
    TransactionKey,
    TransactionLayer,
)
from firmware.sip.transport_types import Target
from firmware.sip.uri import NameAddr, Uri

IN_DIALOG_METHODS = frozenset({"BYE", "UPDATE", "INFO", "REFER", "PRACK", "INVITE"})


@dataclass(frozen=True, kw_only=True)
class Incoming:
    """Where an incoming INVITE arrived: which account (if any) and our Contact for it."""

    account: str | None
    contact: Uri
    auto_answer: bool


class CallTable:
    def __init__(
        self,
        *,
        timers: TimerConfig,
        user_agent: str,
        new_token: Callable[[], str],
        rtp_ports: Iterator[int],
        max_calls: int,
        reject_status: int,
    ) -> None:
        self._timers = timers
        self._user_agent = user_agent
        self._new_token = new_token
        self._rtp_ports = rtp_ports
        self.max_calls = max_calls
        self.reject_status = reject_status
        self.calls: dict[str, Call] = {}
        self._keys: dict[TransactionKey, Call] = {}
        self._events: deque[tuple[Call, CallEvent]] = deque()
        self._serial = 0

    # -- commands ------------------------------------------------------------------------
    def _new_id(self) -> str:
        self._serial += 1
        return f"c{self._serial}"

    def live(self) -> list[Call]:
        return [call for call in self.calls.values() if call.state is not CallState.CLOSED]

    def dial(
        self,
        now: float,
        *,
        remote: Uri,
        sender: NameAddr,
        contact: Uri,
        local_address: str,
        target: Target,
        route: Uri | None,
        credentials: DigestClient | None,
        account: str | None,
    ) -> Call:
        call_id = self._new_id()
        offer = build_offer(
            address=local_address,
            rtp_port=next(self._rtp_ports),
            session_id=int(now * 1000) % 2**31,
            session_version=1,
        )
        call = Call.outgoing(
            call_id,
            request_uri=remote,
            from_=sender.with_tag(self._new_token()),
            to=NameAddr(uri=remote.without_headers()),
            contact=contact,
            call_id=self._new_token(),
            local_sdp_offer=offer,
            target=target,
            route=route,
            new_branch=self._branch,
            new_cnonce=self._new_token,
            credentials=credentials,
            user_agent=self._user_agent,
            timers=self._timers,
            account=account,
        )
        self.calls[call_id] = call
        return call

    def find(self, call_id: str | None) -> Call:
        """The named call, or the only live one; KeyError or LookupError('ambiguous')."""
        if call_id is not None:
            call = self.calls.get(call_id)
            if call is None or call.state is CallState.CLOSED:
                raise KeyError(f"no call {call_id}")
            return call
        live = self.live()
        if not live:
            raise KeyError("no call")
        if len(live) > 1:
            raise LookupError("ambiguous")
        return live[0]

    # -- from the transaction layer ------------------------------------------------------
    def on_request(
        self,
        event: RequestReceived,
        layer: TransactionLayer,
        now: float,
        where: Callable[[Request], Incoming],
        local_address: str,
    ) -> bool:
        """Take a request that concerns calls; False when it is none of theirs."""
        request = event.request
        if request.method == "INVITE" and not request.to.tag:
            self._incoming(event, layer, now, where(request), local_address)
            return True
        if request.method == "CANCEL":
            invite = layer.matching_invite(request)
            owner = next(
                (c for c in self.calls.values() if invite is not None and c.invite_key == invite),
                None,
            )
        elif request.to.tag and request.method in IN_DIALOG_METHODS | {"MESSAGE"}:
            owner = self._in_dialog(request)
            if owner is None and request.method == "MESSAGE":
                return False  # an in-dialog MESSAGE for no call: the pager answers it
        else:
            return False
        if owner is None:
            layer.respond(event.key, Response.for_request(request, 481), now)
            return True
        self._keys[event.key] = owner
        owner.handle_request(event.key, request, now)
        return True

    def _incoming(
        self,
        event: RequestReceived,
        layer: TransactionLayer,
        now: float,
        incoming: Incoming,
        local_address: str,
    ) -> None:
        if len(self.live()) >= self.max_calls:
            response = Response.for_request(event.request, 486, to_tag=self._new_token())
            layer.respond(event.key, response, now)
            return
        call = Call.incoming(
            self._new_id(),
            request=event.request,
            server_key=event.key,
            contact=incoming.contact,
            transport=event.transport,
            local_address=local_address,
            rtp_port=next(self._rtp_ports),
            session_id=int(now * 1000) % 2**31,
            new_tag=self._new_token,
            new_branch=self._branch,
            new_cnonce=self._new_token,
            user_agent=self._user_agent,
            timers=self._timers,
            account=incoming.account,
        )
        self.calls[call.id] = call
        self._keys[event.key] = call
        if call.state is CallState.CLOSED:
            return  # refused at once (420, 422, 488, 400): nothing to announce
        if incoming.auto_answer:
            call.answer(now)
        else:
            call.ring(now)

    def on_ack(self, event: AckReceived, now: float) -> None:
        call = self._in_dialog(event.request)
        if call is not None:
            call.handle_request(event.key, event.request, now)

    def owns(self, key: TransactionKey) -> bool:
        return key in self._keys

    def on_response(self, key: TransactionKey, response: Response, now: float) -> None:
        self._keys[key].handle_response(key, response, now)

    def on_failure(self, key: TransactionKey, request: Request, reason: str, now: float) -> None:
        self._keys[key].handle_failure(key, now, reason, request=request)

    # -- moving things -------------------------------------------------------------------
    def flush(self, layer: TransactionLayer, now: float) -> bool:
        moved = False
        for call in list(self.calls.values()):
            finished = call.state is CallState.CLOSED and call.get_timer() is None
            for ack, target in call.take_acks():  # before requests: a BYE follows its ACK
                layer.send_ack(ack, target)
                moved = True
            for request, target in call.take_requests():
                self._keys[layer.send_request(request, target, now)] = call
                moved = True
            for key, response in call.take_responses():
                layer.respond(key, response, now)
                moved = True
            for key in call.take_terminations():
                layer.terminate(key)
            while (event := call.next_event()) is not None:
                self._events.append((call, event))
                moved = True
                finished = False
            if finished:  # closed, announced in an earlier round, nothing left to send
                self._forget(call)
        return moved

    def _forget(self, call: Call) -> None:
        del self.calls[call.id]
        self._keys = {key: owner for key, owner in self._keys.items() if owner is not call}

    def next_event(self) -> tuple[Call, CallEvent] | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [d for c in self.calls.values() if (d := c.get_timer()) is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        for call in list(self.calls.values()):
            deadline = call.get_timer()
            if deadline is not None and deadline <= now:
                call.handle_timer(now)

    def _in_dialog(self, request: Request) -> Call | None:
        wanted = DialogId.of_request(request)
        return next((c for c in self.calls.values() if c.dialog_id == wanted), None)

    def _branch(self) -> str:
        return "z9hG4bK" + self._new_token()
