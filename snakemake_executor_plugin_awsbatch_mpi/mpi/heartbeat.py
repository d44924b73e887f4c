"""Heartbeats on a control connection: notice a peer node that vanished without closing it.

Why: a node whose instance is lost or whose network is cut never closes its TCP
connections, so a reader blocked on them waits for TCP's own give-up (about 15 minutes of
retransmissions, or for ever on an idle connection) while every node of the job keeps
billing until Batch's timeout. Both ends of each control connection (main node <-> child)
therefore send a small authenticated ``heartbeat`` message every third of the timeout and
treat any frame received as a sign of life; a peer silent for ``timeout`` seconds is lost.

The watch runs in its own thread and never reads the socket: the connection's reader calls
:meth:`Heartbeat.heard` for every frame. Sends are tiny (one frame of about 60 bytes every
``timeout / 3`` seconds), so they cannot fill a send buffer before the timeout fires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import DEFAULT_HEARTBEAT_TIMEOUT, ENV_HEARTBEAT_TIMEOUT
from .protocol import Channel

HEARTBEAT_OP = "heartbeat"
BEATS_PER_TIMEOUT = 3
MIN_TIMEOUT = 0.3


@dataclass(frozen=True)
class Silence:
    """When a peer was last heard from (wall clock, for people) and how long ago."""

    last_heard: float  # time.time()
    seconds: float

    def describe(self) -> str:
        """``last heard from at 23:59:01 UTC (31.2 s before)``."""
        clock = time.strftime("%H:%M:%S", time.gmtime(self.last_heard))
        return f"last heard from at {clock} UTC, {self.seconds:.1f} s earlier"


def heartbeat_timeout(env: Mapping[str, str]) -> float:
    """Seconds of silence after which a peer is lost (``AWSBATCH_MPI_HEARTBEAT_TIMEOUT``).

    ValueError names the variable when it is not a number of at least ``MIN_TIMEOUT``.
    """
    raw = env.get(ENV_HEARTBEAT_TIMEOUT, "").strip()
    if not raw:
        return DEFAULT_HEARTBEAT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{ENV_HEARTBEAT_TIMEOUT}={raw!r} is not a number of seconds") from None
    if not value >= MIN_TIMEOUT:  # also refuses nan
        raise ValueError(f"{ENV_HEARTBEAT_TIMEOUT}={raw!r} is below {MIN_TIMEOUT} s")
    return value


class Heartbeat:
    """Beats on ``channel`` and calls ``on_lost(silence)`` once if the peer goes quiet.

    ``stop()`` ends it (the connection closed or the job is over); after ``on_lost`` it
    stops by itself.
    """

    def __init__(
        self,
        channel: Channel,
        timeout: float,
        on_lost: Callable[[Silence], None],
        name: str = "heartbeat",
    ):
        self.channel = channel
        self.timeout = timeout
        self.interval = timeout / BEATS_PER_TIMEOUT
        self.on_lost = on_lost
        self.name = name
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._last_wall = time.time()
        self._stopped = threading.Event()
        self.sent = 0

    def heard(self) -> None:
        """A frame arrived from the peer."""
        with self._lock:
            self._last = time.monotonic()
            self._last_wall = time.time()

    def silence(self) -> Silence:
        with self._lock:
            return Silence(self._last_wall, time.monotonic() - self._last)

    def start(self) -> Heartbeat:
        threading.Thread(target=self._run, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        next_beat = time.monotonic()
        while not self._stopped.is_set():
            now = time.monotonic()
            quiet = self.silence()
            if quiet.seconds >= self.timeout:
                self._stopped.set()
                self.on_lost(quiet)
                return
            if now >= next_beat:
                try:
                    self.channel.send_json({"op": HEARTBEAT_OP})
                    self.sent += 1
                except (OSError, ValueError):
                    pass  # the reader sees the closed connection; silence decides otherwise
                next_beat = now + self.interval
            wake = min(next_beat, now + self.timeout - quiet.seconds)
            self._stopped.wait(max(0.01, min(wake - now, self.interval)))
