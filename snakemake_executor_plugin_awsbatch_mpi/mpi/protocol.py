"""Authenticated message channel between the node agents, their launcher shim and rsh agent.

Why not plain JSON over TCP: the agents run commands on request, so anything that can reach
the port could otherwise run code in the job. Every node knows the per-job key (read at start
from the object named by ``AWSBATCH_MPI_KEY_URI``, see ``key``); nothing else does.

Handshake (one per TCP connection)::

    server -> client:  MAGIC (8 bytes) + server nonce (32 random bytes)
    key = HMAC-SHA256(secret, LABEL + server nonce + client nonce)
    client -> server:  client nonce (32 random bytes) + HMAC-SHA256(key, PROOF) (32 bytes)

The client proves it knows the secret in its very first 64 bytes, so a server reads no more
than that from a peer that does not (and nothing at all after ``HANDSHAKE_DEADLINE``): an
unauthenticated peer cannot make it buffer a large frame or hold a connection for long.

Every frame after that is ``length (4 bytes, big endian) | mac (32 bytes) | payload`` with
``mac = HMAC-SHA256(key, direction + sequence number (8 bytes) + payload)``; the payload's
first byte says what it is (``J`` JSON, ``O``/``E`` stdout/stderr, ``D`` data).
A recorded conversation cannot be replayed: the server picks a fresh nonce for every
connection, so the key, and with it every MAC, differs; the client nonce does the same for
the other direction (a fake server cannot replay a recorded server). The sequence numbers stop
frames from being dropped, reordered or reflected within one connection.

A server that sees a bad proof or MAC answers with the 4-byte ``REJECT`` marker (it cannot
authenticate anything to a peer that lacks the secret) and closes, so a misconfigured peer
fails fast with a clear message instead of retrying until its timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"AWSBMPI1"
LABEL = b"awsbatch-mpi/1 session\0"
NONCE_BYTES = 32
MAC_BYTES = 32
MIN_SECRET_BYTES = 32
MAX_FRAME = 8 << 20
REJECT = 0xFFFFFFFF
REJECT_BYTES = REJECT.to_bytes(4, "big")
PROOF = b"awsbatch-mpi/1 client proof"
HELLO_BYTES = len(MAGIC) + NONCE_BYTES
CLIENT_HELLO_BYTES = NONCE_BYTES + MAC_BYTES
# The whole handshake (both hellos) must be over within this many seconds.
HANDSHAKE_DEADLINE = 5.0
# The first request after the handshake (from an authenticated peer).
REQUEST_TIMEOUT = 10.0

KIND_JSON = b"J"
KIND_STDOUT = b"O"
KIND_STDERR = b"E"
KIND_DATA = b"D"

CLIENT = b"C"
SERVER = b"S"

_HEADER = struct.Struct(">I")


class ProtocolError(ConnectionError):
    """The peer broke the framing rules or closed the connection mid-frame."""


class AuthError(ProtocolError):
    """A frame failed authentication, or the peer rejected ours (secrets differ)."""


def secret_key(secret: str) -> bytes:
    """The HMAC key for a secret string; refuses short secrets (they could be guessed)."""
    key = secret.strip().encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the rendezvous key is missing or shorter than {MIN_SECRET_BYTES} characters"
        )
    return key


def session_key(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, LABEL + server_nonce + client_nonce, hashlib.sha256).digest()


def frame_mac(key: bytes, direction: bytes, seq: int, payload: bytes) -> bytes:
    return hmac.new(key, direction + seq.to_bytes(8, "big") + payload, hashlib.sha256).digest()


def client_proof(key: bytes) -> bytes:
    return hmac.new(key, PROOF, hashlib.sha256).digest()


def check_client_hello(secret: bytes, server_nonce: bytes, client_hello: bytes) -> bytes:
    """The session key if the client's hello proves it knows the secret; AuthError if not."""
    if len(client_hello) != CLIENT_HELLO_BYTES:
        raise ProtocolError("short client hello")
    client_nonce, proof = client_hello[:NONCE_BYTES], client_hello[NONCE_BYTES:]
    key = session_key(secret, server_nonce, client_nonce)
    if not hmac.compare_digest(proof, client_proof(key)):
        raise AuthError("the peer does not know the rendezvous key")
    return key


def recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    """Read exactly n bytes; EOFError on a clean close before the first byte.

    With a deadline (``time.monotonic()`` value), the whole read must be over by then:
    a per-call timeout alone would let a peer trickle one byte just before each expiry.
    """
    chunks = bytearray()
    while len(chunks) < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("handshake deadline passed")
            sock.settimeout(remaining)
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            if not chunks:
                raise EOFError("connection closed")
            raise ProtocolError("connection closed in the middle of a frame")
        chunks += chunk
    return bytes(chunks)


