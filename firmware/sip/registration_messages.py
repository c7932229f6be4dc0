"""The messages of registration: building REGISTER and keep-alive OPTIONS, and reading what a
registrar's answer says (granted lifetime, Retry-After, the address it saw us at).

Kept apart from the state machine in `registration` so each half reads on its own: here nothing
remembers anything, every function is given all it needs.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from firmware.sip.errors import ParseError
from firmware.sip.headers import MAX_DELTA_SECONDS, Via
from firmware.sip.message import Request, Response
from firmware.sip.transport_types import DEFAULT_PORTS, Address, Target
from firmware.sip.uri import NameAddr, Uri

MAX_FORWARDS = "70"
BRANCH_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: the branch prefix that lets the transaction layer match our responses."""

_LEADING_DIGITS = re.compile(r"[ \t]*([0-9]{1,10})")


def first_hop(uri: Uri, default_transport: str) -> Target:
    """Where a request for `uri` goes before any DNS lookup; a URI that names no transport
    (and is not `sips:`) takes the one the UA listens on, `default_transport`."""
    if uri.transport is None and uri.scheme != "sips":
        uri = uri.with_param("transport", default_transport)
    return Target.from_uri(uri)


def register_request_uri(registrar: Uri) -> Uri:
    """The Request-URI of a REGISTER (§10.2): the registrar's domain, no user part, no
    headers; its parameters (`transport`) stay."""
    return registrar.replace(user=None, password=None, headers=())


def loose_route(proxy: Uri) -> Uri:
    """The outbound proxy as a Route entry: with `;lr` so the Request-URI stays the registrar."""
    return proxy.without_headers() if proxy.has_param("lr") else proxy.with_param("lr")


def contact_uri(user: str, address: Address, transport: str) -> Uri:
    """`sip:TOKEN@host:port`, with `;transport=` when it is not UDP (the default a peer would
    otherwise assume, §19.1.2)."""
    uri = Uri(scheme="sip", user=user, host=address.host, port=address.port)
    return uri if transport == "udp" else uri.with_param("transport", transport)


def with_cookie(branch: str) -> str:
    """A branch from the injected generator, made an RFC 3261 one if it is not already."""
    return branch if branch.startswith(BRANCH_COOKIE) else BRANCH_COOKIE + branch


def our_via(target: Target, local: Address, branch: str) -> Via:
    """Our Via, always with an empty `rport` so the registrar tells us the port it saw
    (RFC 3581 §3) and answers there."""
    return Via(
        transport=target.via_transport,
        host=local.host,
        port=local.port,
        params=(("branch", with_cookie(branch)), ("rport", None)),
    )


@dataclass(frozen=True, kw_only=True)
class Originator:
    """What every request of one registration says about who sends it."""

    aor: Uri
    display_name: str | None
    from_tag: str
    user_agent: str
    route: Uri | None

    def common_headers(self, via: Via) -> list[tuple[str, str]]:
        headers = [("Via", str(via)), ("Max-Forwards", MAX_FORWARDS)]
        if self.route is not None:
            headers.append(("Route", f"<{self.route}>"))
        sender = NameAddr(uri=self.aor.without_headers(), display_name=self.display_name)
        headers.append(("From", str(sender.with_tag(self.from_tag))))
        return headers


def build_register(
    originator: Originator,
    *,
    request_uri: Uri,
    via: Via,
    call_id: str,
    cseq: int,
    bindings: Sequence[tuple[Uri, int]],
    expires: int,
    allow: Sequence[str],
    credentials: Sequence[tuple[str, str]],
) -> Request:
    """A REGISTER for `bindings`, each a (Contact URI, lifetime) pair: lifetime 0 removes it.

    Every Contact carries its own `;expires=` and the Expires header repeats the lifetime asked
    for, so registrars that read only one of the two still understand us (§10.2.1.1).
    """
    headers = originator.common_headers(via)
    headers += [
        ("To", str(NameAddr(uri=originator.aor.without_headers()))),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
    ]
    headers += [("Contact", f"<{uri}>;expires={lifetime}") for uri, lifetime in bindings]
    headers += [
        ("Expires", str(expires)),
        ("Allow", ", ".join(allow)),
        ("User-Agent", originator.user_agent),
        *credentials,
    ]
    return Request("REGISTER", request_uri, headers)


def build_options(originator: Originator, *, request_uri: Uri, via: Via, call_id: str) -> Request:
    """An OPTIONS to the registrar that keeps a UDP path (and its NAT binding) open and shows
    whether it still works; any answer at all means it does."""
    headers = originator.common_headers(via)
    headers += [
        ("To", str(NameAddr(uri=request_uri))),
        ("Call-ID", call_id),
        ("CSeq", "1 OPTIONS"),
        ("User-Agent", originator.user_agent),
    ]
    return Request("OPTIONS", request_uri, headers)


@dataclass(frozen=True, slots=True)
class Grant:
    """The lifetime a registrar gave our binding, and why we believe it when it was not plainly
    stated (`note` is for the log; None when the 2xx listed our Contact with `;expires=`)."""

    seconds: int
    note: str | None = None


def granted_expires(response: Response, contact: Uri, requested: int) -> Grant:
    """Our binding's lifetime from a 2xx to REGISTER (§10.2.4): our Contact's `expires`
    parameter, else the Expires header, else what we asked for. A registrar may shorten the
    lifetime but not lengthen it (§10.3 step 7), so a longer grant is cut to `requested`:
    refreshing early costs one message, refreshing late loses calls."""
    try:
        listed = response.contacts
    except ParseError as error:
        return _fallback(response, requested, f"unreadable Contact in the 2xx ({error})")
    ours = [binding for binding in listed if binding.uri.equivalent(contact)]
    if not ours:
        return _fallback(response, requested, "the 2xx does not list our Contact")
    if ours[0].expires is None:
        return _fallback(response, requested, None)
    return Grant(min(ours[0].expires, requested))


def _fallback(response: Response, requested: int, why: str | None) -> Grant:
    try:
        header = response.expires
    except ParseError as error:
        return Grant(requested, _joined(why, f"unreadable Expires ({error}); assumed {requested}"))
    if header is None:
        return Grant(requested, _joined(why, f"no lifetime given; assumed {requested}"))
    return Grant(min(header, requested), why)


def _joined(first: str | None, second: str) -> str:
    return second if first is None else f"{first}; {second}"


def min_expires(response: Response) -> int | None:
    """The Min-Expires of a 423 (§10.3 step 7), None when missing or unreadable."""
    try:
        return response.headers.min_expires()
    except ParseError:
        return None


def retry_after(response: Response) -> int | None:
    """The seconds of a Retry-After header (§20.33), ignoring its comment and parameters."""
    value = response.headers.get("Retry-After")
    match = _LEADING_DIGITS.match(value or "")
    if match is None:
        return None
    return min(int(match[1]), MAX_DELTA_SECONDS)


def observed_address(response: Response, transport: str) -> Address | None:
    """Where the registrar saw our request come from, by the `received` and `rport` it put in
    our Via (RFC 3581 §4); None when it wrote neither, since then it tells us nothing."""
    try:
        via = response.top_via
    except ParseError:
        return None
    received = via.received
    port = via.rport
    if received is None and port is None:
        return None
    host = via.host if received is None else _bracketed(received)
    return Address(host, port or via.port or DEFAULT_PORTS[transport])


def same_address(first: Address, second: Address) -> bool:
    """Host names compare without case (§19.1.4)."""
    return first.port == second.port and first.host.lower() == second.host.lower()


def _bracketed(host: str) -> str:
    """`received` holds a bare IPv6 address; a Contact or Via host needs it in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
