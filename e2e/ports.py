"""Loopback ports for the servers the end-to-end suites start (gatehouse, aiosmtpd, RabbitMQ).

A port the kernel hands out for ``bind(..., 0)`` lies in the ephemeral range, where any outgoing
connection on the machine may take it between the moment the suite picks it and the moment the
server binds it ("Address already in use", seen in CI). Ports below the ephemeral range are only
ever taken by listeners, so one picked there that binds now, and that this process has not handed
out before, stays free for the server.

Run as a script, it prints one such port (for the shell suites).
"""

from __future__ import annotations

import random
import socket

LOWEST = 20_000
_handed_out: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            floor = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768
    return floor if floor > LOWEST + 1000 else 32_768


def free_port() -> int:
    """A loopback port no listener holds and no outgoing connection can take."""
    floor = _ephemeral_floor()
    for _ in range(1000):
        port = random.randrange(LOWEST, floor)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {LOWEST}..{floor}")


if __name__ == "__main__":
    print(free_port())
