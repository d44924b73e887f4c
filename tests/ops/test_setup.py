"""`awsbatch-mpi setup`: the template lints clean, deploys on moto, and failures name the cause."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import yaml

from snakemake_executor_plugin_awsbatch_mpi import cli
from snakemake_executor_plugin_awsbatch_mpi.ops import outcomes, stack
from snakemake_executor_plugin_awsbatch_mpi.ops.aws_shell import AwsError, AwsShell
from snakemake_executor_plugin_awsbatch_mpi.ops.doctor import DoctorRequest, run_doctor

from .conftest import REGION, public_subnet_with_s3


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, ...) kept as {'Fn': value}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(stack.template_body(), Loader=_CfnLoader)


def test_template_is_cfn_lint_clean():
    lint = pytest.importorskip("cfnlint.api", reason="cfn-lint is not installed").lint
    matches = lint(stack.template_body(), regions=["us-east-1", "eu-central-1"])
    assert matches == [], "\n".join(str(m) for m in matches)


def test_setup_passes_every_template_parameter(template):
    options = stack.StackOptions(stack_name="s", bucket="b-1")
    assert set(stack.parameters(options)) == set(template["Parameters"])


def test_queues_cancel_jobs_that_can_never_be_placed(template):
    resources = template["Resources"]
    queues = [r for r in resources.values() if r["Type"] == "AWS::Batch::JobQueue"]
    assert len(queues) == 4
    for queue in queues:
        actions = queue["Properties"]["JobStateTimeLimitActions"]
        assert {a["Reason"] for a in actions} == {
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        }
        assert all(a["Action"] == "CANCEL" and a["State"] == "RUNNABLE" for a in actions)
        assert all(a["MaxTimeSeconds"] == {"Ref": "RunnableTimeoutSeconds"} for a in actions)
    mpi = resources["MpiComputeEnvironment"]["Properties"]["ComputeResources"]
    assert mpi["Type"] == "EC2" and mpi["PlacementGroup"] == {"Ref": "MpiPlacementGroup"}
    assert resources["MpiPlacementGroup"]["Properties"]["Strategy"] == "cluster"


def _actions(template: dict[str, Any]) -> list[str]:
    found = []
    for resource in template["Resources"].values():
        for policy in resource.get("Properties", {}).get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                found += actions if isinstance(actions, list) else [actions]
    return found


def test_job_role_is_least_privilege(template):
    actions = _actions(template)
    assert actions and not [a for a in actions if "*" in a]
    role = template["Resources"]["JobRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    resources = {s["Sid"]: s["Resource"] for s in statements}
    assert resources["ReadWriteThePrefix"] == {
        "Sub": "arn:${AWS::Partition}:s3:::${BucketName}/${Prefix}/*"
    }
    assert resources["ListTheBucket"] == {"Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}


@pytest.mark.parametrize(
    ("changes", "word"),
    [
        ({"bucket": "s3://b/p"}, "Bucket name"),
        ({"prefix": "/p/"}, "Prefix"),
        ({"vpc_id": "vpc-1"}, "--subnet-ids"),
        ({"security_group_id": "sg-1"}, "--vpc-id"),
        ({"runnable_timeout_seconds": 60}, "600 and 86400"),
        ({"stack_name": "1abc"}, "Stack name"),
        ({"cpu_instance_types": ()}, "--cpu-instance-types"),
    ],
)
def test_options_are_checked_before_calling_aws(changes, word):
    values = {"stack_name": "s", "bucket": "bucket-1", **changes}
    problems = stack.validate_options(stack.StackOptions(**values))
    assert len(problems) == 1 and word in problems[0]


# Deploying on moto ------------------------------------------------------------------------


@pytest.fixture
def moto_account(aws_env):
    from moto import mock_aws

    with mock_aws(config={"batch": {"use_docker": False}}):
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="runs")
        # moto cannot create compute environments without a service role (AWS uses its
        # service-linked role when none is given): setup's --service-role-arn supplies one.
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="batch-service",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "batch.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ]
                }
            ),
        )["Role"]["Arn"]
        yield role


def apply_what_moto_skips(stack_name: str, template: dict[str, Any]) -> None:
    """moto's CloudFormation ignores two network properties of the template; apply them.

    It records AWS::EC2::SubnetRouteTableAssociation without associating the route table
    (subnets fall back to the VPC's main table) and ignores a subnet's MapPublicIpOnLaunch.
    This applies exactly what the template says, for the resources the stack created.
    """
    cfn = boto3.client("cloudformation", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
        if r.get("PhysicalResourceId")  # moto lists unsupported types without one
    }
    for logical, resource in template["Resources"].items():
        if logical not in physical:
            continue  # its condition was false
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::EC2::SubnetRouteTableAssociation":
            ec2.associate_route_table(
                RouteTableId=physical[properties["RouteTableId"]["Ref"]],
                SubnetId=physical[properties["SubnetId"]["Ref"]],
            )
        if resource["Type"] == "AWS::EC2::Subnet" and properties.get("MapPublicIpOnLaunch"):
            ec2.modify_subnet_attribute(
                SubnetId=physical[logical], MapPublicIpOnLaunch={"Value": True}
            )


def _mpi_environment() -> dict[str, Any]:
    batch = boto3.client("batch", region_name=REGION)
    [mpi] = [
        e for e in batch.describe_compute_environments()["computeEnvironments"]
        if "Mpi" in e["computeEnvironmentName"]
    ]
    return mpi


@pytest.mark.filterwarnings("ignore:Tried to parse")
def test_stack_deploys_on_moto_and_passes_the_doctor(moto_account, template):
    options = stack.StackOptions(
        stack_name="snk", bucket="runs", prefix="team/a", service_role_arn=moto_account
    )
    lines: list[str] = []
    shell = AwsShell(region=REGION)
    outputs = shell.deploy(options, on_line=lines.append, poll_seconds=0)
    apply_what_moto_skips("snk", template)
    assert lines[0].startswith("Creating stack 'snk' in us-east-1")
    assert outputs["CpuJobQueue"] == "snk-cpu" and outputs["MpiJobQueue"] == "snk-mpi"
    assert 'awsbatch-mpi-job-role-arn: "arn:aws:iam::' in outputs["ProfileSnippet"]
    assert 'default-storage-prefix: "s3://runs/team/a"' in outputs["ProfileSnippet"]

    batch = boto3.client("batch", region_name=REGION)
    envs = {
        e["computeEnvironmentName"].split("-")[1]: e["computeResources"]
        for e in batch.describe_compute_environments()["computeEnvironments"]
    }
    assert envs["CpuComputeEnvironment"]["type"] == "SPOT"
    assert envs["GpuComputeEnvironment"]["instanceTypes"] == ["g4dn", "g5"]
    assert envs["MpiComputeEnvironment"]["type"] == "EC2"
    assert len(envs["MpiComputeEnvironment"]["subnets"]) == 1
    # Spot CPU queue: an on-demand fallback queue, named in the profile
    assert envs["FallbackComputeEnvironment"]["type"] == "EC2"
    assert outputs["FallbackJobQueue"] == "snk-ondemand"
    assert 'awsbatch-mpi-fallback-job-queue: "snk-ondemand"' in outputs["ProfileSnippet"]
    iam = boto3.client("iam", region_name=REGION)
    role_name = outputs["JobRoleArn"].rsplit("/", 1)[-1]
    policy = iam.get_role_policy(RoleName=role_name, PolicyName="workflow-storage")
    text = json.dumps(policy["PolicyDocument"])
    assert "arn:aws:s3:::runs/team/a/*" in text and "s3:*" not in text
    logs = boto3.client("logs", region_name=REGION)
    assert logs.describe_log_groups(logGroupNamePrefix="/aws/batch/snk")["logGroups"]

    results = run_doctor(
        DoctorRequest(
            job_queue="snk-cpu",
            gpu_job_queue="snk-gpu",
            multinode_job_queue="snk-mpi",
            fallback_job_queue="snk-ondemand",
            job_role_arn=outputs["JobRoleArn"],
            s3_prefix="s3://runs/team/a",
        ),
        shell,
    )
    assert not outcomes.has_failures(results), outcomes.render(results)
    # moto drops the placement group (unsupported), which the doctor notices.
    assert [r.status for r in results if r.check.startswith("placement")] == [outcomes.Status.WARN]
    # The MPI subnet is public (instances reach ECS) and has the S3 gateway endpoint, which
    # MPI node containers need: they get no public IP.
    [mpi_network] = [r for r in results if r.check.startswith("mpi network")]
    assert "reach S3 through an S3 gateway endpoint" in mpi_network.message
    [endpoint] = boto3.client("ec2", region_name=REGION).describe_vpc_endpoints()["VpcEndpoints"]
    assert endpoint["ServiceName"] == f"com.amazonaws.{REGION}.s3"
    assert endpoint["VpcEndpointType"] == "Gateway"

    again = shell.deploy(options, on_line=lines.append, poll_seconds=0)
    assert again["CpuJobQueue"] == "snk-cpu"


@pytest.mark.filterwarnings("ignore:Tried to parse")
def test_cli_setup_on_demand_with_efs_prints_the_profile(moto_account, capsys):
    code = cli.main(
        [
            "setup",
            "--stack-name",
            "ondemand",
            "--bucket",
            "s3://runs/x",
            "--on-demand",
            "--efs",
            "--service-role-arn",
            moto_account,
            "--poll-seconds",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Stack 'ondemand' is ready:" in out and "FileSystemId" in out
    assert "Save this as profiles/aws/config.yaml" in out
    assert 'awsbatch-mpi-multinode-job-queue: "ondemand-mpi"' in out
    assert "awsbatch-mpi-fallback-job-queue" not in out  # nothing to fall back from
    assert "no fallback queue for Spot reclaims is needed" in out
    envs = boto3.client("batch", region_name=REGION).describe_compute_environments()
    kinds = {e["computeResources"]["type"] for e in envs["computeEnvironments"]}
    assert kinds == {"EC2"}
    mpi = [e for e in envs["computeEnvironments"] if "Mpi" in e["computeEnvironmentName"]][0]
    assert mpi["computeResources"]["launchTemplate"]["launchTemplateId"].startswith("lt-")


@pytest.mark.filterwarnings("ignore:Tried to parse")
def test_cli_setup_nat_gateway_puts_compute_in_private_subnets(moto_account, template, capsys):
    code = cli.main(
        [
            "setup", "--stack-name", "priv", "--bucket", "runs", "--nat-gateway",
            "--service-role-arn", moto_account, "--poll-seconds", "0",
        ]
    )
    assert code == 0, capsys.readouterr().out
    apply_what_moto_skips("priv", template)
    ec2 = boto3.client("ec2", region_name=REGION)
    [subnet] = _mpi_environment()["computeResources"]["subnets"]
    assert not ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["MapPublicIpOnLaunch"]
    [table] = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
    )["RouteTables"]
    default = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert default and default[0]["NatGatewayId"].startswith("nat-")
    results = run_doctor(
        DoctorRequest(job_queue="priv-cpu", multinode_job_queue="priv-mpi"),
        AwsShell(region=REGION),
    )
    assert not outcomes.has_failures(results), outcomes.render(results)
    network_lines = [r.message for r in results if r.check.startswith("network")]
    assert network_lines and all("(NAT gateway)" in m for m in network_lines)


@pytest.mark.filterwarnings("ignore:Tried to parse")
def test_setup_never_changes_a_given_vpc_and_the_doctor_judges_it(moto_account):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = public_subnet_with_s3(ec2, vpc, "10.1.0.0/24", s3_endpoint=False)

    def network_of_the_vpc():
        in_vpc = [{"Name": "vpc-id", "Values": [vpc]}]
        return (
            ec2.describe_route_tables(Filters=in_vpc)["RouteTables"],
            [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["VpcId"] == vpc],
            ec2.describe_subnets(Filters=in_vpc)["Subnets"],
            ec2.describe_nat_gateways()["NatGateways"],
        )

    before = network_of_the_vpc()
    options = stack.StackOptions(
        stack_name="own", bucket="runs", vpc_id=vpc, subnet_ids=(subnet,),
        service_role_arn=moto_account,
    )
    AwsShell(region=REGION).deploy(options, poll_seconds=0)
    assert network_of_the_vpc() == before
    assert _mpi_environment()["computeResources"]["subnets"] == [subnet]
    results = run_doctor(
        DoctorRequest(job_queue="own-cpu", multinode_job_queue="own-mpi"),
        AwsShell(region=REGION),
    )
    [mpi_network] = [r for r in results if r.check.startswith("mpi network")]
    assert mpi_network.status is outcomes.Status.FAIL
    assert "the only way out is an internet gateway" in mpi_network.message
    assert f"--vpc-id {vpc} --service-name com.amazonaws.{REGION}.s3" in mpi_network.message


def test_nat_gateway_is_refused_with_a_given_vpc():
    options = stack.StackOptions(
        stack_name="s", bucket="b-1", vpc_id="vpc-1", subnet_ids=("subnet-1",), nat_gateway=True
    )
    [problem] = stack.validate_options(options)
    assert problem.startswith("--nat-gateway builds private subnets in the VPC that setup")
    assert "awsbatch-mpi doctor" in problem


def test_cli_setup_print_and_dry_run_call_nothing(offline, capsys):
    assert cli.main(["setup", "--print"]) == 0
    assert capsys.readouterr().out == stack.template_body()
    assert cli.main(["setup", "--dry-run", "--stack-name", "s", "--bucket", "b-1"]) == 0
    out = capsys.readouterr().out
    assert "CpuCapacity             SPOT" in out and "BucketName              b-1" in out
    assert cli.main(["setup", "--stack-name", "s", "--bucket", "b-1", "--vpc-id", "v"]) == 2
    assert "--vpc-id needs --subnet-ids" in capsys.readouterr().err
    assert cli.main(["setup", "--bucket", "b-1"]) == 2


# Failures -----------------------------------------------------------------------------------


class _FailingCloudFormation:
    """Answers like CloudFormation for a stack whose MPI environment failed, then rolled back.

    (moto raises a resource's error from CreateStack itself and records no *_FAILED events,
    so the event handling is tested against the shape AWS documents.)
    """

    def __init__(self) -> None:
        self.created = False

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if not self.created:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": f"Stack {StackName} does not exist",
                    }
                },
                "DescribeStacks",
            )
        return {"Stacks": [{"StackName": StackName, "StackStatus": "ROLLBACK_COMPLETE"}]}

    def create_stack(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["Capabilities"] == ["CAPABILITY_IAM"]
        self.created = True
        return {"StackId": "id"}

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        def event(n, logical, kind, status, reason=None):
            e = {
                "EventId": str(n),
                "LogicalResourceId": logical,
                "ResourceType": kind,
                "ResourceStatus": status,
            }
            if reason:
                e["ResourceStatusReason"] = reason
            return e

        events = [
            event(1, StackName, "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS"),
            event(2, "JobRole", "AWS::IAM::Role", "CREATE_IN_PROGRESS"),
            event(
                3,
                "MpiComputeEnvironment",
                "AWS::Batch::ComputeEnvironment",
                "CREATE_FAILED",
                'Resource handler returned message: "Instance type c5n '
                'is not supported in us-east-1e"',
            ),
            event(4, "JobRole", "AWS::IAM::Role", "CREATE_FAILED", "Resource creation cancelled"),
            event(
                5,
                StackName,
                "AWS::CloudFormation::Stack",
                "ROLLBACK_COMPLETE",
                "The following resource(s) failed to create: [MpiComputeEnvironment].",
            ),
        ]
        return {"StackEvents": list(reversed(events))}


class _Session:
    region_name = REGION

    def __init__(self) -> None:
        self.cloudformation = _FailingCloudFormation()

    def client(self, service: str, config: Any = None) -> Any:
        assert service == "cloudformation"
        return self.cloudformation


def test_failed_stack_names_the_failing_resource_and_its_reason():
    shell = AwsShell(session=_Session())
    lines: list[str] = []
    with pytest.raises(AwsError) as failure:
        shell.deploy(stack.StackOptions("snk", "runs"), on_line=lines.append, poll_seconds=0)
    message = str(failure.value)
    assert "Stack 'snk' failed (ROLLBACK_COMPLETE)." in message
    assert "MpiComputeEnvironment (AWS::Batch::ComputeEnvironment) CREATE_FAILED" in message
    assert "Instance type c5n is not supported" in message
    assert "JobRole" not in message  # merely cancelled
    assert "delete-stack --stack-name snk" in message
    assert any("CREATE_FAILED" in line and "MpiComputeEnvironment" in line for line in lines)


def test_cli_setup_failure_exits_1_with_the_reason(monkeypatch, capsys):
    monkeypatch.setattr(
        "snakemake_executor_plugin_awsbatch_mpi.batch.clients.boto3.session.Session",
        lambda region_name=None: _Session(),
    )
    code = cli.main(["setup", "--stack-name", "snk", "--bucket", "runs", "--poll-seconds", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "MpiComputeEnvironment" in captured.err and "not supported" in captured.err


def test_existing_stack_in_rollback_complete_is_not_touched():
    session = _Session()
    session.cloudformation.created = True
    with pytest.raises(AwsError, match="ROLLBACK_COMPLETE. Wait for it"):
        AwsShell(session=session).deploy(stack.StackOptions("snk", "runs"), poll_seconds=0)


def test_efa_and_one_thread_per_core_are_checked_before_calling_aws():
    efa = stack.StackOptions(stack_name="s", bucket="b-1", mpi_efa=True)
    [problem] = stack.validate_options(efa)
    assert "--mpi-efa needs --mpi-instance-types" in problem and "not c5n:" in problem
    exact = stack.StackOptions(
        stack_name="s", bucket="b-1", mpi_efa=True,
        mpi_instance_types=("c5n.18xlarge", "hpc7g.16xlarge"),
    )
    assert stack.validate_options(exact) == []
    params = stack.parameters(
        stack.StackOptions(stack_name="s", bucket="b-1", mpi_one_thread_per_core=True)
    )
    assert (params["MpiEfa"], params["MpiOneThreadPerCore"]) == ("false", "true")


def test_mpi_launch_template_has_efa_interfaces_and_cpu_options(template):
    resources = template["Resources"]
    data = resources["MpiLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["CpuOptions"]["If"][:2] == ["OneThreadPerCore", {"ThreadsPerCore": 1}]
    [interface] = data["NetworkInterfaces"]["If"][1]
    assert (interface["DeviceIndex"], interface["InterfaceType"]) == (0, "efa")
    egress = resources["BatchSecurityGroupSelfEgress"]["Properties"]
    assert egress["IpProtocol"] == "-1" and "DestinationSecurityGroupId" in egress
    mpi = resources["MpiComputeEnvironment"]["Properties"]["ComputeResources"]
    assert mpi["PlacementGroup"] == {"Ref": "MpiPlacementGroup"}
    assert mpi["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "MpiLaunchTemplate"}


@pytest.mark.filterwarnings("ignore:Tried to parse")
def test_cli_setup_mpi_efa_one_thread_per_core_deploys_and_the_doctor_sees_it(
    moto_account, capsys
):
    code = cli.main(
        [
            "setup", "--stack-name", "hpc", "--bucket", "runs", "--mpi-efa",
            "--mpi-one-thread-per-core", "--mpi-instance-types", "c5n.18xlarge",
            "--service-role-arn", moto_account, "--poll-seconds", "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    batch = boto3.client("batch", region_name=REGION)
    [mpi] = [
        e for e in batch.describe_compute_environments()["computeEnvironments"]
        if "Mpi" in e["computeEnvironmentName"]
    ]
    template_id = mpi["computeResources"]["launchTemplate"]["launchTemplateId"]
    ec2 = boto3.client("ec2", region_name=REGION)
    [version] = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)[
        "LaunchTemplateVersions"
    ]
    data = version["LaunchTemplateData"]
    assert data["CpuOptions"] == {"ThreadsPerCore": 1}
    assert [i["InterfaceType"] for i in data["NetworkInterfaces"]] == ["efa"]
    assert "UserData" not in data  # no EFS asked for
    results = run_doctor(
        DoctorRequest(job_queue="hpc-cpu", multinode_job_queue="hpc-mpi"),
        AwsShell(region=REGION),
    )
    cores = [r for r in results if r.check == "cores per node hpc-mpi"][0]
    assert "(one thread per core): c5n.18xlarge 36 cores x 1 thread(s)" in cores.message


def test_every_ec2_compute_environment_sizes_the_root_volume(template):
    """All jobs of an instance share its root volume: each compute environment's launch
    template maps /dev/xvda with the size setup is given (issue 19 §2)."""
    resources = template["Resources"]
    envs = {k: r for k, r in resources.items() if r["Type"] == "AWS::Batch::ComputeEnvironment"}
    assert sorted(envs) == [
        "CpuComputeEnvironment", "FallbackComputeEnvironment", "GpuComputeEnvironment",
        "MpiComputeEnvironment",
    ]
    for env in envs.values():
        spec = env["Properties"]["ComputeResources"]["LaunchTemplate"]
        name = spec["LaunchTemplateId"]["Ref"]
        assert spec["Version"] == {"GetAtt": f"{name}.LatestVersionNumber"}
        [root] = resources[name]["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"]
        assert root["DeviceName"] == "/dev/xvda"
        assert root["Ebs"]["VolumeSize"] == {"Ref": "RootVolumeGib"}
        assert root["Ebs"]["VolumeType"] == "gp3" and root["Ebs"]["Encrypted"] is True
    assert template["Parameters"]["RootVolumeGib"]["Default"] == 100
    assert stack.parameters(stack.StackOptions(stack_name="s", bucket="b-1"))["RootVolumeGib"] == (
        "100"
    )


@pytest.mark.parametrize("gib", [29, 16385])
def test_root_volume_size_is_checked_before_calling_aws(gib):
    [problem] = stack.validate_options(
        stack.StackOptions(stack_name="s", bucket="b-1", root_volume_gib=gib)
    )
    assert problem == (
        "--root-volume-gib must be between 30 (the size of the ECS-optimized AMI's own root "
        f"volume) and 16384 (gp3's largest) (it is {gib})."
    )


@pytest.mark.filterwarnings("ignore:Tried to parse")
def test_cli_setup_root_volume_reaches_every_queue_the_plugin_reads(moto_account, capsys):
    """Deployed on moto: each compute environment launches with the root volume asked for,
    and the executor's BatchClient reads it back from the launch template."""
    from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient

    code = cli.main(
        [
            "setup", "--stack-name", "disk", "--bucket", "runs", "--root-volume-gib", "250",
            "--service-role-arn", moto_account, "--poll-seconds", "0",
        ]
    )
    assert code == 0, capsys.readouterr().out
    client = BatchClient(region=REGION)
    for queue in ("disk-cpu", "disk-gpu", "disk-mpi"):
        [volume] = client.queue_info(queue).disks
        assert volume.gib == 250, volume
        assert volume.source.startswith("launch template lt-")
    assert client.calls["describe_launch_template_versions"] == 2  # CPU/GPU share one
