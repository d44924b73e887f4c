import pytest

from snakemake_executor_plugin_awsbatch_mpi.core.request import (
    JobRequest,
    TranslationSettings,
)
from snakemake_executor_plugin_awsbatch_mpi.core.resources import translate, validate_request
from snakemake_executor_plugin_awsbatch_mpi.core.routing import resolve_queue
from snakemake_executor_plugin_awsbatch_mpi.core.spec import Platform, QueueInfo, ResourceError

SETTINGS = TranslationSettings(
    job_queue="cpu",
    default_image="snakemake/snakemake:v9.27.1",
    gpu_job_queue="gpu",
    gpu_queues={"a100": "gpu-a100"},
    execution_role_arn="arn:aws:iam::123456789012:role/exec",
)
EC2 = QueueInfo("cpu")
FARGATE = QueueInfo("fg", platform=Platform.FARGATE)


def req(threads=1, **resources):
    return JobRequest(rule="r", threads=threads, resources=resources)


def spec_of(request, queue=EC2, settings=SETTINGS):
    return translate(
        request, settings, queue, ("/bin/bash", "-c", "true"), {}, "r", {"snakemake-rule": "r"}
    )


def test_non_integer_gpu_rejected():
    with pytest.raises(ResourceError, match="gpu=1.5 .*whole number"):
        spec_of(req(gpu=1.5))


def test_translate_ec2_sizes_and_options():
    spec = spec_of(
        req(
            threads=2,
            mem_mb=4000,
            gpu=1,
            runtime=30,
            awsbatch_priority=5,
            awsbatch_share="teamA",
            awsbatch_shm_mb=512,
            awsbatch_privileged=True,
            awsbatch_tags="project=x,cost=y",
            awsbatch_image="my/image:1",
        )
    )
    assert (spec.size.vcpus, spec.size.memory_mib, spec.size.gpus) == (2, 3815, 1)
    assert spec.timeout_seconds == 1800
    assert spec.priority == 5 and spec.share == "teamA"
    assert spec.shape.shm_mib == 512 and spec.shape.privileged is True
    assert spec.shape.image == "my/image:1"
    assert dict(spec.tags) == {"project": "x", "cost": "y", "snakemake-rule": "r"}


def test_default_image_and_not_privileged():
    spec = spec_of(req())
    assert spec.shape.image == SETTINGS.default_image
    assert spec.shape.privileged is False


def test_fargate_rounds_up_with_warning():
    spec = spec_of(req(threads=3, mem_mb=1000), queue=FARGATE)
    assert (spec.size.vcpus, spec.size.memory_mib) == (4.0, 8192)
    assert spec.warnings and "rounded up" in spec.warnings[0]
    assert spec.shape.execution_role_arn.endswith("role/exec")
    exact = spec_of(req(threads=1, mem_mib=2048), queue=FARGATE)
    assert exact.warnings == ()


def test_fargate_disk_and_rejections():
    spec = spec_of(req(disk_mb=50_000), queue=FARGATE)
    assert spec.shape.ephemeral_storage_gib == 47
    small = spec_of(req(disk_mb=1000), queue=FARGATE)
    assert small.shape.ephemeral_storage_gib == 21
    with pytest.raises(ResourceError, match="Fargate.*no GPUs"):
        spec_of(req(gpu=1, awsbatch_queue="fg"), queue=FARGATE)
    with pytest.raises(ResourceError, match="execution role"):
        spec_of(req(), queue=FARGATE, settings=TranslationSettings("fg", "img"))
    with pytest.raises(ResourceError, match="200 GiB"):
        spec_of(req(disk_mb=400_000), queue=FARGATE)


