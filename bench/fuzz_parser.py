"""A long fuzz run of parse_message and StreamFramer: a million inputs by default, not run in CI.

    .venv-bench/bin/python bench/fuzz_parser.py [--examples 1000000] [--seed N]

It throws generated valid messages, damaged ones, damaged everyday header values and raw bytes
(the strategies of tests/sip/test_parser_properties.py, unrandomised here, so each run explores
new inputs) at the parser, and checks for every input what the test suite checks on 15,000:

- only ParseError escapes, with status 400/505 for a request and None for a response;
- a message that parses can have its core headers read, and `parse_message(bytes(m)) == m`;
- StreamFramer, fed the same bytes in two pieces, raises nothing but ParseError, and every
  frame it returns is a keep-alive or parses (or fails) as above.

A failure is shrunk by Hypothesis and printed; the exit status is then non-zero.
"""

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from firmware.sip import ParseError, StreamFramer, parse_message  # noqa: E402
from firmware.sip.framing import KEEPALIVE_PING, KEEPALIVE_PONG  # noqa: E402
from tests.sip.test_parser_properties import (  # noqa: E402
    assert_accessors_work,
    messages,
    mutated,
    near_miss,
    seeds,
)

inputs = st.one_of(
    mutated(),
    messages().map(lambda spec: spec.wire),
    st.tuples(messages(), seeds.map(near_miss)).map(
        lambda pair: pair[0].wire.replace(
            b"\r\n\r\n", f"\r\nContact: {pair[1]}\r\n\r\n".encode(), 1
        )
    ),
    st.binary(max_size=2000),
)


def check_message(data: bytes) -> bool:
    """Check the invariants for one datagram; True if it parsed."""
    try:
        message = parse_message(data)
    except ParseError as error:
        is_response = data.lstrip(b"\r\n")[:4].upper() == b"SIP/"
        assert error.status in ((None,) if is_response else (400, 505)), (error.status, error)
        assert str(error)
        return False
    assert_accessors_work(message)
    again = parse_message(bytes(message))
    assert again == message
    assert bytes(again) == bytes(message)
    return True


def check_stream(data: bytes, cut: int) -> None:
    framer = StreamFramer()
    try:
        frames = framer.feed(data[:cut]) + framer.feed(data[cut:])
    except ParseError as error:
        assert str(error)
        return
    for frame in frames:
        if frame not in (KEEPALIVE_PING, KEEPALIVE_PONG):
            check_message(frame)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--examples", type=int, default=1_000_000)
    arguments.add_argument("--seed", type=int, default=None, help="repeat an earlier run")
    options = arguments.parse_args()
    counts = {"inputs": 0, "parsed": 0}
    started = time.monotonic()

    @settings(
        max_examples=options.examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs, st.integers(0, 2000))
    def fuzz(data: bytes, cut: int) -> None:
        counts["inputs"] += 1
        if counts["inputs"] % 50_000 == 0:
            rate = counts["inputs"] / (time.monotonic() - started)
            print(f"{counts['inputs']:>9,} inputs, {rate:,.0f}/s", flush=True)
        counts["parsed"] += check_message(data)
        check_stream(data, min(cut, len(data)))

    if options.seed is not None:
        fuzz = seed(options.seed)(fuzz)
    fuzz()
    elapsed = time.monotonic() - started
    print(
        f"done: {counts['inputs']:,} inputs ({counts['parsed']:,} parsed, the rest rejected)"
        f" in {elapsed:,.0f} s, no failure"
    )


if __name__ == "__main__":
    main()
