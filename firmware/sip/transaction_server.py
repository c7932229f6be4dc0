"""Server transactions (RFC 3261 §17.2, with the Accepted state of RFC 6026).

Like the client machines, these know nothing of keys or events: they send through a
`ServerSink` and leave matching to `TransactionLayer`.

INVITE server:

    Proceeding --TU 1xx-->      Proceeding (sent; re-sent on each INVITE retransmission)
    Proceeding --Trying timer--> Proceeding (100 Trying, when the TU was silent for 200 ms)
    Proceeding --TU 2xx-->      Accepted   (2xx re-sent T1, 2T1… capped at T2 until the ACK;
                                            Timer L = 64·T1 ends it, a timeout if no ACK came)
    Proceeding --TU 300-699-->  Completed  (Timer G re-sends on UDP, Timer H waits for the ACK)
    Completed  --ACK-->         Confirmed  (Timer I absorbs ACK retransmissions)
    Completed  --Timer H-->     Terminated (TU told: no ACK)

Design choice (RFC 6026 over RFC 3261 §13.3.1.4): the transaction itself keeps retransmitting its
2xx until the ACK arrives, and keeps absorbing INVITE retransmissions meanwhile, so the UA never
sees a retransmitted INVITE as a new call and needs no 2xx timer of its own. As §13.3.1.4 says,
this retransmission is end to end and so "independent of whatever transport protocols are
used": it runs on TCP too, unlike Timer G for non-2xx responses.

Non-INVITE server (Figure 8): Trying --TU 1xx--> Proceeding --TU final--> Completed (Timer J);
request retransmissions are absorbed in Trying and answered with the last response afterwards.
"""

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Protocol

from firmware.sip.message import Request, Response
from firmware.sip.timers import Deadlines, TimerConfig, TimerName
from firmware.sip.transport_types import Target


class ServerState(StrEnum):
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class ServerSink(Protocol):
    """What a server transaction tells the layer above it."""

    def transmit(self, message: Response, target: Target) -> None: ...

    def time_out(self) -> None: ...


class ServerTransaction(ABC):
    """What both server machines share: the request, where responses go, timers and state."""

    __slots__ = (
        "_interval",
        "_sink",
        "config",
        "deadlines",
        "final",
        "provisional",
        "reply_to",
        "request",
        "state",
    )

    def __init__(
        self,
        request: Request,
        reply_to: Target,
        config: TimerConfig,
        sink: ServerSink,
        state: ServerState,
    ) -> None:
        self.request = request
        self.reply_to = reply_to
        self.config = config
        self.state = state
        self.deadlines = Deadlines()
        self.provisional: Response | None = None
        self.final: Response | None = None
        self._sink = sink
        self._interval = config.t1

    @property
    def reliable(self) -> bool:
        return self.reply_to.reliable

    def transport_failed(self) -> None:
        """§17.2.4: no response could be sent; the layer tells the TU."""
        self._terminate()

    def _terminate(self) -> None:
        self.state = ServerState.TERMINATED
        self.deadlines.clear()

    def _send(self, response: Response) -> None:
        self._sink.transmit(response, self.reply_to)

    def _end_after(self, timer: TimerName, duration: float, now: float) -> None:
        if duration > 0:
            self.deadlines.start(timer, now + duration)
        else:
            self._terminate()

    @abstractmethod
    def respond(self, response: Response, now: float) -> None:
        """The TU's response; the layer has checked that no final was sent before."""

    @abstractmethod
    def receive(self, request: Request, now: float) -> bool:
        """A retransmission of the request, or an ACK, matched to this transaction.

        Returns True when the TU must see it: only the first ACK of a 2xx.
        """

    @abstractmethod
    def fire(self, timer: TimerName, at: float) -> None:
        """Timer `timer` is due; `at` is its deadline, from which the next one is counted."""


class InviteServerTransaction(ServerTransaction):
    __slots__ = ("acknowledged",)

    def __init__(
        self,
        request: Request,
        reply_to: Target,
        config: TimerConfig,
        sink: ServerSink,
        now: float,
    ) -> None:
        super().__init__(request, reply_to, config, sink, ServerState.PROCEEDING)
        self.acknowledged = False
        self.deadlines.start(TimerName.TRYING, now + config.trying_delay)

    def respond(self, response: Response, now: float) -> None:
        self.deadlines.stop(TimerName.TRYING)
        self._send(response)
        if response.status < 200:
            self.provisional = response
            return
        self.final = response
        if response.status < 300:
            self.state = ServerState.ACCEPTED
            self.deadlines.start(TimerName.G, now + self.config.t1)
            self.deadlines.start(TimerName.L, now + self.config.timer_l)
            return
        self.state = ServerState.COMPLETED
        if not self.reliable:
            self.deadlines.start(TimerName.G, now + self.config.t1)
        self.deadlines.start(TimerName.H, now + self.config.timer_h)

    def receive(self, request: Request, now: float) -> bool:
        if request.method == "ACK":
            return self._ack(now)
        match self.state:
            case ServerState.PROCEEDING if self.provisional is not None:
                self._send(self.provisional)
            case ServerState.PROCEEDING:
                self._send_trying()
            case ServerState.COMPLETED if self.final is not None:
                self._send(self.final)
        return False

    def _ack(self, now: float) -> bool:
        match self.state:
            case ServerState.COMPLETED:
                self.state = ServerState.CONFIRMED
                self.deadlines.stop(TimerName.G, TimerName.H)
                self._end_after(TimerName.I, self.config.timer_i(self.reliable), now)
            case ServerState.ACCEPTED if not self.acknowledged:
                self.acknowledged = True
                self.deadlines.stop(TimerName.G)
                return True
        return False

    def _send_trying(self) -> None:
        """§17.2.1: answer 100 for a TU that is still thinking, so the client stops Timer A."""
        self.deadlines.stop(TimerName.TRYING)
        self.provisional = Response.for_request(self.request, 100)
        self._send(self.provisional)

    def fire(self, timer: TimerName, at: float) -> None:
        match timer:
            case TimerName.TRYING:
                self._send_trying()
            case TimerName.G if self.final is not None:
                self._send(self.final)
                self._interval = self.config.doubled_capped(self._interval)
                self.deadlines.start(TimerName.G, at + self._interval)
            case TimerName.H:
                self._terminate()
                self._sink.time_out()
            case TimerName.L:
                self._terminate()
                if not self.acknowledged:
                    self._sink.time_out()
            case TimerName.I:
                self._terminate()


class NonInviteServerTransaction(ServerTransaction):
    __slots__ = ()

    def __init__(
        self, request: Request, reply_to: Target, config: TimerConfig, sink: ServerSink
    ) -> None:
        super().__init__(request, reply_to, config, sink, ServerState.TRYING)

    def respond(self, response: Response, now: float) -> None:
        self._send(response)
        if response.status < 200:
            self.state = ServerState.PROCEEDING
            self.provisional = response
            return
        self.state = ServerState.COMPLETED
        self.final = response
        self._end_after(TimerName.J, self.config.timer_j(self.reliable), now)

    def receive(self, request: Request, now: float) -> bool:
        last = self.final or self.provisional
        if last is not None:
            self._send(last)
        return False

    def fire(self, timer: TimerName, at: float) -> None:
        if timer is TimerName.J:
            self._terminate()