@pytest.mark.parametrize(
    "resources, resource",
    [
        ({"awsbatch_priority": 10000}, "awsbatch_priority"),
        ({"awsbatch_priority": -1}, "awsbatch_priority"),
        ({"awsbatch_shm_mb": 0}, "awsbatch_shm_mb"),
        ({"awsbatch_privileged": "maybe"}, "awsbatch_privileged"),
        ({"mpi": "mpirun"}, "mpi"),
        ({"tasks": 4}, "tasks"),
        ({"mpi": "mpirun", "tasks": 6, "nodes": 4}, "nodes"),
        ({"mpi": "mpirun", "tasks": 6, "tasks_per_node": 4}, "tasks_per_node"),
        ({"mpi": "mpirun", "tasks": 6, "nodes": 2, "tasks_per_node": 2}, "nodes"),
        ({"mpi": "mpirun", "tasks": 2000, "tasks_per_node": 1}, "nodes"),
        ({"mpi": "mpirun", "tasks": 4, "nodes": 0}, "nodes"),
        ({"runtime": 0}, "runtime"),
    ],
)
def test_validate_request_names_rule_and_resource(resources, resource):
    with pytest.raises(ResourceError) as info:
        validate_request(req(**resources), SETTINGS)
    assert info.value.rule == "r" and info.value.resource == resource
    assert f" {resource}=" in str(info.value)


MPI_SETTINGS = TranslationSettings(
    job_queue="cpu", default_image="img", multinode_job_queue="mpi-q"
)
KEY_URI = "s3://bucket/run/.awsbatch-mpi/keys/run1/job1"


MPI_QUEUE = QueueInfo("mpi-q")


def mpi_spec(threads=1, queue=MPI_QUEUE, **resources):
    return translate(
        JobRequest("sim", threads, resources),
        MPI_SETTINGS,
        queue,
        ("/bin/bash", "-c", "python -m snakemake --mode remote"),
        {"A": "1"},
        "sim",
        {},
        mpi_key_uri=KEY_URI,
    )


@pytest.mark.parametrize(
    "threads, resources, expected",
    [
        (1, {"tasks": 16, "nodes": 4}, (4, 4)),
        (1, {"tasks": 6, "tasks_per_node": 2}, (3, 2)),
        (1, {"tasks": 6, "tasks_per_node": 3, "nodes": 2}, (2, 3)),
        (4, {"tasks": 16}, (4, 4)),  # threads = vCPUs of one node
        (4, {"tasks": 8, "cpus_per_task": 2}, (4, 2)),
        (8, {"tasks": 4}, (1, 4)),
        (1, {"tasks": 3}, (3, 1)),
    ],
)
def test_mpi_layout(threads, resources, expected):
    spec = mpi_spec(threads=threads, mpi="mpirun", **resources)
    assert (spec.mpi.nodes, spec.mpi.tasks_per_node) == expected
    assert spec.size.vcpus == spec.mpi.tasks_per_node * spec.mpi.cpus_per_task
    assert spec.queue == "mpi-q" and spec.shape.multinode


def test_mpi_job_runs_the_agent_with_the_command_in_its_environment():
    spec = mpi_spec(mpi="mpirun", tasks=4, nodes=2, mem_mb=4000, gpu=2,
                    awsbatch_instance_type="p3.8xlarge")
    env = dict(spec.environment)
    assert spec.command[-1].endswith("-m snakemake_executor_plugin_awsbatch_mpi.mpi")
    assert env["AWSBATCH_MPI_COMMAND"] == "python -m snakemake --mode remote"
    assert env["AWSBATCH_MPI_KEY_URI"] == KEY_URI
    assert "AWSBATCH_MPI_SECRET" not in env
    assert env["AWSBATCH_MPI_TASKS"] == "4"
    assert env["AWSBATCH_MPI_SLOTS"] == "2"  # GPUs per node
    assert env["A"] == "1"
    assert spec.size.memory_mib == 3815 and spec.size.gpus == 2
    assert spec.mpi.instance_type == "p3.8xlarge"


