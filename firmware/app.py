"""The one place that wires hardware drivers to the firmware and runs until told to stop."""

from __future__ import annotations

import logging
import signal

from firmware.config import Config

log = logging.getLogger("deskphone")


def configure_logging(level: str) -> None:
    """Plain lines on stderr: journald adds the time and the unit itself."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")


def run(settings: Config, *, simulate: bool) -> int:
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before anything can announce us
    configure_logging(settings.log.level)
    mode = "simulated hardware" if simulate else "configured hardware"
    log.info("started with %s; %d account(s)", mode, len(settings.sip.accounts))
    received = signal.sigwait(stop_signals)
    log.info("stopping on %s", signal.Signals(received).name)
    return 0
