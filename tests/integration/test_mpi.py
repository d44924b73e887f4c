"""Multi-node MPI rules through Snakemake, the plugin, the emulation and real Open MPI."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request
from snakemake_executor_plugin_awsbatch_mpi.local import LOCAL_BUCKET
from snakemake_executor_plugin_awsbatch_mpi.local.faults import silence_node

from .conftest import jobs_with_tag
from .test_executor import snakemake_cmd, write_workflow

OPERATIONS = {
    "submit_job": "SubmitJob",
    "register_job_definition": "RegisterJobDefinition",
    "describe_jobs": "DescribeJobs",
    "terminate_job": "TerminateJob",
}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("usable_mpi"),
]

HELLO_C = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *node = getenv("AWS_BATCH_JOB_NODE_INDEX");
    int fail = argc > 2 ? atoi(argv[2]) : -1;
    if (rank == fail) {
        fprintf(stderr, "rank %d: cannot converge, giving up\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 7);
    }
    int *nodes = malloc(sizeof(int) * size);
    int mine = node ? atoi(node) : -1;
    MPI_Gather(&mine, 1, MPI_INT, nodes, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        FILE *out = fopen(argv[1], "w");
        for (int r = 0; r < size; r++) fprintf(out, "%d %d\n", r, nodes[r]);
        fclose(out);
    }
    MPI_Finalize();
    return 0;
}
"""

SNAKEFILE = """
rule hello:
    output: "hello.txt"
    resources: mpi="mpirun", tasks=6, nodes=3
    shell: "mpicc -o hello hello.c && {resources.mpi} -n {resources.tasks} ./hello {output} FAIL"
"""


def mpi_workflow(path, fail_rank=-1):
    work = write_workflow(path, SNAKEFILE.replace("FAIL", str(fail_rank)))
    # the C source travels with the workflow sources (git-tracked or next to a script)
    (work / "scripts").mkdir()
    (work / "scripts" / "hello.c").write_text(HELLO_C)
    (work / "Snakefile").write_text(
        (work / "Snakefile").read_text().replace("hello.c", "scripts/hello.c")
        + '\nrule unused:\n    output: "u"\n    script: "scripts/unused.py"\n'
    )
    (work / "scripts" / "unused.py").write_text("")
    return work


def mpi_cmd(work, *extra):
    return snakemake_cmd(work, "--awsbatch-mpi-multinode-job-queue", "local-mpi", *extra)


SPY = [sys.executable, str(Path(__file__).with_name("_spy_snakemake.py"))]
HEX_KEY = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
SOURCES_CHECKSUM = re.compile(r"snakemake-workflow-sources\.([0-9a-f]{64})")


def spied(cmd: list[str], spy_file: Path) -> tuple[list[str], dict[str, str]]:
    """The same Snakemake command run through the spy, recording to spy_file."""
    assert cmd[:3] == [sys.executable, "-m", "snakemake"]
    return [*SPY, *cmd[3:]], {**os.environ, "AWSBATCH_TEST_SPY_FILE": str(spy_file)}


def read_spy(spy_file: Path) -> list[dict]:
    return [json.loads(line) for line in spy_file.read_text().splitlines()]


def key_objects(prefix: str) -> list[str]:
    """The key objects left under a test workflow's storage prefix.

    After a cancelled run the S3 storage plugin deletes the bucket once it is empty, which
    S3 allows only when no key object was left in it either.
    """
    s3 = boto3.client("s3")
    try:
        listing = s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix=f"{prefix}/.awsbatch-mpi/keys/")
    except s3.exceptions.NoSuchBucket:
        return []
    return [o["Key"] for o in listing.get("Contents", [])]


def unexplained_hex(text: str) -> set[str]:
    """64-hex strings other than the checksum of the workflow sources archive."""
    checksums = set(SOURCES_CHECKSUM.findall(text))
    return set(HEX_KEY.findall(text)) - checksums


