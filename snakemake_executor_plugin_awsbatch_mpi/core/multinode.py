"""A multi-node MPI job: how its ranks are laid out over nodes, what the node agent reads from
the environment, which queues can run it, and the EFA devices and settings its nodes get.
"""

from __future__ import annotations

import math

from ..mpi import (
    ENV_COMMAND,
    ENV_JOIN_TIMEOUT,
    ENV_KEY_URI,
    ENV_SLOTS,
    ENV_TASKS,
)
from .request import JobRequest
from .sizes import gpus_of
from .spec import MpiLayout, Platform, QueueInfo, ResourceError
from .values import flag, given, positive_int

MAX_NODES = 1000

# The container entry point of every node of a multi-node job (see mpi/__main__.py).
MPI_AGENT_MODULE = "snakemake_executor_plugin_awsbatch_mpi.mpi"
MPI_AGENT_COMMAND = ("/bin/bash", "-c", f"exec python -m {MPI_AGENT_MODULE}")

# What Open MPI and libfabric need to use EFA (AWS EFA user guide): the libfabric EFA
# provider through Open MPI's OFI transport instead of TCP.
EFA_ENVIRONMENT = {"FI_PROVIDER": "efa", "OMPI_MCA_pml": "cm", "OMPI_MCA_mtl": "ofi"}

# Families whose EFA devices do RDMA reads/writes (FI_EFA_USE_DEVICE_RDMA=1 there only).
EFA_RDMA_FAMILIES = frozenset({"p4d", "p4de", "p5", "p5e", "p5en", "p6", "trn1", "trn1n", "trn2"})

MAX_EFA_DEVICES = 32


def efa_devices_of(request: JobRequest, layout: MpiLayout | None) -> int:
    """`awsbatch_efa`: True for one EFA device per node, or the number of devices (MPI only)."""
    res, rule, name = request.resources, request.rule, "awsbatch_efa"
    if not given(res, name):
        return 0
    value = res[name]
    if isinstance(value, bool) or str(value).strip().lower() in ("true", "false", "yes", "no"):
        devices = int(flag(rule, name, value))
    else:
        devices = positive_int(rule, name, value, minimum=0)
    if devices > MAX_EFA_DEVICES:
        raise ResourceError(
            rule, name, value, f"must be True or a number of devices from 1 to {MAX_EFA_DEVICES}."
        )
    if devices and layout is None:
        raise ResourceError(
            rule,
            name,
            value,
            "applies only to multi-node MPI rules (resources mpi and tasks); remove it.",
        )
    return devices


def efa_environment(layout: MpiLayout) -> dict[str, str]:
    env = dict(EFA_ENVIRONMENT)
    family = (layout.instance_type or "").split(".")[0]
    if family in EFA_RDMA_FAMILIES:
        env["FI_EFA_USE_DEVICE_RDMA"] = "1"
    return env