def test_mpi_queue_routing_and_refusals():
    no_queue = TranslationSettings(job_queue="cpu", default_image="img")
    with pytest.raises(ResourceError, match="--awsbatch-mpi-multinode-job-queue"):
        resolve_queue(req(mpi="mpirun", tasks=2), no_queue)
    assert resolve_queue(req(mpi="mpirun", tasks=2), MPI_SETTINGS) == "mpi-q"
    with pytest.raises(ResourceError, match="Fargate.*multi-node"):
        mpi_spec(queue=QueueInfo("fg", Platform.FARGATE), mpi="mpirun", tasks=2)
    with pytest.raises(ResourceError, match="Spot.*multi-node"):
        mpi_spec(queue=QueueInfo("spot", spot_only=True), mpi="mpirun", tasks=2)


def test_mpi_job_without_a_storage_prefix_for_its_key_is_refused():
    with pytest.raises(ResourceError, match="--default-storage-prefix"):
        translate(req(mpi="mpirun", tasks=2), MPI_SETTINGS, MPI_QUEUE, ("x",), {}, "sim", {})


def test_tasks_one_without_mpi_is_an_ordinary_job():
    assert spec_of(req(tasks=1)).mpi is None


# Issue 10 §4: refused before submission, naming what the user wrote -----------------------

from snakemake_executor_plugin_awsbatch_mpi.core.capacity import limit_of  # noqa: E402


def written(threads=1, written=None, **resources):
    """A request as Snakemake passes it, with the rule's resources as written."""
    return JobRequest("r", threads, resources, written=written or {})


def test_errors_name_the_resource_as_written():
    # Snakemake derives mem_mib=-95 from mem_mb=-100 and disk_mib=286103 from disk_mb=300000.
    with pytest.raises(ResourceError, match=r"mem_mb=-100\b"):
        spec_of(written(mem_mb=-100, mem_mib=-95, written={"mem_mb": -100}))
    with pytest.raises(ResourceError, match=r"disk_mb=300000 .*200 GiB"):
        spec_of(written(disk_mb=300000, disk_mib=286103, written={"disk_mb": 300000}),
                queue=FARGATE)
    as_mib = spec_of(written(mem_mb=1049, mem_mib=1000, written={"mem_mib": 1000}))
    assert as_mib.size.memory_mib == 1000


@pytest.mark.parametrize("name", ["gpu", "nvidia_gpu", "tasks", "awsbatch_priority"])
def test_fractions_snakemake_would_round_are_refused(name):
    with pytest.raises(ResourceError, match=rf"{name}=1.5 .*round it to 2"):
        spec_of(written(**{name: 2}, written={name: 1.5}))


@pytest.mark.parametrize("queue", [EC2, FARGATE])
def test_negative_disk_is_refused_on_every_platform(queue):
    with pytest.raises(ResourceError, match=r"disk_mb=-1 .*> 0"):
        spec_of(written(disk_mb=-1, written={"disk_mb": -1}), queue=queue)


def test_empty_image_is_refused():
    with pytest.raises(ResourceError, match="awsbatch_image='' .*must name a container image"):
        spec_of(written(awsbatch_image="", written={"awsbatch_image": ""}))


def test_share_only_on_fair_share_queues():
    fifo, fair = QueueInfo("cpu", fair_share=False), QueueInfo("cpu", fair_share=True)
    with pytest.raises(ResourceError, match="awsbatch_share='teamA'.*no fair-share"):
        spec_of(req(awsbatch_share="teamA"), queue=fifo)
    with pytest.raises(ResourceError, match="fair-share scheduling policy.*awsbatch_share="):
        spec_of(req(), queue=fair)
    assert spec_of(req(awsbatch_share="teamA"), queue=fair).share == "teamA"
    assert spec_of(req(awsbatch_share="teamA")).share == "teamA"  # queue not known: sent


def test_instance_type_on_a_single_node_rule_is_refused():
    with pytest.raises(ResourceError, match="awsbatch_instance_type='c5.large'.*multi-node"):
        spec_of(req(awsbatch_instance_type="c5.large"))


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ("aws:owner=me", "starts with 'aws:'"),
        ("AWS:owner=me", "starts with 'aws:'"),
        ("owner=aws:me", "starts with 'aws:'"),
        ("own$er=me", "characters Batch refuses"),
        ("owner=m€;e", "characters Batch refuses"),
    ],
)
def test_tags_batch_refuses(tags, why):
    with pytest.raises(ResourceError, match=f"awsbatch_tags=.*{why}"):
        spec_of(req(awsbatch_tags=tags))