def assert_key_never_sent(
    records: list[dict], key: str, seen: tuple[str, ...] = ("submit_job", "describe_jobs")
) -> None:
    """No Batch request or answer holds the key, its old variable, or any 64-hex string."""
    batch = [r for r in records if r["kind"] in ("request", "answer")]
    assert {r["operation"] for r in batch} >= set(seen)
    for record in batch:
        text = json.dumps(record)
        assert key not in text, record["operation"]
        assert "AWSBATCH_MPI_SECRET" not in text
        assert not unexplained_hex(text), record["operation"]
        if record["kind"] == "request" and record["operation"] in OPERATIONS:
            operation = OPERATIONS[record["operation"]]
            assert validate_request(operation, record["request"]) == []


def test_six_ranks_on_three_nodes(emulated_env, tmp_path, batch_client):
    work = mpi_workflow(tmp_path / "mpi3x2")
    spy_file = tmp_path / "spy.jsonl"
    cmd, env = spied(mpi_cmd(work, "hello.txt"), spy_file)
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    body = boto3.client("s3").get_object(Bucket=LOCAL_BUCKET, Key="mpi3x2/hello.txt")
    ranks = [line.split() for line in body["Body"].read().decode().splitlines()]
    assert [int(r) for r, _ in ranks] == list(range(6))
    assert sorted(node for _, node in ranks) == ["0", "0", "1", "1", "2", "2"]
    [job] = jobs_with_tag(batch_client, "snakemake-workflow", "mpi3x2", queues=("local-mpi",))
    assert job["nodeProperties"]["numNodes"] == 3 and job["status"] == "SUCCEEDED"

    # The key the plugin wrote to S3 just before SubmitJob, and what the nodes were told.
    records = read_spy(spy_file)
    [put] = [r for r in records if r["kind"] == "s3-put" and "/.awsbatch-mpi/keys/" in r["url"]]
    key = put["body"]
    assert HEX_KEY.fullmatch(key)
    assert put["url"].startswith(f"s3://{LOCAL_BUCKET}/mpi3x2/.awsbatch-mpi/keys/")
    container = job["nodeProperties"]["nodeRangeProperties"][0]["container"]
    env_seen = {e["name"]: e["value"] for e in container["environment"]}
    assert env_seen["AWSBATCH_MPI_KEY_URI"] == put["url"]  # only where the key is
    # Nowhere in what was sent to Batch or what Batch answered, during the run or now.
    assert_key_never_sent(records, key)
    definition = batch_client.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])
    assert definition["jobDefinitions"]
    for text in (json.dumps(job, default=str), json.dumps(definition, default=str)):
        assert key not in text and not unexplained_hex(text)
    # Nor in any node's log or Snakemake's output.
    logs = boto3.client("logs")
    pages = logs.get_paginator("describe_log_streams").paginate(logGroupName="/aws/batch/job")
    streams = [s["logStreamName"] for page in pages for s in page["logStreams"]]
    mine = [name for name in streams if job["jobId"] in name]
    assert len(mine) == 3  # one per node
    for stream in mine:
        events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)
        assert all(key not in e["message"] for e in events["events"])
    # The main node listened on the private address ECS's task metadata reported (the
    # emulation serves it as ECS does), not on every interface.
    main_events = logs.get_log_events(
        logGroupName="/aws/batch/job", logStreamName=min(mine, key=lambda s: s[-1])
    )["events"]
    assert any(
        re.search(r"listening on 127\.[\d.]+:\d+ \(from the ECS task metadata\)", e["message"])
        for e in main_events
    ), [e["message"] for e in main_events][:20]
    assert key not in run.stdout + run.stderr
    # The key object is gone once the job is over (the executor deletes it too).
    assert key_objects("mpi3x2") == []
    assert put["url"] in [r["url"] for r in records if r["kind"] == "s3-delete"]


