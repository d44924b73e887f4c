import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request
from snakemake_executor_plugin_awsbatch_mpi.core.jobdef import (
    register_payload,
    resource_requirements,
    submit_payload,
)
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.resources import translate
from snakemake_executor_plugin_awsbatch_mpi.core.spec import JobShape, Platform, QueueInfo

SETTINGS = TranslationSettings(
    job_queue="cpu",
    default_image="snakemake/snakemake:v9.27.1",
    job_role_arn="arn:aws:iam::123456789012:role/job",
    execution_role_arn="arn:aws:iam::123456789012:role/exec",
    log_group="/my/group",
)


CPU_QUEUE = QueueInfo("cpu")


def make_spec(resources, queue=CPU_QUEUE, threads=1, wildcards=None):
    return translate(
        JobRequest("r", threads, resources, wildcards or {}),
        SETTINGS,
        queue,
        ("/bin/bash", "-c", "python -m snakemake --mode remote"),
        {"MY_VAR": "1"},
        "r-a",
        {"snakemake-run-id": "abc"},
    )


CASES = [
    {},
    {"mem_mb": 4000, "runtime": 60, "gpu": 2, "awsbatch_priority": 1, "awsbatch_share": "s"},
    {"awsbatch_shm_mb": 1024, "awsbatch_privileged": True, "disk_mb": 5000},
]


@pytest.mark.parametrize("resources", CASES)
def test_ec2_payloads_are_valid_for_botocore(resources):
    spec = make_spec(resources, threads=2)
    reg = register_payload(spec.shape)
    sub = submit_payload(spec, "arn:aws:batch:us-east-1:123456789012:job-definition/x:1")
    assert validate_request("RegisterJobDefinition", reg) == []
    assert validate_request("SubmitJob", sub) == []


def test_fargate_payloads_are_valid_for_botocore():
    spec = make_spec({"disk_mb": 30000, "mem_mb": 3000}, queue=QueueInfo("fg", Platform.FARGATE))
    reg = register_payload(spec.shape)
    assert reg["platformCapabilities"] == ["FARGATE"]
    props = reg["containerProperties"]
    assert props["executionRoleArn"].endswith("role/exec")
    assert props["ephemeralStorage"] == {"sizeInGiB": 28}  # 30,000 MB = 27.9 GiB
    assert "privileged" not in props
    assert validate_request("RegisterJobDefinition", reg) == []
    assert validate_request("SubmitJob", submit_payload(spec, "jd")) == []


def test_sizes_go_to_overrides_not_definition():
    small, big = make_spec({"mem_mb": 1000}), make_spec({"mem_mb": 64000}, threads=16)
    # same shape → same definition name: sizes do not create new definitions
    assert register_payload(small.shape) == register_payload(big.shape)
    sub = submit_payload(big, "jd")
    reqs = sub["containerOverrides"]["resourceRequirements"]
    assert {"type": "VCPU", "value": "16"} in reqs
    assert {"type": "MEMORY", "value": "61036"} in reqs
    assert sub["containerOverrides"]["command"][:2] == ["/bin/bash", "-c"]
    assert sub["containerOverrides"]["environment"] == [{"name": "MY_VAR", "value": "1"}]
    assert sub["propagateTags"] is True and sub["tags"]["snakemake-run-id"] == "abc"


def test_shape_changes_change_the_name():
    base = JobShape(image="a")
    names = {
        register_payload(shape)["jobDefinitionName"]
        for shape in [
            base,
            JobShape(image="b"),
            JobShape(image="a", privileged=True),
            JobShape(image="a", shm_mib=64),
            JobShape(image="a", log_group="/x"),
        ]
    }
    assert len(names) == 5


def test_definition_contents():
    reg = register_payload(make_spec({"awsbatch_shm_mb": 256}).shape)
    props = reg["containerProperties"]
    assert props["jobRoleArn"].endswith("role/job")
    assert props["linuxParameters"] == {"sharedMemorySize": 256}
    assert props["logConfiguration"]["options"]["awslogs-group"] == "/my/group"
    assert props["privileged"] is False
    assert "environment" not in props


