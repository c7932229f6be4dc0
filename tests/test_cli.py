"""`deskphone run` as a real process: it starts with no configuration and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from firmware.cli import main

TIMEOUT = 20.0


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, DESKPHONE_CONFIG=str(tmp_path / "absent.yaml"))
    return subprocess.Popen(
        [sys.executable, "-m", "firmware", *args],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_run_without_any_config_starts_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = _start(["run", "--sim"], tmp_path)
    assert process.stderr is not None
    try:
        line = process.stderr.readline()
        assert "started" in line, line
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    finally:
        process.kill()
        process.wait()


def test_run_with_a_broken_config_names_the_place_and_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "deskphone.yaml"
    broken.write_text("sip:\n  listen: nowhere\n")
    process = _start(["run", "--sim", "--config", str(broken)], tmp_path)
    _, errors = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1
    assert errors.startswith(f"{broken}:2: sip.listen: ")
    assert "Traceback" not in errors


def test_usage_errors_exit_2(capsys: object) -> None:
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert main(["run", "--bogus"]) == 2
