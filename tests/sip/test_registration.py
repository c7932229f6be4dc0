"""The registration usage alone, on a hand-moved clock, against a registrar scripted with the
message API. Every request is serialised and parsed again, so what is checked is what would go
on the wire; digest answers are checked with the server half of `auth`.
"""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from firmware.sip.auth import (
    DigestChallenge,
    Qop,
    auth_header_names,
    format_challenge,
    parse_credentials,
    verify,
)
from firmware.sip.message import Request, Response
from firmware.sip.parser import parse_message
from firmware.sip.registration import (
    Registered,
    Registration,
    RegistrationEvent,
    RegistrationFailed,
    RegistrationSettings,
    RegistrationState,
    RequestPurpose,
    Unregistered,
    backoff_delay,
    refresh_delay,
)
from firmware.sip.transaction import ResponseReceived, TransactionLayer, TransactionTimeout
from firmware.sip.transport_types import Address, Target
from firmware.sip.uri import NameAddr, Uri, parse_uri

AOR = parse_uri("sip:1001@pbx.example")
PBX = parse_uri("sip:pbx.example")
LOCAL = Target("udp", "192.0.2.10", 5060)
TOKEN = "k7Qz1"
CALL_ID = "reg-1@192.0.2.10"
PASSWORD = "secret"
SETTINGS = RegistrationSettings(
    aor=AOR,
    registrars=(PBX,),
    username="1001",
    password=PASSWORD,
    display_name="Front Door",
    user_agent="deskphone/test",
)


def contact(host: str = "192.0.2.10", port: int = 5060, transport: str | None = None) -> Uri:
    uri = Uri(scheme="sip", user=TOKEN, host=host, port=port)
    return uri if transport is None else uri.with_param("transport", transport)


class Counter:
    """A deterministic stand-in for the random generators: prefix1, prefix2, …"""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count}"


class Phone:
    """One Registration with deterministic randomness and a clock the test moves."""

    def __init__(
        self,
        settings: RegistrationSettings = SETTINGS,
        *,
        local: Target = LOCAL,
        jitter: float = 1.0,
        branches: Callable[[], str] | None = None,
    ) -> None:
        self.jitter = jitter
        self.now = 0.0
        self.reg = Registration(
            settings,
            local=local,
            contact_user=TOKEN,
            call_id=CALL_ID,
            new_tag=Counter("tag"),
            new_branch=branches or Counter("z9hG4bK-b"),
            new_cnonce=Counter("cnonce"),
            jitter=lambda: self.jitter,
        )

    def sent(self) -> list[tuple[Request, Target, RequestPurpose]]:
        """What the usage asked the core to send, as a peer would parse it."""
        out = []
        for request, target, purpose in self.reg.take_requests():
            parsed = parse_message(bytes(request))
            assert isinstance(parsed, Request)
            out.append((parsed, target, purpose))
        return out

    def register(self) -> Request:
        """The one request sent since the last look, which must be a REGISTER."""
        sent = self.sent()
        assert [(r.method, purpose) for r, _, purpose in sent] == [
            ("REGISTER", RequestPurpose.REGISTER)
        ]
        return sent[0][0]

    def options(self) -> Request:
        sent = self.sent()
        assert [(r.method, purpose) for r, _, purpose in sent] == [
            ("OPTIONS", RequestPurpose.KEEPALIVE)
        ]
        return sent[0][0]

    def state(self) -> RegistrationState:
        """Read through a call, so the type checker does not narrow it between steps."""
        return self.reg.state

    def events(self) -> list[RegistrationEvent]:
        events = []
        while (event := self.reg.next_event()) is not None:
            events.append(event)
        return events

    def answer(self, response: Response, at: float | None = None) -> None:
        self.now = self.now if at is None else at
        self.reg.handle_response(parse_response(bytes(response)), self.now)

    def fail(self, request: Request, at: float | None = None) -> None:
        self.now = self.now if at is None else at
        self.reg.handle_failure(self.now, "timeout", request=request)

    def advance(self) -> float:
        """Move the clock to the next deadline and fire it."""
        deadline = self.reg.get_timer()
        assert deadline is not None
        self.now = deadline
        self.reg.handle_timer(deadline)
        return deadline

    def registered(self, expires: int = 600) -> Request:
        """Start and have the registrar accept the first REGISTER at once."""
        self.reg.start(self.now)
        request = self.register()
        self.answer(ok(request, expires))
        assert isinstance(self.events()[-1], Registered)
        return request


def parse_response(data: bytes) -> Response:
    parsed = parse_message(data)
    assert isinstance(parsed, Response)
    return parsed


def ok(
    request: Request,
    granted: int | None = None,
    *,
    expires_header: str | None = None,
    received: str | None = None,
    rport: int | None = None,
    listed: list[str] | None = None,
) -> Response:
    """A registrar's 200: by default it lists every Contact the request kept (expires > 0)
    with the lifetime asked for, or `granted`."""
    response = Response.for_request(request, 200, to_tag="registrar")
    if listed is None:
        listed = [
            str(binding.with_param("expires", str(granted or binding.expires)))
            for binding in request.contacts
            if binding.expires
        ]
    for value in listed:
        response.headers.add("Contact", value)
    if expires_header is not None:
        response.headers.add("Expires", expires_header)
    if received is not None or rport is not None:
        via = request.top_via
        if received is not None:
            via = via.with_param("received", received)
        if rport is not None:
            via = via.with_param("rport", str(rport))
        response.headers.set("Via", str(via))
    return response


