"""Messages per second for parsing and serialising SIP, ours beside pyVoIP 1.6.8 and sipmessage.

Run it in the bench venv (`bash bench/setup.sh` makes it):

    .venv-bench/bin/python bench/parse.py [--repeat 7] [--seconds 0.2]

Ours is called exactly as the stack calls it: `parse_message(data)`, with every check that
rejects RFC 4475's invalid messages ("deskphone+SDP" also parses an SDP body, as pyVoIP's
parser does). pyVoIP's `SIPMessage(data)` and sipmessage's `Message.parse(data)` are called the
way their users call them. pyVoIP has no serialiser.
Each figure is the median over `--repeat` runs of a timed loop of about `--seconds` each.
"""

import argparse
import importlib
import statistics
import sys
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from firmware.sip import Request, Response, parse_message  # noqa: E402

CORPUS = REPOSITORY / "tests" / "data" / "bench"

REGISTER_OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport=5060;received=198.51.100.7;"
    b"branch=z9hG4bK.8a1b2c3d4e\r\n"
    b"From: <sip:1001@sip.example.com>;tag=6f3a2b1c\r\n"
    b"To: <sip:1001@sip.example.com>;tag=as4d5e6f7a\r\n"
    b"Call-ID: 2b7e151628aed2a6abf71589@192.0.2.10\r\n"
    b"CSeq: 42 REGISTER\r\n"
    b"Server: Asterisk PBX 20.5.0\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, MESSAGE\r\n"
    b"Supported: replaces, timer\r\n"
    b"Expires: 3600\r\n"
    b"Contact: <sip:1001@198.51.100.7:5060;transport=udp>;expires=3600\r\n"
    b"Date: Tue, 24 Nov 2026 09:00:00 GMT\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

NOTIFY = (
    b"NOTIFY sip:1001@192.0.2.10:5060;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK1c2d3e4f;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:1001@sip.example.com>;tag=as1a2b3c4d\r\n"
    b"To: <sip:1001@sip.example.com>;tag=7c9d1e2f\r\n"
    b"Contact: <sip:asterisk@203.0.113.5:5060>\r\n"
    b"Call-ID: 0f1e2d3c4b5a69788796a5b4@192.0.2.10\r\n"
    b"CSeq: 102 NOTIFY\r\n"
    b"User-Agent: Asterisk PBX 20.5.0\r\n"
    b"Event: message-summary\r\n"
    b"Subscription-State: active;expires=3540\r\n"
    b"Content-Type: application/simple-message-summary\r\n"
    b"Content-Length: 88\r\n"
    b"\r\n"
    b"Messages-Waiting: yes\r\n"
    b"Message-Account: sip:1001@sip.example.com\r\n"
    b"Voice-Message: 2/8 (0/2)\r\n"
)


def workload() -> dict[str, bytes]:
    messages = {path.stem: path.read_bytes() for path in sorted(CORPUS.glob("*.txt"))}
    messages["200 OK to REGISTER"] = REGISTER_OK
    messages["NOTIFY (message-summary)"] = NOTIFY
    return messages


class Job:
    """One timed loop (a parser parsing, or serialising, one message), calibrated once."""

    def __init__(self, call: Callable[[], object], seconds: float) -> None:
        self.timer = timeit.Timer(call)
        number, elapsed = self.timer.autorange()
        self.number = max(1, int(number * seconds / elapsed))
        self.rates: list[float] = []

    def run(self) -> None:
        self.rates.append(self.number / self.timer.timeit(self.number))

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def with_sdp(parse_sdp: Callable[[bytes], object]) -> Callable[[bytes], Request | Response]:
    """What pyVoIP's SIPMessage does for a message with an SDP body: the message and the SDP.
    Our stack takes the second step (`firmware.sip.sdp`) only when a usage needs the offer."""

    def parse(data: bytes) -> Request | Response:
        message = parse_message(data)
        content_type = message.content_type
        if content_type is not None and content_type.mime == "application/sdp":
            parse_sdp(message.body)
        return message

    return parse


def parsers() -> dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes] | None]]:
    """name -> (parse, serialise or None), for the parsers installed here."""
    found: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes] | None]] = {
        "deskphone": (parse_message, bytes),
    }
    try:
        parse_sdp = importlib.import_module("firmware.sip.sdp").parse_sdp
        found["deskphone+SDP"] = (with_sdp(parse_sdp), None)
    except (ImportError, AttributeError):
        print("firmware.sip.sdp.parse_sdp is missing: no deskphone+SDP row", file=sys.stderr)
    try:
        importlib.import_module("pyVoIP.VoIP")  # pyVoIP.SIP alone fails on a circular import
        sip_message = importlib.import_module("pyVoIP.SIP").SIPMessage
        found["pyVoIP 1.6.8"] = (sip_message, None)
    except ImportError:
        print("pyVoIP is not installed: run bash bench/setup.sh", file=sys.stderr)
    try:
        message = importlib.import_module("sipmessage").Message
        found["sipmessage"] = (message.parse, bytes)
    except ImportError:
        print("sipmessage is not installed: run bash bench/setup.sh", file=sys.stderr)
    return found


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--repeat", type=int, default=7, help="timed runs per figure")
    arguments.add_argument("--seconds", type=float, default=0.2, help="length of one run")
    options = arguments.parse_args()

    candidates = parsers()
    print(f"Python {sys.version.split()[0]}; medians of {options.repeat} runs; messages per second")
    print("(vs pyVoIP: median over the runs of the ratio of two runs made one after the other)")
    print(f"{'message':32} {'parser':13} {'parse/s':>9} {'vs pyVoIP':>9} {'serialise/s':>11}")
    for label, data in workload().items():
        jobs: dict[str, tuple[Job, Job | None]] = {}
        for name, (parse, serialise) in candidates.items():
            try:
                parsed = parse(data)
            except Exception as error:  # noqa: BLE001 - another library's failure is a result
                print(f"{label[:32]:32} {name:13} cannot parse it: {type(error).__name__}")
                continue
            jobs[name] = (
                Job(partial(parse, data), options.seconds),
                None if serialise is None else Job(partial(serialise, parsed), options.seconds),
            )
        for _ in range(options.repeat):  # interleaved, so a busy spell hits every parser alike
            for parse_job, serialise_job in jobs.values():
                parse_job.run()
                if serialise_job is not None:
                    serialise_job.run()
        baseline = jobs.get("pyVoIP 1.6.8")
        for name, (parse_job, serialise_job) in jobs.items():
            ratio = ""
            if baseline is not None:
                ratios = [
                    ours / theirs
                    for ours, theirs in zip(parse_job.rates, baseline[0].rates, strict=True)
                ]
                ratio = f"{statistics.median(ratios):.2f}x"
            written = "n/a" if serialise_job is None else f"{serialise_job.median:,.0f}"
            print(f"{label[:32]:32} {name:13} {parse_job.median:>9,.0f} {ratio:>9} {written:>11}")
        print()


if __name__ == "__main__":
    main()