def test_gpu_requirement_and_fractional_vcpu():
    spec = make_spec({"gpu": 1})
    assert {"type": "GPU", "value": "1"} in resource_requirements(spec)
    fg = make_spec({}, queue=QueueInfo("fg", Platform.FARGATE))
    assert resource_requirements(fg)[0] == {"type": "VCPU", "value": "1"}


def test_depends_on_and_timeout():
    spec = make_spec({"runtime": 2})
    sub = submit_payload(spec, "jd", depends_on=["a", "b"])
    assert sub["dependsOn"] == [{"jobId": "a"}, {"jobId": "b"}]
    assert sub["timeout"] == {"attemptDurationSeconds": 120}


def test_validation_catches_limits():
    spec = make_spec({})
    sub = submit_payload(spec, "jd", depends_on=[str(i) for i in range(21)])
    sub["jobName"] = "-bad"
    sub["containerOverrides"]["command"].append("x" * 31_000)
    problems = " ".join(validate_request("SubmitJob", sub))
    assert "30 KiB" in problems and "pattern" in problems and "dependsOn" in problems
    assert validate_request("SubmitJob", {"jobName": "x"})  # missing required members


def mpi_spec(**resources):
    settings = TranslationSettings(
        job_queue="cpu", default_image="img", multinode_job_queue="mpi-q"
    )
    return translate(
        JobRequest("sim", 1, {"mpi": "mpirun", **resources}),
        settings,
        QueueInfo("mpi-q"),
        ("/bin/bash", "-c", "python -m snakemake"),
        {},
        "sim",
        {"snakemake-rule": "sim"},
        mpi_key_uri="s3://bucket/run/.awsbatch-mpi/keys/r/k",
    )


def test_multinode_payloads_are_valid_and_open_ended():
    small = mpi_spec(tasks=4, nodes=2)
    big = mpi_spec(tasks=64, nodes=16, mem_mb=8000, awsbatch_instance_type="c5n.18xlarge")
    reg = register_payload(small.shape)
    assert reg == register_payload(big.shape)  # one definition for every node count
    assert reg["type"] == "multinode"
    props = reg["nodeProperties"]
    assert props["mainNode"] == 0
    assert props["nodeRangeProperties"][0]["targetNodes"] == "0:"
    assert validate_request("RegisterJobDefinition", reg) == []
    sub = submit_payload(big, "jd")
    assert "containerOverrides" not in sub
    node = sub["nodeOverrides"]
    assert node["numNodes"] == 16
    over = node["nodePropertyOverrides"][0]["containerOverrides"]
    assert over["instanceType"] == "c5n.18xlarge"
    assert {"type": "VCPU", "value": "4"} in over["resourceRequirements"]
    assert validate_request("SubmitJob", sub) == []


def test_mpi_requests_name_the_key_object_and_carry_no_key():
    spec = mpi_spec(tasks=2, nodes=2)
    reg = register_payload(spec.shape)
    sub = submit_payload(spec, "jd")
    env = sub["nodeOverrides"]["nodePropertyOverrides"][0]["containerOverrides"]["environment"]
    uri = {"name": "AWSBATCH_MPI_KEY_URI", "value": "s3://bucket/run/.awsbatch-mpi/keys/r/k"}
    assert uri in env
    assert "AWSBATCH_MPI_SECRET" not in repr(sub) + repr(reg)
    assert "keys" not in repr(reg)  # the job definition is shared: no per-job value in it


def test_retry_strategy_in_submissions():
    sub = submit_payload(make_spec({}), "jd")
    strategy = sub["retryStrategy"]
    assert strategy["attempts"] == 3
    rules = strategy["evaluateOnExit"]
    assert rules[0] == {"onStatusReason": "Host EC2*", "action": "RETRY"}
    assert rules[-1] == {"onReason": "*", "action": "EXIT"}  # the rule's own failures
    assert len(rules) <= 5
    assert validate_request("SubmitJob", sub) == []