def failure(request: Request, status: int, *extra: tuple[str, str]) -> Response:
    response = Response.for_request(request, status, to_tag="registrar")
    for name, value in extra:
        response.headers.add(name, value)
    return response


class DigestServer:
    """The registrar's (401) or proxy's (407) side of digest, with a fresh nonce per challenge."""

    def __init__(self, status: int = 401, realm: str = "pbx.example") -> None:
        self.names = auth_header_names(status)
        self.status = status
        self.realm = realm
        self.nonces = Counter(f"nonce-{status}-")
        self.current: DigestChallenge | None = None

    def challenge(self, request: Request, *, stale: bool = False) -> Response:
        self.current = DigestChallenge(
            realm=self.realm, nonce=self.nonces(), qop=(Qop.AUTH,), stale=stale, opaque="op"
        )
        return failure(request, self.status, (self.names.challenge, format_challenge(self.current)))

    def nonce_count(self, request: Request) -> int | None:
        value = request.headers.get(self.names.credentials)
        assert value is not None
        return parse_credentials(value).nonce_count

    def accepts(self, request: Request) -> bool:
        value = request.headers.get(self.names.credentials)
        if value is None or self.current is None:
            return False
        credentials = parse_credentials(value)
        return credentials.uri == str(request.uri) and verify(
            credentials, self.current, method=request.method, password=PASSWORD
        )


# Request shape


def test_first_register_has_the_shape_registrars_expect() -> None:
    phone = Phone()
    assert phone.state() is RegistrationState.IDLE
    assert phone.reg.get_timer() is None
    phone.reg.start(0.0)
    assert phone.state() is RegistrationState.REGISTERING
    [(request, target, purpose)] = phone.sent()
    assert (target, purpose) == (Target("udp", "pbx.example", 5060), RequestPurpose.REGISTER)
    assert request.method == "REGISTER"
    assert str(request.uri) == "sip:pbx.example"
    assert request.headers.get("Via") == "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-b1;rport"
    assert request.max_forwards == 70
    assert request.from_ == NameAddr(uri=AOR, display_name="Front Door", params=(("tag", "tag1"),))
    assert request.to == NameAddr(uri=AOR)
    assert request.call_id == CALL_ID
    assert str(request.cseq) == "1 REGISTER"
    assert request.headers.lines("Contact") == [f"<sip:{TOKEN}@192.0.2.10:5060>;expires=600"]
    assert request.expires == 600
    assert request.headers.get("User-Agent") == "deskphone/test"
    assert request.headers.get_all("Allow") == [
        "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "MESSAGE", "NOTIFY"
    ]  # fmt: skip
    assert "Route" not in request.headers
    assert "Authorization" not in request.headers
    assert phone.reg.contact == contact()


def test_over_tcp_the_contact_via_and_target_say_tcp_and_the_request_uri_keeps_transport() -> None:
    registrar = parse_uri("sip:registrar.example:5070;transport=tcp")
    phone = Phone(replace(SETTINGS, registrars=(registrar,)))
    phone.reg.start(0.0)
    [(request, target, _)] = phone.sent()
    assert target == Target("tcp", "registrar.example", 5070)
    assert str(request.uri) == "sip:registrar.example:5070;transport=tcp"
    assert request.top_via.transport == "TCP"
    assert request.contacts[0].uri == contact(transport="tcp")


def test_a_registrar_without_transport_takes_the_local_one() -> None:
    phone = Phone(local=Target("tcp", "192.0.2.10", 5060))
    phone.reg.start(0.0)
    [(request, target, _)] = phone.sent()
    assert target == Target("tcp", "pbx.example", 5060)
    assert request.contacts[0].uri == contact(transport="tcp")


def test_the_outbound_proxy_is_a_loose_route_and_the_target() -> None:
    proxy = parse_uri("sip:proxy.example:5080")
    phone = Phone(replace(SETTINGS, outbound_proxy=proxy))
    phone.reg.start(0.0)
    [(request, target, _)] = phone.sent()
    assert target == Target("udp", "proxy.example", 5080)
    assert request.headers.get_all("Route") == ["<sip:proxy.example:5080;lr>"]
    assert str(request.uri) == "sip:pbx.example"
    assert phone.reg.trusted_sources() == (Address("proxy.example", 5080),)


def test_the_request_uri_drops_the_registrars_user_part() -> None:
    phone = Phone(replace(SETTINGS, registrars=(parse_uri("sip:someone@pbx.example:5062"),)))
    phone.reg.start(0.0)
    assert str(phone.register().uri) == "sip:pbx.example:5062"


def test_a_branch_without_the_rfc_3261_cookie_gets_it() -> None:
    phone = Phone(branches=Counter("plain"))
    phone.reg.start(0.0)
    assert phone.register().top_via.branch == "z9hG4bKplain1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"aor": parse_uri("sip:pbx.example")}, "with a user"),
        ({"registrars": ()}, "at least one registrar"),
        ({"expires": 0}, "expires must be"),
        ({"keepalive_interval": -1.0}, "keepalive_interval"),
        ({"retry_min": 10.0, "retry_max": 5.0}, "retry_min"),
        ({"retry_min": 0.0}, "retry_min"),
    ],
)
def test_settings_that_cannot_work_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(SETTINGS, **change)