def test_tags_count_the_run_tags():
    many = ",".join(f"k{i}=v" for i in range(48))
    run_tags = {"snakemake-run-id": "x", "snakemake-rule": "r", "snakemake-workflow": "w"}
    with pytest.raises(ResourceError, match="51 tags .*3 set by the plugin.*at most 50"):
        translate(req(awsbatch_tags=many), SETTINGS, EC2, ("true",), {}, "r", run_tags)
    assert len(spec_of(req(awsbatch_tags=many)).tags) == 49  # with one run tag: fine


def queue_with(instance_types, max_vcpus=256, name="cpu"):
    env = {"computeEnvironmentName": f"{name}-ce", "computeResources": {
        "type": "EC2", "maxvCpus": max_vcpus, "instanceTypes": instance_types}}
    return QueueInfo(name, limits=(limit_of(env),))


def test_jobs_no_compute_environment_can_place():
    with pytest.raises(ResourceError, match=r"threads=100000 .*at most 256 vCPUs"):
        spec_of(req(threads=100000), queue=queue_with(["optimal"]))
    with pytest.raises(ResourceError, match=r"mem_mb=1000000000000 .*1048576 MiB"):
        spec_of(written(mem_mb=10**12, mem_mib=953674316407, written={"mem_mb": 10**12}),
                queue=queue_with(["optimal"]))
    with pytest.raises(ResourceError, match=r"gpu=16 .*at most 8 GPUs"):
        spec_of(req(gpu=16), queue=queue_with(["g4dn"]))
    with pytest.raises(ResourceError, match=r"tasks=72 .*at most 64 vCPUs.*needs 72"):
        mpi_spec(queue=queue_with(["c5n"], 64, "mpi-q"), mpi="mpirun", tasks=72,
                 tasks_per_node=36)
    with pytest.raises(ResourceError, match=r"tasks=4 .*c5n.large.* 2 vCPUs"):
        mpi_spec(queue=queue_with(["c5n"], 64, "mpi-q"), mpi="mpirun", tasks=4, nodes=1,
                 awsbatch_instance_type="c5n.large")
    # an unknown family is checked against maxvCpus only
    assert spec_of(req(threads=200, mem_mb=10**7), queue=queue_with(["z9q"])).size.vcpus == 200


SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
PARAM_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/app/token"


def test_secrets_go_into_the_job_definition_with_the_execution_role():
    settings = TranslationSettings("cpu", "img", execution_role_arn="arn:aws:iam::1:role/exec",
                                   secrets={"DB_PASSWORD": SECRET_ARN})
    spec = spec_of(req(awsbatch_secrets=f"API_TOKEN={PARAM_ARN}"), settings=settings)
    assert spec.shape.secrets == (("API_TOKEN", PARAM_ARN), ("DB_PASSWORD", SECRET_ARN))
    assert spec.shape.execution_role_arn.endswith("role/exec")
    with pytest.raises(ResourceError, match="awsbatch_secrets=.*Secrets Manager"):
        spec_of(req(awsbatch_secrets="TOKEN=plaintext"), settings=settings)
    with pytest.raises(ResourceError, match="--awsbatch-mpi-execution-role-arn"):
        spec_of(req(), settings=TranslationSettings("cpu", "img", secrets={"T": SECRET_ARN}))


