"""The transaction timers of RFC 3261 §17 (Table 4) and RFC 6026, all derived from T1, T2, T4.

Deadlines are absolute times on whatever clock the caller passes as `now`: this module never
reads a clock. A timer whose value is 0 (D, I, J, K on reliable transports) is never started; the
transaction moves on at once, so a TCP transaction leaves no timer behind.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerConfig:
    """T1 (RTT estimate), T2 (retransmission cap), T4 (network lifetime of a message) and the
    delay after which an INVITE server transaction answers 100 Trying on the TU's behalf.

    Tests shrink them; a phone on a slow link may raise T1 (RFC 3261 §17.1.1.1 allows it).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying_delay: float = 0.2

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4", "trying_delay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.t2 < self.t1:
            raise ValueError(f"t2 ({self.t2}) must not be shorter than t1 ({self.t1})")

    @property
    def timer_b(self) -> float:
        """INVITE client: give up on a request nobody answers."""
        return 64 * self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE client: give up on a request nobody answers."""
        return 64 * self.t1

    @property
    def timer_h(self) -> float:
        """INVITE server: give up waiting for the ACK of a non-2xx final response."""
        return 64 * self.t1

    @property
    def timer_l(self) -> float:
        """INVITE server (RFC 6026 Accepted): how long a 2xx is retransmitted while no ACK
        comes, and how long retransmitted INVITEs are absorbed after it."""
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        """INVITE client (RFC 6026 Accepted): how long 2xx retransmissions and forked 2xx are
        still matched to the transaction and handed up."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        """INVITE client, Completed: absorb retransmitted non-2xx finals. At least 32 s on
        unreliable transports (it must outlast the server's Timer H, whose T1 may be the
        default 0.5 s even when ours is smaller), and at least 64·T1 when ours is larger."""
        return 0.0 if reliable else max(32.0, 64 * self.t1)

    def timer_i(self, reliable: bool) -> float:
        """INVITE server, Confirmed: absorb ACK retransmissions."""
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        """Non-INVITE server, Completed: answer request retransmissions with the last final."""
        return 0.0 if reliable else 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        """Non-INVITE client, Completed: absorb retransmitted finals."""
        return 0.0 if reliable else self.t4

    def doubled_capped(self, interval: float) -> float:
        """The next Timer E or G interval (and of 2xx retransmission, §13.3.1.4): double, but
        never beyond T2."""
        return min(2 * interval, self.t2)


class TimerName(StrEnum):
    """The timers a transaction can run; `TRYING` is the 200 ms 100-Trying timer of §17.2.1."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name for it
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "Trying"


class Deadlines:
    """The running timers of one transaction, as absolute deadlines.

    Restarting a timer replaces its deadline, so a transaction never holds two copies of it.
    """

    __slots__ = ("_at", "listener")

    def __init__(self) -> None:
        self._at: dict[TimerName, float] = {}
        self.listener: Callable[[TimerName, float], None] | None = None
        """Told of every start, so an owner of many transactions can keep one timer heap."""

    def start(self, name: TimerName, at: float) -> None:
        self._at[name] = at
        if self.listener is not None:
            self.listener(name, at)

    def stop(self, *names: TimerName) -> None:
        for name in names:
            self._at.pop(name, None)

    def clear(self) -> None:
        self._at.clear()

    def get(self, name: TimerName) -> float | None:
        return self._at.get(name)

    def running(self) -> list[tuple[TimerName, float]]:
        """Every running timer with its deadline, in the order they were first started."""
        return list(self._at.items())

    def earliest(self) -> tuple[float, TimerName] | None:
        """The next timer to fire; ties go to the timer first started."""
        if not self._at:
            return None
        name = min(self._at, key=self._at.__getitem__)
        return self._at[name], name

    def __len__(self) -> int:
        return len(self._at)
