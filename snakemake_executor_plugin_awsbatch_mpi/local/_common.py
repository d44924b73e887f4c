"""Names and constants of the local emulation that must not need moto to import.

The executor plugin and the CLI refer to the queue names and the bucket without necessarily
having the optional ``local`` extra (moto) installed, so these live apart from the modules
that import moto.
"""

from __future__ import annotations

from ..mpi import ENV_LOCAL_NODE_ADDRESS

# Queues a client can submit to. "local-fargate" is extra: it is backed by a FARGATE compute
# environment so that Fargate-specific client code paths can be exercised; locally it runs
# jobs exactly like the others.
LOCAL_QUEUES: tuple[str, str, str] = ("local-cpu", "local-gpu", "local-mpi")
LOCAL_FARGATE_QUEUE = "local-fargate"
ALL_LOCAL_QUEUES: tuple[str, ...] = (*LOCAL_QUEUES, LOCAL_FARGATE_QUEUE)
LOCAL_BUCKET = "snakemake-local"

# What a client shell uses. moto accepts any credentials; they are dummies.
CLIENT_ACCESS_KEY_ID = "testing"
CLIENT_SECRET_ACCESS_KEY = "testing"

# What a job container receives, as a job role would give it. Deliberately different from the
# client's dummies so tests can prove a job never inherits the submitter's credentials.
JOB_ROLE_ACCESS_KEY_ID = "LOCALJOBROLE"
JOB_ROLE_SECRET_ACCESS_KEY = "local-job-role-secret"

# Environment variable through which a node process of a multi-node job learns the loopback
# address it was given: on loopback every process sees 127.0.0.1 as its own address, so a
# node agent cannot discover which of 127.x.y.z it is supposed to advertise.
NODE_ADDRESS_ENV = ENV_LOCAL_NODE_ADDRESS

TIMEOUT_REASON = "Job attempt duration exceeded timeout"
NONZERO_EXIT_REASON = "Essential container in task exited"
DEPENDENCY_FAILED_REASON = "Dependent Job failed"
MAIN_NODE_EXITED_REASON = "Stopped because the main node exited"


class EmulationError(RuntimeError):
    """The local emulation cannot start or was used wrongly (port taken, unsafe host, ...)."""
