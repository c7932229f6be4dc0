"""Registration (RFC 3261 §10) as a usage of the pure core, shaped like the transaction layer:
`now` in, requests and events out, `get_timer()`/`handle_timer(now)` for the clock.

The usage owns no transaction. The UA core sends what `take_requests()` returns as new client
transactions and hands every outcome back: `handle_response` for each response, routed by its
CSeq method and Call-ID (so an OPTIONS keep-alive can never be taken for a REGISTER answer and
the answer to a superseded REGISTER is ignored), `handle_failure` with the request that timed out
or could not be delivered. CRLF keep-alives for TCP come out of `take_keepalives()`. When the
core loses the TCP connection to `target`, it calls `start(now)`: the binding went with it.

Timing rules, all relative to the moment the REGISTER was sent:
- refresh at `refresh_delay(granted)` = granted − max(5 s, 25 %), but never before half of it;
- after failures: the next registrar at once, until a full round of the list has failed; then
  wait `backoff_delay` = min(retry_max, retry_min · 2^(rounds−1)) spread by the jitter over its
  upper half (RFC 5626 §4.5), or longer if a Retry-After (at most an hour) asks for it;
- an OPTIONS keep-alive that times out re-registers at once: the path is gone.
"""

from collections import deque
from collections.abc import Callable

from firmware.sip.auth import AuthError, DigestClient, auth_header_names, choose_challenge
from firmware.sip.errors import ParseError
from firmware.sip.message import Request, Response
from firmware.sip.registration_messages import (
    Originator,
    build_options,
    build_register,
    contact_uri,
    first_hop,
    granted_expires,
    loose_route,
    min_expires,
    observed_address,
    our_via,
    register_request_uri,
    retry_after,
    same_address,
)
from firmware.sip.registration_types import (
    DEFAULT_ALLOW,
    OutgoingRequest,
    Registered,
    RegistrationEvent,
    RegistrationFailed,
    RegistrationSettings,
    RegistrationState,
    RequestPurpose,
    Unregistered,
)
from firmware.sip.transport_types import Address, Target
from firmware.sip.uri import Uri

__all__ = [
    "DEFAULT_ALLOW",
    "OutgoingRequest",
    "Registered",
    "Registration",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationSettings",
    "RegistrationState",
    "RequestPurpose",
    "Unregistered",
    "backoff_delay",
    "refresh_delay",
]

REFRESH_MARGIN = 5.0
"""Seconds before expiry a refresh is sent at the least (a quarter of the lifetime if more)."""
RETRY_AFTER_CAP = 3600.0
"""A Retry-After is honoured up to an hour: a broken or hostile value must not silence the phone
until it reboots."""
MAX_QUICK_RETRIES = 4
"""Immediate re-sends (answers to challenges, 423 corrections) one attempt may make: enough for
a proxy and a registrar challenge plus a stale nonce, never a tight loop."""


def refresh_delay(granted: float) -> float:
    """Seconds after sending a REGISTER at which to refresh a binding granted for `granted`."""
    return max(granted / 2, granted - max(REFRESH_MARGIN, granted / 4))


def backoff_delay(rounds: int, jitter: float, retry_min: float, retry_max: float) -> float:
    """The wait after `rounds` (≥ 1) full rounds of failures; `jitter` in 0..1 (clamped)."""
    ceiling = min(retry_max, retry_min * 2.0 ** min(rounds - 1, 32))
    return ceiling * (0.5 + 0.5 * min(1.0, max(0.0, jitter)))


