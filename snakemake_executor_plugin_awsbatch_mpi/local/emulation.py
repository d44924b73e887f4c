"""Start and stop the local AWS emulation (moto server + local container runtime).

The emulation is one moto server, in this process, listening on a loopback port. Clients
(the executor plugin, Snakemake's S3 storage plugin, jobs themselves) reach it through plain
boto3 with ``AWS_ENDPOINT_URL`` set, so the code under test is the same code that talks to
AWS. Batch jobs run as local process groups (see :mod:`.runtime`), with moto's gaps patched
(see :mod:`.patches`).

moto keeps its state in process-wide globals and the patches are process-wide too. A second
emulation started in the same process therefore listens on its own port but *shares* the
first one's state, AWS resources and container runtime (a test suite and a fixture of another
suite can both start one). The last ``stop()`` in the process kills the containers and
removes the patches.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import shutil
import socket
import tempfile
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import (
    ALL_LOCAL_QUEUES,
    CLIENT_ACCESS_KEY_ID,
    CLIENT_SECRET_ACCESS_KEY,
    LOCAL_BUCKET,
    LOCAL_FARGATE_QUEUE,
    EmulationError,
)

if TYPE_CHECKING:
    from .runner import Runner

logger = logging.getLogger(__name__)

LOG_GROUP = "/aws/batch/job"
RUNTIMES = ("process", "docker")
STOPPED_REASON = "Local emulation stopped"

# Attributes of a LocalEmulation that describe the (shared) AWS resources.
_SHARED_ATTRIBUTES = (
    "job_role_arn",
    "execution_role_arn",
    "service_role_arn",
    "instance_profile_arn",
    "queue_arns",
    "subnet_id",
    "security_group_id",
)


@dataclass
class _SharedState:
    """What every LocalEmulation running in this process shares: moto's state is global."""

    runtime: Runner
    region: str
    resources: dict[str, Any]
    runtime_name: str = "process"
    members: list[LocalEmulation] = field(default_factory=list)
    cleanup: list[Path] = field(default_factory=list)


_shared_lock = threading.RLock()
_shared: _SharedState | None = None

# queue name -> (compute environment name, instance types or None for Fargate)
_COMPUTE: dict[str, tuple[str, list[str] | None]] = {
    "local-cpu": ("local-cpu-ce", ["optimal"]),
    "local-gpu": ("local-gpu-ce", ["g4dn"]),
    "local-mpi": ("local-mpi-ce", ["c5n"]),
    LOCAL_FARGATE_QUEUE: ("local-fargate-ce", None),
}
assert tuple(_COMPUTE) == ALL_LOCAL_QUEUES
# The root volume of the emulated EC2 instances, from a launch template as `awsbatch-mpi setup`
# makes it, so that runs read it the way they do on AWS (jobs still see this machine's disk).
LOCAL_ROOT_VOLUME_GIB = 100


def _trust_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def loopback_host(host: str) -> str:
    """Return ``host`` as an address in 127.0.0.0/8, or refuse it.

    The emulation accepts any credentials and runs arbitrary commands from SubmitJob, so it
    must never be reachable from another machine.
    """
    candidate = "127.0.0.1" if host == "localhost" else host
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError as err:
        raise EmulationError(
            f"Refusing host {host!r}: the local emulation only listens on a loopback address "
            "(127.0.0.0/8), because it runs any submitted command without authentication."
        ) from err
    if not (address.version == 4 and address in ipaddress.ip_network("127.0.0.0/8")):
        raise EmulationError(
            f"Refusing host {host!r}: the local emulation only listens on a loopback address "
            "(127.0.0.0/8), because it runs any submitted command without authentication."
        )
    return str(address)


def _port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None.

    Checked before moto/werkzeug try, because werkzeug prints to stderr and calls
    ``sys.exit`` when the port is taken.
    """
    if port == 0:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug does
        try:
            probe.bind((host, port))
        except OSError as err:
            return err.strerror or str(err)
    return None


def _make_server(host: str, port: int) -> Any:
    """A moto server bound *now*, so a taken port raises here instead of hanging a thread.

    (moto's ThreadedMotoServer binds inside its thread; when that fails, ``start()`` waits
    for ever.)
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class _QuietHandler(MotoRequestHandler):  # type: ignore[misc, valid-type]
        """Request lines go to our debug log, not to werkzeug's own stderr handler."""

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            logger.debug('"%s" %s %s', getattr(self, "requestline", ""), code, size)

    class _BoundMotoServer(ThreadedMotoServer):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(ip_address=host, port=port, verbose=False)
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(host, port, app, True, request_handler=_QuietHandler)

        def start(self) -> None:
            assert self._server is not None
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="local-aws-emulation", daemon=True
            )
            self._thread.start()
            self._server_ready_event.set()

        def stop(self) -> None:
            super().stop()
            self._server.server_close()

    return _BoundMotoServer()


