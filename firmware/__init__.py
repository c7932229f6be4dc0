"""deskphone firmware: SIP user agent, media engine and phone logic over the drivers in `hw`."""
