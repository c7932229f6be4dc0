"""Interop tests against real SIP peers on loopback; fixtures in conftest.py."""
