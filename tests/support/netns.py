"""A private network namespace for a test: its own loopback and its own namespaced sysctls, like a Fargate task's
(awsvpc gives each task a network namespace of its own).

``in_private_network(fn)`` runs ``fn`` on a thread that has left the test process's network namespace for a new
one with only ``lo`` (up): the sockets ``fn`` opens, the processes it starts and the ``net.*`` sysctls it writes
are that namespace's, and disappear with it. The rest of the process (and the machine) is untouched. It needs
root (``CAP_SYS_ADMIN``); ``available()`` says whether this machine allows it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _enter_new_network_namespace() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare(CLONE_NEWNET): {os.strerror(errno)}")
    # A new namespace's loopback is down; bring it up (what `ip link set lo up` does).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, request + b"\0" * 22)[:18])[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP) + b"\0" * 22)


def in_private_network(fn: Callable[[], T], timeout: float = 60) -> T:
    """``fn()`` in a new network namespace; its result, or its exception."""
    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            _enter_new_network_namespace()
            outcome["result"] = fn()
        except BaseException as err:  # handed back to the caller's thread
            outcome["error"] = err

    worker = threading.Thread(target=body, name="private-network", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"the private-network thread did not finish in {timeout} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def set_sysctl(name: str, value: str) -> None:
    """Writes a namespaced sysctl (``net.ipv4.ip_unprivileged_port_start``) of the calling thread's namespace."""
    Path("/proc/sys", *name.split(".")).write_text(value)


def get_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def available() -> bool:
    """Whether this process may make network namespaces (root, and not forbidden by a sandbox)."""
    if os.geteuid() != 0:
        return False
    try:
        return in_private_network(lambda: True, timeout=10)
    except OSError:
        return False
