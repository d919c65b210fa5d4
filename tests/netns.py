"""Hosts with network stacks of their own on this machine (Linux network namespaces), for
the multi-machine tests: a bridge in a namespace of its own joins them on a private /24, and
nothing is routed anywhere else. Needs root and iproute2.

Each host's /etc/hosts (`ip netns exec` mounts /etc/netns/NAME/hosts over it) says that this
machine's name is the host's own address: JAX's CPU collectives (gloo) tell the others the
address the host name resolves to, as on real machines."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Self

SUBNET = "10.231.77"  # the test's own addresses, only inside the namespaces


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"wlprobe{os.getpid()}"
    try:
        _ip("netns", "add", name)
        _ip("netns", "del", name)
    except (subprocess.CalledProcessError, OSError) as err:
        return f"cannot make a network namespace: {getattr(err, 'stderr', '') or err}".strip()
    return None


class Hosts:
    """`n` namespaces wl<pid>h0…, host i at SUBNET.(i + 1), joined by a bridge in wl<pid>s."""

    def __init__(self, n: int):
        self.tag = f"wl{os.getpid() % 100000}"
        self.switch = f"{self.tag}s"
        self.names = [f"{self.tag}h{i}" for i in range(n)]
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(n)]
        self.made: list[str] = []

    def __enter__(self) -> Self:
        try:
            _ip("netns", "add", self.switch)
            self.made.append(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, (name, address) in enumerate(zip(self.names, self.addresses)):
                _ip("netns", "add", name)
                self.made.append(name)
                etc = Path("/etc/netns") / name
                etc.mkdir(parents=True, exist_ok=True)
                (etc / "hosts").write_text(f"127.0.0.1 localhost\n{address} {socket.gethostname()}\n")
                _ip("-n", self.switch, "link", "add", f"v{i}", "type", "veth", "peer", "name",
                    "eth0", "netns", name)
                _ip("-n", self.switch, "link", "set", f"v{i}", "master", "br0", "up")
                _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
                _ip("-n", name, "link", "set", "eth0", "up")
                _ip("-n", name, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for name in reversed(self.made):  # a namespace's links go with it
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True,
                           timeout=20)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
        self.made.clear()
        try:
            Path("/etc/netns").rmdir()  # only if no other namespace keeps files there
        except OSError:
            pass

    def command(self, i: int, argv: list[str]) -> list[str]:
        """`argv` run on host i."""
        return ["ip", "netns", "exec", self.names[i], *argv]
