"""Call signatures of the factory fixtures in tests/interop/conftest.py, for annotations."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from tests.interop.lab.baresip import Baresip
from tests.interop.lab.capture import Capture
from tests.interop.lab.kamailio import Kamailio


class KamailioFactory(Protocol):
    def __call__(self, **settings: Any) -> Kamailio:
        """A started Kamailio; `settings` are KamailioSettings fields (max_expires=20, ...)."""
        ...


class BaresipFactory(Protocol):
    def __call__(
        self,
        user: str,
        *,
        kamailio: Kamailio | None,
        password: str | None = None,
        answermode: str = "manual",
        regint: int = 60,
        wav: Path | None = None,
    ) -> Baresip:
        """A started baresip registered at `kamailio` (None: no registrar, direct calls)."""
        ...


class CaptureFactory(Protocol):
    def __call__(self, ports: Iterable[int]) -> Capture:
        """A running tshark capture of `ports` on lo."""
        ...
