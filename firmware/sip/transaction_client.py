"""Client transactions (RFC 3261 §17.1, with the Accepted state of RFC 6026).

A transaction knows its request, its target, its timers and its state, and nothing of keys,
events or other transactions: it reports through a `ClientSink`, which `TransactionLayer`
implements. The state tables of Figures 5 and 6 are written out in `receive` and `fire`.

INVITE client (RFC 6026 Figure 5 amended):

    Calling    --1xx-->      Proceeding  (stop A and B: the TU owns the wait from here)
    Calling/Proceeding --2xx--> Accepted (Timer M; every 2xx, forked or retransmitted, goes up)
    Calling/Proceeding --300-699--> Completed (ACK sent to the same target; Timer D)
    Completed  --300-699-->  Completed   (ACK re-sent, response absorbed)
    Calling    --Timer B-->  Terminated  (TU told: timeout)

Non-INVITE client (Figure 6): Trying --1xx--> Proceeding; Trying/Proceeding --final-->
Completed (Timer K); Timer E retransmits (doubling up to T2, T2 in Proceeding); Timer F times out.
"""

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Protocol

from firmware.sip.errors import ParseError
from firmware.sip.headers import Headers
from firmware.sip.message import Message, Request, Response
from firmware.sip.timers import Deadlines, TimerConfig, TimerName
from firmware.sip.transport_types import Address, Target


class ClientState(StrEnum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class ClientSink(Protocol):
    """What a client transaction tells the layer above it."""

    def transmit(self, message: Request, target: Target) -> None: ...

    def deliver(self, response: Response, source: Address) -> None: ...

    def time_out(self) -> None: ...


def raw_header(message: Message, name: str) -> str:
    """The first value of a header exactly as it arrived, so copies of it match byte for byte."""
    value = message.headers.get(name)
    if value is None:
        raise ParseError(f"missing {name} header")
    return value


def hop_request(request: Request, method: str, to: str) -> Request:
    """An ACK for a non-2xx (§17.1.1.3) or a CANCEL (§9.1): the same Request-URI, the original
    top Via only (so it reaches the same hop and matches its transaction), the original Route
    set, From, Call-ID and CSeq number, with `method` and the given To value."""
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    headers.add("Max-Forwards", request.headers.get("Max-Forwards") or "70")
    for route in request.headers.lines("Route"):
        headers.add("Route", route)
    headers.add("From", raw_header(request, "From"))
    headers.add("To", to)
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", f"{request.cseq.seq} {method}")
    return Request(method, request.uri, headers)


class ClientTransaction(ABC):
    """What both client machines share: the request, its target, the timers and the state."""

    __slots__ = ("_interval", "_sink", "config", "deadlines", "request", "state", "target")

    def __init__(
        self,
        request: Request,
        target: Target,
        config: TimerConfig,
        sink: ClientSink,
        state: ClientState,
    ) -> None:
        self.request = request
        self.target = target
        self.config = config
        self.state = state
        self.deadlines = Deadlines()
        self._sink = sink
        self._interval = config.t1

    @property
    def reliable(self) -> bool:
        return self.target.reliable

    def transport_failed(self) -> None:
        """§17.1.4: the transport could not deliver; the layer tells the TU."""
        self._terminate()

    def _terminate(self) -> None:
        self.state = ClientState.TERMINATED
        self.deadlines.clear()

    def _end_after(self, timer: TimerName, duration: float, now: float) -> None:
        """Start a timer that ends the transaction, or end it at once if its value is 0."""
        if duration > 0:
            self.deadlines.start(timer, now + duration)
        else:
            self._terminate()

    @abstractmethod
    def receive(self, response: Response, source: Address, now: float) -> None:
        """A response from `source` whose branch and CSeq method match this transaction
        (§17.1.3)."""

    @abstractmethod
    def fire(self, timer: TimerName, at: float) -> None:
        """Timer `timer` is due; `at` is its deadline, from which the next one is counted."""


class InviteClientTransaction(ClientTransaction):
    __slots__ = ("_ack",)

    def __init__(
        self, request: Request, target: Target, config: TimerConfig, sink: ClientSink, now: float
    ) -> None:
        super().__init__(request, target, config, sink, ClientState.CALLING)
        self._ack: Request | None = None
        sink.transmit(request, target)
        if not self.reliable:
            self.deadlines.start(TimerName.A, now + config.t1)
        self.deadlines.start(TimerName.B, now + config.timer_b)

    def receive(self, response: Response, source: Address, now: float) -> None:
        status = response.status
        match self.state:
            case ClientState.CALLING | ClientState.PROCEEDING if status < 200:
                self.state = ClientState.PROCEEDING
                self.deadlines.stop(TimerName.A, TimerName.B)
                self._sink.deliver(response, source)
            case ClientState.CALLING | ClientState.PROCEEDING if status < 300:
                self.state = ClientState.ACCEPTED
                self.deadlines.stop(TimerName.A, TimerName.B)
                self.deadlines.start(TimerName.M, now + self.config.timer_m)
                self._sink.deliver(response, source)
            case ClientState.CALLING | ClientState.PROCEEDING:
                self.state = ClientState.COMPLETED
                self.deadlines.stop(TimerName.A, TimerName.B)
                self._ack = hop_request(self.request, "ACK", raw_header(response, "To"))
                self._sink.transmit(self._ack, self.target)
                self._sink.deliver(response, source)
                self._end_after(TimerName.D, self.config.timer_d(self.reliable), now)
            case ClientState.ACCEPTED if 200 <= status < 300:
                self._sink.deliver(response, source)
            case ClientState.COMPLETED if status >= 300 and self._ack is not None:
                self._sink.transmit(self._ack, self.target)

    def fire(self, timer: TimerName, at: float) -> None:
        match timer:
            case TimerName.A:
                self._sink.transmit(self.request, self.target)
                self._interval *= 2
                self.deadlines.start(TimerName.A, at + self._interval)
            case TimerName.B:
                self._terminate()
                self._sink.time_out()
            case TimerName.D | TimerName.M:
                self._terminate()


class NonInviteClientTransaction(ClientTransaction):
    __slots__ = ()

    def __init__(
        self, request: Request, target: Target, config: TimerConfig, sink: ClientSink, now: float
    ) -> None:
        super().__init__(request, target, config, sink, ClientState.TRYING)
        sink.transmit(request, target)
        if not self.reliable:
            self.deadlines.start(TimerName.E, now + config.t1)
        self.deadlines.start(TimerName.F, now + config.timer_f)

    def receive(self, response: Response, source: Address, now: float) -> None:
        if self.state not in (ClientState.TRYING, ClientState.PROCEEDING):
            return
        if response.status < 200:
            self.state = ClientState.PROCEEDING
            self._sink.deliver(response, source)
            return
        self.state = ClientState.COMPLETED
        self.deadlines.stop(TimerName.E, TimerName.F)
        self._sink.deliver(response, source)
        self._end_after(TimerName.K, self.config.timer_k(self.reliable), now)

    def fire(self, timer: TimerName, at: float) -> None:
        match timer:
            case TimerName.E:
                self._sink.transmit(self.request, self.target)
                if self.state is ClientState.PROCEEDING:
                    self._interval = self.config.t2
                else:
                    self._interval = self.config.doubled_capped(self._interval)
                self.deadlines.start(TimerName.E, at + self._interval)
            case TimerName.F:
                self._terminate()
                self._sink.time_out()
            case TimerName.K:
                self._terminate()
