"""Which addresses are this machine only (loopback): the default, and the one case in
which the server also checks the Host header of every request."""

from __future__ import annotations

import ipaddress

#: Host names a request to a loopback-bound server may carry.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = ["LOOPBACK_NAMES", "is_loopback"]
