"""Command line: `deskphone run` and `deskphone check-config`.

Every failure a user can cause ends in one clear line on stderr and a distinct exit
status, never a traceback: 0 success, 1 invalid configuration, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from firmware import config

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deskphone", description="SIP desk phone and door intercom firmware"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the phone")
    run.add_argument(
        "--config",
        type=Path,
        help=f"configuration file (default {config.default_config_path()} if it exists,"
        " else built-in defaults)",
    )
    run.add_argument(
        "--sim", action="store_true", help="use the simulated twin of every hardware backend"
    )
    run.add_argument(
        "--control",
        type=Path,
        metavar="PATH",
        help="serve the JSON-lines control socket at PATH (overrides control.socket)",
    )

    check = commands.add_parser("check-config", help="validate a configuration file statically")
    check.add_argument(
        "file",
        nargs="?",
        type=Path,
        help=f"file to check (default {config.default_config_path()})",
    )
    return parser


def _check_config(path: Path | None) -> int:
    target = path if path is not None else config.default_config_path()
    try:
        config.load_config(target)
    except config.ConfigError as error:
        for issue in error.issues:
            print(issue, file=sys.stderr)
        return EXIT_CONFIG
    print(f"{target}: valid")
    return EXIT_OK


def _run(path: Path | None, sim: bool, control: Path | None) -> int:
    from firmware import app

    try:
        settings = config.load_config(path, missing_ok=path is None)
    except config.ConfigError as error:
        for issue in error.issues:
            print(issue, file=sys.stderr)
        return EXIT_CONFIG
    return app.run(settings, simulate=sim, control_path=control)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code not in (0, None) else EXIT_OK
    if args.command == "check-config":
        return _check_config(args.file)
    return _run(args.config, args.sim, args.control)
