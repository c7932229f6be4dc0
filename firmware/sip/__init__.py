"""The pure SIP core: bytes and `now` in, events and bytes out; no sockets, threads or clocks."""
