"""The `awsbatch-mpi` command: `local`, `demo`, `setup`, `doctor` and `plan`.

The subcommands' work lives in `local/`, `demo.py` and `ops/`; this module parses arguments,
prints what they return and turns it into an exit code (0 fine, 1 a problem was found,
2 the command line itself was wrong).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

# `plan`/`doctor` take the executor settings without their prefix (--job-queue for
# --awsbatch-mpi-job-queue); the queues and identity are all that doctor needs without a workflow.
DOCTOR_SETTINGS = (
    "job_queue",
    "gpu_job_queue",
    "multinode_job_queue",
    "fallback_job_queue",
    "job_role_arn",
    "region",
    "runtime_volume",
)
SETTINGS_PREFIX = "--awsbatch-mpi-"


def executor_fields() -> list[dataclasses.Field]:
    """The fields of `ExecutorSettings`: the one declaration of every executor flag."""
    from .settings import ExecutorSettings

    return list(dataclasses.fields(ExecutorSettings))


def executor_flag(field: dataclasses.Field) -> str:
    """The Snakemake flag of a setting, e.g. --awsbatch-mpi-job-queue."""
    return SETTINGS_PREFIX + field.name.replace("_", "-")


# Arguments handed to Snakemake's own parser as they are.
SNAKEMAKE_FLAGS = {
    "snakefile": "--snakefile",
    "directory": "--directory",
    "profile": "--profile",
    "container_image": "--container-image",
}


def _add_workflow_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "workflow (read with Snakemake's own parser; other snakemake options such as "
        "--set-resources, --default-resources or targets are passed on too)"
    )
    group.add_argument("--snakefile", "-s", metavar="FILE", help="The Snakefile.")
    group.add_argument(
        "--directory", "-d", metavar="DIR", help="Working directory of the workflow."
    )
    group.add_argument("--profile", metavar="DIR", help="Snakemake profile to read settings from.")
    group.add_argument("--config", "-C", nargs="+", metavar="KEY=VALUE", help="Config values.")
    group.add_argument("--configfile", nargs="+", metavar="FILE", help="Config files.")


def _add_executor_arguments(parser: argparse.ArgumentParser, doctor: bool = False) -> None:
    """The executor's own settings, derived from `ExecutorSettings` so that they cannot drift."""
    group = parser.add_argument_group(
        "executor settings (as --awsbatch-mpi-<name>; default: the profile, then the "
        "SNAKEMAKE_AWSBATCH_MPI_<NAME> variables)"
    )
    for field in executor_fields():
        if doctor and field.name not in DOCTOR_SETTINGS:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata["help"]
        if field.type is bool or field.type == "bool":
            group.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            group.add_argument(flag, metavar=field.metadata.get("metavar"), help=help_text)
    if not doctor:
        group.add_argument(
            "--container-image", metavar="URI", help="Image of the jobs (Snakemake's flag)."
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="awsbatch-mpi",
        description="Tools for the Snakemake AWS Batch executor plugin.",
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    local = sub.add_parser(
        "local",
        help="Serve a local AWS Batch/S3/Logs emulation.",
        description="Serve AWS Batch, S3 and CloudWatch Logs on 127.0.0.1 (a moto server) and "
        "run every submitted job as a local process (multi-node jobs as several local nodes), "
        "until Ctrl-C or SIGTERM. Prints the variables a client shell needs (AWS_ENDPOINT_URL "
        "and dummy credentials); queues local-cpu, local-gpu, local-mpi, local-fargate and the "
        "bucket snakemake-local exist from the start.",
        allow_abbrev=False,
    )
    local.add_argument("--port", type=int, default=4566, help="Port on 127.0.0.1 (default 4566).")
    local.add_argument(
        "--batch-quota",
        type=float,
        default=50.0,
        metavar="N",
        help="Batch API calls per second above which the emulation answers HTTP 429 "
        "TooManyRequestsException, as AWS does at 50 per account and region (default 50; "
        "0 turns it off).",
    )
    demo = sub.add_parser(
        "demo",
        help="Run the example workflow on the local emulation.",
        description="Copy example_workflow/ to --workdir, start the local emulation in this "
        "process, run the workflow through Snakemake with this executor (S3 as default "
        "storage, an MPI rule on 3 emulated nodes), print a table of the Batch jobs and the "
        "report, then stop everything. A second run finds the outputs up to date.",
        allow_abbrev=False,
    )
    demo.add_argument("--fresh", action="store_true", help="Rerun every job from scratch.")
    demo.add_argument(
        "--workdir", default=None, help="Where to copy the example (default: ./awsbatch-mpi-demo)."
    )
    from .local.images import DEFAULT_JOB_IMAGE, DEFAULT_MPI_IMAGE, DEFAULT_RUNTIME_IMAGE

    for command in (local, demo):
        command.add_argument(
            "--runtime",
            choices=("process", "docker"),
            default="process",
            help="How jobs run: as local processes (default) or in Docker containers of the "
            "job definition's image.",
        )
    demo.add_argument(
        "--image",
        default=DEFAULT_JOB_IMAGE,
        help=f"Job image for --runtime docker (default {DEFAULT_JOB_IMAGE}; built when missing).",
    )
    demo.add_argument(
        "--mpi-image",
        default=DEFAULT_MPI_IMAGE,
        help=f"Image of the MPI rule for --runtime docker (default {DEFAULT_MPI_IMAGE}).",
    )

    setup = sub.add_parser(
        "setup",
        help="Create the Batch queues, roles and log group with CloudFormation.",
        description="Create (or update) a CloudFormation stack with a CPU queue (Spot unless "
        "--on-demand), a GPU queue, a multi-node MPI queue, the job role, the instance role "
        "and a log group, then print a ready profile. --print shows the template, --dry-run "
        "the parameters; neither calls AWS.",
        allow_abbrev=False,
    )
    setup.add_argument(
        "--stack-name",
        metavar="NAME",
        help="Stack name, also the prefix of the queues' names (required, no default).",
    )
    setup.add_argument(
        "--bucket", metavar="BUCKET", help="Existing S3 bucket of the workflow files."
    )
    setup.add_argument(
        "--prefix", default="snakemake", help="Key prefix the jobs may use (default snakemake)."
    )
    setup.add_argument(
        "--on-demand", action="store_true", help="On-demand CPU/GPU instances instead of Spot."
    )
    for kind, types, vcpus in (
        ("cpu", "c6i,m6i,r6i", 256),
        ("gpu", "g4dn,g5", 64),
        ("mpi", "c5n", 256),
    ):
        what = {"cpu": "CPU", "gpu": "GPU", "mpi": "multi-node MPI"}[kind]
        setup.add_argument(
            f"--{kind}-instance-types",
            default=types,
            metavar="LIST",
            help=f"Instance types (or families) of the {what} compute environment, "
            f"comma-separated (default {types}).",
        )
        setup.add_argument(
            f"--{kind}-max-vcpus",
            type=int,
            default=vcpus,
            metavar="N",
            help=f"Most vCPUs the {what} compute environment may run at once (default {vcpus}).",
        )
    setup.add_argument(
        "--runnable-timeout",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="Cancel jobs that can never be placed after this long in RUNNABLE (600-86400).",
    )
    setup.add_argument("--efs", action="store_true", help="EFS at /mnt/efs on MPI instances.")
    setup.add_argument(
        "--mpi-efa", action="store_true", help="EFA network interfaces on the MPI instances."
    )
    setup.add_argument(
        "--mpi-one-thread-per-core",
        action="store_true",
        help="Hyper-threading off on the MPI instances (one vCPU per core).",
    )
    setup.add_argument(
        "--root-volume-gib",
        type=int,
        default=100,
        metavar="N",
        help="Root volume of every instance, shared by all jobs on it (default 100; the "
        "ECS-optimized AMI alone gives 30).",
    )
    setup.add_argument(
        "--nat-gateway",
        action="store_true",
        help="Put the compute environments in private subnets behind a NAT gateway, for jobs "
        "that need the internet. Costs money: in us-east-1 about $0.045/h (~$33/month) plus "
        "$0.045 per GB processed and $0.005/h for its public IPv4 address. Without it the "
        "created VPC uses public subnets; both get a free S3 gateway endpoint for MPI nodes.",
    )
    setup.add_argument(
        "--vpc-id",
        default="",
        metavar="ID",
        help="Existing VPC, never changed (default: create one); `doctor` checks its subnets.",
    )
    setup.add_argument(
        "--subnet-ids", default="", metavar="LIST", help="Its subnets, comma-separated."
    )
    setup.add_argument(
        "--security-group-id",
        default="",
        metavar="ID",
        help="Existing security group (default: create one).",
    )
    setup.add_argument(
        "--log-retention-days",
        type=int,
        default=30,
        metavar="DAYS",
        help="Days CloudWatch keeps the jobs' logs (default 30).",
    )
    setup.add_argument(
        "--service-role-arn",
        default="",
        metavar="ARN",
        help="Batch service role (default: the AWSServiceRoleForBatch service-linked role).",
    )
    setup.add_argument("--region", metavar="REGION", help="AWS region (default: boto3's).")
    setup.add_argument("--print", action="store_true", help="Print the template and exit.")
    setup.add_argument(
        "--dry-run", action="store_true", help="Print the stack parameters and exit."
    )
    setup.add_argument("--poll-seconds", type=float, default=10.0, help=argparse.SUPPRESS)

    runtime = sub.add_parser(
        "runtime",
        help="Install the runtime that runs Snakemake in rules' own images (no Python needed).",
        description="`install` runs one Batch job in the runtime image "
        "(containers/Dockerfile.runtime, pushed to your registry) that copies this plugin "
        "version's self-contained runtime onto the file system, then tags the file system "
        "so `doctor` finds it. Jobs then mount it read-only: pass the same file system as "
        "--awsbatch-mpi-runtime-volume. Installing again is a no-op; another plugin version "
        "goes into its own directory.",
    )
    runtime.add_argument("action", choices=["install"], help="What to do.")
    runtime.add_argument(
        "--file-system",
        required=True,
        metavar="efs:FS_ID[:AP_ID]",
        help="The EFS file system (optionally through an access point) to install onto.",
    )
    runtime.add_argument(
        "--job-queue", required=True, help="A queue whose instances reach the file system."
    )
    runtime.add_argument(
        "--image",
        default=DEFAULT_RUNTIME_IMAGE,
        help=f"The runtime image (default {DEFAULT_RUNTIME_IMAGE}; on AWS its ECR URI).",
    )
    runtime.add_argument("--job-role-arn", help="Role of the install job (optional).")
    runtime.add_argument(
        "--execution-role-arn", help="Execution role, required when the queue is Fargate."
    )
    runtime.add_argument("--log-group", default=None, help="Log group of the install job.")
    runtime.add_argument("--region", help="AWS region (default: boto3's chain).")
    runtime.add_argument(
        "--timeout", type=float, default=1800, help="Seconds to wait for the job (1800)."
    )
    runtime.add_argument("--poll-seconds", type=float, default=2.0, help=argparse.SUPPRESS)

    doctor = sub.add_parser(
        "doctor",
        help="Check credentials, queues, compute environments, job role and S3 prefix.",
        description="One PASS/WARN/FAIL line per check, each saying what to do. With "
        "--snakefile, every job of the workflow is also checked against the compute "
        "environments of its queue. Exits 1 when a check FAILs.",
        allow_abbrev=False,
    )
    _add_executor_arguments(doctor, doctor=True)
    doctor.add_argument(
        "--s3-prefix",
        metavar="s3://BUCKET/PREFIX",
        help="Prefix to test for writing (default: --default-storage-prefix of the profile).",
    )
    _add_workflow_arguments(doctor)

    plan = sub.add_parser(
        "plan",
        help="Render and validate every Batch request of a workflow, offline.",
        description="For every job of the workflow, the RegisterJobDefinition and SubmitJob "
        "requests the executor would send, validated against Batch's API model and limits. "
        "Needs no credentials and no network. Exits 1 when a request is invalid.",
        allow_abbrev=False,
    )
    _add_workflow_arguments(plan)
    _add_executor_arguments(plan)
    plan.add_argument(
        "--fargate-queue",
        action="append",
        default=[],
        metavar="QUEUE",
        help="Treat this queue as Fargate (others are taken as EC2); may be repeated.",
    )
    plan.add_argument(
        "--root-volume-gib",
        type=int,
        metavar="N",
        help="Root volume of the EC2 queues' instances, which all their jobs share; rules "
        "whose disk_mb exceeds it get a warning (default: 30, the ECS-optimized AMI's; "
        "`awsbatch-mpi setup` makes 100).",
    )
    plan.add_argument(
        "--out", "-o", metavar="FILE", help="Write the plan here (default: standard output)."
    )
    status = sub.add_parser(
        "status",
        help="Progress of a run per rule and state (exits 1 if any job failed).",
        description="Counts the jobs of a run (tag snakemake-run-id) per rule and state. In "
        "the workflow directory the run's own record of submitted jobs is used; elsewhere "
        "give the queues to scan.",
    )
    status.add_argument("--run", required=True, help="The run id the executor printed.")
    status.add_argument(
        "--job-queue",
        action="append",
        default=[],
        metavar="QUEUE",
        help="Queue to scan when the run record is not here; may be repeated.",
    )
    status.add_argument("--region", default=None, help="AWS region (default: boto3's chain).")
    report = sub.add_parser(
        "report",
        help="Where a run's time and vCPU/GPU-hours went: tables, JSON and an HTML timeline.",
        description="Reads a run's jobs from AWS Batch (tag snakemake-run-id; jobs are kept "
        "about 7 days) and prints a table per rule: jobs, failures, Batch's own retries, "
        "queue wait, run time, vCPU- and GPU-hours. --html writes one self-contained file "
        "with a timeline. Costs are only estimated from prices you give.",
    )
    report.add_argument("--run", required=True, help="The run id the executor printed.")
    report.add_argument(
        "--job-queue",
        action="append",
        default=[],
        metavar="QUEUE",
        help="Queue to scan when the run record is not here; may be repeated.",
    )
    report.add_argument("--region", default=None, help="AWS region (default: boto3's chain).")
    report.add_argument("--html", metavar="FILE", help="Write the HTML report (timeline) here.")
    report.add_argument("--json", metavar="FILE", help="Write every job's record as JSON here.")
    for unit, name in (("vcpu", "vCPU"), ("gpu", "GPU")):
        report.add_argument(
            f"--price-per-{unit}-hour",
            type=float,
            default=None,
            metavar="PRICE",
            help=f"Your price of one {name}-hour, for a cost estimate (none by default).",
        )
    logs = sub.add_parser("logs", help="Print the CloudWatch log of a Batch job.")
    logs.add_argument("job_id", help="Batch job id (a multi-node job prints every node).")
    logs.add_argument("--lines", type=int, default=100, help="Last lines to print.")
    logs.add_argument("--log-group", default="/aws/batch/job", help="CloudWatch log group.")
    logs.add_argument("--region", default=None, help="AWS region (default: boto3's chain).")
    return parser


def run_status(args: argparse.Namespace) -> int:
    from .batch import clients, runs

    batch = clients.client("batch", args.region, clients.Purpose.INTERACTIVE)
    jobs = runs.find_run_jobs(batch, args.run, args.job_queue)
    if not jobs:
        where = (
            "the run record"
            if runs.recorded_job_ids(args.run) is not None
            else (f"queues {', '.join(args.job_queue)}" if args.job_queue else "no queue")
        )
        return _fail(
            f"No jobs of run {args.run} found in {where}. Run this in the workflow directory "
            "or pass --job-queue for every queue the run used.",
            2,
        )
    table = runs.summarize(jobs)
    print(runs.format_summary(args.run, table))
    return 1 if runs.has_failed(table) else 0


def run_report(args: argparse.Namespace) -> int:
    import boto3

    from . import report
    from .batch import runs

    prices = report.Prices(args.price_per_vcpu_hour, args.price_per_gpu_hour)
    for name, value in (("vcpu", prices.vcpu_hour), ("gpu", prices.gpu_hour)):
        if value is not None and value < 0:
            return _fail(f"--price-per-{name}-hour is {value}; give a price of 0 or more.", 2)
    batch = boto3.client("batch", region_name=args.region)
    built = report.load_report(batch, args.run, args.job_queue, prices)
    if not built.rows:
        where = "the run record" if runs.recorded_job_ids(args.run) is not None else "no queue"
        if args.job_queue and runs.recorded_job_ids(args.run) is None:
            where = f"queues {', '.join(args.job_queue)}"
        return _fail(
            f"No jobs of run {args.run} found in {where}. Run this in the workflow directory "
            "or pass --job-queue for every queue the run used.",
            2,
        )
    print(report.format_text(built))
    if args.html:
        print(f"HTML report: {report.write_html(built, Path(args.html))}")
    if args.json:
        print(f"JSON report: {report.write_json(built, Path(args.json))}")
    return 0


def run_logs(args: argparse.Namespace) -> int:
    from .batch import clients, runs

    session = clients.session(args.region)
    batch = clients.client("batch", purpose=clients.Purpose.INTERACTIVE, from_session=session)
    logs = clients.client("logs", purpose=clients.Purpose.INTERACTIVE, from_session=session)
    try:
        streams = runs.log_streams(batch, args.job_id)
    except LookupError as err:
        return _fail(str(err), 2)
    for label, stream in streams:
        if label or len(streams) > 1:
            print(f"==> {label}: {args.log_group}/{stream} <==")
        for line in runs.read_log(logs, args.log_group, stream, args.lines):
            print(line)
    return 0


def snakemake_argv(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The arguments for Snakemake's parser: workflow flags, executor settings, the rest."""
    argv: list[str] = []
    for dest, flag in SNAKEMAKE_FLAGS.items():
        value = getattr(args, dest, None)
        if value:
            argv += [flag, str(value)]
    for dest in ("config", "configfile"):
        values = getattr(args, dest, None)
        if values:
            argv += [f"--{dest}", *values]
    for field in executor_fields():
        value = getattr(args, field.name, None)
        if value is True:
            argv.append(executor_flag(field))
        elif value not in (None, "", False):
            argv += [executor_flag(field), str(value)]
    return argv + extra


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def run_setup(args: argparse.Namespace) -> int:
    from .ops import checks, stack

    if args.print:
        print(stack.template_body(), end="")
        return 0
    if not args.stack_name or not args.bucket:
        return _fail(
            "awsbatch-mpi setup: --stack-name and --bucket are required (or use --print to see "
            "the template).",
            2,
        )
    bucket, prefix = args.bucket, args.prefix
    if bucket.startswith("s3://"):
        try:
            bucket, given = checks.parse_s3_uri(bucket)
        except ValueError as err:
            return _fail(f"awsbatch-mpi setup: --bucket {err}", 2)
        prefix = given or prefix
    options = stack.StackOptions(
        stack_name=args.stack_name,
        bucket=bucket,
        prefix=prefix.strip("/"),
        on_demand=args.on_demand,
        cpu_instance_types=stack.split_list(args.cpu_instance_types),
        gpu_instance_types=stack.split_list(args.gpu_instance_types),
        mpi_instance_types=stack.split_list(args.mpi_instance_types),
        cpu_max_vcpus=args.cpu_max_vcpus,
        gpu_max_vcpus=args.gpu_max_vcpus,
        mpi_max_vcpus=args.mpi_max_vcpus,
        runnable_timeout_seconds=args.runnable_timeout,
        efs=args.efs,
        mpi_efa=args.mpi_efa,
        mpi_one_thread_per_core=args.mpi_one_thread_per_core,
        root_volume_gib=args.root_volume_gib,
        nat_gateway=args.nat_gateway,
        vpc_id=args.vpc_id,
        subnet_ids=stack.split_list(args.subnet_ids),
        security_group_id=args.security_group_id,
        log_retention_days=args.log_retention_days,
        service_role_arn=args.service_role_arn,
    )
    problems = stack.validate_options(options)
    if problems:
        return _fail("awsbatch-mpi setup: " + "\n".join(problems), 2)
    if args.dry_run:
        print(stack.render_parameters(options))
        return 0
    from .ops.aws_shell import AwsError, AwsShell

    shell = AwsShell(region=args.region)
    if not shell.region:
        return _fail(
            "awsbatch-mpi setup: no AWS region is configured. Pass --region, or set "
            "AWS_DEFAULT_REGION.",
            2,
        )
    try:
        outputs = shell.deploy(
            options, on_line=lambda line: print(line, flush=True), poll_seconds=args.poll_seconds
        )
    except AwsError as err:
        return _fail(f"awsbatch-mpi setup: {err}")
    print(stack.render_outputs(options.stack_name, outputs))
    return 0


def run_runtime(args: argparse.Namespace) -> int:
    from .batch.client import BatchClient
    from .core.anyimage import parse_runtime_volume
    from .ops.aws_shell import AwsError, AwsShell
    from .ops.runtime_install import InstallError, install

    text = args.file_system if ":" in args.file_system else f"efs:{args.file_system}"
    try:
        volume = parse_runtime_volume(text)
    except ValueError as err:
        return _fail(f"awsbatch-mpi runtime install: --file-system {err}.", 2)
    if volume.kind.value != "efs":
        return _fail(
            "awsbatch-mpi runtime install: --file-system must be an EFS file system "
            "(efs:FS_ID); a host directory is filled by the instances' launch template "
            "(see docs/further.md, Rules in any image).",
            2,
        )
    try:
        shell = AwsShell(region=args.region)
        batch = BatchClient(region=shell.region)
        result = install(
            batch,
            shell,
            volume,
            args.job_queue,
            args.image,
            job_role_arn=args.job_role_arn,
            execution_role_arn=args.execution_role_arn,
            log_group=args.log_group,
            timeout_seconds=args.timeout,
            on_line=lambda line: print(line, flush=True),
            poll_seconds=args.poll_seconds,
        )
    except (AwsError, InstallError) as err:
        return _fail(f"awsbatch-mpi runtime install: {err}")
    except Exception as err:  # noqa: BLE001 - botocore and planner errors, one sentence each
        return _fail(f"awsbatch-mpi runtime install: {err}")
    for line in result.log[-3:]:
        print(f"  {line}")
    print(
        f"The runtime is on {volume.source}. Run with --awsbatch-mpi-runtime-volume "
        f"efs:{volume.source}" + (f":{volume.access_point}" if volume.access_point else "")
        + " (or awsbatch-mpi-runtime-volume in the profile)."
    )
    return 0


def _load_workflow_settings(args: argparse.Namespace, extra: list[str], need_workflow: bool):
    """(snakemake's parsed arguments, executor settings, loaded workflow or None).

    The workflow is only loaded when asked for and when a job queue is set.
    """
    from .ops import workflow

    parsed = workflow.parse_arguments(snakemake_argv(args, extra))
    settings = workflow.executor_settings(parsed)
    loaded = None
    if need_workflow and settings.job_queue:
        loaded = workflow.load_workflow(parsed)
    return parsed, settings, loaded


def run_doctor(args: argparse.Namespace, extra: list[str]) -> int:
    from .ops import outcomes
    from .ops.aws_shell import AwsShell
    from .ops.doctor import DoctorRequest, run_doctor
    from .ops.workflow import WorkflowLoadError, translation_settings

    job_queue, gpu_queue, mpi_queue = args.job_queue, args.gpu_job_queue, args.multinode_job_queue
    role, region, prefix = args.job_role_arn, args.region, args.s3_prefix
    runtime_volume = None
    if args.runtime_volume:
        from .core.anyimage import parse_runtime_volume

        try:
            runtime_volume = parse_runtime_volume(args.runtime_volume)
        except ValueError as err:
            return _fail(f"awsbatch-mpi doctor: --runtime-volume {err}.", 2)
    fallback = args.fallback_job_queue
    loaded = translation = None
    if args.snakefile or args.profile or extra:
        try:
            parsed, settings, loaded = _load_workflow_settings(
                args, extra, need_workflow=bool(args.snakefile)
            )
            if loaded is not None:
                translation = translation_settings(settings, parsed.container_image)
        except WorkflowLoadError as err:
            return _fail(f"awsbatch-mpi doctor: {err}")
        # The settings already hold the flags above (snakemake_argv passes them on).
        job_queue, gpu_queue = settings.job_queue, settings.gpu_job_queue
        mpi_queue, role = settings.multinode_job_queue, settings.job_role_arn
        region, fallback = settings.region, settings.fallback_job_queue
        prefix = prefix or parsed.default_storage_prefix
        runtime_volume = settings.runtime_volume
    if not job_queue:
        return _fail(
            "awsbatch-mpi doctor: pass --job-queue QUEUE (or a --profile that sets "
            "awsbatch-mpi-job-queue).",
            2,
        )
    request = DoctorRequest(
        job_queue=job_queue,
        gpu_job_queue=gpu_queue,
        multinode_job_queue=mpi_queue,
        fallback_job_queue=fallback,
        job_role_arn=role,
        s3_prefix=prefix,
        workflow=loaded,
        settings=translation,
        runtime_volume=runtime_volume,
    )
    results = run_doctor(request, AwsShell(region=region))
    print(outcomes.render(results))
    return 1 if outcomes.has_failures(results) else 0


def run_plan(args: argparse.Namespace, extra: list[str]) -> int:
    from .core.array_jobs import array_rules
    from .ops import plan
    from .ops.placeholders import placeholder_warnings, setting_values
    from .ops.workflow import WorkflowLoadError, translation_settings

    try:
        parsed, settings, loaded = _load_workflow_settings(args, extra, need_workflow=True)
        if loaded is None:
            return _fail(
                "awsbatch-mpi plan: no job queue is set. Pass --job-queue QUEUE, or a "
                "--profile that sets awsbatch-mpi-job-queue.",
                2,
            )
        translation = translation_settings(settings, parsed.container_image)
        translation = dataclasses.replace(
            translation, snakemake_runs_containers=loaded.snakemake_runs_containers
        )
    except WorkflowLoadError as err:
        return _fail(f"awsbatch-mpi plan: {err}")
    result = plan.build_plan(
        loaded,
        translation,
        fargate_queues=args.fargate_queue,
        array_rules=array_rules(settings.array_jobs),
        root_volume_gib=args.root_volume_gib,
        setting_warnings=placeholder_warnings(setting_values(settings, parsed)),
    )
    text = plan.render_json(result)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        report = plan.render_report(result, args.out)
        print(report, file=sys.stderr if not result.valid else sys.stdout)
    else:
        sys.stdout.write(text)
        print(plan.render_report(result), file=sys.stderr)
    return 0 if result.valid else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("plan", "doctor"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "local":
        from .local import EmulationError
        from .local.server import describe_environment, serve_forever

        try:
            serve_forever(
                args.port,
                on_ready=lambda emu: print(describe_environment(emu), flush=True),
                runtime=args.runtime,
                batch_quota=args.batch_quota,
            )
        except EmulationError as err:
            print(f"awsbatch-mpi local: {err}", file=sys.stderr)
            return 1
        return 0
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(
            fresh=args.fresh,
            workdir=args.workdir,
            runtime=args.runtime,
            images=(args.image, args.mpi_image),
        )
    if args.command == "setup":
        return run_setup(args)
    if args.command == "runtime":
        return run_runtime(args)
    if args.command == "doctor":
        return run_doctor(args, extra)
    if args.command == "plan":
        return run_plan(args, extra)
    if args.command == "status":
        return run_status(args)
    if args.command == "report":
        return run_report(args)
    if args.command == "logs":
        return run_logs(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