@dataclass
class Channel:
    """One authenticated, ordered message stream over a connected socket.

    ``send`` is thread-safe (the exec service writes stdout and stderr from two threads);
    ``recv`` is meant for one reading thread.
    """

    sock: socket.socket
    key: bytes
    send_dir: bytes
    recv_dir: bytes
    peer: str = ""
    _send_seq: int = 0
    _recv_seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, kind: bytes, data: bytes = b"") -> None:
        payload = kind + data
        if len(payload) > MAX_FRAME:
            raise ValueError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
        with self._lock:
            mac = frame_mac(self.key, self.send_dir, self._send_seq, payload)
            self._send_seq += 1
            self.sock.sendall(_HEADER.pack(len(payload)) + mac + payload)

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(KIND_JSON, json.dumps(message, separators=(",", ":")).encode())

    def recv(self) -> tuple[bytes, bytes]:
        """Next frame as (kind, data). EOFError when the peer closed between frames."""
        (length,) = _HEADER.unpack(recv_exact(self.sock, _HEADER.size))
        if length == REJECT:
            raise AuthError(f"{self.peer or 'peer'} rejected our authentication")
        if not 1 <= length <= MAX_FRAME:
            raise ProtocolError(f"bad frame length {length}")
        mac = recv_exact(self.sock, MAC_BYTES)
        payload = recv_exact(self.sock, length)
        expected = frame_mac(self.key, self.recv_dir, self._recv_seq, payload)
        if not hmac.compare_digest(mac, expected):
            raise AuthError(f"message from {self.peer or 'peer'} failed authentication")
        self._recv_seq += 1
        return payload[:1], payload[1:]

    def recv_json(self) -> dict[str, Any]:
        kind, data = self.recv()
        if kind != KIND_JSON:
            raise ProtocolError(f"expected a JSON message, got frame kind {kind!r}")
        message = json.loads(data)
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            raise ProtocolError("message without an op")
        return message

    def reject(self) -> None:
        """Tell an unauthenticated peer it failed (best effort), then close."""
        try:
            self.sock.sendall(_HEADER.pack(REJECT))
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _peer_name(sock: socket.socket) -> str:
    try:
        name = sock.getpeername()
    except OSError:
        return "?"
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return str(name) or "local"


def server_hello() -> tuple[bytes, bytes]:
    """(server nonce, the bytes the server sends first)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, MAGIC + nonce


def send_reject(sock: socket.socket) -> None:
    """Tell a peer that failed authentication so (best effort, never blocks long)."""
    try:
        sock.settimeout(0.5)
        sock.sendall(REJECT_BYTES)
    except OSError:
        pass


def server_handshake(sock: socket.socket, secret: bytes) -> Channel:
    """Server side, blocking (the node service does the same without a thread per peer).

    Raises AuthError (after telling the peer) when the client does not know the secret.
    """
    deadline = time.monotonic() + HANDSHAKE_DEADLINE
    server_nonce, hello = server_hello()
    sock.settimeout(HANDSHAKE_DEADLINE)
    sock.sendall(hello)
    try:
        key = check_client_hello(
            secret, server_nonce, recv_exact(sock, CLIENT_HELLO_BYTES, deadline)
        )
    except AuthError:
        send_reject(sock)
        sock.close()
        raise
    sock.settimeout(REQUEST_TIMEOUT)
    return Channel(sock, key, SERVER, CLIENT, peer=_peer_name(sock))


def client_handshake(sock: socket.socket, secret: bytes) -> Channel:
    """Client side of the handshake (see the module docstring).

    A server that finds the proof wrong answers REJECT, which the first ``recv`` reports.
    """
    deadline = time.monotonic() + HANDSHAKE_DEADLINE
    hello = recv_exact(sock, HELLO_BYTES, deadline)
    if not hello.startswith(MAGIC):
        raise ProtocolError(f"{_peer_name(sock)} is not an awsbatch-mpi node agent")
    client_nonce = os.urandom(NONCE_BYTES)
    key = session_key(secret, hello[len(MAGIC) :], client_nonce)
    sock.sendall(client_nonce + client_proof(key))
    sock.settimeout(REQUEST_TIMEOUT)
    return Channel(sock, key, CLIENT, SERVER, peer=_peer_name(sock))


def connect(host: str, port: int, secret: bytes, timeout: float = HANDSHAKE_DEADLINE) -> Channel:
    """Open an authenticated client channel to the agent at host:port."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        channel = client_handshake(sock, secret)
    except BaseException:
        sock.close()
        raise
    return channel


def request(channel: Channel, message: dict[str, Any]) -> dict[str, Any]:
    """Send one message and return the reply; raise on an error reply."""
    channel.send_json(message)
    reply = channel.recv_json()
    if reply["op"] == "error":
        raise RemoteError(str(reply.get("message", "unknown error")))
    return reply


class RemoteError(RuntimeError):
    """The agent answered a request with an error message."""
