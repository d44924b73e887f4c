"""The only part of a node agent that a peer without the key reaches: accept and authenticate.

Anything on the VPC (or the same host) can connect to a node's port. Earlier versions gave
every connection its own thread before knowing who it was, and read a whole frame (up to
8 MiB) before checking its MAC: 1,000 slow connections kept real nodes from joining. Here
one thread runs every handshake with a selector, and an unauthenticated peer gets:

- at most ``CLIENT_HELLO_BYTES`` (64) bytes read: its nonce and the proof that it knows the
  key (``protocol``); a wrong proof is answered with REJECT and the connection closed;
- ``HANDSHAKE_DEADLINE`` seconds for those bytes, in total;
- a place among at most ``max_pending`` unauthenticated connections. When they are all
  taken, a new connection is not refused (a real node might be the one refused): the oldest
  pending connection of the peer address holding the most is dropped instead, so a flood
  from a few addresses evicts itself while nodes (one address each) get through.

Authenticated connections leave the gate at once and are handed to ``on_channel`` in a
thread of their own: no limit applies to them.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from . import nodelog
from .protocol import (
    CLIENT,
    CLIENT_HELLO_BYTES,
    HANDSHAKE_DEADLINE,
    REJECT_BYTES,
    REQUEST_TIMEOUT,
    SERVER,
    AuthError,
    Channel,
    ProtocolError,
    check_client_hello,
    server_hello,
)

DEFAULT_MAX_PENDING = 256
ACCEPTS_PER_ROUND = 64
# Log the first few rejected peers, then only every REJECT_LOG_EVERY-th (a flood must not
# flood the job's log too).
REJECT_LOG_FIRST = 5
REJECT_LOG_EVERY = 1000


@dataclass
class Pending:
    sock: socket.socket
    peer: str
    server_nonce: bytes
    deadline: float
    received: bytearray = field(default_factory=bytearray)


def _peer(sock: socket.socket) -> tuple[str, str]:
    """(address, "address:port") of the peer."""
    try:
        host, port = sock.getpeername()[:2]
    except (OSError, ValueError):
        return "?", "?"
    return str(host), f"{host}:{port}"


def victim(pending: dict[socket.socket, Pending]) -> socket.socket:
    """The connection to drop when the gate is full: the oldest of the busiest address."""
    counts = Counter(p.peer.rpartition(":")[0] for p in pending.values())
    busiest, _ = counts.most_common(1)[0]
    return next(s for s, p in pending.items() if p.peer.rpartition(":")[0] == busiest)


@dataclass
class Gate:
    """Runs every handshake of one listening socket in one thread (see the module doc)."""

    listener: socket.socket
    secret: bytes
    on_channel: Callable[[Channel], None]
    stopping: threading.Event
    max_pending: int = DEFAULT_MAX_PENDING
    deadline_seconds: float = HANDSHAKE_DEADLINE
    pending: dict[socket.socket, Pending] = field(default_factory=dict)  # in accept order
    rejected: int = 0
    dropped: int = 0

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        self.listener.setblocking(False)
        selector.register(self.listener, selectors.EVENT_READ)
        try:
            while not self.stopping.is_set():
                try:
                    events = selector.select(self._timeout())
                except (OSError, ValueError):
                    if self.stopping.is_set():
                        return
                    raise
                for key, _ in events:
                    if key.fileobj is self.listener:
                        self._accept(selector)
                    else:
                        self._read(selector, key.fileobj)  # type: ignore[arg-type]
                self._expire(selector)
        finally:
            for sock in list(self.pending):
                self._drop(selector, sock)
            selector.close()

    def _timeout(self) -> float:
        if not self.pending:
            return 0.5
        oldest = next(iter(self.pending.values()))
        return max(0.0, min(0.5, oldest.deadline - time.monotonic()))

    def _accept(self, selector: selectors.BaseSelector) -> None:
        for _ in range(ACCEPTS_PER_ROUND):
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    if self.pending:  # make room: a pending stranger's descriptor
                        self._drop(selector, victim(self.pending), count=True)
                        continue
                    time.sleep(0.05)
                    return
                if self.stopping.is_set():
                    return
                continue  # ECONNABORTED and friends: that peer is gone
            self._admit(selector, sock)

    def _admit(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        while len(self.pending) >= self.max_pending:
            self._drop(selector, victim(self.pending), count=True)
        nonce, hello = server_hello()
        try:
            sock.setblocking(False)
            if sock.send(hello) != len(hello):  # an empty socket buffer takes 40 bytes
                raise OSError("short send")
        except OSError:
            sock.close()
            return
        _, peer = _peer(sock)
        self.pending[sock] = Pending(sock, peer, nonce, time.monotonic() + self.deadline_seconds)
        selector.register(sock, selectors.EVENT_READ)

    def _read(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        entry = self.pending.get(sock)
        if entry is None:
            return
        try:
            chunk = sock.recv(CLIENT_HELLO_BYTES - len(entry.received))
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(selector, sock)
            return
        entry.received += chunk
        if len(entry.received) < CLIENT_HELLO_BYTES:
            return
        selector.unregister(sock)
        del self.pending[sock]
        try:
            key = check_client_hello(self.secret, entry.server_nonce, bytes(entry.received))
        except (AuthError, ProtocolError):
            self._reject(sock, entry.peer)
            return
        sock.setblocking(True)
        sock.settimeout(REQUEST_TIMEOUT)
        channel = Channel(sock, key, SERVER, CLIENT, peer=entry.peer)
        threading.Thread(target=self.on_channel, args=(channel,), daemon=True).start()

    def _reject(self, sock: socket.socket, peer: str) -> None:
        self.rejected += 1
        if self.rejected <= REJECT_LOG_FIRST or self.rejected % REJECT_LOG_EVERY == 0:
            nodelog.get().warning(
                "rejected a connection from %s: it does not know this job's rendezvous key "
                "(%d rejected so far)",
                peer,
                self.rejected,
            )
        try:
            sock.send(REJECT_BYTES)  # non-blocking: best effort
        except OSError:
            pass
        sock.close()

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        while self.pending:
            sock, entry = next(iter(self.pending.items()))
            if entry.deadline > now:
                return
            self._drop(selector, sock, count=True)

    def _drop(
        self, selector: selectors.BaseSelector, sock: socket.socket, count: bool = False
    ) -> None:
        entry = self.pending.pop(sock, None)
        try:
            selector.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        sock.close()
        if count and entry is not None:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % REJECT_LOG_EVERY == 0:
                nodelog.get().warning(
                    "dropped %d connection(s) that did not authenticate in time or while "
                    "too many were waiting (last from %s)",
                    self.dropped,
                    entry.peer,
                )
