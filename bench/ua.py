"""The SIP stack beside baresip in one run: OPTIONS answered per second, and idle CPU.

Run from the repository root: `.venv/bin/python -m bench.ua` (under a minute), or
`.venv/bin/python -m bench.ua --profile` to profile the pure core on the same OPTIONS in
process, with no peers. Everything runs on 127.0.0.1 through the interop lab's helpers.

Both figures come from the same machine in the same minute, so a busy host slows both
sides alike; the load average is printed so a reader can judge how busy it was. The idle
figure is read from /proc (utime+stime, and voluntary context switches across all threads:
a polling loop shows there even when its CPU time rounds to nothing).
"""

from __future__ import annotations

import argparse
import cProfile
import ipaddress
import os
import pstats
import re
import resource
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from firmware.sip.transport_types import Address
from firmware.sip.useragent import CoreSettings, UserAgentCore
from tests.interop.lab.baresip import Baresip
from tests.interop.lab.kamailio import Kamailio, KamailioSettings
from tests.interop.lab.sipp import Sipp, SippResult
from tests.interop.lab.util import LabError
from tests.interop.phone import Phone

REGISTRAR_EXPIRES = 600
KEEPALIVE_INTERVAL = 25  # the firmware's default
PHONE_USER, BARESIP_USER = "1001", "1002"
TRUSTED = "127.0.0.0/8"

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- The lab's options_uac with a user in the Request-URI: baresip answers 404 to an
     OPTIONS for no user. Anything but a 200 aborts the call (SIPp counts it failed). -->
