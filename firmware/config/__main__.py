"""`python -m firmware.config [--write-default [PATH]]`: print or rewrite the documented defaults.

Run `--write-default` from the repository root after changing the schema; it rewrites
config/default.yaml, which the test suite compares with the schema.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from firmware.config.render import render_default

DEFAULT_YAML = Path("config/default.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware.config",
        description="Print default.yaml as generated from the schema, or write it to a file.",
    )
    parser.add_argument(
        "--write-default",
        metavar="PATH",
        nargs="?",
        const=DEFAULT_YAML,
        type=Path,
        help=f"write the file instead of printing it (PATH defaults to {DEFAULT_YAML})",
    )
    args = parser.parse_args(argv)
    text = render_default()
    if args.write_default is None:
        sys.stdout.write(text)
    else:
        args.write_default.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