def test_a_registrar_with_an_unknown_transport_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        Phone(replace(SETTINGS, registrars=(parse_uri("sip:pbx.example;transport=sctp"),)))


def test_the_password_is_not_in_the_settings_repr() -> None:
    assert PASSWORD not in repr(SETTINGS)


# Refresh


@pytest.mark.parametrize(
    ("granted", "delay"),
    [
        (3600, 2700.0),
        (600, 450.0),
        (60, 45.0),
        (20, 15.0),
        (12, 7.0),
        (10, 5.0),
        (8, 4.0),
        (1, 0.5),
    ],
)
def test_refresh_delay_leaves_a_margin_but_never_refreshes_before_half(
    granted: int, delay: float
) -> None:
    assert refresh_delay(granted) == delay


def test_three_refreshes_keep_call_id_and_from_tag_and_count_cseq_up() -> None:
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.reg.start(0.0)
    first = phone.register()
    phone.answer(ok(first), at=0.2)
    assert phone.events() == [Registered(aor=AOR, contact=contact(), expires=600)]
    assert phone.state() is RegistrationState.REGISTERED
    assert phone.reg.get_timer() == 450.0

    assert phone.advance() == 450.0
    second = phone.register()
    phone.answer(ok(second, 120), at=450.5)  # the registrar shortens the lifetime
    assert phone.reg.get_timer() == 450.0 + 90.0

    assert phone.advance() == 540.0
    third = phone.register()
    phone.answer(ok(third, listed=[f"<{contact()}>"], expires_header="60"), at=541.0)
    assert phone.reg.get_timer() == 540.0 + 45.0

    assert phone.advance() == 585.0
    fourth = phone.register()
    requests = [first, second, third, fourth]
    assert [r.cseq.seq for r in requests] == [1, 2, 3, 4]
    assert {r.call_id for r in requests} == {CALL_ID}
    assert {r.from_.tag for r in requests} == {"tag1"}
    assert len({r.top_via.branch for r in requests}) == 4
    assert {r.expires for r in requests} == {600}
    assert [e.expires for e in phone.events() if isinstance(e, Registered)] == [120, 60]


def test_our_contacts_expires_wins_over_the_expires_header_and_others_are_ignored() -> None:
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.reg.start(0.0)
    request = phone.register()
    phone.answer(
        ok(
            request,
            listed=["<sip:other@198.51.100.7>;expires=3000", f"<{contact()}>;expires=300"],
            expires_header="900",
        )
    )
    assert phone.events() == [Registered(aor=AOR, contact=contact(), expires=300)]
    assert phone.reg.get_timer() == 225.0


def test_a_longer_grant_than_asked_is_cut_to_what_we_asked() -> None:
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.reg.start(0.0)
    phone.answer(ok(phone.register(), 7200))
    assert phone.events() == [Registered(aor=AOR, contact=contact(), expires=600)]
    assert phone.reg.get_timer() == 450.0


@pytest.mark.parametrize(
    ("listed", "expires_header", "expires", "note"),
    [
        (["<sip:other@198.51.100.7>;expires=30"], "120", 120, "does not list our Contact"),
        ([], None, 600, "does not list our Contact; no lifetime given; assumed 600"),
        ([], "soon", 600, "unreadable Expires"),
        ([f"<{contact()}>"], None, 600, "no lifetime given; assumed 600"),
    ],
)
def test_a_2xx_that_does_not_say_our_lifetime_plainly_is_survived(
    listed: list[str], expires_header: str | None, expires: int, note: str
) -> None:
    phone = Phone()
    phone.reg.start(0.0)
    response = ok(phone.register(), listed=listed)
    if expires_header is not None:
        response.headers.add("Expires", expires_header)
    phone.reg.handle_response(response, 0.0)  # not re-parsed: a garbage Expires fails parsing
    [event] = phone.events()
    assert isinstance(event, Registered)
    assert event.expires == expires
    assert event.note is not None
    assert note in event.note


def test_a_2xx_with_an_unreadable_contact_is_survived() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    response = ok(phone.register(), listed=["<sip:broken@[::1>"])
    phone.reg.handle_response(response, 0.0)
    [event] = phone.events()
    assert isinstance(event, Registered)
    assert event.note is not None
    assert "unreadable Contact" in event.note


def test_a_grant_of_zero_seconds_is_a_failure_with_back_off() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(ok(phone.register(), listed=[f"<{contact()}>;expires=0"]))
    [event] = phone.events()
    assert isinstance(event, RegistrationFailed)
    assert (event.status, event.retry_in) == (200, 5.0)
    assert phone.state() is RegistrationState.RETRY_WAIT


