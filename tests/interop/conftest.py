"""Fixtures that start real SIP peers on 127.0.0.1 for one test and always stop them.

Every peer gets free ports, its own directory under the test's `tmp_path` and a log there;
when a test fails, the tail of every peer's log is added to its report. A missing tool makes
the fixture FAIL with the Debian package to install (./dev.sh test installs them all); only
`capture_factory` skips, and only when not root.

Fixtures
--------
kamailio -> Kamailio
    A started registrar/proxy/presence server with default settings.
kamailio_factory(**settings) -> Kamailio
    Another started server; `settings` are KamailioSettings fields: max_expires (3600),
    min_expires (10), default_expires, reply_423_below_min, noauth_calls, drop_scanners,
    sip_debug (True), domain ("lab.test"), users ({"1001": "pass1001", "1002": "pass1002",
    "2000": "pass2000"}). Servers are stopped after everything that depends on this fixture.
sipp -> Sipp
    Runs SIPp scenarios in `tmp_path/sipp/NN-<scenario>/`; background runs still going at
    teardown are stopped.
baresip_factory(user, *, kamailio, password=None, answermode="manual", regint=60, wav=None)
    -> Baresip
    A started baresip for `user` (password from the server's users by default), registered
    when `kamailio` is given and waited for until it is. It plays `lab_tone_wav` unless told.
capture_factory(ports) -> Capture
    A running tshark capture of `ports` on lo (root only; skips with the reason otherwise).
start_phone(config: dict) -> Phone
    The real firmware (`python -m firmware run --sim`) with that configuration and a control
    socket (tests/interop/phone.py; `phone_config(kamailio, ...)` makes a registering one);
    every phone started is stopped at teardown.
lab_tone_wav -> Path
    60 s of 700 Hz, 8 kHz mono S16 (session-wide).

Kamailio (tests/interop/lab/kamailio.py)
    .host "127.0.0.1", .port (UDP and TCP), .domain, .registrar_uri "sip:127.0.0.1:PORT",
    .aor(user) "sip:USER@lab.test", .users, .db_path, .log_path, .pid, .running
    .options(transport="udp", timeout=2.0) -> status line ("SIP/2.0 200 Keepalive")
    .location(user) -> list[Binding]   live bindings: aor, contact, expires (s left), call_id,
                                       cseq, received, user_agent, socket, path, instance,
                                       reg_id, q, permanent
    .registered_users() -> list[str]   every AoR in the location table
    .add_user(user, password)          also while running
    .rpc(method, *params) -> result    any Kamailio RPC (JSON-RPC over a datagram socket)
    .stop(grace=5.0)  .kill()  .restart(timeout=10.0)  (same ports and DB, empty location;
    the port stays leased from start to close, so no other lab peer gets it meanwhile)
Sipp (tests/interop/lab/sipp.py)
    .run(scenario, remote_port=None, *, timeout=30.0, service=None, auth=None, keys=None,
         calls=1, rate=None, transport="udp", extra_args=()) -> SippResult
    .start(same, ready_timeout=5.0) -> SippRun   (.local_port, .wait(timeout), .stop(),
        .messages() so far, .wait_for_message(predicate, timeout=10.0) -> SippMessage)
    .register(remote_port, user, password, *, contact_port=None, expires=120) -> SippResult
    .options_load(remote_port, *, calls, rate, timeout=60.0) -> SippResult
    scenario: a bundled name (reg_auth, uac_auth_call, uac_cancel, uas_rr, message_uac,
    message_uas, presence_pub, presence_sub, malformed, options_uac), a built-in ("uas") or
    a Path. Keys domain, expires (120), caller (the auth user) and contact_port (SIPp's own
    port) are always set.
    SippResult: .returncode (0 all calls passed, 1 some failed), .ok, .messages
    (SippMessage: direction, start_line, status, method, header(name)), .received(status=,
    method=), .message_log, .successful_calls, .failed_calls, .output_tail, .rundir
Baresip (tests/interop/lab/baresip.py)
    .aor, .sip_port, .ctrl_port, .rtp_ports, .log_path, .recordings, .registered()
    .dial(uri)  .accept()  .hangup()  .command(name, params=None) -> BaresipResponse
    .wait_event(type_name_or_predicate, timeout=10.0) -> BaresipEvent (type, klass, account,
    direction, peer, call_id, param, raw): the oldest event not returned before
    .events -> list[BaresipEvent]  .stop()
    .wait_registered(timeout=10.0)   (start() does it; a refused registration raises at once)
Capture (tests/interop/lab/capture.py)
    .sip_messages() -> list[SipPacket] (time, transport, src_port, dst_port, method, status,
    call_id, cseq_method, summary "REGISTER" / "401 REGISTER"); stops the capture first.
Helpers (tests/interop/lab/)
    util.wait_until(predicate, timeout, interval=0.05, message=...)  for states without events
    ports.free_port(kind="both"|"udp"|"tcp")  ports.free_port_block(size, kind)
    ports.lease_port(kind) -> PortLease (.port, .release())  ports.is_leased(port)
    probe.options_ping(port, *, host, transport, timeout) -> status line
    audio.write_tone_wav(path, *, seconds=60, frequency=700, amplitude=0.3, rate=8000)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.lab.audio import write_tone_wav
from tests.interop.lab.baresip import Baresip
from tests.interop.lab.capture import Capture
from tests.interop.lab.factories import BaresipFactory, CaptureFactory, KamailioFactory
from tests.interop.lab.kamailio import Kamailio, KamailioSettings
from tests.interop.lab.sipp import Sipp
from tests.interop.lab.util import ToolMissingError, find_tool, tail
from tests.interop.phone import Phone

_PEER_LOGS = pytest.StashKey[list[tuple[str, Path]]]()


def _show_log_on_failure(request: pytest.FixtureRequest, description: str, log: Path) -> None:
    request.node.stash.setdefault(_PEER_LOGS, []).append((description, log))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for description, log in item.stash.get(_PEER_LOGS, []):
            report.sections.append((f"{description}: {log}", tail(log, 80)))
    return report


def _require(tool: str) -> None:
    try:
        find_tool(tool)
    except ToolMissingError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def lab_tone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tone_wav(tmp_path_factory.mktemp("lab-audio") / "tone-700hz.wav")


@pytest.fixture
def kamailio_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KamailioFactory]:
    _require("kamailio")
    servers: list[Kamailio] = []

    def make(**settings: Any) -> Kamailio:
        server = Kamailio(tmp_path / f"kamailio-{len(servers) + 1}", KamailioSettings(**settings))
        servers.append(server)
        _show_log_on_failure(request, f"kamailio #{len(servers)}", server.log_path)
        try:
            return server.start()
        except ToolMissingError as error:
            pytest.fail(str(error), pytrace=False)

    yield make
    for server in reversed(servers):
        server.close()


@pytest.fixture
def kamailio(kamailio_factory: KamailioFactory) -> Kamailio:
    return kamailio_factory()


@pytest.fixture
def sipp(tmp_path: Path, kamailio_factory: KamailioFactory) -> Iterator[Sipp]:
    """Depends on kamailio_factory only so that SIPp stops before the servers do."""
    _require("sipp")
    runner = Sipp(tmp_path / "sipp")
    yield runner
    runner.close()


@pytest.fixture
def baresip_factory(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    kamailio_factory: KamailioFactory,
    lab_tone_wav: Path,
) -> Iterator[BaresipFactory]:
    """Depends on kamailio_factory so that baresip unregisters before the servers stop."""
    _require("baresip")
    phones: list[Baresip] = []

    def make(
        user: str,
        *,
        kamailio: Kamailio | None,
        password: str | None = None,
        answermode: str = "manual",
        regint: int = 60,
        wav: Path | None = None,
    ) -> Baresip:
        if password is None:
            password = kamailio.users.get(user, "") if kamailio is not None else ""
        phone = Baresip(
            tmp_path / f"baresip-{len(phones) + 1}-{user}",
            user,
            password,
            registrar_port=None if kamailio is None else kamailio.port,
            domain=kamailio.domain if kamailio is not None else "lab.test",
            answermode=answermode,
            regint=regint,
            wav=wav or lab_tone_wav,
        )
        phones.append(phone)
        _show_log_on_failure(request, f"baresip {user}", phone.log_path)
        try:
            return phone.start()
        except ToolMissingError as error:
            pytest.fail(str(error), pytrace=False)

    yield make
    for phone in reversed(phones):
        phone.stop()


@pytest.fixture
def capture_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CaptureFactory]:
    if os.geteuid() != 0:
        pytest.skip("needs root: tshark can only capture on lo with CAP_NET_RAW")
    _require("tshark")
    captures: list[Capture] = []

    def make(ports: Iterable[int]) -> Capture:
        capture = Capture(tmp_path / f"capture-{len(captures) + 1}", ports)
        captures.append(capture)
        _show_log_on_failure(request, f"tshark #{len(captures)}", capture.log_path)
        return capture.start()

    yield make
    for capture in reversed(captures):
        capture.close()


@pytest.fixture
def start_phone(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Phone]]:
    phones: list[Phone] = []

    def start(config: dict[str, Any]) -> Phone:
        phone = Phone(tmp_path / f"phone{len(phones)}", config)
        phones.append(phone)
        return phone

    yield start
    for phone in phones:
        phone.stop()
