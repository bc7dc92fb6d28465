"""Ports picked for a second platform or a test's servers: free, and never ones the kernel may
hand an outgoing connection in the meantime."""

from __future__ import annotations

import socket
from pathlib import Path

from trainyard.cli.embedded import free_local_port


def test_a_picked_port_is_bindable_and_outside_the_kernels_ephemeral_range() -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())

    ports = {free_local_port() for _ in range(20)}

    assert all(not low <= port <= high for port in ports)
    assert len(ports) > 1  # picked at random: parallel tests rarely pick the same one
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_ports_in_use_are_not_picked() -> None:
    listeners = [socket.socket() for _ in range(3)]
    try:
        for sock in listeners:
            sock.bind(("127.0.0.1", free_local_port()))
            sock.listen()
        taken = [sock.getsockname()[1] for sock in listeners]
        free = free_local_port()

        picked = {free_local_port(among=[*taken, free]) for _ in range(20)}
    finally:
        for sock in listeners:
            sock.close()

    assert picked == {free}
