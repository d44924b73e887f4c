"""Logging for the node agent and its helpers: one prefixed line per event, on stderr.

Every line starts with ``[awsbatch-mpi node N]`` so the lines can be told apart from the
job's own output in the node's log, and carries the wall-clock time to the millisecond; the
key events (joins, launch) add ``t=<unix time>`` so a benchmark can compute overheads across
processes and nodes.
"""

from __future__ import annotations

import logging
import os
import sys
import time

LOGGER_NAME = "awsbatch_mpi"


def prefix(role: str = "") -> str:
    node = os.environ.get("AWS_BATCH_JOB_NODE_INDEX", "?")
    return f"[awsbatch-mpi node {node}{' ' + role if role else ''}]"


def setup(role: str = "") -> logging.Logger:
    """Configure the package logger once per process (level: AWSBATCH_MPI_LOG_LEVEL)."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"{prefix(role)} %(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S")
    )
    logger.handlers[:] = [handler]
    logger.propagate = False
    level = os.environ.get("AWSBATCH_MPI_LOG_LEVEL", "INFO").upper()
    logger.setLevel(getattr(logging, level, logging.INFO))
    return logger


def get() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def stamp(t: float | None = None) -> str:
    """``t=<unix time>``: machine-readable timestamp for benchmarks."""
    return f"t={time.time() if t is None else t:.3f}"
