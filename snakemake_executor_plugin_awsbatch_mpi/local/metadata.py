"""The ECS task metadata endpoint (v4) of emulated containers.

On AWS, ECS gives every container ``ECS_CONTAINER_METADATA_URI_V4``; a GET of it returns the
container's metadata, whose ``Networks[].IPv4Addresses`` is the private address of the
task's network interface (multi-node jobs run in ``awsvpc`` mode). The node agent reads it to
listen on that address only. Without it here, the agent would fall back to listening on
every interface and that path would never run in a test, so the emulation serves the same
documents: one small HTTP server per runtime, a random token per container.

Only the fields the agent (and a curious user) reads are served: ``DockerId``, ``Name``,
``Networks`` (``NetworkMode`` ``awsvpc``, ``IPv4Addresses``); ``<uri>/task`` gives the task
document with that container in ``Containers``.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"
# A container may ask before the runtime knows its address (Docker assigns it at start).
ADDRESS_WAIT = 3.0


class TaskMetadataServer:
    """Serves ``/v4/<token>`` and ``/v4/<token>/task`` on ``host`` (a free port)."""

    def __init__(self, host: str = "127.0.0.1"):
        self._cond = threading.Condition()
        self._containers: dict[str, dict[str, Any]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                document = server.document(self.path)
                body = json.dumps(document or {"error": "no such container"}).encode()
                self.send_response(200 if document else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no access log on the emulation's console

        self._http = ThreadingHTTPServer((host, 0), Handler)
        self._http.daemon_threads = True
        self.host, self.port = self._http.server_address[:2]
        threading.Thread(target=self._http.serve_forever, name="task-metadata", daemon=True).start()

    def register(self, name: str, address: str | None = None) -> str:
        """A token for a new container (its address now, or later with ``set_address``)."""
        token = secrets.token_hex(8)
        with self._cond:
            self._containers[token] = {"name": name, "address": address}
        return token

    def set_address(self, token: str, address: str) -> None:
        with self._cond:
            if token in self._containers:
                self._containers[token]["address"] = address
                self._cond.notify_all()

    def forget(self, token: str) -> None:
        with self._cond:
            self._containers.pop(token, None)

    def path(self, token: str) -> str:
        return f"/v4/{token}"

    def uri(self, token: str, host: str | None = None, port: int | None = None) -> str:
        """The URI a container uses (through a forwarder for containers on a bridge)."""
        return f"http://{host or self.host}:{port or self.port}{self.path(token)}"

    def document(self, path: str) -> dict[str, Any] | None:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) not in (2, 3) or parts[0] != "v4" or parts[2:] not in ([], ["task"]):
            return None
        token = parts[1]
        with self._cond:
            self._cond.wait_for(
                lambda: (self._containers.get(token) or {}).get("address") is not None
                or token not in self._containers,
                ADDRESS_WAIT,
            )
            entry = dict(self._containers.get(token) or {})
        if not entry or entry.get("address") is None:
            return None
        container = {
            "DockerId": token,
            "Name": entry["name"],
            "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": [entry["address"]]}],
        }
        if parts[2:] == ["task"]:
            return {"Cluster": "awsbatch-mpi-local", "TaskARN": token, "Containers": [container]}
        return container

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