# -- shared file systems (awsbatch_volumes, --awsbatch-mpi-volumes) --------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("efs:fs-12:/efs", "not an EFS file system id"),
        ("efs:fs-0123abcd:ap-1:/efs", "not an EFS access point id"),
        ("efs:fs-0123abcd:efs", "must be an absolute directory"),
        ("host:fsx:/fsx", "must be absolute"),
        ("host:/fsx:/", "absolute directory other than /"),
        ("nfs:server:/x", "is not a volume"),
        ("efs:fs-0123abcd:/a/../b", "'..'"),
        ("efs:fs-0123abcd:/efs host:/fsx:/efs", "mounted twice"),
    ],
)
def test_bad_volumes_are_refused_naming_resource_value_and_forms(text, says):
    with pytest.raises(ResourceError) as err:
        spec_of(req(awsbatch_volumes=text))
    message = str(err.value)
    assert says in message and "awsbatch_volumes" in message and repr(text) in message
    assert "efs:FS_ID[:ACCESS_POINT_ID]:/CONTAINER/PATH[:ro]" in message


def test_rule_volumes_add_to_setting_and_win_on_the_same_path():
    from snakemake_executor_plugin_awsbatch_mpi.core.mounts import parse_volumes

    settings = TranslationSettings(
        job_queue="cpu", default_image="img",
        volumes=parse_volumes("efs:fs-0123abcd:/efs host:/fsx:/scratch"),
    )
    spec = spec_of(req(awsbatch_volumes="host:/nvme:/scratch"), settings=settings)
    assert [str(v) for v in spec.shape.volumes] == ["efs:fs-0123abcd:/efs", "host:/nvme:/scratch"]
    assert spec_of(req(), settings=settings).shape.volumes != spec.shape.volumes


def test_fargate_takes_efs_but_refuses_host_volumes():
    spec = spec_of(req(awsbatch_volumes="efs:fs-0123abcd:/efs"), queue=FARGATE)
    assert [str(v) for v in spec.shape.volumes] == ["efs:fs-0123abcd:/efs"]
    with pytest.raises(ResourceError, match="Fargate, which has no host file systems"):
        spec_of(req(awsbatch_volumes="host:/fsx:/fsx"), queue=FARGATE)


SHARED_MPI_SETTINGS = TranslationSettings(
    job_queue="cpu", default_image="img", multinode_job_queue="m"
)


def mpi_spec_of(**resources):
    return translate(
        JobRequest("sim", 1, {"mpi": "mpirun", "tasks": 4, "nodes": 2, **resources}),
        SHARED_MPI_SETTINGS, EC2, ("/bin/bash", "-c", "python -m snakemake x"), {}, "sim", {},
        mpi_key_uri="s3://b/k",
    )


def test_shared_workdir_wraps_the_mpi_command():
    spec = mpi_spec_of(awsbatch_volumes="efs:fs-0123abcd:/efs", awsbatch_workdir="/efs/runs/")
    command = dict(spec.environment)["AWSBATCH_MPI_COMMAND"]
    assert command.startswith(
        'd="${AWSBATCH_LOCAL_FS_ROOT:-}"/efs/runs/"${AWS_BATCH_JOB_ID%%#*}-${AWS_BATCH_JOB_ATTEMPT:-1}"'
    )
    assert 'cd -P "$d"' in command and command.endswith("python -m snakemake x")
    assert "AWSBATCH_LOCAL_FS_ROOT" not in dict(mpi_spec_of().environment)["AWSBATCH_MPI_COMMAND"]


@pytest.mark.parametrize(
    ("resources", "says"),
    [
        ({"awsbatch_workdir": "/efs/x"}, "mounted: none"),
        ({"awsbatch_volumes": "efs:fs-0123abcd:/efs:ro", "awsbatch_workdir": "/efs/x"},
         "writable shared volume"),
        ({"awsbatch_volumes": "efs:fs-0123abcd:/efs", "awsbatch_workdir": "/efsx"},
         "mounted: /efs"),
    ],
)
def test_shared_workdir_must_be_on_a_writable_volume(resources, says):
    with pytest.raises(ResourceError, match="awsbatch_workdir") as err:
        mpi_spec_of(**resources)
    assert says in str(err.value)


def test_shared_workdir_only_for_mpi_rules():
    with pytest.raises(ResourceError, match="only to multi-node MPI rules"):
        spec_of(req(awsbatch_volumes="efs:fs-0123abcd:/efs", awsbatch_workdir="/efs/w"))