def test_provisional_responses_and_answers_to_other_requests_change_nothing() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    request = phone.register()
    phone.answer(Response.for_request(request, 100))
    stray = Response.for_request(request, 200, to_tag="x")
    stray.headers.set("CSeq", "7 REGISTER")
    phone.answer(stray)
    foreign = Response.for_request(request, 200, to_tag="x")
    foreign.headers.set("Call-ID", "someone-else")
    phone.answer(foreign)
    no_cseq = Response.for_request(request, 200, to_tag="x")
    no_cseq.headers.remove("CSeq")
    phone.reg.handle_response(no_cseq, 0.0)
    assert phone.events() == []
    assert phone.state() is RegistrationState.REGISTERING
    phone.answer(ok(request))
    assert isinstance(phone.events()[0], Registered)


# Digest


def test_a_401_is_answered_once_with_credentials_the_registrar_verifies() -> None:
    server = DigestServer(401)
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.reg.start(0.0)
    first = phone.register()
    phone.answer(server.challenge(first))
    assert phone.events() == []
    second = phone.register()
    assert server.accepts(second)
    assert server.nonce_count(second) == 1
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.call_id == first.call_id
    assert second.top_via.branch != first.top_via.branch
    phone.answer(ok(second), at=0.1)
    assert phone.events() == [Registered(aor=AOR, contact=contact(), expires=600)]

    # The refresh carries credentials for the same nonce with the next nonce count.
    phone.advance()
    refresh = phone.register()
    assert server.accepts(refresh)
    assert server.nonce_count(refresh) == 2


def test_a_407_is_answered_with_proxy_authorization() -> None:
    proxy = DigestServer(407, realm="proxy.example")
    phone = Phone(replace(SETTINGS, outbound_proxy=parse_uri("sip:proxy.example")))
    phone.reg.start(0.0)
    phone.answer(proxy.challenge(phone.register()))
    second = phone.register()
    assert proxy.accepts(second)
    assert "Authorization" not in second.headers
    phone.answer(ok(second))
    assert isinstance(phone.events()[0], Registered)


def test_a_proxy_and_a_registrar_challenge_in_turn_and_both_are_answered() -> None:
    proxy = DigestServer(407, realm="proxy.example")
    registrar = DigestServer(401)
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(proxy.challenge(phone.register()))
    phone.answer(registrar.challenge(phone.register()))
    third = phone.register()
    assert proxy.accepts(third)
    assert registrar.accepts(third)
    assert proxy.nonce_count(third) == 2
    assert registrar.nonce_count(third) == 1
    phone.answer(ok(third))
    assert isinstance(phone.events()[0], Registered)


def test_a_stale_nonce_is_answered_again_without_counting_as_a_wrong_password() -> None:
    server = DigestServer(401)
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(server.challenge(phone.register()))
    second = phone.register()
    assert server.accepts(second)
    phone.answer(server.challenge(second, stale=True))
    assert phone.events() == []
    third = phone.register()
    assert server.accepts(third)
    assert server.nonce_count(third) == 1
    phone.answer(ok(third))
    assert isinstance(phone.events()[0], Registered)


def test_refused_preemptive_credentials_on_a_refresh_are_not_a_wrong_password() -> None:
    """Registrars that allow no nonce reuse challenge the refresh afresh, without stale."""
    server = DigestServer(401)
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.reg.start(0.0)
    phone.answer(server.challenge(phone.register()))
    phone.answer(ok(phone.register()))
    phone.events()
    phone.advance()
    refresh = phone.register()
    phone.answer(server.challenge(refresh))
    answered = phone.register()
    assert server.accepts(answered)
    phone.answer(ok(answered))
    assert [type(e) for e in phone.events()] == [Registered]


@pytest.mark.parametrize("status", [401, 407])
def test_a_second_challenge_for_the_same_credentials_is_a_wrong_password(status: int) -> None:
    server = DigestServer(status)
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(server.challenge(phone.register()))
    phone.answer(server.challenge(phone.register()))
    [event] = phone.events()
    assert isinstance(event, RegistrationFailed)
    assert event.status == status
    assert "wrong user name or password" in event.reason
    assert event.retry_in == 5.0
    assert phone.sent() == []
    assert phone.state() is RegistrationState.RETRY_WAIT
    assert phone.reg.get_timer() == 5.0

    # The next attempt starts clean: no replay of the refused credentials.
    phone.advance()
    assert server.names.credentials not in phone.register().headers


def test_a_wrong_password_sends_a_bounded_number_of_registers_in_ten_minutes() -> None:
    server = DigestServer(401)
    phone = Phone()
    phone.reg.start(0.0)
    sent_at: list[float] = []
    while phone.now <= 600.0:
        while sent := phone.sent():
            for request, _, _ in sent:
                sent_at.append(phone.now)
                phone.answer(server.challenge(request))
        phone.advance()
    # Attempts at 0, 5, 15, 35, 75, 155, 315 (gaps 5·2^n, jitter 1), two REGISTERs each.
    assert sent_at == [t for t in (0.0, 5.0, 15.0, 35.0, 75.0, 155.0, 315.0) for _ in (1, 2)]
    failures = [e for e in phone.events() if isinstance(e, RegistrationFailed)]
    assert [e.retry_in for e in failures] == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0]
    assert {e.status for e in failures} == {401}


def test_a_challenge_without_a_usable_digest_is_a_failure() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(failure(phone.register(), 401, ("WWW-Authenticate", "Basic realm=x")))
    [event] = phone.events()
    assert isinstance(event, RegistrationFailed)
    assert event.status == 401
    assert "unusable challenge" in event.reason


