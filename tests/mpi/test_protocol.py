"""Message authentication between node agents: handshake, tampering, replay, rejection."""

from __future__ import annotations

import socket
import threading

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
    """Connected (client, server) channels over a socketpair; handshakes run concurrently."""
    a, b = socket.socketpair()
    result: dict[str, Channel] = {}
    thread = threading.Thread(target=lambda: result.update(s=server_handshake(b, server_secret)))
    thread.start()
    client = client_handshake(Recorder(a), client_secret)  # type: ignore[arg-type]
    thread.join()
    return client, result["s"]


def test_round_trip_both_directions():
    client, server = pair()
    client.send_json({"op": "ping", "n": 1})
    assert server.recv_json() == {"op": "ping", "n": 1}
    server.send(protocol.KIND_STDOUT, b"hello")
    assert client.recv() == (protocol.KIND_STDOUT, b"hello")
    client.send(protocol.KIND_DATA, b"")
    assert server.recv() == (protocol.KIND_DATA, b"")


def test_wrong_secret_fails_authentication_and_peer_sees_reject():
    client, server = pair(client_secret=OTHER)
    client.send_json({"op": "join"})
    with pytest.raises(AuthError):
        server.recv_json()
    server.reject()
    with pytest.raises(AuthError, match="rejected"):
        client.recv()


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

    # Replay the exact bytes on a new connection: the server's fresh nonce changes the key.
    a, b = socket.socketpair()
    result: dict[str, Channel] = {}
    thread = threading.Thread(target=lambda: result.update(s=server_handshake(b, SECRET)))
    thread.start()
    hello = protocol.recv_exact(a, len(protocol.MAGIC) + protocol.NONCE_BYTES)
    assert hello.startswith(protocol.MAGIC)
    a.sendall(recorded)
    thread.join()
    with pytest.raises(AuthError):
        result["s"].recv_json()


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
