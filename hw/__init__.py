"""Hardware drivers, each with a real backend and a simulated twin chosen by name.

This package never imports `firmware`: drivers know pins, buses and PCMs, not SIP.
"""
