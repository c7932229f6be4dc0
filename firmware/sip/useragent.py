"""The user-agent core: one pure object that turns datagrams and time into events and bytes.

It owns the transaction layer and the usages (registration now; calls, messages and
subscriptions later), applies the origin rules before any usage sees a request, and answers
what no usage claims (OPTIONS, unknown methods). The stack thread drives it through the
`firmware.transport.Core` protocol and never looks inside.

Origin rules (security by default): while an account is registered, a request is served
only when it comes from that account's registrar or outbound proxy — the address *and*
port its REGISTER was answered from — and its Request-URI carries the unguessable Contact
token registered for it. With no account registered, only `trusted` sources are served.
A User-Agent header proves nothing and is not looked at.
"""

import ipaddress
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from firmware.sip import events
from firmware.sip.auth import DigestClient
from firmware.sip.call import (
    Call,
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
    DtmfReceived,
)
from firmware.sip.call_table import CallTable, Incoming
from firmware.sip.errors import ParseError
from firmware.sip.events import UaEvent
from firmware.sip.message import Request, Response
from firmware.sip.pager import MessageFailed, MessageSent, Pager, receive_message
from firmware.sip.parser import parse_message
from firmware.sip.registration import (
    Registered,
    Registration,
    RegistrationFailed,
    RegistrationSettings,
    RegistrationState,
    Unregistered,
)
from firmware.sip.timers import TimerConfig
from firmware.sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionKey,
    TransactionLayer,
    TransactionTimeout,
    Transmit,
    TransportFailed,
)
from firmware.sip.transport_types import Address, Target
from firmware.sip.uri import NameAddr, Uri, parse_uri
from firmware.sip.wire import Outgoing, rejection_for_unparsable

ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "MESSAGE", "UPDATE", "INFO")
"""What this core answers itself; the call and message usages add theirs."""
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)
ACCEPTED_BODIES = "application/sdp"
SUPPORTED_EXTENSIONS = ""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class CoreSettings:
    """What the core needs of the configuration, in plain values (the core never reads YAML)."""

    timers: TimerConfig = field(default_factory=TimerConfig)
    user_agent: str = "deskphone"
    trusted: tuple[Network, ...] = ()
    accounts: tuple[RegistrationSettings, ...] = ()
    transport: str = "udp"
    auto_answer: frozenset[str] = frozenset()
    """Accounts (AoRs as text) whose incoming calls are answered at once."""
    max_calls: int = 2
    reject_status: int = 486
    rtp_port_base: int = 40000


@dataclass(eq=False)
class _Account:
    settings: RegistrationSettings
    registration: Registration
    pager: Pager
    token: str
    pending: set[TransactionKey] = field(default_factory=set)
    trusted_source: Address | None = None
    last_source: Address | None = None
    announced: bool = False