def test_immediate_submit_main_node_deletes_the_key(emulated_env, tmp_path, batch_client):
    """The client exits right after submitting; the main node deletes the key at its end."""
    work = mpi_workflow(tmp_path / "mpiimm")
    spy_file = tmp_path / "spy.jsonl"
    cmd, env = spied(mpi_cmd(work, "hello.txt", "--immediate-submit", "--notemp"), spy_file)
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    records = read_spy(spy_file)
    [put] = [r for r in records if r["kind"] == "s3-put" and "/.awsbatch-mpi/keys/" in r["url"]]
    assert not [r for r in records if r["kind"] == "s3-delete"]  # the client did not wait
    deadline = time.time() + 240
    while True:
        jobs = jobs_with_tag(batch_client, "snakemake-workflow", "mpiimm", queues=("local-mpi",))
        if jobs and jobs[0]["status"] in ("SUCCEEDED", "FAILED"):
            break
        assert time.time() < deadline, f"the MPI job did not finish: {jobs}"
        time.sleep(0.5)
    [job] = jobs
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert key_objects("mpiimm") == []
    assert_key_never_sent(records, put["body"], seen=("submit_job",))
    # What DescribeJobs shows now names where the key was, never the key.
    text = json.dumps(job, default=str)
    assert put["body"] not in text and put["url"] in text


def test_failing_rank_fails_the_job_with_its_exit_code(emulated_env, tmp_path):
    work = mpi_workflow(tmp_path / "mpifail", fail_rank=3)
    # a saved tail long enough for the whole log, so the checks below do not depend on timing
    run = subprocess.run(mpi_cmd(work, "hello.txt", "--awsbatch-mpi-log-tail-lines", "500"),
                         cwd=work, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "exit code 7" in out  # mpirun's, not Snakemake's 1
    assert "Failed nodes: node 0 (exit code 7)" in out
    # mpirun's report summed up in one line, wherever the report is in the log: how many
    # lines Open MPI and Snakemake print after it varies from run to run.
    assert ("mpirun on node0 reported: MPI_ABORT was invoked on rank 3 in communicator "
            "MPI_COMM_WORLD with errorcode 7.") in out
    [main_log] = (work / ".snakemake/awsbatch-mpi/logs").glob("hello-*-node0.log")
    assert str(main_log.relative_to(work)) in out
    main = main_log.read_text()
    assert "rank 3: cannot converge, giving up" in main  # the rank's message
    assert "MPI_ABORT was invoked on rank 3 in communicator MPI_COMM_WORLD\nwith errorcode 7." in (
        main
    )


def test_node_that_never_joins_times_out_naming_it(emulated_env, tmp_path):
    work = mpi_workflow(tmp_path / "mpilost")
    with silence_node("hello", 2):
        run = subprocess.run(
            mpi_cmd(work, "hello.txt", "--awsbatch-mpi-mpi-join-timeout", "5"),
            cwd=work, capture_output=True, text=True, timeout=300,
        )
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "nodes 2 did not join within 5 s" in out, out[-3000:]


def test_ctrl_c_deletes_the_key_of_a_running_mpi_job(emulated_env, tmp_path, batch_client):
    """Terminated nodes cannot delete the key: the client does, when the user cancels."""
    work = write_workflow(tmp_path / "mpicancel", """
        rule sleepy:
            output: "never.txt"
            resources: mpi="mpirun", tasks=2, nodes=2
            shell: "sleep 300; touch {output}"
    """)
    spy_file = tmp_path / "spy.jsonl"
    cmd, env = spied(mpi_cmd(work), spy_file)
    # As in test_ctrl_c_terminates_every_job: default SIGINT handling, as in a terminal.
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 90
        while True:
            jobs = jobs_with_tag(batch_client, "snakemake-workflow", "mpicancel",
                                 queues=("local-mpi",))
            if jobs and jobs[0]["status"] == "RUNNING":
                break
            assert time.time() < deadline, f"the MPI job never started: {jobs}"
            time.sleep(0.3)
        assert len(key_objects("mpicancel")) == 1  # the nodes are using it
        time.sleep(2)  # let the nodes read it and join
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for job in jobs_with_tag(batch_client, "snakemake-workflow", "mpicancel",
                                 queues=("local-mpi",)):
            if job["status"] not in ("SUCCEEDED", "FAILED"):
                batch_client.terminate_job(jobId=job["jobId"], reason="test cleanup")
    assert "Terminated 1 AWS Batch job(s)" in out, out[-3000:]
    assert key_objects("mpicancel") == []
    records = read_spy(spy_file)
    [put] = [r for r in records if r["kind"] == "s3-put" and "/.awsbatch-mpi/keys/" in r["url"]]
    assert put["url"] in [r["url"] for r in records if r["kind"] == "s3-delete"]


SHARED_SNAKEFILE = """
rule shared:
    output: "shared.txt"
    resources: mpi="mpirun", tasks=4, nodes=2, awsbatch_workdir="/efs/runs", \\
        awsbatch_volumes="efs:fs-0123abcd:/efs"
    shell:
        "pwd -P > where.txt && echo from-main > main.txt && "
        "{resources.mpi} -n {resources.tasks} sh -c "
        "'cat where.txt main.txt > rank$OMPI_COMM_WORLD_RANK.txt && "
        "echo $AWS_BATCH_JOB_NODE_INDEX >> rank$OMPI_COMM_WORLD_RANK.txt' && "
        "cat where.txt rank0.txt rank1.txt rank2.txt rank3.txt > {output}"
"""


def node_log(job_id: str) -> str:
    logs = boto3.client("logs")
    pages = logs.get_paginator("describe_log_streams").paginate(logGroupName="/aws/batch/job")
    streams = sorted(s["logStreamName"] for p in pages for s in p["logStreams"])
    return "\n".join(
        e["message"]
        for name in streams
        if job_id in name
        for e in logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=name)["events"]
    )