def test_endless_stale_challenges_stop_after_a_few_immediate_answers() -> None:
    server = DigestServer(401)
    phone = Phone()
    phone.reg.start(0.0)
    sent = 0
    while not phone.events():
        sent += 1
        phone.answer(server.challenge(phone.register(), stale=True))
    assert sent == 5
    assert phone.state() is RegistrationState.RETRY_WAIT


def test_403_is_a_failure_with_back_off() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(failure(phone.register(), 403))
    assert phone.events() == [
        RegistrationFailed(aor=AOR, status=403, reason="403 Forbidden", retry_in=5.0)
    ]


# 423, 503, back-off, registrar list


def test_423_is_retried_at_once_with_min_expires_which_later_refreshes_keep() -> None:
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.reg.start(0.0)
    phone.answer(failure(phone.register(), 423, ("Min-Expires", "1800")))
    assert phone.events() == []
    second = phone.register()
    assert second.expires == 1800
    assert second.contacts[0].expires == 1800
    phone.answer(ok(second))
    assert phone.events() == [Registered(aor=AOR, contact=contact(), expires=1800)]
    assert phone.advance() == 1350.0
    assert phone.register().expires == 1800


@pytest.mark.parametrize("extra", [(), (("Min-Expires", "600"),), (("Min-Expires", "soon"),)])
def test_423_without_a_longer_min_expires_is_a_failure(extra: tuple[tuple[str, str], ...]) -> None:
    phone = Phone()
    phone.reg.start(0.0)
    response = failure(phone.register(), 423, *extra)
    phone.reg.handle_response(response, 0.0)
    [event] = phone.events()
    assert isinstance(event, RegistrationFailed)
    assert event.status == 423
    assert phone.sent() == []


def test_a_registrar_raising_min_expires_forever_is_not_followed_forever() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    floor = 600
    while not phone.events():
        floor += 1
        phone.answer(failure(phone.register(), 423, ("Min-Expires", str(floor))))
    assert floor == 605
    assert phone.state() is RegistrationState.RETRY_WAIT


@pytest.mark.parametrize(
    ("retry_after", "retry_in"),
    [("120", 120.0), ("2 (maintenance);duration=60", 5.0), ("99999999", 3600.0)],
)
def test_503_retry_after_is_honoured_when_longer_than_the_back_off(
    retry_after: str, retry_in: float
) -> None:
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(failure(phone.register(), 503, ("Retry-After", retry_after)), at=10.0)
    [event] = phone.events()
    assert event == RegistrationFailed(
        aor=AOR, status=503, reason="503 Service Unavailable", retry_in=retry_in
    )
    assert phone.reg.get_timer() == 10.0 + retry_in
    assert phone.advance() == 10.0 + retry_in
    assert phone.register().cseq.seq == 2


def test_back_off_doubles_to_the_maximum_and_never_gives_up() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    delays = []
    for _ in range(12):
        phone.fail(phone.register())
        [event] = phone.events()
        assert isinstance(event, RegistrationFailed)
        assert event.status is None
        assert event.reason == "timeout"
        delays.append(event.retry_in)
        phone.advance()
    assert delays == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, *[300.0] * 6]
    assert phone.state() is RegistrationState.REGISTERING


def test_success_resets_the_back_off() -> None:
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.reg.start(0.0)
    phone.fail(phone.register())
    phone.advance()
    phone.fail(phone.register())
    phone.advance()
    phone.answer(ok(phone.register()))
    phone.advance()
    phone.fail(phone.register())
    assert [e.retry_in for e in phone.events() if isinstance(e, RegistrationFailed)] == [
        5.0,
        10.0,
        5.0,
    ]


@pytest.mark.parametrize(
    ("jitter", "fraction"),
    [(0.0, 0.5), (0.25, 0.625), (0.5, 0.75), (1.0, 1.0), (-3.0, 0.5), (7.0, 1.0)],
)
def test_jitter_spreads_each_wait_over_the_upper_half_of_its_ceiling(
    jitter: float, fraction: float
) -> None:
    for rounds, ceiling in [(1, 5.0), (2, 10.0), (7, 300.0), (400, 300.0)]:
        assert backoff_delay(rounds, jitter, 5.0, 300.0) == ceiling * fraction


def test_the_jitter_reaches_the_failure_event() -> None:
    phone = Phone(jitter=0.0)
    phone.reg.start(0.0)
    phone.fail(phone.register())
    assert [e.retry_in for e in phone.events() if isinstance(e, RegistrationFailed)] == [2.5]