def mpi_layout_of(request: JobRequest) -> MpiLayout | None:
    """Spread `tasks` over nodes the way the rule asks, or None for a non-MPI rule.

    `nodes` and/or `tasks_per_node` fix the layout and must divide `tasks` exactly. With
    neither, the rule's `threads` is the vCPU count of one node and as many nodes as needed
    are used: with `cpus_per_task` c, each node runs threads // c tasks.
    """
    res, rule = request.resources, request.rule
    has_mpi, has_tasks = given(res, "mpi"), given(res, "tasks")
    if not has_mpi:
        if has_tasks and positive_int(rule, "tasks", res["tasks"]) > 1:
            raise ResourceError(
                rule,
                "tasks",
                res["tasks"],
                "tasks > 1 needs an MPI launcher: add resources: mpi='mpirun' and call "
                "{resources.mpi} -n {resources.tasks} in the shell command.",
            )
        for name in ("nodes", "tasks_per_node"):
            if given(res, name) and positive_int(rule, name, res[name]) > 1:
                raise ResourceError(
                    rule,
                    name,
                    res[name],
                    "several nodes need an MPI rule: add resources: mpi='mpirun' and tasks=N.",
                )
        if given(res, "awsbatch_instance_type"):
            raise ResourceError(
                rule,
                "awsbatch_instance_type",
                res["awsbatch_instance_type"],
                "applies only to multi-node MPI rules (Batch picks the instance of a "
                "single-node job from its compute environment). Remove it, or route the rule "
                "with awsbatch_queue='<queue>' to a queue whose compute environment allows "
                "that instance type.",
            )
        return None
    if not has_tasks:
        raise ResourceError(
            rule,
            "mpi",
            res["mpi"],
            "an MPI rule needs the number of ranks: add resources: tasks=N.",
        )
    tasks = positive_int(rule, "tasks", res["tasks"])
    cpus = (
        positive_int(rule, "cpus_per_task", res["cpus_per_task"])
        if given(res, "cpus_per_task")
        else 1
    )
    nodes = positive_int(rule, "nodes", res["nodes"]) if given(res, "nodes") else None
    per_node = (
        positive_int(rule, "tasks_per_node", res["tasks_per_node"])
        if given(res, "tasks_per_node")
        else None
    )
    if per_node is not None:
        if tasks % per_node:
            raise ResourceError(
                rule,
                "tasks_per_node",
                per_node,
                f"tasks={tasks} is not a multiple of tasks_per_node={per_node}; make tasks a "
                "multiple of it or drop tasks_per_node.",
            )
        if nodes is not None and nodes * per_node != tasks:
            raise ResourceError(
                rule,
                "nodes",
                nodes,
                f"nodes={nodes} x tasks_per_node={per_node} must equal tasks={tasks}.",
            )
        nodes = tasks // per_node
    elif nodes is not None:
        if tasks % nodes:
            raise ResourceError(
                rule,
                "nodes",
                nodes,
                f"tasks={tasks} cannot be spread evenly over {nodes} nodes; make tasks a "
                "multiple of nodes or set tasks_per_node.",
            )
        per_node = tasks // nodes
    elif gpus_of(request):
        # One rank per GPU: a node runs as many ranks as it has GPUs.
        per_node = min(gpus_of(request), tasks)
        if tasks % per_node:
            raise ResourceError(
                rule,
                "tasks",
                tasks,
                f"one rank per GPU needs tasks to be a multiple of gpu={per_node} (the GPUs "
                "of one node); change tasks or set nodes/tasks_per_node.",
            )
        nodes = tasks // per_node
    else:
        threads = positive_int(rule, "threads", request.threads)
        per_node = max(1, threads // cpus)
        nodes = math.ceil(tasks / per_node)
        per_node = min(per_node, tasks)
    if nodes > MAX_NODES:
        raise ResourceError(rule, "nodes", nodes, f"AWS Batch runs at most {MAX_NODES} nodes.")
    gpus = gpus_of(request)
    instance = res.get("awsbatch_instance_type")
    return MpiLayout(
        nodes=nodes,
        tasks=tasks,
        tasks_per_node=per_node,
        cpus_per_task=cpus,
        slots_per_node=gpus if gpus else per_node,
        instance_type=str(instance) if instance not in (None, "") else None,
    )


def mpi_environment(
    layout: MpiLayout, command: tuple[str, ...], key_uri: str, join_timeout: int
) -> dict[str, str]:
    """What the node agent reads: the Snakemake command to run, the layout, and where the
    job's rendezvous key is (never the key: DescribeJobs shows this to anyone allowed)."""
    return {
        ENV_COMMAND: command[-1],
        ENV_KEY_URI: key_uri,
        ENV_SLOTS: str(layout.slots_per_node),
        ENV_TASKS: str(layout.tasks),
        ENV_JOIN_TIMEOUT: str(join_timeout),
    }


def check_multinode_queue(rule: str, queue: QueueInfo) -> None:
    if queue.platform is Platform.FARGATE or queue.spot_only:
        kind = "Fargate" if queue.platform is Platform.FARGATE else "Spot"
        raise ResourceError(
            rule,
            "mpi",
            queue.name,
            f"queue '{queue.name}' runs on {kind}, where AWS Batch cannot run multi-node "
            "jobs; use an EC2 on-demand queue (--awsbatch-mpi-multinode-job-queue).",
        )
