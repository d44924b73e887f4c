"""Node agent for AWS Batch multi-node parallel (MNP) jobs (standard library only).

Every node of an MNP job runs ``python -m snakemake_executor_plugin_awsbatch_mpi.mpi``. It
runs inside the user's image, so it uses nothing but the standard library and never imports
the rest of the plugin (see ``_bootstrap``).

How a job runs:

1. Rendezvous. Every node reads the per-job key from the object named by
   ``AWSBATCH_MPI_KEY_URI`` (``key``; the key itself is never in a Batch request). The main
   node listens on ``AWSBATCH_MPI_PORT`` at its private address; every child connects
   (retrying with exponential backoff while the main node is not up yet), authenticates with
   the key (``protocol``) and reports its address, slots and hostname.
   The main node goes on the moment the last node joins; a node missing after
   ``AWSBATCH_MPI_JOIN_TIMEOUT`` seconds fails the job, naming it.
2. The main node writes hostfiles (``hostfile``), puts ``mpirun``/``mpiexec`` shims first on
   PATH (and exports bash functions of the same names, which survive a rule's conda
   environment putting its own ``mpirun`` first on PATH) and runs ``AWSBATCH_MPI_COMMAND``
   (the Snakemake job) with ``/bin/bash -c``.
3. When the rule calls ``mpirun``, the shim (``launch``) replicates the working directory to
   every child, then starts the real launcher with the hostfile, ``-n`` (only if missing),
   TCP settings for the nodes' network and ``rsh`` as its remote-launch agent: MPI daemons
   reach the other nodes through the agents, no SSH keys or sshd needed.
4. The main node exits with the command's exit code, or with the launcher's when the launcher
   failed (Snakemake itself only ever exits 1); the children exit when it says so.

Logs: every line starts with ``[awsbatch-mpi node N]``; joins, "all N nodes joined" and the
launch carry ``t=<unix time>``, and the launch line says how long after the last join the
real launcher started (the bootstrap overhead).

Files on the other nodes: the working directory is copied to the same absolute path on every
child before each launch (skipped when it is the same directory on a shared filesystem), so
ranks find their inputs. Files that ranks write on other nodes stay on those nodes and are
lost when the job ends; only what is written on the main node (e.g. by rank 0) is stored as
the rule's outputs.
"""

import os

# Set by the plugin on every node (nodeOverrides).
ENV_KEY_URI = "AWSBATCH_MPI_KEY_URI"
ENV_COMMAND = "AWSBATCH_MPI_COMMAND"
ENV_SLOTS = "AWSBATCH_MPI_SLOTS"
ENV_TASKS = "AWSBATCH_MPI_TASKS"
ENV_JOIN_TIMEOUT = "AWSBATCH_MPI_JOIN_TIMEOUT"
ENV_PORT = "AWSBATCH_MPI_PORT"
# Set by the agent for its helpers (launcher shim, rsh agent): the private key file.
ENV_KEY_FILE = "AWSBATCH_MPI_KEY_FILE"
# Set by the local emulation: the loopback address this node binds and advertises.
ENV_LOCAL_NODE_ADDRESS = "AWSBATCH_MPI_LOCAL_NODE_ADDRESS"
# Set by the local emulation (process runtime): the directory holding the container paths of
# the job's shared file systems (unset on AWS, where they are mounted at those paths).
ENV_LOCAL_FS_ROOT = "AWSBATCH_LOCAL_FS_ROOT"
# Test-only: children extract replicated directories (and run commands) under this root.
ENV_SYNC_ROOT = "AWSBATCH_MPI_SYNC_ROOT"
# Optional: "0" turns working-directory replication off (e.g. a shared filesystem mounted
# at different paths, or inputs the ranks fetch themselves).
ENV_SYNC = "AWSBATCH_MPI_SYNC"

# Set by AWS Batch.
ENV_NODE_INDEX = "AWS_BATCH_JOB_NODE_INDEX"
ENV_MAIN_NODE_INDEX = "AWS_BATCH_JOB_MAIN_NODE_INDEX"
ENV_NUM_NODES = "AWS_BATCH_JOB_NUM_NODES"
ENV_MAIN_ADDRESS = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"

# Exported by the main node to the command (and so to the launcher shim).
ENV_HOSTFILE = "AWSBATCH_MPI_HOSTFILE"
ENV_HOSTFILE_MPICH = "AWSBATCH_MPI_HOSTFILE_MPICH"
ENV_NODES = "AWSBATCH_MPI_NODES"
ENV_DIR = "AWSBATCH_MPI_DIR"
ENV_BIN_DIR = "AWSBATCH_MPI_BIN_DIR"
ENV_STATUS_FILE = "AWSBATCH_MPI_STATUS_FILE"
ENV_JOINED_AT = "AWSBATCH_MPI_JOINED_AT"

# The tools the main node writes into its bin directory; each one's header carries
# TOOL_MARK, so the shim can tell them from the real launcher further on PATH.
SHIM_NAMES = ("mpirun", "mpiexec")
RSH_NAME = "awsbatch-mpi-rsh"
TOOL_MARK = "awsbatch-mpi node agent"

DEFAULT_PORT = 47801
DEFAULT_JOIN_TIMEOUT = 600.0

# Main node exit code when nodes are missing after the join timeout (like timeout(1)).
EXIT_JOIN_TIMEOUT = 124
# Exit code for a broken configuration (missing or invalid environment).
EXIT_CONFIG = 78


def command_shell() -> str:
    """The shell that runs commands on a node: bash when the image has it (sshd's choice on
    the images the plugin builds), else /bin/sh: a rule's own image may have no bash."""
    return "/bin/bash" if os.access("/bin/bash", os.X_OK) else "/bin/sh"
