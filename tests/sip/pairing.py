"""Transaction layers wired together in memory: a hand-moved clock, a wire that can lose the Nth
message in a direction, and message factories for the transaction and dialog tests.

Every message crosses the wire as bytes and is parsed again on arrival, so what a peer receives
is what would have gone over a socket. Delivery is instantaneous and in order; time moves only
when a test calls `advance` or `run_until`, and then straight to the next deadline of any node.
"""

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from firmware.sip.message import Message, Request, Response
from firmware.sip.parser import parse_message
from firmware.sip.timers import TimerConfig
from firmware.sip.transaction import Event, TransactionLayer, Transmit
from firmware.sip.transport_types import Address, Target
from firmware.sip.uri import parse_uri

E = TypeVar("E")

Relay = Callable[[Message, Address], list[tuple[Target, Message]]]
"""A node without a transaction layer (a stateless proxy): what it forwards, and where."""


def make_request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-1",
    uri: str = "sip:bob@192.0.2.2",
    sent_by: str = "192.0.2.1:5060",
    transport: str = "UDP",
    cseq: int = 1,
    call_id: str = "call-1@192.0.2.1",
    from_tag: str | None = "alice-tag",
    to_tag: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
) -> Request:
    """A minimal valid request from alice to bob; `branch=None` makes an RFC 2543 Via."""
    via = f"SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch else "")
    headers = [
        ("Via", via),
        ("Max-Forwards", "70"),
        ("From", "Alice <sip:alice@192.0.2.1>" + (f";tag={from_tag}" if from_tag else "")),
        ("To", "Bob <sip:bob@192.0.2.2>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        *extra,
    ]
    return Request(method, parse_uri(uri), headers)


def make_response(request: Request, status: int, *, to_tag: str | None = None) -> Response:
    return Response.for_request(request, status, to_tag=to_tag)


def drain(layer: TransactionLayer) -> list[Event]:
    """Every event the layer has queued, in order."""
    events = []
    while (event := layer.next_event()) is not None:
        events.append(event)
    return events


def timeline(layer: TransactionLayer, until: float) -> list[tuple[float, list[Event]]]:
    """Move a hand clock from deadline to deadline up to `until`: what happened at each."""
    steps = []
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        layer.handle_timer(deadline)
        steps.append((deadline, drain(layer)))
    return steps


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message on the wire, delivered or lost."""

    at: float
    sender: str
    receiver: str
    message: Message
    dropped: bool


@dataclass(eq=False)
class Node:
    name: str
    address: Address
    layer: TransactionLayer | None = None
    relay: Relay | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def transactions(self) -> TransactionLayer:
        """The node's transaction layer (a relay node has none)."""
        assert self.layer is not None, f"{self.name} is a relay"
        return self.layer

    def take(self, kind: type[E]) -> list[E]:
        """Remove and return the events of type `kind` the node's TU has not looked at yet."""
        taken: list[E] = [event for event in self.events if isinstance(event, kind)]
        self.events = [event for event in self.events if not isinstance(event, kind)]
        return taken


class Network:
    """Nodes addressed by (host, port) with a shared clock and a per-direction loss pattern."""

    def __init__(self, config: TimerConfig | None = None) -> None:
        self.config = config or TimerConfig()
        self.now = 0.0
        self.log: list[Delivery] = []
        self._nodes: dict[Address, Node] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._drops: dict[tuple[str, str], set[int]] = {}
        self._wire: deque[tuple[Node, Target, Message]] = deque()

    def add(self, name: str, host: str, port: int = 5060, *, relay: Relay | None = None) -> Node:
        layer = None if relay is not None else TransactionLayer(self.config)
        node = Node(name, Address(host, port), layer, relay)
        self._nodes[node.address] = node
        return node

    def drop(self, sender: Node, receiver: Node, *ordinals: int) -> None:
        """Lose the messages number `ordinals` (1 for the first) from sender to receiver."""
        self._drops.setdefault((sender.name, receiver.name), set()).update(ordinals)

    def send_raw(self, sender: Node, target: Target, message: Message) -> None:
        """Put a message on the wire as `sender`, bypassing its layer (a peer that has none,
        such as an RFC 2543 UA), and deliver everything that follows from it."""
        self._wire.append((sender, target, message))
        self.pump()

    def sent(self, sender: Node, receiver: Node) -> list[Delivery]:
        return [d for d in self.log if (d.sender, d.receiver) == (sender.name, receiver.name)]

    def pump(self) -> None:
        """Deliver until no node has anything left to send."""
        while True:
            for node in self._nodes.values():
                self._collect(node)
            if not self._wire:
                return
            while self._wire:
                sender, target, message = self._wire.popleft()
                self._deliver(sender, target, message)

    def next_deadline(self) -> float | None:
        deadlines = [
            deadline
            for node in self._nodes.values()
            if node.layer is not None and (deadline := node.layer.get_timer()) is not None
        ]
        return min(deadlines, default=None)

    def advance(self) -> float | None:
        """Move the clock to the next deadline of any node and fire it; None if there is none."""
        self.pump()
        deadline = self.next_deadline()
        if deadline is None:
            return None
        self.now = max(self.now, deadline)
        for node in self._nodes.values():
            if node.layer is not None:
                node.layer.handle_timer(self.now)
        self.pump()
        return self.now

    def run_until(self, when: float) -> None:
        """Fire every deadline up to `when`, then leave the clock at `when`."""
        self.pump()
        while (deadline := self.next_deadline()) is not None and deadline <= when:
            self.advance()
        self.now = max(self.now, when)

    def _collect(self, node: Node) -> None:
        if node.layer is None:
            return
        while (event := node.layer.next_event()) is not None:
            if isinstance(event, Transmit):
                self._wire.append((node, event.target, event.message))
            else:
                node.events.append(event)

    def _deliver(self, sender: Node, target: Target, message: Message) -> None:
        receiver = self._nodes[target.address]
        direction = (sender.name, receiver.name)
        self._counts[direction] = count = self._counts.get(direction, 0) + 1
        dropped = count in self._drops.get(direction, set())
        self.log.append(Delivery(self.now, sender.name, receiver.name, message, dropped))
        if dropped:
            return
        arrived = parse_message(bytes(message))
        if receiver.layer is not None:
            receiver.layer.receive(arrived, sender.address, target.transport, self.now)
        elif receiver.relay is not None:
            for onward, forwarded in receiver.relay(arrived, sender.address):
                self._wire.append((receiver, onward, forwarded))