class UserAgentCore:
    """Pure: every entry point takes `now`; nothing here reads a clock or opens a socket."""

    def __init__(
        self,
        settings: CoreSettings,
        local: Address,
        *,
        new_token: Callable[[], str],
        jitter: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.local = local
        self._new_token = new_token
        self._transactions = TransactionLayer(settings.timers)
        self._outgoing: list[Outgoing] = []
        self._events: deque[UaEvent] = deque()
        self._pager_pending: dict[TransactionKey, Pager] = {}
        self._anonymous_pager = self._pager(
            Uri(scheme="sip", user="deskphone", host=local.host, port=local.port), None, None
        )
        self.accounts = [self._account(account, jitter) for account in settings.accounts]
        self._calls = CallTable(
            timers=settings.timers,
            user_agent=settings.user_agent,
            new_token=new_token,
            rtp_ports=itertools.cycle(
                range(settings.rtp_port_base, settings.rtp_port_base + 400, 2)
            ),
            max_calls=settings.max_calls,
            reject_status=settings.reject_status,
        )

    def _pager(self, sender: Uri, display: str | None, credentials: DigestClient | None) -> Pager:
        return Pager(
            from_=sender,
            display_name=display,
            local=self.local,
            user_agent=self.settings.user_agent,
            credentials=credentials,
            new_tag=self._new_token,
            new_branch=lambda: "z9hG4bK" + self._new_token(),
            new_call_id=self._new_token,
            new_cnonce=self._new_token,
        )

    def _account(self, settings: RegistrationSettings, jitter: Callable[[], float]) -> _Account:
        token = self._new_token()
        registration = Registration(
            settings,
            local=Target(self.settings.transport, self.local.host, self.local.port),
            contact_user=token,
            call_id=self._new_token(),
            new_tag=self._new_token,
            new_branch=lambda: "z9hG4bK" + self._new_token(),
            new_cnonce=self._new_token,
            jitter=jitter,
        )
        credentials = DigestClient(settings.username, settings.password)
        pager = self._pager(settings.aor, settings.display_name, credentials)
        return _Account(settings, registration, pager, token)

    # -- commands ------------------------------------------------------------------------
    def register(self, now: float, aor: str | None = None) -> None:
        for account in self._select(aor):
            account.registration.start(now)
        self._pump(now)

    def unregister(self, now: float, aor: str | None = None) -> None:
        for account in self._select(aor):
            account.registration.stop(now)
        self._pump(now)

    def _select(self, aor: str | None) -> list[_Account]:
        if aor is None:
            return list(self.accounts)
        chosen = [a for a in self.accounts if str(a.settings.aor) == aor]
        if not chosen:
            raise KeyError(f"no account {aor}")
        return chosen

    def send_message(
        self, now: float, message_id: str, to: str, text: str, aor: str | None = None
    ) -> None:
        """A MESSAGE through the account's registrar (or outbound proxy); with no account,
        straight to the address. Raises ParseError for a bad `to`, KeyError for a bad `aor`."""
        recipient = parse_uri(to)
        if aor is not None or self.accounts:
            account = self._select(aor)[0]
            account.pager.local = self.local
            account.pager.send(
                message_id,
                recipient,
                text,
                account.registration.target,
                now,
                route=account.settings.outbound_proxy,
            )
        else:
            self._anonymous_pager.local = self.local
            self._anonymous_pager.send(message_id, recipient, text, Target.from_uri(recipient), now)
        self._pump(now)

    # -- calls ---------------------------------------------------------------------------
    def dial(self, now: float, to: str, aor: str | None = None) -> str:
        """Start a call; its id, known before any event of it. ParseError for a bad `to`."""
        remote = parse_uri(to)
        if aor is not None or self.accounts:
            account = self._select(aor)[0]
            settings = account.settings
            call = self._calls.dial(
                now,
                remote=remote,
                sender=NameAddr(uri=settings.aor, display_name=settings.display_name),
                contact=account.registration.contact,
                local_address=self.local.host,
                target=account.registration.target,
                route=settings.outbound_proxy,
                credentials=DigestClient(settings.username, settings.password),
                account=str(settings.aor),
            )
        else:
            call = self._calls.dial(
                now,
                remote=remote,
                sender=NameAddr(uri=self._anonymous_contact()),
                contact=self._anonymous_contact(),
                local_address=self.local.host,
                target=Target.from_uri(remote),
                route=None,
                credentials=None,
                account=None,
            )
        self._pump(now)
        return call.id

    def call_command(
        self, now: float, command: str, call_id: str | None, status: int | None = None
    ) -> None:
        """answer, hangup, hold or resume; KeyError/LookupError for a missing or ambiguous
        call, LocalProtocolError when the call is in no state for it."""
        call = self._calls.find(call_id)
        if command == "answer":
            call.answer(now)
        elif command == "hangup":
            if call.direction == "incoming" and call.state is CallState.RINGING:
                call.reject(now, status or self._calls.reject_status)
            else:
                call.hangup(now)
        elif command == "hold":
            call.hold(now)
        elif command == "resume":
            call.resume(now)
        else:
            raise ValueError(f"no call command {command}")
        self._pump(now)

    def call_states(self) -> list[dict[str, object]]:
        return [
            {
                "call": c.id,
                "state": c.state.value,
                "direction": c.direction,
                "remote": str(c.remote),
                "display": c.display,
                "account": c.account,
            }
            for c in self._calls.live()
        ]

    def _anonymous_contact(self) -> Uri:
        return Uri(scheme="sip", user="deskphone", host=self.local.host, port=self.local.port)

    def _incoming_for(self, request: Request) -> Incoming:
        for account in self.accounts:
            if request.uri.user == account.token:
                aor = str(account.settings.aor)
                return Incoming(
                    account=aor,
                    contact=account.registration.contact,
                    auto_answer=aor in self.settings.auto_answer,
                )
        return Incoming(account=None, contact=self._anonymous_contact(), auto_answer=False)

    def _on_call_event(self, call: Call, event: CallEvent) -> None:
        fields: dict[str, object] = {
            "call": call.id,
            "account": call.account,
            "remote": str(call.remote),
            "display": call.display,
        }
        name = _CALL_EVENT_NAMES[type(event)]
        if isinstance(event, CallHeld | CallResumed):
            fields["by"] = event.by
        elif isinstance(event, CallClosed):
            fields["reason"] = event.reason.value
            fields["status"] = event.status
        elif isinstance(event, DtmfReceived):
            fields["digit"] = event.digit
        self._events.append(UaEvent(name, fields))

    def account_states(self) -> list[dict[str, str]]:
        return [
            {"uri": str(a.settings.aor), "state": a.registration.state.value} for a in self.accounts
        ]

    def next_event(self) -> UaEvent | None:
        return self._events.popleft() if self._events else None

    # -- the stack thread's side (firmware.transport.Core) -------------------------------
    def receive(self, data: bytes, source: tuple[str, int], transport: str, now: float) -> None:
        origin = Address(*source)
        try:
            message = parse_message(data)
        except ParseError as error:
            rejection = rejection_for_unparsable(data, error, origin, transport)
            if rejection is not None:
                self._outgoing.append(rejection)
            return
        self._transactions.receive(message, origin, transport, now)
        self._pump(now)

    def transport_failed(self, transport: str, host: str, port: int, now: float) -> None:
        self._transactions.transport_error(Target(transport, host, port))
        self._pump(now)

    def connection_lost(self, peer: tuple[str, int], now: float) -> None:
        """A registrar's TCP connection went away: the binding went with it (the registrar
        can no longer reach the Contact), so register again now rather than at the refresh."""
        lost = Address(*peer)
        for account in self.accounts:
            registration = account.registration
            if (
                registration.target.transport == "tcp"
                and account.trusted_source == lost
                and registration.state is RegistrationState.REGISTERED
            ):
                account.trusted_source = None
                account.announced = False
                registration.start(now)
        self._pump(now)

    def local_address_changed(self, host: str, now: float) -> None:
        """Our address as peers should see it changed: every registration moves its Contact."""
        if host == self.local.host:
            return
        self.local = Address(host, self.local.port)
        for account in self.accounts:
            account.registration.local_address_changed(host, self.local.port, now)
        self._pump(now)

    def get_timer(self) -> float | None:
        deadlines = [self._transactions.get_timer()]
        deadlines += [a.registration.get_timer() for a in self.accounts]
        deadlines.append(self._calls.get_timer())
        present = [deadline for deadline in deadlines if deadline is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> None:
        self._transactions.handle_timer(now)
        for account in self.accounts:
            deadline = account.registration.get_timer()
            if deadline is not None and deadline <= now:
                account.registration.handle_timer(now)
        self._calls.handle_timer(now)
        self._pump(now)

    def take_transmissions(self) -> list[Outgoing]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    # -- plumbing ------------------------------------------------------------------------
    def _pump(self, now: float) -> None:
        """Move everything the layers produced until nothing moves."""
        progressed = True
        while progressed:
            progressed = False
            for account in self.accounts:
                progressed |= self._pump_account(account, now)
            for pager in [self._anonymous_pager, *(a.pager for a in self.accounts)]:
                progressed |= self._pump_pager(pager, now)
            progressed |= self._calls.flush(self._transactions, now)
            while (item := self._calls.next_event()) is not None:
                progressed = True
                self._on_call_event(*item)
            while (event := self._transactions.next_event()) is not None:
                progressed = True
                self._on_transaction_event(event, now)

    def _pump_account(self, account: _Account, now: float) -> bool:
        registration = account.registration
        moved = False
        for outgoing in registration.take_requests():
            key = self._transactions.send_request(outgoing.request, outgoing.target, now)
            account.pending.add(key)
            moved = True
        for target in registration.take_keepalives():
            self._outgoing.append(Outgoing.of(target, b"\r\n\r\n"))
        while (event := registration.next_event()) is not None:
            moved = True
            self._on_registration_event(account, event)
        return moved

    def _pump_pager(self, pager: Pager, now: float) -> bool:
        moved = False
        for outgoing in pager.take_requests():
            key = self._transactions.send_request(outgoing.request, outgoing.target, now)
            self._pager_pending[key] = pager
            moved = True
        while (event := pager.next_event()) is not None:
            moved = True
            if isinstance(event, MessageSent):
                self._events.append(UaEvent(events.MESSAGE_SENT, {"message": event.message_id}))
            elif isinstance(event, MessageFailed):
                self._events.append(
                    UaEvent(
                        events.MESSAGE_FAILED,
                        {
                            "message": event.message_id,
                            "status": event.status,
                            "reason": event.reason,
                        },
                    )
                )
        return moved

    def _on_registration_event(
        self, account: _Account, event: Registered | RegistrationFailed | Unregistered
    ) -> None:
        aor = str(account.settings.aor)
        if isinstance(event, Registered):
            account.trusted_source = account.last_source
            if not account.announced:  # refreshes are not news
                account.announced = True
                self._events.append(UaEvent(events.REGISTERED, {"account": aor}))
        elif isinstance(event, RegistrationFailed):
            account.trusted_source = None
            account.announced = False
            self._events.append(
                UaEvent(
                    events.REGISTRATION_FAILED,
                    {
                        "account": aor,
                        "status": event.status,
                        "reason": event.reason,
                        "retry_in": round(event.retry_in, 3),
                    },
                )
            )
        else:
            account.trusted_source = None
            account.announced = False
            self._events.append(UaEvent(events.UNREGISTERED, {"account": aor}))

    def _on_transaction_event(
        self,
        event: Transmit
        | RequestReceived
        | ResponseReceived
        | TransactionTimeout
        | TransportFailed
        | StrayResponse
        | AckReceived,
        now: float,
    ) -> None:
        if isinstance(event, Transmit):
            self._outgoing.append(Outgoing.of(event.target, bytes(event.message)))
        elif isinstance(event, RequestReceived):
            self._on_request(event, now)
        elif isinstance(event, ResponseReceived) and self._calls.owns(event.key):
            self._calls.on_response(event.key, event.response, now)
        elif isinstance(event, TransactionTimeout | TransportFailed) and self._calls.owns(
            event.key
        ):
            reason = "timeout" if isinstance(event, TransactionTimeout) else "transport"
            self._calls.on_failure(event.key, event.request, reason, now)
        elif isinstance(event, AckReceived):
            self._calls.on_ack(event, now)
        elif isinstance(event, ResponseReceived) and event.key in self._pager_pending:
            pager = self._pager_pending[event.key]
            if event.response.status >= 200:
                del self._pager_pending[event.key]
            pager.handle_response(event.response, now)
        elif (
            isinstance(event, TransactionTimeout | TransportFailed)
            and event.key in self._pager_pending
        ):
            pager = self._pager_pending.pop(event.key)
            reason = "timeout" if isinstance(event, TransactionTimeout) else "transport"
            pager.handle_failure(event.request, now, reason)
        elif isinstance(event, ResponseReceived):
            account = self._owner(event.key)
            if account is not None:
                if event.response.status >= 200:
                    account.pending.discard(event.key)
                account.last_source = event.source
                account.registration.handle_response(event.response, now)
        elif isinstance(event, TransactionTimeout | TransportFailed):
            account = self._owner(event.key)
            if account is not None:
                account.pending.discard(event.key)
                reason = "timeout" if isinstance(event, TransactionTimeout) else "transport"
                account.registration.handle_failure(now, reason, request=event.request)

    def _owner(self, key: TransactionKey) -> _Account | None:
        return next((a for a in self.accounts if key in a.pending), None)

    # -- requests to us ------------------------------------------------------------------
    def _on_request(self, event: RequestReceived, now: float) -> None:
        request = event.request
        if not self._origin_allowed(request, event.source):
            self._respond(event.key, request, 403, "Forbidden (untrusted origin)", now)
            return
        if self._calls.on_request(
            event, self._transactions, now, self._incoming_for, self.local.host
        ):
            return
        if request.method == "OPTIONS":
            self._respond(event.key, request, 200, None, now, capabilities=True)
        elif request.method == "MESSAGE":
            verdict = receive_message(request)
            self._respond(
                event.key, request, verdict.status, verdict.reason, now, extra=verdict.headers
            )
            if verdict.event is not None:
                self._events.append(
                    UaEvent(
                        events.MESSAGE,
                        {
                            "from": str(verdict.event.from_uri),
                            "display": verdict.event.display,
                            "text": verdict.event.text,
                        },
                    )
                )
        elif request.method in KNOWN_METHODS:
            self._respond(event.key, request, 405, None, now, capabilities=True)
        else:
            self._respond(event.key, request, 501, None, now)

    def _origin_allowed(self, request: Request, source: Address) -> bool:
        registered = [
            a for a in self.accounts if a.registration.state is RegistrationState.REGISTERED
        ]
        if registered:
            return any(
                a.trusted_source == source and request.uri.user == a.token for a in registered
            )
        return _in_networks(source.host, self.settings.trusted)

    def _respond(
        self,
        key: TransactionKey,
        request: Request,
        status: int,
        reason: str | None,
        now: float,
        *,
        capabilities: bool = False,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        response = Response.for_request(request, status, reason, to_tag=self._new_token())
        response.headers.add("Server", self.settings.user_agent)
        for name, value in extra:
            response.headers.add(name, value)
        if capabilities:
            response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
            response.headers.add("Accept", ACCEPTED_BODIES)
            response.headers.add("Supported", SUPPORTED_EXTENSIONS)
        self._transactions.respond(key, response, now)
        self._pump(now)


_CALL_EVENT_NAMES: dict[type, str] = {
    CallIncoming: "call_incoming",
    CallOutgoing: "call_outgoing",
    CallRinging: "call_ringing",
    CallProgress: "call_progress",
    CallEstablished: "call_established",
    CallHeld: "call_held",
    CallResumed: "call_resumed",
    CallClosed: "call_closed",
    DtmfReceived: "dtmf",
}
"""The control socket's event names (a contract) for the call usage's events."""


def _in_networks(host: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 peer seen through a dual-stack socket
    return any(address in network for network in networks)
