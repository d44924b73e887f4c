"""An ssh-compatible remote-launch agent that needs no SSH keys and no sshd.

MPI launchers start their daemons on other nodes with ``ssh [options] HOST COMMAND...``.
This script accepts the same call, asks the node agent on HOST (``AWSBATCH_MPI_PORT``, over
the authenticated channel) to run COMMAND with ``/bin/bash -c`` in the same working
directory, streams its stdout/stderr back and exits with its exit code, like ssh (255 when
the connection fails). Killing this script closes the connection, and the node agent then
kills the remote command's process group.

Standard input is not forwarded (as with ``ssh -n``): MPI daemons never read it, and
reading it here would steal the input that mpirun forwards to rank 0.

Like ``ssh -o SendEnv``, it passes the MPI runtime's own settings (``OMPI_MCA_*``,
``PRTE_MCA_*``, ``PMIX_MCA_*``, the run-as-root switches) to the remote command; everything
else comes from the remote node's environment.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import DEFAULT_PORT, ENV_PORT, nodelog
from .key import load_secret
from .protocol import (
    KIND_JSON,
    KIND_STDERR,
    KIND_STDOUT,
    AuthError,
    ProtocolError,
    connect,
)

SSH_OPTIONS_WITH_VALUE = set("BbcDEeFIiJLlmOoPpQRSWw")
FORWARDED_PREFIXES = (
    "OMPI_MCA_",
    "PRTE_MCA_",
    "PMIX_MCA_",
    "OMPI_ALLOW_RUN_AS_ROOT",
    "PRTE_ALLOW_RUN_AS_ROOT",
)
EXIT_CONNECTION = 255
CONNECT_TIMEOUT = 30.0


@dataclass(frozen=True)
class RshCall:
    host: str
    command: str


def parse_args(argv: Sequence[str]) -> RshCall:
    """``[ssh options] [user@]HOST COMMAND...`` -> what to run where (ssh's rules)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        i += 1
        for j, flag in enumerate(arg[1:], start=1):  # -xnT, -p22, -p 22
            if flag in SSH_OPTIONS_WITH_VALUE:
                if j == len(arg) - 1:
                    i += 1  # the value is the next argument
                break
    if i >= len(argv):
        raise ValueError("no host given")
    host = argv[i].rpartition("@")[2]
    command = " ".join(argv[i + 1 :])
    if not command.strip():
        raise ValueError("no command given (interactive logins are not supported)")
    return RshCall(host, command)


def forwarded_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES)}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def main(argv: list[str]) -> int:
    log = nodelog.setup("rsh")
    try:
        call = parse_args(argv)
    except ValueError as exc:
        log.error("usage: awsbatch-mpi-rsh [ssh options] HOST COMMAND...: %s", exc)
        return EXIT_CONNECTION
    env = os.environ
    port = int(env.get(ENV_PORT) or DEFAULT_PORT)
    try:
        channel = connect(call.host, port, load_secret(env), CONNECT_TIMEOUT)
    except (OSError, EOFError, ProtocolError, ValueError) as exc:
        log.error("cannot reach the node agent on %s:%d: %s", call.host, port, exc)
        return EXIT_CONNECTION
    channel.sock.settimeout(None)
    try:
        channel.send_json(
            {
                "op": "exec",
                "command": call.command,
                "cwd": os.getcwd(),
                "env": forwarded_env(env),
            }
        )
        while True:
            kind, data = channel.recv()
            if kind == KIND_STDOUT:
                _write_all(1, data)
            elif kind == KIND_STDERR:
                _write_all(2, data)
            elif kind == KIND_JSON:
                message = json.loads(data)
                if message.get("op") == "exit":
                    return int(message.get("code", EXIT_CONNECTION))
                if message.get("op") == "error":
                    log.error("%s: %s", call.host, message.get("message"))
                    return EXIT_CONNECTION
    except AuthError as exc:
        log.error("%s (the rendezvous keys of the nodes differ?)", exc)
    except (OSError, EOFError, ProtocolError, ValueError) as exc:
        log.error("connection to %s lost: %s", call.host, exc or "closed")
    finally:
        channel.close()
    return EXIT_CONNECTION


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
