"""Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3) and keep-alives (RFC 5626).

On a stream the only message boundary is Content-Length, so it is mandatory there, and a bound on
the message size keeps a hostile peer from growing the buffer without end. After a framing error
the stream cannot be resynchronised: the framer stays failed and the connection should be closed.
"""

import re

from firmware.sip.errors import ParseError

KEEPALIVE_PING = b"\r\n\r\n"
"""Reported by `feed` for a double-CRLF keep-alive ping; answer it with `KEEPALIVE_PONG`."""
KEEPALIVE_PONG = b"\r\n"
"""Reported by `feed` for a single-CRLF keep-alive pong (the answer to our ping)."""

DEFAULT_MAX_MESSAGE_SIZE = 65535

_FOLD = re.compile(rb"\r\n[ \t]+")


class StreamFramer:
    """Feed it what the socket read; it returns complete messages and keep-alives, in order.

    Each message comes back as the exact bytes to hand to `parse_message`; a ping or pong
    comes back as the constant `KEEPALIVE_PING` or `KEEPALIVE_PONG` (never a message).
    A CRLF that ends the data read so far is taken as a pong at once rather than held back
    in case a second CRLF follows: a UA waits for pongs, and a ping split between two reads
    is far rarer than a pong arriving alone.
    """

    __slots__ = ("_buffer", "_expected", "_failure", "_max_size", "_scanned")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._max_size = max_message_size
        self._buffer = bytearray()
        self._expected: int | None = None
        self._scanned = 0
        self._failure: ParseError | None = None

    @property
    def buffered(self) -> int:
        """How many bytes wait for the rest of their message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return every message and keep-alive it completed.

        Raises ParseError (and keeps raising it) when the stream is malformed: a missing or
        invalid Content-Length, or a message larger than the configured maximum.
        """
        if self._failure is not None:
            raise self._failure
        self._buffer += data
        frames: list[bytes] = []
        try:
            while self._next_frame(frames):
                pass
        except ParseError as error:
            self._failure = error
            self._buffer.clear()
            raise
        return frames

    def _next_frame(self, frames: list[bytes]) -> bool:
        buffer = self._buffer
        if self._expected is not None:
            if len(buffer) < self._expected:
                return False
            frames.append(bytes(buffer[: self._expected]))
            del buffer[: self._expected]
            self._expected = None
            return True
        if buffer[:1] == b"\r":
            return self._keepalive(frames)
        end = buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) > self._max_size:
                raise _framing_error(
                    f"header section longer than {self._max_size} bytes", buffer, 513
                )
            return False
        head = bytes(buffer[:end])
        total = end + 4 + _content_length(head)
        if total > self._max_size:
            raise _framing_error(
                f"message of {total} bytes exceeds the limit of {self._max_size}", head, 513
            )
        self._expected = total
        self._scanned = 0
        return True

    def _keepalive(self, frames: list[bytes]) -> bool:
        buffer = self._buffer
        if buffer.startswith(KEEPALIVE_PING):
            frames.append(KEEPALIVE_PING)
            del buffer[:4]
            return True
        if buffer.startswith(KEEPALIVE_PONG):
            if buffer[2:3] == b"\r" and len(buffer) < 4:
                return False
            frames.append(KEEPALIVE_PONG)
            del buffer[:2]
            return True
        if len(buffer) == 1:
            return False
        raise _framing_error("CR not followed by LF between messages", buffer, 400)


def _framing_error(message: str, head: bytes | bytearray, status: int) -> ParseError:
    """The error to answer a request with; a response's error carries no status."""
    return ParseError(message, None if head[:4].upper() == b"SIP/" else status)


def _content_length(head: bytes) -> int:
    if b"\r\n " in head or b"\r\n\t" in head:
        head = _FOLD.sub(b" ", head)
    found: bytes | None = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.rstrip(b" \t").lower() in (b"content-length", b"l"):
            value = value.strip(b" \t")
            if found is not None and value != found:
                raise _framing_error("conflicting Content-Length headers", head, 400)
            found = value
    if found is None:
        raise _framing_error("missing Content-Length on a stream transport", head, 400)
    if not found.isdigit() or len(found) > 10:
        raise _framing_error(f"Content-Length is not a valid length: {found[:40]!r}", head, 400)
    return int(found)