def test_registrars_are_tried_in_order_and_back_off_follows_a_full_round() -> None:
    first, second, third = (parse_uri(f"sip:reg{n}.example") for n in (1, 2, 3))
    phone = Phone(replace(SETTINGS, registrars=(first, second, third)))
    phone.reg.start(0.0)
    sent: list[tuple[Request, Target, RequestPurpose]] = []

    def next_request() -> Request:
        [out] = phone.sent()
        sent.append(out)
        return out[0]

    phone.fail(next_request())
    phone.answer(failure(next_request(), 500))
    phone.answer(failure(next_request(), 503))
    assert [e.retry_in for e in phone.events() if isinstance(e, RegistrationFailed)] == [
        0.0,
        0.0,
        5.0,
    ]
    assert phone.sent() == []
    phone.advance()
    phone.answer(ok(next_request()))
    assert [str(r.uri) for r, _, _ in sent] == [
        "sip:reg1.example",
        "sip:reg2.example",
        "sip:reg3.example",
        "sip:reg1.example",
    ]
    assert [t.host for _, t, _ in sent] == [f"reg{n}.example" for n in (1, 2, 3, 1)]
    assert [r.cseq.seq for r, _, _ in sent] == [1, 2, 3, 4]
    assert {r.call_id for r, _, _ in sent} == {CALL_ID}
    assert phone.reg.trusted_sources() == (Address("reg1.example", 5060),)


def test_a_registrar_that_asked_for_time_is_waited_for_when_its_turn_comes() -> None:
    first, second = parse_uri("sip:reg1.example"), parse_uri("sip:reg2.example")
    phone = Phone(replace(SETTINGS, registrars=(first, second)))
    phone.reg.start(0.0)
    phone.answer(failure(phone.register(), 503, ("Retry-After", "60")))
    to_second = phone.register()  # at once: the Retry-After concerns the first only
    assert str(to_second.uri) == "sip:reg2.example"
    phone.fail(to_second, at=1.0)
    assert [e.retry_in for e in phone.events() if isinstance(e, RegistrationFailed)] == [0.0, 59.0]


def test_refreshes_stay_with_the_registrar_that_accepted() -> None:
    first, second = parse_uri("sip:reg1.example"), parse_uri("sip:reg2.example")
    phone = Phone(replace(SETTINGS, registrars=(first, second), keepalive_interval=0.0))
    phone.reg.start(0.0)
    phone.fail(phone.register())
    phone.answer(ok(phone.register()))
    phone.advance()
    assert str(phone.register().uri) == "sip:reg2.example"


# rport / received


def test_a_registrar_that_sees_another_address_gets_a_corrected_contact() -> None:
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.reg.start(0.0)
    first = phone.register()
    phone.answer(ok(first, received="203.0.113.5", rport=40000), at=0.1)
    assert phone.events() == []
    public = contact("203.0.113.5", 40000)
    correction = phone.register()
    assert correction.headers.lines("Contact") == [
        f"<{contact()}>;expires=0",
        f"<{public}>;expires=600",
    ]
    assert correction.top_via.sent_by == "192.0.2.10:5060"
    assert correction.cseq.seq == 2
    phone.answer(ok(correction, received="203.0.113.5", rport=40000), at=0.3)
    assert phone.events() == [Registered(aor=AOR, contact=public, expires=600)]
    assert phone.reg.contact == public
    assert phone.reg.get_timer() == 0.1 + 450.0
    phone.advance()
    assert phone.register().headers.lines("Contact") == [f"<{public}>;expires=600"]


def test_an_rport_alone_corrects_the_port_and_a_matching_via_corrects_nothing() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(ok(phone.register(), rport=5060))
    assert isinstance(phone.events()[0], Registered)
    phone.reg.start(1.0)
    phone.answer(ok(phone.register(), rport=6000))
    assert phone.register().contacts[1].uri == contact(port=6000)


def test_a_correction_that_still_does_not_match_is_accepted_with_a_note() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(ok(phone.register(), received="203.0.113.5", rport=40000))
    correction = phone.register()
    phone.answer(ok(correction, received="203.0.113.5", rport=40001))
    [event] = phone.events()
    assert isinstance(event, Registered)
    assert event.contact == contact("203.0.113.5", 40000)
    assert event.note is not None
    assert "203.0.113.5:40001" in event.note
    assert phone.sent() == []


def test_over_tcp_the_connections_port_is_not_taken_for_our_contact() -> None:
    phone = Phone(local=Target("tcp", "192.0.2.10", 5060))
    phone.reg.start(0.0)
    phone.answer(ok(phone.register(), received="203.0.113.5", rport=53124))
    [event] = phone.events()
    assert isinstance(event, Registered)
    assert event.contact == contact(transport="tcp")
    assert phone.sent() == []


def test_an_ipv6_received_is_bracketed_in_the_contact() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    phone.answer(ok(phone.register(), received="2001:db8::5", rport=5060))
    assert phone.register().contacts[1].uri == contact("[2001:db8::5]")


# Keep-alives


def test_udp_keepalives_are_options_to_the_registrar_every_interval() -> None:
    phone = Phone(replace(SETTINGS, outbound_proxy=parse_uri("sip:proxy.example")))
    phone.registered()
    assert phone.reg.get_timer() == 25.0
    assert phone.advance() == 25.0
    [(options, target, purpose)] = phone.sent()
    assert (target, purpose) == (Target("udp", "proxy.example", 5060), RequestPurpose.KEEPALIVE)
    assert options.method == "OPTIONS"
    assert str(options.uri) == "sip:pbx.example"
    assert options.to == NameAddr(uri=PBX)
    assert options.from_.uri == AOR
    assert options.call_id != CALL_ID
    assert str(options.cseq) == "1 OPTIONS"
    assert options.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    assert options.top_via.has_rport
    phone.answer(Response.for_request(options, 200))
    assert phone.advance() == 50.0
    second = phone.options()
    assert second.call_id != options.call_id
    phone.answer(Response.for_request(second, 405))  # any answer shows the path works
    assert phone.events() == []
    assert phone.state() is RegistrationState.REGISTERED
    assert phone.reg.get_timer() == 75.0


