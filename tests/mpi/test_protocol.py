"""Message authentication between node agents: handshake, tampering, replay, rejection."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from snakemake_executor_plugin_awsbatch_mpi.mpi import protocol
from snakemake_executor_plugin_awsbatch_mpi.mpi.protocol import (
    AuthError,
    Channel,
    client_handshake,
    secret_key,
    server_handshake,
)

from .conftest import Recorder

SECRET = secret_key("a" * 64)
OTHER = secret_key("b" * 64)


def pair(client_secret: bytes = SECRET, server_secret: bytes = SECRET):
    """Connected (client, server) channels over a socketpair; handshakes run concurrently.

    The server side is None when the handshake failed (its exception is in ``errors``).
    """
    a, b = socket.socketpair()
    result: dict[str, Channel | None] = {"s": None}

    def serve() -> None:
        try:
            result["s"] = server_handshake(b, server_secret)
        except Exception as exc:  # noqa: BLE001 - inspected by the tests
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    client = client_handshake(Recorder(a), client_secret)  # type: ignore[arg-type]
    thread.join()
    return client, result["s"]


errors: list[Exception] = []


def test_round_trip_both_directions():
    client, server = pair()
    client.send_json({"op": "ping", "n": 1})
    assert server.recv_json() == {"op": "ping", "n": 1}
    server.send(protocol.KIND_STDOUT, b"hello")
    assert client.recv() == (protocol.KIND_STDOUT, b"hello")
    client.send(protocol.KIND_DATA, b"")
    assert server.recv() == (protocol.KIND_DATA, b"")


def test_wrong_secret_fails_in_the_handshake_and_peer_sees_reject():
    errors.clear()
    client, server = pair(client_secret=OTHER)
    assert server is None  # refused before any frame: the client hello carries a proof
    assert isinstance(errors[-1], AuthError)
    with pytest.raises(AuthError, match="rejected"):
        client.recv()


def test_server_reads_no_more_than_the_client_hello_from_a_stranger():
    """An unauthenticated 8 MiB frame is never read: the proof comes first (64 bytes)."""
    a, b = socket.socketpair()
    errors.clear()
    thread = threading.Thread(target=lambda: pytest.raises(AuthError, server_handshake, b, SECRET))
    thread.start()
    protocol.recv_exact(a, protocol.HELLO_BYTES)
    a.sendall(b"\0" * protocol.CLIENT_HELLO_BYTES)
    thread.join(5)
    assert not thread.is_alive()
    assert protocol.recv_exact(a, 4) == protocol.REJECT_BYTES
    assert a.recv(1) == b""  # closed: nothing after the 64 bytes was waited for


def test_handshake_has_a_total_deadline(monkeypatch):
    """A peer trickling one byte at a time cannot keep the handshake open past the deadline."""
    monkeypatch.setattr(protocol, "HANDSHAKE_DEADLINE", 0.5)
    a, b = socket.socketpair()
    done: list[Exception] = []

    def serve() -> None:
        try:
            server_handshake(b, SECRET)
        except Exception as exc:  # noqa: BLE001
            done.append(exc)

    thread = threading.Thread(target=serve)
    started = time.monotonic()
    thread.start()
    protocol.recv_exact(a, protocol.HELLO_BYTES)
    for _ in range(20):  # one byte every 0.1 s: each gap is below any per-read timeout
        if not thread.is_alive():
            break
        try:
            a.send(b"x")
        except OSError:
            break
        time.sleep(0.1)
    thread.join(5)
    assert isinstance(done[0], TimeoutError)
    assert time.monotonic() - started < 1.5


def test_tampered_frame_is_refused():
    client, server = pair()
    payload = protocol.KIND_JSON + b'{"op":"exec","command":"true"}'
    mac = protocol.frame_mac(client.key, protocol.CLIENT, 0, payload)
    forged = payload.replace(b"true", b"evil")
    client.sock.sendall(len(forged).to_bytes(4, "big") + mac + forged)
    with pytest.raises(AuthError):
        server.recv()


def test_reordered_or_reflected_frames_are_refused():
    client, server = pair()
    # A frame the server sent, reflected back to it, carries the wrong direction.
    payload = protocol.KIND_JSON + b'{"op":"ping"}'
    mac = protocol.frame_mac(server.key, protocol.SERVER, 0, payload)
    client.sock.sendall(len(payload).to_bytes(4, "big") + mac + payload)
    with pytest.raises(AuthError):
        server.recv()


def test_recorded_conversation_cannot_be_replayed():
    client, server = pair()
    client.send_json({"op": "exec", "command": "echo pwned"})
    assert server.recv_json()["command"] == "echo pwned"
    recorded = bytes(client.sock.sent)  # client nonce + the authenticated frame

    # Replay the exact bytes on a new connection: the server's fresh nonce changes the key,
    # so the replayed proof no longer fits and the server refuses it in the handshake.
    a, b = socket.socketpair()
    errors.clear()
    thread = threading.Thread(target=lambda: pytest.raises(AuthError, server_handshake, b, SECRET))
    thread.start()
    hello = protocol.recv_exact(a, len(protocol.MAGIC) + protocol.NONCE_BYTES)
    assert hello.startswith(protocol.MAGIC)
    a.sendall(recorded)
    thread.join()
    assert protocol.recv_exact(a, 4) == protocol.REJECT_BYTES


def test_short_secret_refused():
    with pytest.raises(ValueError, match="shorter"):
        secret_key("too-short")
    with pytest.raises(ValueError):
        secret_key("")


def test_oversized_frame_length_refused():
    client, server = pair()
    client.sock.sendall((protocol.MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(protocol.ProtocolError, match="length"):
        server.recv()
