"""The one error type of the SIP message layer.

A peer's malformed input must turn into exactly one exception kind that carries what to answer,
so the transport can reply (or drop) without inspecting the message text.
"""


class ParseError(ValueError):
    """Input that is not a well-formed SIP message, URI or header value.

    `status` is the response code to answer a malformed *request* with (400, 505 or 513); it is
    `None` when the input was a response, which is silently dropped (RFC 3261 §18.1.2).
    """

    def __init__(self, message: str, status: int | None = 400) -> None:
        super().__init__(message)
        self.status = status

    def for_response(self) -> "ParseError":
        """The same error as it applies to a response: nothing is answered, so no status."""
        return ParseError(str(self), None)