def test_a_keepalive_answer_is_never_taken_for_a_register_answer() -> None:
    """The OPTIONS has CSeq 1 like the first REGISTER: routing goes by method and Call-ID."""
    phone = Phone()
    first = phone.registered()
    phone.advance()
    options = phone.options()
    assert options.cseq.seq == first.cseq.seq
    phone.answer(failure(options, 401, ("WWW-Authenticate", 'Digest realm="x", nonce="y"')))
    assert phone.sent() == []
    assert phone.events() == []
    assert phone.state() is RegistrationState.REGISTERED


def test_one_keepalive_at_a_time_and_none_once_a_refresh_is_under_way() -> None:
    phone = Phone()
    phone.registered()
    phone.advance()
    options = phone.options()
    assert phone.advance() == 50.0
    assert phone.sent() == []
    phone.reg.handle_timer(450.0)
    register = phone.register()
    phone.fail(options)  # the refresh is already testing the path
    assert phone.sent() == []
    phone.answer(ok(register))
    assert isinstance(phone.events()[0], Registered)


def test_a_keepalive_that_times_out_re_registers_at_once() -> None:
    phone = Phone()
    phone.registered()
    phone.advance()
    options = phone.options()
    phone.fail(options, at=25.0 + 32.0)
    register = phone.register()
    assert register.cseq.seq == 2
    assert phone.state() is RegistrationState.REGISTERING
    assert phone.events() == []


def test_the_late_timeout_of_an_earlier_keepalive_is_ignored() -> None:
    phone = Phone()
    phone.registered(expires=40)  # refresh at 30, between the keep-alives
    assert phone.advance() == 25.0
    earlier = phone.options()
    assert phone.advance() == 30.0
    phone.answer(ok(phone.register()))
    assert phone.advance() == 55.0
    phone.options()
    phone.fail(earlier, at=25.0 + 32.0)
    assert phone.sent() == []
    assert phone.state() is RegistrationState.REGISTERED


def test_a_keepalive_answer_that_saw_us_elsewhere_re_registers_with_the_new_address() -> None:
    phone = Phone()
    phone.registered()
    phone.advance()
    options = phone.options()
    answer = Response.for_request(options, 200)
    answer.headers.set("Via", str(options.top_via.with_param("received", "203.0.113.9")))
    phone.answer(answer)
    register = phone.register()
    assert register.headers.lines("Contact") == [
        f"<{contact()}>;expires=0",
        f"<{contact('203.0.113.9')}>;expires=600",
    ]


def test_tcp_keepalives_are_crlf_on_the_connection_and_no_options() -> None:
    phone = Phone(replace(SETTINGS, registrars=(parse_uri("sip:pbx.example;transport=tcp"),)))
    phone.registered()
    times = [phone.advance() for _ in range(3)]
    assert times == [25.0, 50.0, 75.0]
    assert phone.reg.take_keepalives() == [Target("tcp", "pbx.example", 5060)] * 3
    assert phone.sent() == []


def test_a_late_timer_call_restarts_the_keepalive_schedule() -> None:
    phone = Phone()
    phone.registered()
    phone.reg.handle_timer(90.0)
    phone.options()
    assert phone.reg.get_timer() == 115.0


def test_no_keepalives_when_the_interval_is_zero_or_not_registered() -> None:
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.registered()
    assert phone.reg.get_timer() == 450.0
    other = Phone()
    other.reg.start(0.0)
    other.fail(other.register())
    assert other.reg.get_timer() == 5.0


# Address change, shutdown


def test_a_local_address_change_re_registers_and_removes_the_old_binding() -> None:
    phone = Phone()
    phone.registered()
    phone.reg.local_address_changed("198.51.100.20", 5062, 30.0)
    register = phone.register()
    assert register.top_via.sent_by == "198.51.100.20:5062"
    assert register.headers.lines("Contact") == [
        f"<{contact()}>;expires=0",
        f"<{contact('198.51.100.20', 5062)}>;expires=600",
    ]
    phone.answer(ok(register))
    assert phone.events() == [
        Registered(aor=AOR, contact=contact("198.51.100.20", 5062), expires=600)
    ]


def test_an_answer_or_failure_for_a_superseded_register_is_ignored() -> None:
    phone = Phone()
    phone.reg.start(0.0)
    old = phone.register()
    phone.reg.local_address_changed("198.51.100.20", 5060, 1.0)
    new = phone.register()
    phone.answer(ok(old))
    phone.fail(old)
    assert phone.events() == []
    phone.answer(ok(new))
    assert phone.events() == [Registered(aor=AOR, contact=contact("198.51.100.20"), expires=600)]


def test_an_address_change_before_start_is_only_remembered() -> None:
    phone = Phone()
    phone.reg.local_address_changed("198.51.100.20", 5060, 0.0)
    assert phone.sent() == []
    phone.reg.start(1.0)
    assert phone.register().contacts[0].uri == contact("198.51.100.20")


