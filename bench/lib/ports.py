#!/usr/bin/env python3
"""Free loopback ports for the bench scripts, so two runs (or a bench and a helper's tests)
never fight over fixed numbers. The kernel picks them (bind to port 0); all of a call's
sockets stay open until every port is chosen, so one call never returns the same port twice.
A port can still be taken between this and the server's bind, and hydrant and bench/ceiling
bind with SO_REUSEPORT, so a second server of the same user on that port would not fail: it
would silently share the connections. refuse_taken, called right before a server starts,
turns that into a loud failure.

  from ports import free_ports; pg, redis = free_ports(2)
  bench/lib/ports.py N            prints N free ports, one a line (for the shell scripts)
"""
import socket
import sys


def free_ports(count):
    held = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def free_port():
    return free_ports(1)[0]


def refuse_taken(*ports):
    """Raises when any of the ports already has a listener on this machine."""
    with open("/proc/net/tcp") as f4, open("/proc/net/tcp6") as f6:
        lines = f4.read().splitlines()[1:] + f6.read().splitlines()[1:]
    listening = {int(fields[1].rsplit(":", 1)[1], 16) for fields in (line.split() for line in lines)
                 if fields[3] == "0A"}  # TCP_LISTEN
    taken = [p for p in ports if p in listening]
    if taken:
        raise RuntimeError(f"port(s) {taken} already have a listener (SO_REUSEPORT would share them)")


if __name__ == "__main__":
    for port in free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
        print(port)