def test_working_directory_on_a_shared_volume_is_used_by_every_node_without_a_copy(
    emulated_env, tmp_path, batch_client
):
    """awsbatch_workdir on an EFS volume: the main node and the other node work in the same
    directory of the emulated file system; ranks on node 1 read what the main node wrote
    and the main node reads what they wrote, and the agent copies nothing."""
    work = write_workflow(tmp_path / "mpishared", SHARED_SNAKEFILE)
    run = subprocess.run(
        mpi_cmd(work, "shared.txt"), cwd=work, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-4000:]
    body = boto3.client("s3").get_object(Bucket=LOCAL_BUCKET, Key="mpishared/shared.txt")
    lines = body["Body"].read().decode().splitlines()
    where = lines[0]
    [job] = jobs_with_tag(batch_client, "snakemake-workflow", "mpishared", queues=("local-mpi",))
    assert where.endswith(f"/volumes/efs/fs-0123abcd/runs/{job['jobId']}-1"), where
    ranks = [lines[i : i + 3] for i in range(1, len(lines), 3)]
    assert [r[:2] for r in ranks] == [[where, "from-main"]] * 4  # read in the shared directory
    assert sorted(r[2] for r in ranks) == ["0", "0", "1", "1"]  # written on both nodes
    log = node_log(job["jobId"])
    assert "is shared with the main node: nothing to copy" in log
    assert "copied working directory" not in log and "received working directory" not in log
    assert not Path(where).exists() and Path(where).parent.is_dir()  # the job's own is removed
    container = job["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert container["mountPoints"] == [
        {"sourceVolume": "vol0", "containerPath": "/efs", "readOnly": False}
    ]


GPU_SNAKEFILE = """
rule gpus:
    output: "gpus.txt"
    resources: mpi="mpirun", tasks=4, gpu=2, awsbatch_queue="local-gpu", \\
        awsbatch_volumes="efs:fs-0123abcd:/efs", awsbatch_workdir="/efs/runs"
    shell:
        "cat $AWSBATCH_MPI_HOSTFILE > {output} && "
        "{resources.mpi} sh -c 'echo $OMPI_COMM_WORLD_RANK $AWS_BATCH_JOB_NODE_INDEX "
        "$OMPI_COMM_WORLD_LOCAL_RANK $NVIDIA_VISIBLE_DEVICES > gpu$OMPI_COMM_WORLD_RANK.txt' && "
        "cat gpu0.txt gpu1.txt gpu2.txt gpu3.txt >> {output}"
"""