def test_stop_unregisters_our_contact_and_then_reports_unregistered() -> None:
    phone = Phone()
    phone.registered()
    phone.reg.stop(100.0)
    assert phone.state() is RegistrationState.UNREGISTERING
    request = phone.register()
    assert request.expires == 0
    assert request.headers.lines("Contact") == [f"<{contact()}>;expires=0"]
    assert (request.call_id, request.cseq.seq) == (CALL_ID, 2)
    assert phone.events() == []
    phone.reg.stop(100.5)  # a second stop while unregistering changes nothing
    assert phone.sent() == []
    phone.answer(Response.for_request(request, 200, to_tag="registrar"))
    assert phone.events() == [Unregistered(aor=AOR)]
    assert phone.state() is RegistrationState.UNREGISTERED
    assert phone.reg.get_timer() is None
    assert phone.reg.trusted_sources() == ()


def test_an_unregister_answers_a_challenge_and_gives_up_on_failure() -> None:
    server = DigestServer(401)
    phone = Phone()
    phone.registered()
    phone.reg.stop(1.0)
    phone.answer(server.challenge(phone.register()))
    request = phone.register()
    assert server.accepts(request)
    assert request.expires == 0
    phone.fail(request)
    assert phone.events() == [Unregistered(aor=AOR)]


def test_an_unregister_refused_is_still_the_end() -> None:
    phone = Phone()
    phone.registered()
    phone.reg.stop(1.0)
    phone.answer(failure(phone.register(), 500))
    assert phone.events() == [Unregistered(aor=AOR)]
    assert phone.sent() == []


def test_stop_when_not_registered_just_reports_unregistered() -> None:
    phone = Phone()
    phone.reg.stop(0.0)
    assert phone.events() == [Unregistered(aor=AOR)]
    assert phone.sent() == []
    failed = Phone()
    failed.reg.start(0.0)
    failed.answer(failure(failed.register(), 403))
    failed.events()
    failed.reg.stop(1.0)
    assert failed.events() == [Unregistered(aor=AOR)]
    assert failed.sent() == []
    assert failed.reg.get_timer() is None


def test_stop_while_a_refresh_waits_to_be_retried_removes_the_old_binding() -> None:
    phone = Phone(replace(SETTINGS, keepalive_interval=0.0))
    phone.registered()
    phone.advance()
    phone.answer(failure(phone.register(), 500))
    assert phone.state() is RegistrationState.RETRY_WAIT
    phone.reg.stop(460.0)
    assert phone.register().expires == 0


def test_start_after_stop_registers_again_with_the_same_call_id() -> None:
    phone = Phone()
    phone.registered()
    phone.reg.stop(1.0)
    phone.answer(Response.for_request(phone.register(), 200, to_tag="registrar"))
    phone.events()
    phone.reg.start(2.0)
    request = phone.register()
    assert (request.call_id, request.cseq.seq, request.expires) == (CALL_ID, 3, 600)


def test_trusted_sources_follow_the_registrar_in_use() -> None:
    phone = Phone(replace(SETTINGS, registrars=(PBX, parse_uri("sip:10.0.0.9:5070"))))
    assert phone.reg.trusted_sources() == ()
    phone.reg.start(0.0)
    assert phone.reg.trusted_sources() == (Address("pbx.example", 5060),)
    phone.fail(phone.register())
    assert phone.reg.trusted_sources() == (Address("10.0.0.9", 5070),)


# Through the real transaction layer


def test_requests_pass_the_transaction_layer_and_its_timeouts_route_back() -> None:
    """What the UA core does: send each request as a client transaction and hand a Timer F
    timeout back with its request. A lost REGISTER fails at 32 s; a lost keep-alive at 57 s
    re-registers at once."""
    layer = TransactionLayer()
    phone = Phone()
    phone.reg.start(0.0)

    def send_and_run(until: float) -> list[TransactionTimeout]:
        timeouts = []
        for request, target, _ in phone.reg.take_requests():
            layer.send_request(request, target, phone.now)
        while (deadline := layer.get_timer()) is not None and deadline <= until:
            phone.now = deadline
            layer.handle_timer(deadline)
            while (event := layer.next_event()) is not None:
                if isinstance(event, TransactionTimeout):
                    timeouts.append(event)
        return timeouts

    [timeout] = send_and_run(100.0)
    assert timeout.request.method == "REGISTER"
    phone.reg.handle_failure(32.0, "timeout", request=timeout.request)
    assert phone.events() == [
        RegistrationFailed(aor=AOR, status=None, reason="timeout", retry_in=5.0)
    ]
    phone.advance()
    [(register, target, _)] = phone.sent()
    key = layer.send_request(register, target, phone.now)
    layer.receive(ok(register), target.address, "udp", phone.now)
    [event] = [e for e in iter(layer.next_event, None) if isinstance(e, ResponseReceived)]
    assert event.key == key
    phone.answer(event.response)
    assert isinstance(phone.events()[0], Registered)

    phone.advance()  # the keep-alive at 37 + 25
    [timeout] = send_and_run(200.0)
    assert timeout.request.method == "OPTIONS"
    phone.reg.handle_failure(phone.now, "timeout", request=timeout.request)
    assert phone.register().cseq.seq == 3
