"""The INVITE session usage (RFC 3261 §13–15, RFC 3264 offer/answer): one call, pure.

Shaped like the registration usage: the call owns no transaction. The UA core sends what
`take_requests()` returns as client transactions, the ACKs of `take_acks()` with `send_ack`,
the responses of `take_responses()` on their server transactions, drops the transactions of
`take_terminations()`, and hands back every outcome: `handle_response(key, …)` for each
response to a request this call produced, `handle_request(key, …)` for each request in the
call (an ACK from `AckReceived`, with its key or None), `handle_failure(key, …)` for a
transaction that timed out or could not be delivered. The core sends the ACKs before the
requests: the BYE that ends a 2xx crossing our CANCEL must follow that 2xx's ACK.
`get_timer()`/`handle_timer(now)` run the usage's own clocks: the 64·T1 a CANCEL waits for
the INVITE's final response, and the delay before retrying a re-INVITE refused with 491.

Rules a phone must get right and that live here:
- a CANCEL goes out only after a provisional response (§9.1); a hangup before one is kept
  and carried out when one comes, and a 2xx that crosses the CANCEL is ACKed and then BYEd;
- every 2xx to our INVITE, retransmitted or forked, is ACKed (§13.2.2.4); a forked second
  dialog is ended at once with a BYE;
- the callee sends BYE only once its 2xx is ACKed or Timer L gave up (§15);
- glare (§14.1): a re-INVITE crossing ours is refused with 491; ours, refused so, is retried
  after a delay from disjoint ranges for the two sides (3 s by the Call-ID's owner, 1 s by
  the other), which breaks the tie without randomness;
- REFER is answered 501: the phone implements no transfer, and says so rather than Decline.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from firmware.sip.auth import AuthError, ChallengeVerdict, DigestClient, auth_header_names
from firmware.sip.call_messages import (
    ALLOW,
    DTMF_TYPES,
    KNOWN_METHODS,
    MIN_SESSION_EXPIRES,
    SDP,
    SUPPORTED,
    add_session_timer,
    build_invite,
    dtmf_digit,
    has_sdp,
    session_expires,
    unsupported_extensions,
    via_for,
)
from firmware.sip.call_types import (
    CallClosed,
    CallEstablished,
    CallEvent,
    CallHeld,
    CallIncoming,
    CallOutgoing,
    CallProgress,
    CallResumed,
    CallRinging,
    CallState,
    CloseReason,
    DtmfReceived,
    Side,
)
from firmware.sip.dialog import Dialog, DialogId, RemoteProtocolError
from firmware.sip.errors import ParseError
from firmware.sip.headers import Via
from firmware.sip.message import Request, Response
from firmware.sip.registration_messages import first_hop, with_cookie
from firmware.sip.sdp import (
    Direction,
    MediaSession,
    SdpError,
    SessionDescription,
    answer_offer,
    build_offer,
    next_version,
    parse_sdp,
    process_answer,
)
from firmware.sip.timers import TimerConfig
from firmware.sip.transaction import LocalProtocolError, TransactionKey, build_cancel
from firmware.sip.transport_types import Target
from firmware.sip.uri import NameAddr, Uri

__all__ = [
    "Call",
    "CallClosed",
    "CallEstablished",
    "CallEvent",
    "CallHeld",
    "CallIncoming",
    "CallOutgoing",
    "CallProgress",
    "CallResumed",
    "CallRinging",
    "CallState",
    "CloseReason",
    "DtmfReceived",
]

GLARE_RETRY_OWNER = 3.0
"""Seconds the Call-ID's owner (the caller) waits to retry a re-INVITE refused with 491
(§14.1 range 2.1–4 s)."""
GLARE_RETRY_OTHER = 1.0
"""Seconds the callee waits (§14.1 range 0–2 s)."""


class _Purpose(StrEnum):
    INVITE = "invite"
    REINVITE = "reinvite"
    CANCEL = "cancel"
    BYE = "bye"
    FORK_BYE = "fork-bye"


@dataclass(eq=False)
class _Sent:
    """A request of ours still waiting for its final response."""

    request: Request
    target: Target
    purpose: _Purpose
    offer: SessionDescription | None = None
    authenticated: bool = False


@dataclass(eq=False)
class _Served:
    """A request of the peer's we have not given a final response yet."""

    key: TransactionKey
    request: Request


@dataclass(eq=False)
class _Outbox:
    requests: list[tuple[Request, Target]] = field(default_factory=list)
    acks: list[tuple[Request, Target]] = field(default_factory=list)
    responses: list[tuple[TransactionKey, Response]] = field(default_factory=list)
    terminations: list[TransactionKey] = field(default_factory=list)


