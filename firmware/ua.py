"""The user agent as the rest of the firmware sees it: a small API and one stream of events.

Every method posts to the stack thread, which alone touches the SIP objects; listeners are
called on the stack thread and must only queue (the control socket and the phone logic do).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from typing import Any

from firmware.config import AccountConfig, Config
from firmware.sip.events import UNREGISTERED, UaEvent
from firmware.sip.registration import RegistrationSettings
from firmware.sip.timers import TimerConfig
from firmware.sip.transport_types import Address
from firmware.sip.uri import Uri, parse_uri
from firmware.sip.useragent import CoreSettings, UserAgentCore
from firmware.transport import StackThread, parse_listen

log = logging.getLogger("deskphone.ua")

Listener = Callable[[UaEvent], None]
VERSION = "0.1.0"


def _token() -> str:
    return secrets.token_hex(8)


def _jitter() -> float:
    return secrets.randbelow(1_000_000) / 1_000_000


def registration_settings(account: AccountConfig, sip_config: Any) -> RegistrationSettings:
    aor = parse_uri(account.uri)
    registrars: tuple[Uri, ...] = tuple(parse_uri(text) for text in account.registrar) or (
        Uri(scheme=aor.scheme, host=aor.host, port=aor.port),
    )
    return RegistrationSettings(
        aor=aor,
        registrars=registrars,
        outbound_proxy=parse_uri(account.outbound_proxy) if account.outbound_proxy else None,
        username=account.auth_user or aor.user or "",
        password=account.password.value,
        display_name=account.display_name,
        expires=sip_config.register_expires,
        keepalive_interval=float(sip_config.keepalive_interval),
        retry_min=float(sip_config.register_retry_min),
        retry_max=float(sip_config.register_retry_max),
        user_agent=sip_config.user_agent,
    )


def core_settings(config: Config) -> CoreSettings:
    sip = config.sip
    return CoreSettings(
        timers=TimerConfig(t1=sip.timers.t1, t2=sip.timers.t2, t4=sip.timers.t4),
        user_agent=sip.user_agent,
        trusted=tuple(ipaddress.ip_network(net, strict=False) for net in sip.trusted),
        accounts=tuple(registration_settings(account, sip) for account in sip.accounts),
        auto_answer=frozenset(
            str(parse_uri(account.uri)) for account in sip.accounts if account.auto_answer
        ),
        max_calls=sip.max_calls,
        reject_status=sip.reject_status,
    )


def contact_host(listen_host: str, towards: str | None) -> str:
    """The address peers can reach us at; a wildcard listen address is not one. The route
    towards the registrar picks it (a dual-stack socket reaches an IPv4 registrar over IPv4)."""
    try:
        if not ipaddress.ip_address(listen_host).is_unspecified:
            return listen_host
    except ValueError:
        return listen_host
    probe_host = towards or listen_host
    family = socket.AF_INET6 if ":" in probe_host else socket.AF_INET
    probe_target = towards or ("2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1")
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((probe_target, 9))  # no packet is sent: this only picks a route
            return str(probe.getsockname()[0])
        except OSError:
            return "::1" if family == socket.AF_INET6 else "127.0.0.1"


class UserAgent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._settings = core_settings(config)
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        first_registrar = next(
            (a.registrars[0].host for a in self._settings.accounts if a.registrars), None
        )
        listen_host, _ = parse_listen(config.sip.listen)
        self._listen_host = listen_host
        self._towards = _literal_or_none(first_registrar)
        self._contact_host = contact_host(listen_host, self._towards)
        self._stack = StackThread(
            self._make_core,
            config.sip.listen,
            after_step=self._drain,
            on_network_change=self._network_changed if _is_wildcard(listen_host) else None,
        )
        self._stack.trace = config.log.sip_trace

    def _make_core(self, local: tuple[str, int]) -> UserAgentCore:
        return UserAgentCore(
            self._settings,
            Address(self._contact_host, local[1]),
            new_token=_token,
            jitter=_jitter,
        )

    def _network_changed(self, now: float) -> None:
        """On the stack thread: an address or route changed somewhere; see whether ours did."""
        host = contact_host(self._listen_host, self._towards)
        if host != self.core.local.host:
            log.info("local address is now %s", host)
            self.core.local_address_changed(host, now)

    @property
    def core(self) -> UserAgentCore:
        core = self._stack.core
        assert isinstance(core, UserAgentCore)
        return core

    @property
    def listen_port(self) -> int:
        return self._stack.local_address[1]

    @property
    def alive(self) -> bool:
        return self._stack.alive

    def add_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)

    def start(self) -> None:
        self._stack.start()
        self._stack.post(self.core.register)

    def stop(self, timeout: float = 3.0) -> None:
        """Remove our bindings (bounded by `timeout`), then stop the stack thread."""
        done = threading.Event()
        waiting = {a["uri"] for a in self.status()["accounts"] if a["state"] != "idle"}

        def on_event(event: UaEvent) -> None:
            if event.name == UNREGISTERED:
                waiting.discard(event.fields.get("account"))
                if not waiting:
                    done.set()

        self.add_listener(on_event)
        if waiting:
            self._stack.post(self.core.unregister)
            if not done.wait(timeout):
                log.warning("un-REGISTER not confirmed for %s", ", ".join(sorted(waiting)))
        self._stack.stop()

    def register(self, account: str | None = None) -> None:
        self._stack.call(lambda now: self.core.register(now, account))

    def unregister(self, account: str | None = None) -> None:
        self._stack.call(lambda now: self.core.unregister(now, account))

    def send_message(self, to: str, text: str, account: str | None = None) -> str:
        """Queue a MESSAGE; its fate comes as a `message_sent` or `message_failed` event."""
        message_id = _token()
        self._stack.call(lambda now: self.core.send_message(now, message_id, to, text, account))
        return message_id

    def dial(self, to: str, account: str | None = None) -> str:
        return self._stack.call(lambda now: self.core.dial(now, to, account))

    def call_command(self, command: str, call: str | None, status: int | None = None) -> None:
        self._stack.call(lambda now: self.core.call_command(now, command, call, status))

    def set_trace(self, enabled: bool) -> None:
        self._stack.trace = enabled

    def status(self) -> dict[str, Any]:
        def snapshot(now: float) -> dict[str, Any]:
            host, port = self._stack.local_address
            return {
                "listen": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "accounts": self.core.account_states(),
                "calls": self.core.call_states(),
            }

        return self._stack.call(snapshot)

    def _drain(self) -> None:
        while (event := self.core.next_event()) is not None:
            log.info("%s %s", event.name, event.fields)
            with self._listeners_lock:
                listeners = list(self._listeners)
            for listener in listeners:
                listener(event)


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _literal_or_none(host: str | None) -> str | None:
    if host is None:
        return None
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None
