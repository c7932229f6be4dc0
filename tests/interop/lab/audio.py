"""Test audio for the peers: a plain tone at the G.711 rate, written with the stdlib."""

from __future__ import annotations

import math
import sys
import wave
from array import array
from pathlib import Path

G711_RATE = 8000


def write_tone_wav(
    path: Path,
    *,
    seconds: float = 60.0,
    frequency: float = 700.0,
    amplitude: float = 0.3,
    rate: int = G711_RATE,
) -> Path:
    """Write a mono S16 WAV tone. baresip's aufile needs the codec rate (8 kHz for PCMU) and
    ends the call at end of file, so the default outlasts any test call."""
    peak = amplitude * 32767
    step = 2 * math.pi * frequency / rate
    samples = array("h", (round(peak * math.sin(step * n)) for n in range(int(seconds * rate))))
    if sys.byteorder == "big":
        samples.byteswap()  # WAV data is little-endian
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path
