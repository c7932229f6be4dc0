"""The one event type the user agent reports upward, as baresip's `bevent` does.

Everything observable — registrations now, calls, messages and presence later — is a
`UaEvent` with a name from the control socket's contract and plain JSON-able fields, so
the phone logic, the control socket and the tests all listen to the same stream.
"""

from dataclasses import dataclass, field
from typing import Any

REGISTERED = "registered"
REGISTRATION_FAILED = "registration_failed"
UNREGISTERED = "unregistered"
MESSAGE = "message"
MESSAGE_SENT = "message_sent"
MESSAGE_FAILED = "message_failed"


@dataclass(frozen=True, slots=True)
class UaEvent:
    name: str
    fields: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"event": self.name, **self.fields}