@pytest.mark.parametrize(
    ("value", "says"),
    [("lots", "whole number"), (33, "from 1 to 32"), (1.5, "whole number"), (-1, "whole")],
)
def test_bad_efa_values_are_refused(value, says):
    with pytest.raises(ResourceError, match="awsbatch_efa") as err:
        translate(
            JobRequest("sim", 1, {"mpi": "mpirun", "tasks": 2, "awsbatch_efa": value},
                       written={"awsbatch_efa": value}),
            SHARED_MPI_SETTINGS, EC2, ("/bin/bash", "-c", "x"), {}, "sim", {}, mpi_key_uri="s3://b/k",
        )
    assert says in str(err.value)


def test_efa_only_for_mpi_rules_and_false_means_none():
    with pytest.raises(ResourceError, match="only to multi-node MPI rules"):
        spec_of(req(awsbatch_efa=True))
    assert spec_of(req(awsbatch_efa=False)).shape.efa_devices == 0
    assert mpi_spec_of(awsbatch_efa="true").shape.efa_devices == 1
    assert mpi_spec_of(awsbatch_efa=2).shape.efa_devices == 2


@pytest.mark.parametrize(
    ("name", "hint"),
    [("awsbatch_queu", "did you mean awsbatch_queue?"), ("awsbatch_colour", "")],
)
def test_an_unknown_awsbatch_resource_is_refused_naming_the_allowed_ones(name, hint):
    with pytest.raises(ResourceError) as info:
        spec_of(req(**{name: "x"}))
    message = str(info.value)
    assert f"Rule 'r': resource {name}='x'" in message and hint in message
    assert "awsbatch_image" in message and "awsbatch_volumes" in message


def test_every_known_awsbatch_resource_passes_the_name_check():
    from snakemake_executor_plugin_awsbatch_mpi.core.resources import (
        AWSBATCH_RESOURCES,
        check_resource_names,
    )

    check_resource_names(req(**{name: None for name in AWSBATCH_RESOURCES}))


def test_a_resource_one_edit_from_a_read_one_is_warned_about_once_per_rule():
    """mem_mbb=1000 would run with the default memory without a word (issue 21 item 3)."""
    spec = spec_of(req(mem_mbb=1000))
    assert spec.size.memory_mib == 2048  # not refused: custom resources are allowed
    assert spec.warnings == (
        "Rule 'r': resource mem_mbb (did you mean mem_mb?) is not read by Snakemake or this "
        "plugin, so it changes nothing in the Batch job. Fix the name, or ignore this warning "
        "if mem_mbb is a custom resource of your own.",
    )
    two = spec_of(req(runtme=60, gpus=1, nodse=2, mem_mb=1000, _cores=1, my_counter=3))
    assert two.warnings == (
        "Rule 'r': resources gpus (did you mean gpu?) and nodse (did you mean nodes?) and "
        "runtme (did you mean runtime?) are not read by Snakemake or this plugin, so they "
        "change nothing in the Batch job. Fix the names, or ignore this warning if they are "
        "custom resources of your own.",
    )


@pytest.mark.parametrize(
    "name",
    ["mem_mb", "tmpdir", "disk", "gpu_model", "my_counter", "mem_total", "_nodes", "mem_mib"],
)
def test_read_and_unrelated_resources_are_not_warned_about(name):
    assert spec_of(req(**{name: 1})).warnings == ()


@pytest.mark.parametrize(
    ("a", "b", "apart"),
    [("mem_mbb", "mem_mb", True), ("runtme", "runtime", True), ("mme_mb", "mem_mb", True),
     ("disk_nb", "disk_mb", True), ("mem_mb", "mem_mb", False), ("mem_gb", "disk_mb", False),
     ("abcd", "badc", False), ("nodes", "node", True)],
)
def test_one_edit_apart(a, b, apart):
    from snakemake_executor_plugin_awsbatch_mpi.core.resources import one_edit_apart

    assert one_edit_apart(a, b) is apart and one_edit_apart(b, a) is apart
