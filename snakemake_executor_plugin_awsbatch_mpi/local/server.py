"""``awsbatch-mpi local``: run the emulation in the foreground until interrupted."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from ._common import ALL_LOCAL_QUEUES
from .emulation import LocalEmulation
from .images import DEFAULT_JOB_IMAGE, DEFAULT_MPI_IMAGE

logger = logging.getLogger(__name__)


def describe_environment(emu: LocalEmulation) -> str:
    """Shell lines (``export ...``) and notes a user needs to point a client at ``emu``.

    Comment lines start with ``#``, so the text can be pasted or ``eval``-ed as is.
    """
    lines = ["# Local AWS emulation (AWS Batch, S3, CloudWatch Logs). In another shell:"]
    lines += [f"export {name}={value}" for name, value in emu.client_env().items()]
    lines += [
        f"# Job queues: {' '.join(ALL_LOCAL_QUEUES)}",
        f"# Bucket: s3://{emu.bucket}",
        f"# Job role ARN: {emu.job_role_arn}",
        f"# Logs: CloudWatch Logs group {emu.log_group}",
        (
            f"# Batch API quota: {emu.batch_quota.rate:g} calls per second, as on AWS (more "
            "are answered with HTTP 429 TooManyRequestsException; --batch-quota 0 turns it off)"
            if emu.batch_quota is not None
            else "# Batch API quota: off (AWS answers more than 50 calls per second with 429)"
        ),
        (
            "# Jobs run in Docker containers of their job definition's image (never pulled:"
            f" `make images` builds ours; use them with --container-image {DEFAULT_JOB_IMAGE}"
            f" and, for MPI rules, resources awsbatch_image={DEFAULT_MPI_IMAGE});"
            " press Ctrl-C to stop."
            if emu.runtime == "docker"
            else "# Jobs run as local processes with this machine's Python environment; "
            "press Ctrl-C to stop."
        ),
    ]
    return "\n".join(lines)


# Signals that end `awsbatch-mpi local`: Ctrl-C, `kill <pid>`, and the terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def serve_forever(
    port: int,
    on_ready: Callable[[LocalEmulation], None] | None = None,
    runtime: str = "process",
    batch_quota: float | None = 50.0,
) -> None:
    """Run the emulation on ``port`` until Ctrl-C, SIGTERM or SIGHUP, then stop everything.

    One signal is enough: it only sets a flag, and the main thread then stops the server and
    every job process the emulation started (a KeyboardInterrupt raised in the middle of the
    start-up or of the shutdown could leave some behind). Further signals while stopping are
    ignored.

    The environment lines are logged at INFO level, unless the caller prints them itself:
    then it passes ``on_ready`` (called with the started emulation before blocking) and calls
    :func:`describe_environment`, and the lines are not logged a second time.
    """
    if not logging.getLogger().handlers:
        # This is the foreground command's entry point: without a configured handler the
        # export lines (INFO) would be swallowed.
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    stop = threading.Event()
    previous: dict[int, object] = {}

    def _request_stop(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            logger.info(
                "Received %s; stopping the local emulation", signal.Signals(signum).name
            )
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, _request_stop)
    try:
        with LocalEmulation(port=port, runtime=runtime, batch_quota=batch_quota) as emu:
            if stop.is_set():
                return
            if on_ready is not None:
                on_ready(emu)
            else:
                for line in describe_environment(emu).splitlines():
                    logger.info("%s", line)
            while not stop.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