VOLUMES = "efs:fs-0123abcd:/efs efs:fs-0123abcd:fsap-0456abcd:/home host:/fsx:/fsx:ro"


def test_volumes_go_into_the_definition_and_its_hash():
    spec = make_spec({"awsbatch_volumes": VOLUMES})
    reg = register_payload(spec.shape)
    assert validate_request("RegisterJobDefinition", reg) == []
    props = reg["containerProperties"]
    assert props["volumes"] == [
        {"name": "vol0", "efsVolumeConfiguration": {
            "fileSystemId": "fs-0123abcd", "transitEncryption": "ENABLED"}},
        {"name": "vol1", "host": {"sourcePath": "/fsx"}},
        {"name": "vol2", "efsVolumeConfiguration": {
            "fileSystemId": "fs-0123abcd", "transitEncryption": "ENABLED",
            "authorizationConfig": {"accessPointId": "fsap-0456abcd"}}},
    ]
    assert props["mountPoints"] == [
        {"sourceVolume": "vol0", "containerPath": "/efs", "readOnly": False},
        {"sourceVolume": "vol1", "containerPath": "/fsx", "readOnly": True},
        {"sourceVolume": "vol2", "containerPath": "/home", "readOnly": False},
    ]
    names = {register_payload(make_spec(r).shape)["jobDefinitionName"] for r in (
        {}, {"awsbatch_volumes": VOLUMES}, {"awsbatch_volumes": "efs:fs-0123abcd:/efs"},
        {"awsbatch_volumes": "efs:fs-0123abcd:/efs:ro"},
    )}
    assert len(names) == 4


def test_volumes_in_fargate_and_multinode_definitions_are_valid():
    fargate = make_spec({"awsbatch_volumes": "efs:fs-0123abcd:/efs"}, queue=QueueInfo(
        "fg", Platform.FARGATE))
    reg = register_payload(fargate.shape)
    assert reg["containerProperties"]["mountPoints"][0]["containerPath"] == "/efs"
    assert validate_request("RegisterJobDefinition", reg) == []
    mpi = mpi_spec(tasks=4, nodes=2, awsbatch_volumes=VOLUMES, awsbatch_workdir="/efs/w")
    reg = register_payload(mpi.shape)
    node = reg["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert len(node["volumes"]) == 3 and len(node["mountPoints"]) == 3
    assert validate_request("RegisterJobDefinition", reg) == []
    assert validate_request("SubmitJob", submit_payload(mpi, "jd")) == []


def test_efa_devices_and_environment_of_mpi_rules():
    plain = mpi_spec(tasks=4, nodes=2)
    efa = mpi_spec(tasks=4, nodes=2, awsbatch_efa=True, awsbatch_instance_type="c5n.18xlarge")
    four = mpi_spec(tasks=4, nodes=2, awsbatch_efa=4, awsbatch_instance_type="p4d.24xlarge")
    reg = register_payload(four.shape)
    assert validate_request("RegisterJobDefinition", reg) == []
    node = reg["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert node["linuxParameters"]["devices"] == [
        {"hostPath": f"/dev/infiniband/uverbs{i}", "containerPath": f"/dev/infiniband/uverbs{i}",
         "permissions": ["READ", "WRITE", "MKNOD"]}
        for i in range(4)
    ]
    names = {register_payload(s.shape)["jobDefinitionName"] for s in (plain, efa, four)}
    assert len(names) == 3  # the devices are part of the shape
    env = dict(efa.environment)
    assert (env["FI_PROVIDER"], env["OMPI_MCA_pml"], env["OMPI_MCA_mtl"]) == ("efa", "cm", "ofi")
    assert "FI_EFA_USE_DEVICE_RDMA" not in env  # c5n has no RDMA-capable EFA
    assert dict(four.environment)["FI_EFA_USE_DEVICE_RDMA"] == "1"
    assert "FI_PROVIDER" not in dict(plain.environment)
    assert "linuxParameters" not in register_payload(plain.shape)["nodeProperties"][
        "nodeRangeProperties"][0]["container"]
    assert validate_request("SubmitJob", submit_payload(four, "jd")) == []