def build_setup_network(
    ec2: Any, vpc_id: str, region: str, cidr: str = "10.0.1.0/24", s3_endpoint: bool = True
) -> str:
    """A subnet built as `awsbatch-mpi setup` builds its VPC; returns the subnet's id.

    Public IPs on launch, a route to the VPC's internet gateway (created when it has none)
    and a free S3 gateway endpoint on its own route table: instances reach ECS, and the
    containers of multi-node jobs, which get no public IP, reach S3 (see local/network.py,
    which the emulation's MPI nodes go through). ``s3_endpoint=False`` builds what setup
    built before it added the endpoint: MPI nodes there reach nothing.
    """
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr)["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    attached = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
    )["InternetGateways"]
    if attached:
        gateway = attached[0]["InternetGatewayId"]
    else:
        gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
    table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    if s3_endpoint:
        ec2.create_vpc_endpoint(
            VpcId=vpc_id,
            ServiceName=f"com.amazonaws.{region}.s3",
            VpcEndpointType="Gateway",
            RouteTableIds=[table],
        )
    return subnet


class LocalEmulation:
    """AWS Batch + S3 + CloudWatch Logs on loopback, with jobs as local processes.

    ``start()`` creates what a plugin user would otherwise set up in AWS: IAM roles and an
    instance profile, a VPC with a subnet built as `awsbatch-mpi setup` builds one (internet
    gateway and S3 gateway endpoint) and a security group, one compute environment per
    queue (managed EC2 for ``local-cpu``/``local-gpu``/``local-mpi``, Fargate for
    ``local-fargate``), the ENABLED queues, the ``snakemake-local`` bucket and the
    ``/aws/batch/job`` log group.
    """

    #: Seconds between SIGTERM and SIGKILL when a container is stopped.
    stop_grace_seconds: float = 2.0

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        region: str = "us-east-1",
        workdir: Path | None = None,
        runtime: str = "process",
    ):
        if runtime not in RUNTIMES:
            raise EmulationError(
                f"Unknown runtime {runtime!r}: use 'process' (local processes, the default) or "
                "'docker' (real containers of the job definitions' images)."
            )
        self.runtime = runtime
        self.port = port
        self.host = host
        self.region = region
        self.workdir: Path | None = Path(workdir) if workdir is not None else None
        self.endpoint_url = ""
        self.job_role_arn = ""
        self.execution_role_arn = ""
        self.service_role_arn = ""
        self.instance_profile_arn = ""
        self.bucket = LOCAL_BUCKET
        self.log_group = LOG_GROUP
        self.queue_arns: dict[str, str] = {}
        self.subnet_id = ""
        self.security_group_id = ""
        self._server: Any = None
        self._runtime: Runner | None = None
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalEmulation:
        """Listen, patch moto, create the AWS resources; returns self.

        A second emulation started in the same process gets its own port but shares the
        first one's moto state, resources and container runtime (moto's state is global).
        """
        global _shared
        if self._started:
            return self
        host = loopback_host(self.host)
        problem = _port_problem(host, self.port)
        server = None
        if problem is None:
            try:
                server = _make_server(host, self.port)
            except (OSError, SystemExit) as err:  # werkzeug exits when it cannot bind
                problem = str(err)
        if server is None:
            raise EmulationError(
                f"Cannot listen on {host}:{self.port} ({problem}): the port is probably in "
                "use. Choose another one with --port N, or --port 0 for any free port."
            )
        with _shared_lock:
            if _shared is not None and _shared.region != self.region:
                server._server.server_close()
                raise EmulationError(
                    f"An emulation for region {_shared.region} already runs in this process; "
                    f"emulations in one process share moto's state and cannot use {self.region}."
                )
            if _shared is not None and _shared.runtime_name != self.runtime:
                server._server.server_close()
                raise EmulationError(
                    f"An emulation with the {_shared.runtime_name} runtime already runs in this "
                    f"process; emulations in one process share it and cannot use {self.runtime}."
                )
            self._server = server
            self._started = True
            try:
                server.start()
                bound_host, self.port = server.get_host_and_port()
                self.endpoint_url = f"http://{bound_host}:{self.port}"
                if _shared is None:
                    _shared = self._start_first()
                else:
                    self._runtime = _shared.runtime
                    vars(self).update(copy.deepcopy(_shared.resources))
                _shared.members.append(self)
            except BaseException:
                self._stop_server()
                self._started = False
                raise
        logger.info("Local AWS emulation listening on %s", self.endpoint_url)
        return self

    def _start_first(self) -> _SharedState:
        from . import patches

        cleanup: list[Path] = []
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="awsbatch-mpi-local-"))
            cleanup.append(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        runtime: Runner
        if self.runtime == "docker":
            from .docker_runner import DockerRunner

            runtime = DockerRunner(
                self.endpoint_url, self.region, stop_grace_seconds=self.stop_grace_seconds
            )
        else:
            from .runtime import LocalContainerRuntime

            runtime = LocalContainerRuntime(
                self.workdir / "containers",
                endpoint_url=self.endpoint_url,
                region=self.region,
                stop_grace_seconds=self.stop_grace_seconds,
            )
        self._runtime = runtime
        patches.install(runtime)
        try:
            # Fresh moto state, the docker-backed Batch (not the "simple" one that runs
            # nothing) and moto's default job state machine, whatever earlier users left.
            self._moto_api("reset", {})
            self._moto_api("config", {"batch": {"use_docker": True}})
            from moto.moto_api import state_manager

            state_manager.unset_transition("batch::job")
            self._create_resources()
        except BaseException:
            runtime.shutdown()
            patches.uninstall()
            for path in cleanup:
                shutil.rmtree(path, ignore_errors=True)
            raise
        resources = {name: copy.deepcopy(getattr(self, name)) for name in _SHARED_ATTRIBUTES}
        return _SharedState(
            runtime=runtime,
            region=self.region,
            resources=resources,
            runtime_name=self.runtime,
            cleanup=cleanup,
        )

    def stop(self) -> None:
        """Stop this emulation's server; the last one in the process also kills every
        container process group and removes the patches. Idempotent."""
        global _shared
        if not self._started:
            return
        from . import patches

        with _shared_lock:
            shared = _shared
            if shared is not None and self in shared.members:
                shared.members.remove(self)
            last = shared is not None and not shared.members
            try:
                if last:
                    assert shared is not None
                    for job in patches.live_jobs():
                        job.terminate(STOPPED_REASON)
                    shared.runtime.shutdown()
                    for job in patches.live_jobs():
                        job.join(timeout=2)
                elif shared is not None and shared.runtime.endpoint_url == self.endpoint_url:
                    # Jobs started from now on must reach a server that still listens.
                    shared.runtime.endpoint_url = shared.members[0].endpoint_url
            finally:
                self._stop_server()
                self._started = False
                if last:
                    assert shared is not None
                    patches.uninstall()
                    for path in shared.cleanup:
                        shutil.rmtree(path, ignore_errors=True)
                    _shared = None
        logger.info("Local AWS emulation on %s stopped", self.endpoint_url)

    def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if server._thread is not None:
            server.stop()
        else:
            server._server.server_close()

    def __enter__(self) -> LocalEmulation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for clients and tests -------------------------------------------------------------

    def client_env(self) -> dict[str, str]:
        """Environment a client shell needs to talk to the emulation with plain boto3."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": CLIENT_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": CLIENT_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
        }

    def running_containers(self) -> int:
        """Containers (local process groups or Docker containers) still alive (0 after
        ``stop()``: no orphans)."""
        return self._runtime.live_count() if self._runtime is not None else 0

    @property
    def job_endpoint_url(self) -> str:
        """The ``AWS_ENDPOINT_URL`` jobs receive: this emulation's, or, when several share
        the process, that of the one started first (all serve the same state)."""
        return self._runtime.endpoint_url if self._runtime is not None else self.endpoint_url

    @property
    def running(self) -> bool:
        return self._started

    def boto3_client(self, service: str) -> Any:
        """A boto3 client for ``service`` pointed at the emulation with the client dummies."""
        import boto3

        return boto3.session.Session(
            aws_access_key_id=CLIENT_ACCESS_KEY_ID,
            aws_secret_access_key=CLIENT_SECRET_ACCESS_KEY,
            region_name=self.region,
        ).client(service, endpoint_url=self.endpoint_url)

    def add_queue(
        self, name: str, subnet_ids: list[str], instance_types: tuple[str, ...] = ("c5n",)
    ) -> str:
        """A queue on a new managed EC2 compute environment (``<name>-ce``) in these subnets,
        e.g. one built by :func:`build_setup_network`; returns the queue's ARN."""
        batch = self.boto3_client("batch")
        env = batch.create_compute_environment(
            computeEnvironmentName=f"{name}-ce",
            type="MANAGED",
            state="ENABLED",
            computeResources={
                "type": "EC2",
                "minvCpus": 0,
                "maxvCpus": 256,
                "instanceTypes": list(instance_types),
                "instanceRole": self.instance_profile_arn,
                "subnets": subnet_ids,
                "securityGroupIds": [self.security_group_id],
            },
            serviceRole=self.service_role_arn,
        )["computeEnvironmentArn"]
        return batch.create_job_queue(
            jobQueueName=name,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
        )["jobQueueArn"]

    @property
    def vpc_id(self) -> str:
        ec2 = self.boto3_client("ec2")
        return str(ec2.describe_subnets(SubnetIds=[self.subnet_id])["Subnets"][0]["VpcId"])

    # -- internals ---------------------------------------------------------------------------

    def _moto_api(self, action: str, payload: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/{action}",
            data=json.dumps(payload).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def _create_resources(self) -> None:
        iam = self.boto3_client("iam")
        ec2 = self.boto3_client("ec2")
        batch = self.boto3_client("batch")
        s3 = self.boto3_client("s3")
        logs = self.boto3_client("logs")

        self.service_role_arn = iam.create_role(
            RoleName="local-batch-service-role",
            AssumeRolePolicyDocument=_trust_policy("batch.amazonaws.com"),
        )["Role"]["Arn"]
        iam.create_role(
            RoleName="local-ecs-instance-role",
            AssumeRolePolicyDocument=_trust_policy("ec2.amazonaws.com"),
        )
        self.instance_profile_arn = iam.create_instance_profile(
            InstanceProfileName="local-ecs-instance-profile"
        )["InstanceProfile"]["Arn"]
        iam.add_role_to_instance_profile(
            InstanceProfileName="local-ecs-instance-profile", RoleName="local-ecs-instance-role"
        )
        self.job_role_arn = iam.create_role(
            RoleName="local-batch-job-role",
            AssumeRolePolicyDocument=_trust_policy("ecs-tasks.amazonaws.com"),
        )["Role"]["Arn"]
        self.execution_role_arn = iam.create_role(
            RoleName="local-ecs-task-execution-role",
            AssumeRolePolicyDocument=_trust_policy("ecs-tasks.amazonaws.com"),
        )["Role"]["Arn"]

        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet_id = build_setup_network(ec2, vpc_id, self.region)
        self.security_group_id = ec2.create_security_group(
            GroupName="local-batch", Description="local AWS Batch emulation", VpcId=vpc_id
        )["GroupId"]

        root_volume = ec2.create_launch_template(
            LaunchTemplateName="local-root-volume",
            LaunchTemplateData={
                "BlockDeviceMappings": [
                    {
                        "DeviceName": "/dev/xvda",
                        "Ebs": {"VolumeSize": LOCAL_ROOT_VOLUME_GIB, "VolumeType": "gp3"},
                    }
                ]
            },
        )["LaunchTemplate"]["LaunchTemplateId"]
        for queue, (ce_name, instance_types) in _COMPUTE.items():
            resources: dict[str, Any] = {
                "maxvCpus": 256,
                "subnets": [self.subnet_id],
                "securityGroupIds": [self.security_group_id],
            }
            if instance_types is None:
                resources["type"] = "FARGATE"
            else:
                resources.update(
                    type="EC2",
                    minvCpus=0,
                    instanceTypes=instance_types,
                    instanceRole=self.instance_profile_arn,
                    launchTemplate={"launchTemplateId": root_volume},
                )
            ce_arn = batch.create_compute_environment(
                computeEnvironmentName=ce_name,
                type="MANAGED",
                state="ENABLED",
                computeResources=resources,
                serviceRole=self.service_role_arn,
            )["computeEnvironmentArn"]
            self.queue_arns[queue] = batch.create_job_queue(
                jobQueueName=queue,
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce_arn}],
            )["jobQueueArn"]

        if self.region == "us-east-1":
            s3.create_bucket(Bucket=self.bucket)
        else:
            s3.create_bucket(
                Bucket=self.bucket,
                CreateBucketConfiguration={"LocationConstraint": self.region},
            )
        logs.create_log_group(logGroupName=self.log_group)
