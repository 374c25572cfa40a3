"""Telling systemd how the daemon is doing (Type=notify, WatchdogSec)."""

from __future__ import annotations

import logging
import os
import socket
import time

logger = logging.getLogger(__name__)


class Systemd:
    """sd_notify(3) without libsystemd: one datagram per state change to
    $NOTIFY_SOCKET, and watchdog pings at half of $WATCHDOG_USEC."""

    def __init__(self, address: str | None, watchdog_seconds: float | None) -> None:
        self.address = address
        self.watchdog_seconds = watchdog_seconds
        self._last_ping = 0.0

    @classmethod
    def from_environment(cls) -> Systemd:
        address = os.environ.get("NOTIFY_SOCKET") or None
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # an abstract socket
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        return cls(address, int(usec) / 1e6 if watched else None)

    def notify(self, message: str) -> None:
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self.address)
        except OSError as exc:
            logger.warning("cannot tell systemd %s: %s", message, exc)

    def watchdog(self) -> None:
        if self.watchdog_seconds is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_seconds / 2:
            self._last_ping = now
            self.notify("WATCHDOG=1")