def test_gpu_mpi_runs_one_rank_per_gpu_on_every_node(emulated_env, tmp_path, batch_client):
    """gpu=2, tasks=4: two nodes, each offering 2 slots (its GPUs), ranks 0-1 on node 0 and
    2-3 on node 1, each node seeing its 2 (faked) GPUs; no -n given, the agent adds it."""
    work = write_workflow(tmp_path / "mpigpu", GPU_SNAKEFILE)
    run = subprocess.run(
        mpi_cmd(work, "gpus.txt"), cwd=work, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-4000:]
    body = boto3.client("s3").get_object(Bucket=LOCAL_BUCKET, Key="mpigpu/gpus.txt")
    lines = body["Body"].read().decode().splitlines()
    hosts, ranks = lines[:-4], [line.split() for line in lines[-4:]]
    assert [h.split()[-1] for h in hosts if h.strip()] == ["slots=2", "slots=2"]
    assert ranks == [
        ["0", "0", "0", "0,1"], ["1", "0", "1", "0,1"], ["2", "1", "0", "0,1"],
        ["3", "1", "1", "0,1"],
    ]
    [job] = jobs_with_tag(batch_client, "snakemake-workflow", "mpigpu", queues=("local-gpu",))
    assert job["nodeProperties"]["numNodes"] == 2
    overrides = job["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert {"type": "GPU", "value": "2"} in overrides["resourceRequirements"]


EXAMPLE = Path(__file__).resolve().parents[2] / "example_workflow"


def test_example_mpi_rule_runs_in_a_shared_working_directory(emulated_env, tmp_path, batch_client):
    """The example workflow's gc_mpi rule, unchanged, with its working directory moved to an
    EFS volume by --set-resources: every node works in that one directory (no copy)."""
    work = tmp_path / "exshared"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns(".snakemake", "results", "logs"))
    boto3.client("s3").upload_file(
        str(work / "data" / "reads.fasta"), LOCAL_BUCKET, "exshared/data/reads.fasta"
    )
    run = subprocess.run(
        mpi_cmd(
            work, "results/mpi/base_counts.tsv", "--set-resources",
            "gc_mpi:awsbatch_volumes=efs:fs-0123abcd:/efs", "gc_mpi:awsbatch_workdir=/efs/sim",
        ),
        cwd=work, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    body = boto3.client("s3").get_object(
        Bucket=LOCAL_BUCKET, Key="exshared/results/mpi/base_counts.tsv"
    )
    ranks = [line.split("\t") for line in body["Body"].read().decode().splitlines()[1:-1]]
    assert sorted(r[1] for r in ranks) == ["0", "0", "1", "1", "2", "2"]
    [job] = [
        j for j in jobs_with_tag(batch_client, "snakemake-workflow", "exshared",
                                 queues=("local-mpi",))
        if j["nodeProperties"]["numNodes"] == 3
    ]
    log = node_log(job["jobId"])
    assert log.count("is shared with the main node: nothing to copy") == 2  # nodes 1 and 2
    assert f"/volumes/efs/fs-0123abcd/sim/{job['jobId']}-1" in log
    assert "received working directory" not in log


def test_an_image_without_mpirun_fails_naming_the_image(emulated_env, tmp_path):
    """The rule's image has no MPI launcher (here: a PATH with only the agent's shims, as in
    an image without Open MPI): the error names the image and says it lacks mpirun."""
    work = write_workflow(tmp_path / "nompirun", """
        rule hello:
            output: "hello.txt"
            resources: mpi="mpirun", tasks=2, nodes=2, awsbatch_image="acme/no-mpi:1"
            shell: 'export PATH="$AWSBATCH_MPI_BIN_DIR"; {resources.mpi} -n 2 true; touch {output}'
    """)
    run = subprocess.run(mpi_cmd(work, "hello.txt"), cwd=work, capture_output=True, text=True,
                         timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert ("The MPI rule 'hello' cannot run in its image acme/no-mpi:1: the image lacks "
            "`mpirun` (no MPI launcher on PATH; AWS Batch job") in out, out[-3000:]
    assert "containers/Dockerfile.mpi" in out
