"""The one place that wires hardware drivers to the firmware and runs until told to stop."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from firmware.commands import Commands
from firmware.config import Config
from firmware.control import ControlServer
from firmware.ua import UserAgent

log = logging.getLogger("deskphone")

EXIT_OK = 0
EXIT_STARTUP = 3
"""The phone could not start (address in use, socket path unusable): not a config typo."""


def configure_logging(level: str) -> None:
    """Plain lines on stderr: journald adds the time and the unit itself."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")


def run(settings: Config, *, simulate: bool, control_path: Path | None = None) -> int:
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before anything can announce us
    configure_logging(settings.log.level)
    socket_path = control_path or (
        Path(settings.control.socket) if settings.control.socket else None
    )
    try:
        ua = UserAgent(settings)
    except OSError as error:
        log.error("cannot listen on %s: %s", settings.sip.listen, error.strerror or error)
        return EXIT_STARTUP
    control: ControlServer | None = None
    if socket_path is not None:
        try:
            control = ControlServer(socket_path, Commands(ua))
        except OSError as error:
            log.error("cannot serve the control socket %s: %s", socket_path, error)
            return EXIT_STARTUP
        server = control
        ua.add_listener(lambda event: server.publish(event.name, **event.fields))
        control.start()
    ua.start()
    mode = "simulated hardware" if simulate else "configured hardware"
    log.info(
        "started with %s; SIP on UDP and TCP port %d; %d account(s)",
        mode,
        ua.listen_port,
        len(settings.sip.accounts),
    )
    received = signal.sigwait(stop_signals)
    log.info("stopping on %s", signal.Signals(received).name)
    ua.stop()
    if control is not None:
        control.close()
    return EXIT_OK
