"""The interop lab: Kamailio, SIPp, baresip and tshark run on 127.0.0.1 for one test."""