def _close_reason(status: int) -> CloseReason:
    return CloseReason.BUSY if status in (486, 600) else CloseReason.REJECTED


class Call:
    """One INVITE session. Build it with `Call.outgoing` or `Call.incoming`."""

    def __init__(
        self,
        id: str,
        *,
        direction: str,
        remote: Uri,
        display: str | None,
        account: str | None,
        contact: Uri,
        transport: str,
        new_branch: Callable[[], str],
        new_cnonce: Callable[[], str],
        credentials: DigestClient | None,
        user_agent: str,
        timers: TimerConfig,
    ) -> None:
        """Use `outgoing` or `incoming`; this only sets what both share."""
        self.id = id
        self.direction = direction
        self.state = CallState.OUTGOING
        self.remote = remote
        self.display = display
        self.account = account
        self.media: MediaSession | None = None
        self.local_hold = False
        self.remote_hold = False
        self.dialog: Dialog | None = None
        self._contact = contact
        self._transport = transport
        self._new_branch = new_branch
        self._new_cnonce = new_cnonce
        self._credentials = credentials
        self._user_agent = user_agent
        self._timers = timers
        self._local_sdp: SessionDescription | None = None
        self._sent: dict[tuple[int, str], _Sent] = {}
        self._acks: dict[tuple[str, int], Request] = {}
        self._ack_targets: dict[tuple[str, int], Target] = {}
        self._accepted = False
        self._invite: _Sent | None = None
        self._invite_key: TransactionKey | None = None
        self._served_invite: _Served | None = None
        self._awaiting_ack = False
        self._offer_in_2xx: SessionDescription | None = None
        self._provisional_seen = False
        self._hangup_wanted: CloseReason | None = None
        self._cancel_deadline: float | None = None
        self._closing: tuple[CloseReason, int | None] | None = None
        self._want_hold = False
        self._glare_retry_at: float | None = None
        self._local_tag = ""
        self._out = _Outbox()
        self._events: deque[CallEvent] = deque()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def outgoing(
        cls,
        id: str,
        *,
        request_uri: Uri,
        from_: NameAddr,
        to: NameAddr,
        contact: Uri,
        call_id: str,
        local_sdp_offer: SessionDescription,
        target: Target,
        route: Uri | None = None,
        new_branch: Callable[[], str],
        new_cnonce: Callable[[], str],
        credentials: DigestClient | None,
        user_agent: str,
        timers: TimerConfig,
        account: str | None = None,
    ) -> "Call":
        """A call we place; the INVITE comes out of `take_requests()`. `from_` carries our
        tag; `route` is the outbound proxy the INVITE is loose-routed through."""
        if not from_.tag:
            raise LocalProtocolError("the From of an INVITE needs our tag")
        call = cls(
            id,
            direction="outgoing",
            remote=to.uri,
            display=to.display_name,
            account=account,
            contact=contact,
            transport=target.transport,
            new_branch=new_branch,
            new_cnonce=new_cnonce,
            credentials=credentials,
            user_agent=user_agent,
            timers=timers,
        )
        call._local_tag = from_.tag
        call._local_sdp = local_sdp_offer
        request = build_invite(
            request_uri=request_uri,
            via=call._via(target),
            route=route,
            from_=from_,
            to=to,
            call_id=call_id,
            cseq=1,
            contact=contact,
            user_agent=user_agent,
            offer=bytes(local_sdp_offer),
            credentials=(),
        )
        call._invite = call._send(request, target, _Purpose.INVITE, offer=local_sdp_offer)
        call._events.append(
            CallOutgoing(call_id=id, remote=call.remote, display=call.display, account=account)
        )
        return call

    @classmethod
    def incoming(
        cls,
        id: str,
        *,
        request: Request,
        server_key: TransactionKey,
        contact: Uri,
        transport: str,
        local_address: str,
        rtp_port: int,
        session_id: int,
        new_tag: Callable[[], str],
        new_branch: Callable[[], str],
        new_cnonce: Callable[[], str],
        credentials: DigestClient | None = None,
        user_agent: str,
        timers: TimerConfig,
        account: str | None = None,
    ) -> "Call":
        """A call offered to us by `request`, whose INVITE server transaction is
        `server_key` (the transaction layer sends 100 Trying itself). The caller is told
        (CallIncoming) only if the call can be answered: an INVITE requiring an extension
        we lack gets 420, an offer we cannot accept 488, a broken one 400, and the call is
        CLOSED at once without any event."""
        call = cls(
            id,
            direction="incoming",
            remote=request.from_.uri,
            display=request.from_.display_name,
            account=account,
            contact=contact,
            transport=transport,
            new_branch=new_branch,
            new_cnonce=new_cnonce,
            credentials=credentials,
            user_agent=user_agent,
            timers=timers,
        )
        call.state = CallState.RINGING
        call._local_tag = new_tag()
        call._served_invite = _Served(server_key, request)
        refusal = call._refusal(request)
        if refusal is None:
            refusal = call._prepare_answer(request, local_address, rtp_port, session_id)
        if refusal is not None:
            status, extra = refusal
            call._respond_invite(status, extra=extra)
            call.state = CallState.CLOSED
            return call
        call._events.append(
            CallIncoming(call_id=id, remote=call.remote, display=call.display, account=account)
        )
        return call

    def _prepare_answer(
        self, request: Request, address: str, rtp_port: int, session_id: int
    ) -> tuple[int, list[tuple[str, str]]] | None:
        """Settle our SDP now, so a call we could not answer never rings: the answer to the
        INVITE's offer, or our own offer for an INVITE without one (answered in the ACK)."""
        if not has_sdp(request):
            self._offer_in_2xx = build_offer(
                address=address, rtp_port=rtp_port, session_id=session_id, session_version=1
            )
            self._local_sdp = self._offer_in_2xx
            return None
        try:
            answer = answer_offer(
                parse_sdp(request.body),
                address=address,
                rtp_port=rtp_port,
                session_id=session_id,
                session_version=1,
            )
        except SdpError as error:
            return error.status, [("Accept", SDP)] if error.status == 488 else []
        self._local_sdp = answer.description
        self.media = answer.media
        self.remote_hold = answer.media.remote_hold
        return None

    # -- what the core reads -----------------------------------------------------------------
    @property
    def sip_call_id(self) -> str:
        if self._invite is not None:
            return self._invite.request.call_id
        assert self._served_invite is not None
        return self._served_invite.request.call_id

    @property
    def dialog_id(self) -> DialogId | None:
        return None if self.dialog is None else self.dialog.id

    @property
    def invite_key(self) -> TransactionKey | None:
        """The INVITE server transaction of an incoming call (a CANCEL the layer matches to
        it belongs to this call), or the INVITE client transaction once it answered."""
        if self._served_invite is not None:
            return self._served_invite.key
        return self._invite_key

    def take_requests(self) -> list[tuple[Request, Target]]:
        requests, self._out.requests = self._out.requests, []
        return requests

    def take_acks(self) -> list[tuple[Request, Target]]:
        acks, self._out.acks = self._out.acks, []
        return acks

    def take_responses(self) -> list[tuple[TransactionKey, Response]]:
        responses, self._out.responses = self._out.responses, []
        return responses

    def take_terminations(self) -> list[TransactionKey]:
        """Client transactions to drop without a word (an INVITE whose CANCEL went
        unanswered for 64·T1, §9.1)."""
        keys, self._out.terminations = self._out.terminations, []
        return keys

    def next_event(self) -> CallEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [d for d in (self._cancel_deadline, self._glare_retry_at) if d is not None]
        return min(deadlines, default=None)

    # -- commands ------------------------------------------------------------------------------
    def ring(self, now: float) -> None:
        """Tell the caller we alert the user: 180 Ringing."""
        if self._unanswered_invite() is None:
            raise LocalProtocolError(f"call {self.id} has no INVITE to ring for")
        self._respond_invite(180)

    def answer(self, now: float) -> None:
        """Accept an incoming call: 200 with our SDP answer (or offer)."""
        if self._unanswered_invite() is None:
            raise LocalProtocolError(f"call {self.id} has no INVITE to answer")
        self._respond_invite(200, body=self._local_sdp)
        self._awaiting_ack = True
        self.state = CallState.ESTABLISHED
        self._events.append(CallEstablished(call_id=self.id, media=self.media))

    def reject(self, now: float, status: int = 486) -> None:
        """Refuse an incoming call with a 4xx-6xx."""
        if not 400 <= status <= 699:
            raise LocalProtocolError(f"a rejection needs a 4xx-6xx status, not {status}")
        if self._unanswered_invite() is None:
            raise LocalProtocolError(f"call {self.id} has no INVITE to reject")
        self._respond_invite(status)
        self._close(CloseReason.REJECTED, status)  # busy or not, it was our refusal

    def hangup(self, now: float, reason: CloseReason = CloseReason.LOCAL_HANGUP) -> None:
        """End the call as its state requires: reject while it rings here, CANCEL ours
        before a final response (once a provisional came), BYE once established.
        `reason` lets the core report e.g. rtp_timeout."""
        if self.state in (CallState.CLOSED, CallState.TERMINATING) or self._hangup_wanted:
            return
        if self.direction == "incoming" and self._unanswered_invite() is not None:
            self._respond_invite(603)
            self._close(CloseReason.REJECTED, 603)
            return
        if self.direction == "outgoing" and self.state is not CallState.ESTABLISHED:
            self._hangup_wanted = CloseReason.CANCELLED
            if self._provisional_seen:
                self._send_cancel(now)
            return
        self._hangup_wanted = reason
        if not self._awaiting_ack:
            self._send_bye(reason, None)

    def hold(self, now: float) -> None:
        """Put the peer on hold: a re-INVITE offering sendonly (inactive if the peer holds us
        too). Repeated or crossing holds and resumes settle on the last one asked for."""
        self._want_hold = True
        self._sync_hold()

    def resume(self, now: float) -> None:
        """Take the peer off hold: a re-INVITE offering sendrecv."""
        self._want_hold = False
        self._sync_hold()

    # -- what the core tells us ----------------------------------------------------------------
    def handle_response(self, key: TransactionKey, response: Response, now: float) -> None:
        """A response to a request of this call (the core routes by transaction key)."""
        try:
            seq, method = response.cseq.seq, response.cseq.method
        except ParseError:
            return
        if method == "INVITE" and 200 <= response.status < 300 and self._repeated_2xx(response):
            return
        sent = self._sent.get((seq, method))
        if sent is None:
            return
        if response.status >= 200 and sent.purpose is not _Purpose.INVITE:
            del self._sent[(response.cseq.seq, response.cseq.method)]
        match sent.purpose:
            case _Purpose.INVITE:
                self._invite_key = key
                self._on_invite_response(sent, response, now)
            case _Purpose.REINVITE:
                self._on_reinvite_response(sent, response, now)
            case _Purpose.BYE:
                if response.status >= 200 and not self._retried_with_credentials(sent, response):
                    self._finish_bye()
            case _Purpose.CANCEL | _Purpose.FORK_BYE:
                pass

    def handle_request(self, key: TransactionKey | None, request: Request, now: float) -> None:
        """A request in this call: the ACK of our 2xx (key may be None), CANCEL of the INVITE,
        BYE, re-INVITE, UPDATE, INFO, or anything else (refused)."""
        if request.method == "ACK":
            self._on_ack(request)
            return
        if key is None:
            return
        if request.method == "CANCEL":
            self._on_cancel(key, request)
            return
        extensions = unsupported_extensions(request)
        if extensions:
            self._respond(key, request, 420, extra=[("Unsupported", ", ".join(extensions))])
            return
        if self.dialog is not None:
            try:
                self.dialog.receive_request(request)
            except RemoteProtocolError as error:
                self._respond(key, request, error.status)
                return
        match request.method:
            case "BYE":
                self._on_bye(key, request)
            case "INVITE" | "UPDATE":
                self._on_offer_request(key, request)
            case "INFO":
                self._on_info(key, request)
            case "REFER":
                self._respond(key, request, 501)
            case method if method in KNOWN_METHODS:
                self._respond(key, request, 405, extra=[("Allow", ", ".join(ALLOW))])
            case _:
                self._respond(key, request, 501)

    def handle_failure(
        self, key: TransactionKey, now: float, reason: str, *, request: Request
    ) -> None:
        """A transaction of this call timed out (`reason` "timeout") or could not be
        delivered ("transport"); `request` is the one it carried."""
        if key.is_server:
            if request.method == "INVITE" and self._awaiting_ack:
                self._awaiting_ack = False  # Timer L: our 2xx was never ACKed (§13.3.1.4)
                self._send_bye(self._hangup_wanted or CloseReason.TIMEOUT, None)
            return
        sent = self._sent.pop((request.cseq.seq, request.cseq.method), None)
        if sent is None:
            return
        match sent.purpose:
            case _Purpose.INVITE:
                self._cancel_deadline = None
                self._close(self._hangup_wanted or CloseReason.TIMEOUT, None)
            case _Purpose.REINVITE:
                self._send_bye(CloseReason.TIMEOUT, None)
            case _Purpose.BYE:
                self._finish_bye()
            case _Purpose.CANCEL | _Purpose.FORK_BYE:
                pass

    def handle_timer(self, now: float) -> None:
        if self._cancel_deadline is not None and now >= self._cancel_deadline:
            self._cancel_deadline = None
            if self._invite_key is not None:
                self._out.terminations.append(self._invite_key)
            self._close(CloseReason.CANCELLED, None)
        if self._glare_retry_at is not None and now >= self._glare_retry_at:
            self._glare_retry_at = None
            self._sync_hold(force=True)

    # -- our INVITE ------------------------------------------------------------------------------
    def _on_invite_response(self, sent: _Sent, response: Response, now: float) -> None:
        if response.status < 200:
            self._on_provisional(sent, response, now)
        elif response.status < 300:
            self._on_invite_accepted(sent, response)
        elif (sent.request.cseq.seq, "INVITE") in self._sent:
            del self._sent[(sent.request.cseq.seq, "INVITE")]
            self._cancel_deadline = None
            if self._retried_with_credentials(sent, response):
                return
            if self._hangup_wanted is not None:
                self._close(CloseReason.CANCELLED, response.status)
            else:
                self._close(_close_reason(response.status), response.status)

    def _on_provisional(self, sent: _Sent, response: Response, now: float) -> None:
        if self.state not in (CallState.OUTGOING, CallState.RINGING, CallState.EARLY):
            return
        first = not self._provisional_seen
        self._provisional_seen = True
        if self._hangup_wanted is not None:
            if first:
                self._send_cancel(now)
            return
        if response.status == 100:
            return
        if response.to.tag and (self.dialog is None or self.dialog.remote_tag != response.to.tag):
            self.dialog = Dialog.as_uac(sent.request, response)
        media = self._early_media(sent, response)
        if media is not None:
            self.media = media
            self.state = CallState.EARLY
            self._events.append(CallProgress(call_id=self.id, media=media))
        elif response.status == 180 and self.state is CallState.OUTGOING:
            self.state = CallState.RINGING
            self._events.append(CallRinging(call_id=self.id))

    @staticmethod
    def _early_media(sent: _Sent, response: Response) -> MediaSession | None:
        if sent.offer is None or not has_sdp(response):
            return None
        try:
            return process_answer(sent.offer, parse_sdp(response.body))
        except SdpError:
            return None

    def _repeated_2xx(self, response: Response) -> bool:
        """A 2xx to an INVITE already ACKed (a retransmission: ACK again) or, for our first
        INVITE, from another fork (ACK and BYE it); True if it was one of those."""
        remote_tag, seq = response.to.tag or "", response.cseq.seq
        ack = self._acks.get((remote_tag, seq))
        if ack is not None:
            self._out.acks.append((ack, self._ack_targets[(remote_tag, seq)]))
            return True
        invite = self._invite
        if self._accepted and invite is not None and seq == invite.request.cseq.seq:
            self._end_fork(invite, response)
            return True
        return False

    def _on_invite_accepted(self, sent: _Sent, response: Response) -> None:
        self._accepted = True
        self._sent.pop((sent.request.cseq.seq, "INVITE"), None)
        self._cancel_deadline = None
        self.dialog = Dialog.as_uac(sent.request, response)
        self._ack(sent.request, self.dialog)
        media, error = self._settle_answer(sent.offer, response)
        if self._hangup_wanted is not None:
            self._send_bye(CloseReason.LOCAL_HANGUP, None)
            return
        if error:
            self._send_bye(CloseReason.ERROR, None)
            return
        if sent.offer is not None:
            self._after_our_offer(sent.offer, media, announce=False)
        self.state = CallState.ESTABLISHED
        self._events.append(CallEstablished(call_id=self.id, media=self.media))

    def _end_fork(self, sent: _Sent, response: Response) -> None:
        """A second dialog from a forked INVITE: ACK it and end it at once (§13.2.2.4)."""
        fork = Dialog.as_uac(sent.request, response)
        self._ack(sent.request, fork)
        self._send_in(fork, "BYE", _Purpose.FORK_BYE)

    def _settle_answer(
        self, offer: SessionDescription | None, message: Request | Response
    ) -> tuple[MediaSession | None, bool]:
        """The media an answer settles, and whether it was unusable (no SDP or a bad one
        when an answer was due)."""
        if offer is None:
            return None, False
        if not has_sdp(message):
            return None, True
        try:
            return process_answer(offer, parse_sdp(message.body)), False
        except SdpError:
            return None, True

    def _send_cancel(self, now: float) -> None:
        assert self._invite is not None
        invite = self._invite
        if (invite.request.cseq.seq, "INVITE") not in self._sent:
            return
        self._send(build_cancel(invite.request), invite.target, _Purpose.CANCEL)
        self.state = CallState.TERMINATING
        self._cancel_deadline = now + 64 * self._timers.t1

    # -- re-INVITE (hold and resume) -------------------------------------------------------------
    def _sync_hold(self, *, force: bool = False) -> None:
        """Send a re-INVITE if the hold we want is not the hold we have, unless an offer is
        already under way (its outcome calls us again)."""
        if self.state is not CallState.ESTABLISHED or self.dialog is None:
            if self.state in (CallState.CLOSED, CallState.TERMINATING):
                return
            raise LocalProtocolError(f"call {self.id} is not established")
        if self._offer_pending() or self._awaiting_ack:
            return
        if (self._glare_retry_at is not None and not force) or self._want_hold == self.local_hold:
            return
        assert self._local_sdp is not None
        if self._want_hold:
            direction = Direction.INACTIVE if self.remote_hold else Direction.SENDONLY
        else:
            direction = Direction.SENDRECV
        offer = next_version(self._local_sdp, direction=direction)
        self._local_sdp = offer
        self._send_in(self.dialog, "INVITE", _Purpose.REINVITE, offer=offer)

    def _offer_pending(self) -> bool:
        return any(s.purpose is _Purpose.REINVITE for s in self._sent.values())

    def _on_reinvite_response(self, sent: _Sent, response: Response, now: float) -> None:
        if response.status < 200 or self.dialog is None:
            return
        if response.status < 300:
            self.dialog.receive_response(sent.request, response)
            self._ack(sent.request, self.dialog)
            media, error = self._settle_answer(sent.offer, response)
            if error:
                self._send_bye(CloseReason.ERROR, None)
                return
            if sent.offer is not None:
                self._after_our_offer(sent.offer, media, announce=True)
            self._sync_hold()
        elif response.status == 491:
            delay = GLARE_RETRY_OWNER if self.direction == "outgoing" else GLARE_RETRY_OTHER
            self._glare_retry_at = now + delay
        elif response.status in (408, 481):
            self._send_bye(CloseReason.ERROR, response.status)  # §14.1: the dialog is gone
        elif not self._retried_with_credentials(sent, response):
            self._sync_hold()

    # -- the peer's requests -------------------------------------------------------------------
    def _on_ack(self, ack: Request) -> None:
        if not self._awaiting_ack:
            return
        self._awaiting_ack = False
        if self._offer_in_2xx is not None:
            offer, self._offer_in_2xx = self._offer_in_2xx, None
            media, error = self._settle_answer(offer, ack)
            if error:
                self._send_bye(CloseReason.ERROR, None)
                return
            initial = self._served_invite is not None and (
                ack.cseq.seq == self._served_invite.request.cseq.seq
            )
            self._after_our_offer(offer, media, announce=not initial)
        if self._hangup_wanted is not None:
            self._send_bye(self._hangup_wanted, None)
        else:
            self._sync_hold()

    def _on_cancel(self, key: TransactionKey, cancel: Request) -> None:
        self._respond(key, cancel, 200)
        if self._unanswered_invite() is not None:
            self._respond_invite(487)
            self._close(CloseReason.CANCELLED, None)

    def _on_bye(self, key: TransactionKey, bye: Request) -> None:
        self._respond(key, bye, 200)
        if self._unanswered_invite() is not None:
            self._respond_invite(487)  # §15.1.2: pending requests get 487
        self._answer_pending_offers()
        self._close(CloseReason.REMOTE_HANGUP, None)

    def _on_offer_request(self, key: TransactionKey, request: Request) -> None:
        """A re-INVITE or UPDATE: a new offer (hold, resume, codec change) or a session
        refresh without one."""
        if self.state is not CallState.ESTABLISHED or self._local_sdp is None:
            self._respond(key, request, 491 if self.state is CallState.EARLY else 481)
            return
        if self._offer_pending() or self._offer_in_2xx is not None or self._awaiting_ack:
            self._respond(key, request, 491)
            return
        timer = session_expires(request)
        if timer is not None and timer[0] < MIN_SESSION_EXPIRES:
            extra = [("Min-SE", str(MIN_SESSION_EXPIRES))]
            self._respond(key, request, 422, extra=extra)
            return
        body: SessionDescription | None = self._local_sdp
        if has_sdp(request):
            try:
                body = self._answer(parse_sdp(request.body))
            except SdpError as error:
                self._respond(key, request, error.status)
                return
        elif request.method == "INVITE":
            self._offer_in_2xx = self._local_sdp
        else:
            body = None
        response = self._response(request, 200, body=body)
        if timer is not None:
            add_session_timer(response, *timer)
        self._out.responses.append((key, response))
        if request.method == "INVITE":
            self._awaiting_ack = True

    def _answer(self, offer: SessionDescription) -> SessionDescription:
        """Answer a re-offer with our hold wish, versioned on from what we sent last."""
        assert self._local_sdp is not None
        previous = self._local_sdp
        connection = previous.connection
        port = next((m.port for m in previous.media if m.port), 0)
        answer = answer_offer(
            offer,
            address=connection.address if connection else previous.origin.address,
            rtp_port=port,
            session_id=previous.origin.session_id,
            session_version=previous.origin.session_version,
            direction=Direction.SENDONLY if self.local_hold else Direction.SENDRECV,
        )
        description = answer.description
        if description != previous:
            description = next_version(description)
        self._local_sdp = description
        self._take_media(answer.media, self.local_hold, answer.media.remote_hold, announce=True)
        return description

    def _on_info(self, key: TransactionKey, info: Request) -> None:
        try:
            content_type = info.content_type
        except ParseError:
            content_type = None
        mime = content_type.mime if content_type else None
        if info.body and mime not in DTMF_TYPES:
            self._respond(key, info, 415, extra=[("Accept", ", ".join(DTMF_TYPES))])
            return
        self._respond(key, info, 200)
        digit = None if mime is None else dtmf_digit(mime, info.body)
        if digit is not None:
            self._events.append(DtmfReceived(call_id=self.id, digit=digit))

    def _refusal(self, request: Request) -> tuple[int, list[tuple[str, str]]] | None:
        extensions = unsupported_extensions(request)
        if extensions:
            return 420, [("Unsupported", ", ".join(extensions))]
        timer = session_expires(request)
        if timer is not None and timer[0] < MIN_SESSION_EXPIRES:
            return 422, [("Min-SE", str(MIN_SESSION_EXPIRES))]
        return None

    # -- shared plumbing ---------------------------------------------------------------------------
    def _after_our_offer(
        self, offer: SessionDescription, media: MediaSession | None, *, announce: bool
    ) -> None:
        """Take the media the peer's answer to our offer settles. Our hold is what we
        offered; the peer's shows in its answer only if our offer let it send to us."""
        if media is None:
            return
        offered = offer.direction_of(offer.media[0]) if offer.media else Direction.SENDRECV
        remote_hold = media.remote_hold if offered.can_receive else self.remote_hold
        local_hold = offered is not Direction.SENDRECV
        self._take_media(media, local_hold, remote_hold, announce=announce)

    def _take_media(
        self, media: MediaSession, local_hold: bool, remote_hold: bool, *, announce: bool
    ) -> None:
        """Take a newly settled media session; with `announce`, say whose hold changed."""
        self.media = media
        changes: list[tuple[Side, bool]] = []
        if local_hold != self.local_hold:
            changes.append(("local", local_hold))
        if remote_hold != self.remote_hold:
            changes.append(("remote", remote_hold))
        self.local_hold, self.remote_hold = local_hold, remote_hold
        if not announce:
            return
        for by, held in changes:
            if held:
                self._events.append(CallHeld(call_id=self.id, by=by, media=media))
            else:
                self._events.append(CallResumed(call_id=self.id, by=by, media=media))

    def _retried_with_credentials(self, sent: _Sent, response: Response) -> bool:
        """Answer a 401/407 once per request, when we have credentials that were not
        refused; True if a new request went out."""
        if response.status not in (401, 407) or self._credentials is None or sent.authenticated:
            return False
        if self._hangup_wanted is not None and sent.purpose is _Purpose.INVITE:
            return False
        try:
            values = response.headers.get_all(auth_header_names(response.status).challenge)
            verdict = self._credentials.receive(response.status, values)
        except (AuthError, ValueError):
            return False
        if verdict is ChallengeVerdict.REJECTED:
            return False
        if sent.purpose is _Purpose.INVITE:
            self._resend_invite(sent)
        elif self.dialog is not None:
            retried = self._send_in(
                self.dialog, sent.request.method, sent.purpose, offer=sent.offer
            )
            retried.authenticated = True
        return True

    def _resend_invite(self, sent: _Sent) -> None:
        """The first INVITE again with credentials: same Call-ID and tags, CSeq + 1."""
        assert self._credentials is not None
        old = sent.request
        seq = old.cseq.seq + 1
        headers = old.headers.copy()
        for name in ("Authorization", "Proxy-Authorization"):
            headers.remove(name)
        headers.remove_first("Via")
        headers.add_first("Via", str(self._via(sent.target)))
        headers.set("CSeq", f"{seq} INVITE")
        request = Request("INVITE", old.uri, headers, old.body)
        for name, value in self._credentials.authorization_headers(
            method="INVITE", uri=str(old.uri), cnonce=self._new_cnonce()
        ):
            request.headers.add(name, value)
        self._invite = self._send(request, sent.target, _Purpose.INVITE, offer=sent.offer)
        self._invite.authenticated = True
        self._provisional_seen = False

    def _via(self, target: Target) -> Via:
        return via_for(self._contact, target, with_cookie(self._new_branch()))

    def _dialog_target(self, dialog: Dialog) -> Target:
        return first_hop(dialog.next_hop, self._transport)

    def _send(
        self,
        request: Request,
        target: Target,
        purpose: _Purpose,
        *,
        offer: SessionDescription | None = None,
    ) -> _Sent:
        sent = _Sent(request, target, purpose, offer)
        self._sent[(request.cseq.seq, request.method)] = sent
        self._out.requests.append((request, target))
        return sent

    def _send_in(
        self,
        dialog: Dialog,
        method: str,
        purpose: _Purpose,
        *,
        offer: SessionDescription | None = None,
    ) -> _Sent:
        """A request in `dialog`, with credentials for every realm that challenged us."""
        target = self._dialog_target(dialog)
        extra: list[tuple[str, str]] = []
        if method == "INVITE":
            extra += [("Allow", ", ".join(ALLOW)), ("Supported", ", ".join(SUPPORTED))]
        request = dialog.create_request(
            method,
            via=self._via(target),
            body=b"" if offer is None else bytes(offer),
            content_type=None if offer is None else SDP,
            extra_headers=extra,
        )
        if self._credentials is not None:
            for name, value in self._credentials.authorization_headers(
                method=method, uri=str(request.uri), cnonce=self._new_cnonce()
            ):
                request.headers.add(name, value)
        return self._send(request, target, purpose, offer=offer)

    def _ack(self, invite: Request, dialog: Dialog) -> None:
        target = self._dialog_target(dialog)
        ack = dialog.create_ack(invite, via=self._via(target))
        self._acks[(dialog.remote_tag, invite.cseq.seq)] = ack
        self._ack_targets[(dialog.remote_tag, invite.cseq.seq)] = target
        self._out.acks.append((ack, target))

    def _send_bye(self, reason: CloseReason, status: int | None) -> None:
        if self.dialog is None or self.state is CallState.CLOSED:
            self._close(reason, status)
            return
        if self._closing is not None:
            return
        self._closing = (reason, status)
        self.state = CallState.TERMINATING
        self._cancel_deadline = None
        self._glare_retry_at = None
        self._send_in(self.dialog, "BYE", _Purpose.BYE)

    def _finish_bye(self) -> None:
        reason, status = self._closing or (CloseReason.LOCAL_HANGUP, None)
        self._close(reason, status)

    def _unanswered_invite(self) -> _Served | None:
        served = self._served_invite
        if served is None or self.state is not CallState.RINGING:
            return None
        return served

    def _answer_pending_offers(self) -> None:
        self._offer_in_2xx = None
        self._awaiting_ack = False

    def _respond_invite(
        self,
        status: int,
        *,
        body: SessionDescription | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        served = self._served_invite
        assert served is not None
        response = self._response(served.request, status, body=body, extra=extra)
        if 100 < status < 300:
            for value in served.request.headers.get_all("Record-Route"):
                response.headers.add("Record-Route", value)
        if status == 200:
            timer = session_expires(served.request)
            if timer is not None:
                add_session_timer(response, *timer)
        if 100 < status < 300:
            if self.dialog is None:
                self.dialog = Dialog.as_uas(served.request, response)
            if status >= 200:
                self.dialog.confirm()
        self._out.responses.append((served.key, response))

    def _respond(
        self,
        key: TransactionKey,
        request: Request,
        status: int,
        *,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        self._out.responses.append((key, self._response(request, status, extra=extra)))

    def _response(
        self,
        request: Request,
        status: int,
        *,
        body: SessionDescription | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> Response:
        response = Response.for_request(request, status, to_tag=self._local_tag)
        if request.method in ("INVITE", "UPDATE") and 100 < status < 300:
            response.headers.add("Contact", f"<{self._contact}>")
        if request.method == "INVITE" and 200 <= status < 300:
            response.headers.add("Allow", ", ".join(ALLOW))
            response.headers.add("Supported", ", ".join(SUPPORTED))
        response.headers.add("Server", self._user_agent)
        for name, value in extra or ():
            response.headers.add(name, value)
        if body is not None:
            response.headers.add("Content-Type", SDP)
            response.body = bytes(body)
        return response

    def _close(self, reason: CloseReason, status: int | None) -> None:
        if self.state is CallState.CLOSED:
            return
        self.state = CallState.CLOSED
        self._cancel_deadline = None
        self._glare_retry_at = None
        self._events.append(CallClosed(call_id=self.id, reason=reason, status=status))