class Registration:
    """One address of record kept registered with the first registrar of a list that answers."""

    def __init__(
        self,
        settings: RegistrationSettings,
        *,
        local: Target,
        contact_user: str,
        call_id: str,
        new_tag: Callable[[], str],
        new_branch: Callable[[], str],
        new_cnonce: Callable[[], str],
        jitter: Callable[[], float],
    ) -> None:
        """`local` is the address (and default transport) we listen on; `contact_user` the
        unguessable Contact user part; `new_branch` may return its branch with or without the
        `z9hG4bK` cookie."""
        if not contact_user:
            raise ValueError("contact_user must not be empty")
        self.settings = settings
        self.state = RegistrationState.IDLE
        self._local = local
        self._contact_user = contact_user
        self._call_id = call_id
        self._new_tag = new_tag
        self._new_branch = new_branch
        self._new_cnonce = new_cnonce
        self._jitter = jitter
        hops = [settings.outbound_proxy or registrar for registrar in settings.registrars]
        self._targets = tuple(first_hop(hop, local.transport) for hop in hops)
        self._originator = Originator(
            aor=settings.aor,
            display_name=settings.display_name,
            from_tag=new_tag(),
            user_agent=settings.user_agent,
            route=None if settings.outbound_proxy is None else loose_route(settings.outbound_proxy),
        )
        self._index = 0
        self._cseq = 0
        self._expires = settings.expires
        self._digest = DigestClient(settings.username, settings.password)
        self._answered_realms: set[str] = set()
        self._quick_retries = 0
        self._correcting = False
        self._pending: Request | None = None
        self._pending_sent_at = 0.0
        self._public: Address | None = None
        self._bound: Uri | None = None
        self._failures = 0
        self._not_before: dict[int, float] = {}
        self._deadline: float | None = None
        self._keepalive_at: float | None = None
        self._keepalive_pending: Request | None = None
        self._requests: list[OutgoingRequest] = []
        self._keepalives: list[Target] = []
        self._events: deque[RegistrationEvent] = deque()

    # What the core reads

    @property
    def aor(self) -> Uri:
        return self.settings.aor

    @property
    def target(self) -> Target:
        """The next hop in use: the outbound proxy, else the current registrar."""
        return self._targets[self._index]

    @property
    def contact(self) -> Uri:
        """Our Contact: the token at the local address, or at the public one the registrar
        reported (UDP only)."""
        address = self._public or self._local.address
        return contact_uri(self._contact_user, address, self.target.transport)

    def trusted_sources(self) -> tuple[Address, ...]:
        """Where requests for this account may come from: the hop we register through, as
        written (the core resolves names). Empty before `start()` and after `stop()`."""
        if self.state in (RegistrationState.IDLE, RegistrationState.UNREGISTERED):
            return ()
        return (self.target.address,)

    def take_requests(self) -> list[OutgoingRequest]:
        requests, self._requests = self._requests, []
        return requests

    def take_keepalives(self) -> list[Target]:
        """TCP/TLS hops to write a CRLF CRLF keep-alive to (RFC 5626 §3.5.1)."""
        keepalives, self._keepalives = self._keepalives, []
        return keepalives

    def next_event(self) -> RegistrationEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [d for d in (self._deadline, self._keepalive_at) if d is not None]
        return min(deadlines, default=None)

    # What the core tells us

    def start(self, now: float) -> None:
        """Register now, from any state, forgetting earlier failures."""
        self._failures = 0
        self._begin(now)

    def stop(self, now: float) -> None:
        """Remove our binding; `Unregistered` follows when the registrar answers (or fails to),
        at once when nothing is registered. While waiting to retry a failed refresh the old
        binding may still live, so it is removed too."""
        if self.state is RegistrationState.UNREGISTERING:
            return
        if self.state in (RegistrationState.REGISTERED, RegistrationState.REGISTERING) or (
            self.state is RegistrationState.RETRY_WAIT and self._bound is not None
        ):
            self._enter(RegistrationState.UNREGISTERING)
            self._answered_realms.clear()
            self._quick_retries = 0
            self._send_register(now)
            return
        self._enter(RegistrationState.UNREGISTERED)
        self._events.append(Unregistered(aor=self.aor))

    def local_address_changed(self, host: str, port: int, now: float) -> None:
        """Re-register at once with the new Contact, removing the old binding in the same
        REGISTER; before `start()` or after `stop()` only remember the address."""
        self._local = Target(self._local.transport, host, port)
        self._public = None
        if self.state in (
            RegistrationState.REGISTERING,
            RegistrationState.REGISTERED,
            RegistrationState.RETRY_WAIT,
        ):
            self.start(now)

    def handle_response(self, response: Response, now: float) -> None:
        """A response to a request we produced; provisional ones and answers to requests we
        have since replaced are ignored."""
        if response.status < 200:
            return
        try:
            method, seq, call_id = response.cseq.method, response.cseq.seq, response.call_id
        except ParseError:
            return
        if self._is_pending_register(method, seq, call_id):
            self._pending = None
            self._on_register_response(response, now)
        elif self._is_pending_keepalive(method, call_id):
            self._keepalive_pending = None
            self._on_keepalive_answer(response, now)

    def handle_failure(self, now: float, reason: str, *, request: Request) -> None:
        """`request` (one we produced) timed out or could not be delivered."""
        method, seq, call_id = request.cseq.method, request.cseq.seq, request.call_id
        if self._is_pending_register(method, seq, call_id):
            self._pending = None
            self._fail(now, None, reason)
        elif self._is_pending_keepalive(method, call_id):
            self._begin(now)  # the path is gone: re-register now, not at the refresh

    def handle_timer(self, now: float) -> None:
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._begin(now)
        if self._keepalive_at is not None and now >= self._keepalive_at:
            self._send_keepalive(self._keepalive_at, now)

    # Inside

    def _enter(self, state: RegistrationState) -> None:
        self.state = state
        self._deadline = None
        if state is not RegistrationState.REGISTERED:
            self._keepalive_at = None
            self._keepalive_pending = None

    def _begin(self, now: float) -> None:
        """A new attempt: a REGISTER that answers nothing."""
        self._enter(RegistrationState.REGISTERING)
        self._answered_realms.clear()
        self._quick_retries = 0
        self._correcting = False
        self._send_register(now)

    def _send_register(self, now: float) -> None:
        contact = self.contact
        stale = [] if self._bound is None or self._bound == contact else [self._bound]
        if self.state is RegistrationState.UNREGISTERING:
            bindings = [(uri, 0) for uri in [*stale, contact]]
            expires = 0
        else:
            bindings = [*((uri, 0) for uri in stale), (contact, self._expires)]
            expires = self._expires
        registrar = self.settings.registrars[self._index]
        request_uri = register_request_uri(registrar)
        self._cseq += 1
        request = build_register(
            self._originator,
            request_uri=request_uri,
            via=our_via(self.target, self._local.address, self._new_branch()),
            call_id=self._call_id,
            cseq=self._cseq,
            bindings=bindings,
            expires=expires,
            allow=self.settings.allow,
            credentials=self._digest.authorization_headers(
                method="REGISTER", uri=str(request_uri), cnonce=self._new_cnonce()
            ),
        )
        self._pending = request
        self._pending_sent_at = now
        self._requests.append(OutgoingRequest(request, self.target, RequestPurpose.REGISTER))

    def _send_keepalive(self, due: float, now: float) -> None:
        """Keep-alives stay on their schedule; one fired late starts a new schedule."""
        interval = self.settings.keepalive_interval
        self._keepalive_at = due + interval if due + interval > now else now + interval
        if self.target.reliable:
            self._keepalives.append(self.target)
            return
        if self._keepalive_pending is not None:
            return
        options = build_options(
            self._originator,
            request_uri=register_request_uri(self.settings.registrars[self._index]),
            via=our_via(self.target, self._local.address, self._new_branch()),
            call_id=self._new_tag(),
        )
        self._keepalive_pending = options
        self._requests.append(OutgoingRequest(options, self.target, RequestPurpose.KEEPALIVE))

    def _is_pending_register(self, method: str, seq: int, call_id: str) -> bool:
        pending = self._pending
        return (
            pending is not None
            and method == "REGISTER"
            and call_id == self._call_id
            and seq == pending.cseq.seq
        )

    def _is_pending_keepalive(self, method: str, call_id: str) -> bool:
        """Only one OPTIONS is outstanding, and only while registered (`_enter` forgets it)."""
        pending = self._keepalive_pending
        return pending is not None and method == "OPTIONS" and call_id == pending.call_id

    def _on_register_response(self, response: Response, now: float) -> None:
        status = response.status
        if status in (401, 407):
            self._on_challenge(response, now)
        elif self.state is RegistrationState.UNREGISTERING:
            self._finish_unregistering()
        elif response.status_class == 2:
            self._on_success(response, now)
        elif status == 423:
            self._on_interval_too_brief(response, now)
        else:
            delay = retry_after(response)
            self._fail(now, status, f"{status} {response.reason}".rstrip(), delay)

    def _on_challenge(self, response: Response, now: float) -> None:
        status = response.status
        names = auth_header_names(status)
        offered = response.headers.lines(names.challenge)
        try:
            challenge = choose_challenge(offered)
        except AuthError as error:
            self._fail(now, status, f"{status} with an unusable challenge: {error}")
            return
        if challenge.realm in self._answered_realms and not challenge.stale:
            self._fail(
                now,
                status,
                f"{status} {response.reason}: credentials for realm {challenge.realm!r}"
                " refused (wrong user name or password?)",
            )
            return
        if self._quick_retries >= MAX_QUICK_RETRIES:
            self._fail(now, status, f"{status} {response.reason}: too many challenges in a row")
            return
        self._digest.receive(status, offered)
        self._answered_realms.add(challenge.realm)
        self._quick_retries += 1
        self._send_register(now)

    def _on_interval_too_brief(self, response: Response, now: float) -> None:
        floor = min_expires(response)
        if floor is None or floor <= self._expires:
            self._fail(now, 423, "423 Interval Too Brief without a longer Min-Expires")
        elif self._quick_retries >= MAX_QUICK_RETRIES:
            self._fail(now, 423, "423 Interval Too Brief: too many in a row")
        else:
            self._expires = floor
            self._quick_retries += 1
            self._answered_realms.clear()
            self._send_register(now)

    def _on_success(self, response: Response, now: float) -> None:
        contact = self.contact
        self._bound = contact
        seen = self._seen_elsewhere(response)
        if seen is not None and not self._correcting:
            self._public = seen
            self._correcting = True
            self._answered_realms.clear()
            self._send_register(now)
            return
        grant = granted_expires(response, contact, self._expires)
        if grant.seconds == 0:
            self._fail(now, response.status, "the registrar granted our binding 0 seconds")
            return
        note = grant.note
        if seen is not None:
            elsewhere = f"the registrar still sees us at {seen.host}:{seen.port}"
            note = elsewhere if note is None else f"{note}; {elsewhere}"
        self._failures = 0
        self._enter(RegistrationState.REGISTERED)
        self._deadline = self._pending_sent_at + refresh_delay(grant.seconds)
        if self.settings.keepalive_interval > 0:
            self._keepalive_at = now + self.settings.keepalive_interval
        self._events.append(
            Registered(aor=self.aor, contact=contact, expires=grant.seconds, note=note)
        )

    def _seen_elsewhere(self, response: Response) -> Address | None:
        """The address the registrar saw us at, if it is not our Contact's (RFC 3581).

        Only on UDP: over TCP the registrar sees our connection's ephemeral port, where no one
        can reach us once the connection closes, and it answers us on that connection anyway.
        """
        if self.target.transport != "udp":
            return None
        seen = observed_address(response, "udp")
        if seen is None or same_address(seen, self._public or self._local.address):
            return None
        return seen

    def _on_keepalive_answer(self, response: Response, now: float) -> None:
        """Any answer shows the path works; one that saw us elsewhere (a NAT rebinding)
        re-registers with the corrected Contact."""
        seen = self._seen_elsewhere(response)
        if seen is not None:
            self._public = seen
            self._begin(now)

    def _fail(
        self, now: float, status: int | None, reason: str, retry_after_s: int | None = None
    ) -> None:
        if self.state is RegistrationState.UNREGISTERING:
            self._finish_unregistering()
            return
        self._failures += 1
        if retry_after_s is not None:
            self._not_before[self._index] = now + min(float(retry_after_s), RETRY_AFTER_CAP)
        self._move_to((self._index + 1) % len(self._targets))
        delay = 0.0
        rounds, rest = divmod(self._failures, len(self._targets))
        if rest == 0:
            delay = backoff_delay(
                rounds, self._jitter(), self.settings.retry_min, self.settings.retry_max
            )
        delay = max(delay, self._not_before.get(self._index, now) - now)
        self._events.append(
            RegistrationFailed(aor=self.aor, status=status, reason=reason, retry_in=delay)
        )
        if delay > 0:
            self._enter(RegistrationState.RETRY_WAIT)
            self._deadline = now + delay
        else:
            self._begin(now)

    def _move_to(self, index: int) -> None:
        """Start afresh with registrar `index`: old challenges are no use there (and after a
        failure the first REGISTER should not replay credentials that were just refused)."""
        if index != self._index:
            self._public = None
            self._bound = None
        self._index = index
        self._digest = DigestClient(self.settings.username, self.settings.password)

    def _finish_unregistering(self) -> None:
        self._bound = None
        self._enter(RegistrationState.UNREGISTERED)
        self._events.append(Unregistered(aor=self.aor))