<scenario name="OPTIONS to a user agent">
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag08[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      User-Agent: sipp-lab
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""

_TOTAL_TIME = re.compile(r"^\s*\S+\(\d+ ms\)/[\d.]+s\s+\d+\s+([\d.]+) s\s+\d+\s", re.M)
_OPTIONS_SENT = re.compile(r"^\s*OPTIONS -+>\s+(\d+)\s+(\d+)", re.M)


# -- /proc ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessSample:
    """CPU clock ticks of the whole process and context switches summed over its threads."""

    ticks: int
    voluntary: int
    involuntary: int
    threads: int


def sample(pid: int) -> ProcessSample:
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    switches = Counter[str]()
    threads = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text(encoding="ascii")
        except FileNotFoundError:
            continue  # the thread ended while we looked
        threads += 1
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                switches[name] += int(value)
    return ProcessSample(
        ticks, switches["voluntary_ctxt_switches"], switches["nonvoluntary_ctxt_switches"], threads
    )


def cpu_seconds(before: ProcessSample, after: ProcessSample) -> float:
    return (after.ticks - before.ticks) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU of every child reaped so far; the difference across a SIPp run is SIPp's own."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the figures ------------------------------------------------------------------------


@dataclass(frozen=True)
class IdleFigures:
    seconds: float
    ticks: int
    cpu: float
    wakeups: int
    preemptions: int
    threads: int

    @property
    def per_minute(self) -> float:
        return self.cpu * 60 / self.seconds

    @property
    def wakeups_per_minute(self) -> float:
        return self.wakeups * 60 / self.seconds


@dataclass(frozen=True)
class LoadRun:
    answered: int
    failed: int
    elapsed: float
    retransmissions: int
    ua_cpu: float
    sipp_cpu: float
    statuses: Mapping[int | None, int]
    answer: str

    @property
    def rate(self) -> float:
        return self.answered / self.elapsed if self.elapsed > 0 else 0.0


def measure_idle(pids: Mapping[str, int], seconds: float) -> dict[str, IdleFigures]:
    before = {name: sample(pid) for name, pid in pids.items()}
    time.sleep(seconds)  # the measurement window itself: nothing of ours runs meanwhile
    after = {name: sample(pid) for name, pid in pids.items()}
    return {
        name: IdleFigures(
            seconds=seconds,
            ticks=after[name].ticks - before[name].ticks,
            cpu=cpu_seconds(before[name], after[name]),
            wakeups=after[name].voluntary - before[name].voluntary,
            preemptions=after[name].involuntary - before[name].involuntary,
            threads=after[name].threads,
        )
        for name in pids
    }


def describe_answer(result: SippResult) -> str:
    """The first 200 SIPp received, in a few words (what the UA does per OPTIONS)."""
    first = next(iter(result.received(status=200)), None)
    if first is None:
        return "no 200"
    length = int(first.header("Content-Length") or 0)
    return (
        f"200 with a {length}-byte {first.header('Content-Type')} body"
        if length
        else "200, no body"
    )


@dataclass(frozen=True)
class Answerer:
    """A UA under OPTIONS load: where SIPp sends, the user it addresses, whose CPU counts."""

    port: int
    user: str
    pid: int


def options_run(
    sipp: Sipp, scenario: Path, answerer: Answerer, args: argparse.Namespace
) -> LoadRun:
    ua_before, sipp_before = sample(answerer.pid), children_cpu_seconds()
    started = time.monotonic()
    result = sipp.run(
        scenario,
        answerer.port,
        service=answerer.user,
        calls=args.calls,
        rate=args.rate,
        extra_args=("-l", str(args.limit)),
        timeout=30 + args.calls / 100,
    )
    wall = time.monotonic() - started
    ua_cpu = cpu_seconds(ua_before, sample(answerer.pid))
    screen = (result.rundir / "screen.log").read_text(encoding="utf-8", errors="replace")
    total_times = _TOTAL_TIME.findall(screen)
    sent = _OPTIONS_SENT.findall(screen)
    return LoadRun(
        answered=result.successful_calls or 0,
        failed=result.failed_calls if result.failed_calls is not None else args.calls,
        elapsed=float(total_times[-1]) if total_times else wall,
        retransmissions=int(sent[-1][1]) if sent else 0,
        ua_cpu=ua_cpu,
        sipp_cpu=children_cpu_seconds() - sipp_before,
        statuses=Counter(message.status for message in result.received()),
        answer=describe_answer(result),
    )


# -- output -----------------------------------------------------------------------------


def table(rows: Sequence[tuple[str, str, str]]) -> str:
    width = max(len(label) for label, _, _ in rows)
    left = max(len(value) for _, value, _ in rows)
    lines = [f"  {label:<{width}}  {a:>{left}}   {b}" for label, a, b in rows]
    return "\n".join(lines)


def runs_row(runs: Sequence[LoadRun], value: Callable[[LoadRun], float], form: str) -> str:
    median = statistics.median(value(run) for run in runs)
    each = " ".join(format(value(run), form) for run in runs)
    return f"{median:{form}} ({each})"


def statuses_text(runs: Sequence[LoadRun]) -> str:
    total: Counter[int | None] = Counter()
    for run in runs:
        total.update(run.statuses)
    return ", ".join(f"{status}: {count}" for status, count in sorted(total.items(), key=str))


def load_hint(phone: Sequence[LoadRun]) -> str:
    phone_busy = statistics.median(run.ua_cpu / run.elapsed for run in phone)
    sipp_busy = statistics.median(run.sipp_cpu / run.elapsed for run in phone)
    bound = (
        "CPU-bound in one Python thread (the GIL allows one core)"
        if phone_busy > 0.8
        else "not CPU-bound: look at socket buffers and scheduling on a busy host"
    )
    return (
        f"  hint: the phone used {phone_busy:.0%} of a core under load, SIPp {sipp_busy:.0%}:"
        f" {bound}; `python -m bench.ua --profile` shows where the core spends its time"
    )


def print_report(
    idle: Mapping[str, IdleFigures],
    phone_runs: Sequence[LoadRun],
    baresip_runs: Sequence[LoadRun],
    args: argparse.Namespace,
) -> None:
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    phone_idle, baresip_idle = idle["phone"], idle["baresip"]
    print(f"\nIdle while registered ({args.idle:g} s window; CPU resolution {tick_ms:g} ms):")
    print(
        table(
            [
                ("", "phone", "baresip"),
                ("CPU s/min", f"{phone_idle.per_minute:.4f}", f"{baresip_idle.per_minute:.4f}"),
                (
                    "% of one core",
                    f"{phone_idle.cpu / args.idle:.3%}",
                    f"{baresip_idle.cpu / args.idle:.3%}",
                ),
                ("clock ticks in window", str(phone_idle.ticks), str(baresip_idle.ticks)),
                (
                    "wake-ups/min (voluntary switches)",
                    f"{phone_idle.wakeups_per_minute:.1f}",
                    f"{baresip_idle.wakeups_per_minute:.1f}",
                ),
                (
                    "preemptions in window",
                    str(phone_idle.preemptions),
                    str(baresip_idle.preemptions),
                ),
                ("threads", str(phone_idle.threads), str(baresip_idle.threads)),
            ]
        )
    )
    print(
        f"\nOPTIONS straight to each UA's SIP port (UDP), {args.calls} per run offered at"
        f" {args.rate:g}/s with at most {args.limit} outstanding; median of {args.repeats}"
        " runs (each run in brackets):"
    )
    print(
        f"  measured: phone = an instance with no account and sip.trusted [{TRUSTED}];"
        f" baresip = {BARESIP_USER}, registered (it answers OPTIONS from anyone);"
        " fresh instances of both for each run"
    )
    print(
        table(
            [
                ("", "phone", "baresip"),
                ("answer", phone_runs[0].answer, baresip_runs[0].answer),
                (
                    "answered/s",
                    runs_row(phone_runs, lambda r: r.rate, ".0f"),
                    runs_row(baresip_runs, lambda r: r.rate, ".0f"),
                ),
                (
                    "failed (all runs)",
                    str(sum(r.failed for r in phone_runs)),
                    str(sum(r.failed for r in baresip_runs)),
                ),
                ("responses received", statuses_text(phone_runs), statuses_text(baresip_runs)),
                (
                    "SIPp retransmissions",
                    runs_row(phone_runs, lambda r: r.retransmissions, ".0f"),
                    runs_row(baresip_runs, lambda r: r.retransmissions, ".0f"),
                ),
                (
                    "UA CPU ms per 1000 answered",
                    runs_row(phone_runs, _cpu_per_thousand, ".0f"),
                    runs_row(baresip_runs, _cpu_per_thousand, ".0f"),
                ),
                (
                    "UA CPU, % of one core",
                    runs_row(phone_runs, lambda r: 100 * r.ua_cpu / r.elapsed, ".0f"),
                    runs_row(baresip_runs, lambda r: 100 * r.ua_cpu / r.elapsed, ".0f"),
                ),
                (
                    "SIPp CPU, % of one core",
                    runs_row(phone_runs, lambda r: 100 * r.sipp_cpu / r.elapsed, ".0f"),
                    runs_row(baresip_runs, lambda r: 100 * r.sipp_cpu / r.elapsed, ".0f"),
                ),
            ]
        )
    )
    phone_rate = statistics.median(run.rate for run in phone_runs)
    baresip_rate = statistics.median(run.rate for run in baresip_runs)
    ratio = phone_rate / baresip_rate if baresip_rate else float("inf")
    load, _, _ = os.getloadavg()
    print(f"\nload average at the end: {load:.2f} on {os.cpu_count()} CPUs")
    verdict = "met" if ratio >= 1.0 else "NOT met"
    print(
        f"OPTIONS/s: phone {phone_rate:.0f}, baresip {baresip_rate:.0f}, ratio {ratio:.2f}"
        f" (target >= 1.0): {verdict}"
    )
    if ratio < 1.0:
        print(load_hint(phone_runs))
    quiet = "met" if phone_idle.ticks == 0 else "NOT met"
    print(
        f"idle CPU: phone {phone_idle.per_minute:.4f} s/min, baresip"
        f" {baresip_idle.per_minute:.4f} s/min (target for the phone: none measurable"
        f" between refreshes: {quiet}; {phone_idle.wakeups_per_minute:.1f} wake-ups/min)"
    )


def _cpu_per_thousand(run: LoadRun) -> float:
    return 1e6 * run.ua_cpu / run.answered if run.answered else float("nan")


# -- the lab run ------------------------------------------------------------------------


def phone_config(sip: Mapping[str, Any]) -> dict[str, Any]:
    return {"sip": {"listen": "127.0.0.1:0", **sip}, "log": {"level": "info"}}


def listen_port(phone: Phone) -> int:
    return int(phone.command("status")["listen"].rsplit(":", 1)[1])


def check_registered(kamailio: Kamailio, user: str, port: int) -> None:
    """The registrar's location table is the proof, not what a UA says of itself."""
    bindings = kamailio.location(user)
    if len(bindings) != 1 or f"127.0.0.1:{port}" not in bindings[0].contact:
        raise LabError(f"{user} is not registered from port {port}: {bindings}")


def start_baresip(workdir: Path, kamailio: Kamailio, stack: ExitStack) -> Baresip:
    baresip = Baresip(
        workdir,
        BARESIP_USER,
        kamailio.users[BARESIP_USER],
        registrar_port=kamailio.port,
        regint=REGISTRAR_EXPIRES,
    )
    stack.callback(baresip.stop)
    baresip.start()
    check_registered(kamailio, BARESIP_USER, baresip.sip_port)
    return baresip


def start_phone(workdir: Path, sip: Mapping[str, Any], stack: ExitStack) -> Phone:
    phone = Phone(workdir, phone_config(sip))
    stack.callback(phone.stop)
    return phone


def measure_idle_pair(
    args: argparse.Namespace, workdir: Path, kamailio: Kamailio
) -> dict[str, IdleFigures]:
    """Phone 1001 and baresip 1002 registered and left alone; both are stopped afterwards."""
    with ExitStack() as stack:
        baresip = start_baresip(workdir / "baresip", kamailio, stack)
        account = {
            "uri": kamailio.aor(PHONE_USER),
            "password": kamailio.users[PHONE_USER],
            "registrar": kamailio.registrar_uri,
        }
        phone = start_phone(
            workdir / "phone",
            {
                "trusted": [],
                "register_expires": REGISTRAR_EXPIRES,
                "keepalive_interval": KEEPALIVE_INTERVAL,
                "accounts": [account],
            },
            stack,
        )
        phone.wait_registered()
        check_registered(kamailio, PHONE_USER, listen_port(phone))
        assert baresip.pid is not None
        print(
            f"kamailio 127.0.0.1:{kamailio.port} (expiry {REGISTRAR_EXPIRES} s):"
            f" phone {PHONE_USER} (pid {phone.process.pid}, keep-alive every"
            f" {KEEPALIVE_INTERVAL} s) and baresip {BARESIP_USER} (pid {baresip.pid})"
            " registered (checked in the location table)"
        )
        time.sleep(1.0)  # let the registration's last packets and log lines settle
        idle = measure_idle({"phone": phone.process.pid, "baresip": baresip.pid}, args.idle)
        check_registered(kamailio, PHONE_USER, listen_port(phone))
        check_registered(kamailio, BARESIP_USER, baresip.sip_port)
        return idle


def measure_load(
    args: argparse.Namespace, workdir: Path, kamailio: Kamailio
) -> dict[str, list[LoadRun]]:
    """Fresh instances for every repetition: a UA keeps each answered OPTIONS transaction
    for Timer J (32 s), so a second run on the same instance would meet the first's table."""
    scenario = workdir / "options_to_user.xml"
    scenario.write_text(SCENARIO, encoding="ascii")
    runs: dict[str, list[LoadRun]] = {"phone": [], "baresip": []}
    with ExitStack() as stack:
        sipp = Sipp(workdir / "sipp")
        stack.callback(sipp.close)
        for repeat in range(1, args.repeats + 1):
            with ExitStack() as instances:
                phone = start_phone(
                    workdir / f"phone-open-{repeat}", {"trusted": [TRUSTED]}, instances
                )
                baresip = start_baresip(workdir / f"baresip-{repeat}", kamailio, instances)
                assert baresip.pid is not None
                answerers = {
                    "phone": Answerer(listen_port(phone), PHONE_USER, phone.process.pid),
                    "baresip": Answerer(baresip.sip_port, BARESIP_USER, baresip.pid),
                }
                order = ["phone", "baresip"] if repeat % 2 else ["baresip", "phone"]
                for name in order:
                    runs[name].append(options_run(sipp, scenario, answerers[name], args))
                    print(f"  run {repeat} {name}: {runs[name][-1].rate:.0f} answered/s")
    return runs


def run_lab(args: argparse.Namespace, workdir: Path) -> None:
    load, _, _ = os.getloadavg()
    print(f"load average at the start: {load:.2f} on {os.cpu_count()} CPUs; workdir {workdir}")
    with ExitStack() as stack:
        kamailio = Kamailio(
            workdir / "kamailio", KamailioSettings(max_expires=REGISTRAR_EXPIRES, sip_debug=False)
        )
        stack.callback(kamailio.close)
        kamailio.start()
        idle = measure_idle_pair(args, workdir, kamailio)
        runs = measure_load(args, workdir, kamailio)
    print_report(idle, runs["phone"], runs["baresip"], args)


# -- the in-process profile -------------------------------------------------------------


def render_options(number: int, user: str = PHONE_USER) -> bytes:
    """The scenario's OPTIONS as SIPp fills it in for call `number` (CRLF, blank line)."""
    template = re.search(r"<!\[CDATA\[(.*?)\]\]>", SCENARIO, re.S)
    assert template is not None
    lines = [line.strip() for line in template[1].strip().splitlines()]
    values = {
        "service": user,
        "remote_ip": "127.0.0.1",
        "remote_port": "5060",
        "transport": "UDP",
        "local_ip": "127.0.0.1",
        "local_port": "5061",
        "branch": f"z9hG4bK-4242-{number}-0",
        "pid": "4242",
        "call_number": str(number),
        "call_id": f"{number}-4242@127.0.0.1",
    }
    text = re.sub(r"\[(\w+)\]", lambda match: values[match[1]], "\r\n".join(lines))
    return (text + "\r\n\r\n").encode("ascii")


def answer_all(requests: Sequence[bytes], rate: float, batch: int) -> Counter[str]:
    """Feed `requests` to a fresh core in the stack thread's pattern (firmware.transport's
    `_step`: a deadline for select, up to `batch` datagrams, the deadline again, the timers,
    the sends) and count the status lines sent back."""
    core = UserAgentCore(
        CoreSettings(trusted=(ipaddress.ip_network(TRUSTED),)),
        Address("127.0.0.1", 5060),
        new_token=lambda: secrets.token_hex(8),
        jitter=lambda: 0.5,
    )
    answers: Counter[str] = Counter()
    now = 1000.0
    for first in range(0, len(requests), batch):
        core.get_timer()
        chunk = requests[first : first + batch]
        now += len(chunk) / rate
        for request in chunk:
            core.receive(request, ("127.0.0.1", 5061), "udp", now)
        deadline = core.get_timer()
        if deadline is not None and deadline <= now:
            core.handle_timer(now)
        for outgoing in core.take_transmissions():
            answers[bytes(outgoing.data).split(b"\r\n", 1)[0].decode()] += 1
    return answers


def run_profile(args: argparse.Namespace) -> None:
    requests = [render_options(number) for number in range(1, args.calls + 1)]
    started = time.perf_counter()
    answers = answer_all(requests, args.rate, args.batch)
    elapsed = time.perf_counter() - started
    print(
        f"pure core, in process, {args.batch} datagram(s) per stack step: {len(requests)}"
        f" OPTIONS in {elapsed:.3f} s = {len(requests) / elapsed:.0f}/s"
        f" ({1e6 * elapsed / len(requests):.0f} µs each); answers {dict(answers)}"
    )
    profiler = cProfile.Profile()
    profiler.runcall(answer_all, requests, args.rate, args.batch)
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats(pstats.SortKey.TIME).print_stats(args.top)


# -- entry point ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--idle", type=float, default=20.0, help="idle window, seconds")
    parser.add_argument("--calls", type=int, default=5000, help="OPTIONS per SIPp run")
    parser.add_argument("--rate", type=float, default=10000, help="offered OPTIONS per second")
    parser.add_argument("--limit", type=int, default=200, help="most OPTIONS outstanding")
    parser.add_argument("--repeats", type=int, default=3, help="SIPp runs per user agent")
    parser.add_argument("--keep", action="store_true", help="keep the logs in the workdir")
    parser.add_argument(
        "--profile", action="store_true", help="profile the pure core in process; no peers"
    )
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="--profile: datagrams per stack step (1 below saturation; the stack reads up"
        " to 64 per step under load)",
    )
    args = parser.parse_args(argv)
    if min(args.idle, args.calls, args.rate, args.limit, args.repeats, args.top, args.batch) <= 0:
        parser.error("every number given must be positive")
    return args


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally` that stops a peer


def stop_strays(workdir: Path, grace: float = 5.0) -> None:
    """End our children still naming `workdir`: a phone whose start timed out is never
    handed back to us, so no `finally` of ours holds it."""
    strays: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # ended while we looked
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and str(workdir).encode() in command:
            strays.append(int(stat.parent.name))
    for pid in strays:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in strays:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        run_profile(args)
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="uabench-"))
    finished = False
    try:
        run_lab(args, workdir)
        finished = True
    except LabError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        stop_strays(workdir)
        if args.keep or not finished:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
