"""`awsbatch-mpi plan`: offline, stable, valid requests for every job of a workflow."""

from __future__ import annotations

import json
import re
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

from snakemake_executor_plugin_awsbatch_mpi import cli
from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request
from snakemake_executor_plugin_awsbatch_mpi.ops.plan import MPI_KEY_URI, RUN_ID


def plan(tmp_path: Path, capsys, *argv: str) -> tuple[int, str, dict[str, Any], str]:
    """Run `awsbatch-mpi plan` in-process; (exit code, file text, document, report)."""
    out = tmp_path / f"plan-{len(list(tmp_path.glob('plan-*.json')))}.json"
    code = cli.main(["plan", *argv, "--out", str(out)])
    captured = capsys.readouterr()
    text = out.read_text() if out.exists() else ""
    return code, text, json.loads(text) if text else {}, captured.out + captured.err


@pytest.fixture
def no_network(offline, monkeypatch):
    """No credentials and no sockets: any attempt to reach AWS (or anything) fails loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"plan tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def by_job(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job"]: job for job in document["jobs"]}


def test_example_plan_is_valid_stable_and_offline(example, no_network, tmp_path, capsys):
    argv = (
        "--snakefile",
        str(example / "Snakefile"),
        "--directory",
        str(example),
        "--profile",
        str(example / "profiles" / "local"),
    )
    code, first, document, report = plan(tmp_path, capsys, *argv)
    assert code == 0, report
    code_again, second, _, _ = plan(tmp_path, capsys, *argv)
    assert code_again == 0 and first == second  # byte-identical
    assert first.endswith("\n") and json.dumps(document, indent=2, sort_keys=True) + "\n" == first
    assert not (example / ".snakemake").exists()  # nothing written into the workflow

    assert document["valid"] and document["problems"] == []
    assert "Every request is valid for AWS Batch." in report
    assert document["warnings"] == [], document["warnings"]  # a good profile: no false alarm
    assert "Array jobs: on for all" in report  # the default, said as a note
    assert document["source_files"] == ["data/reads.fasta"]
    assert [j["job"] for j in document["local_jobs"]] == ["all"]  # localrules: all
    jobs = by_job(document)
    names = list(jobs)
    for key in ["split", "count_kmers-sampleA", "embed-sampleC", "report"]:
        assert key in names
    # Topological order: producers before consumers.
    assert names.index("split") < names.index("count_kmers-sampleA") < names.index("report")
    assert names[-1] == "report"
    assert jobs["embed-sampleA"]["queue"] == "local-gpu"  # from the profile
    submit = jobs["count_kmers-sampleA"]["submitJob"]
    overrides = submit["containerOverrides"]
    assert overrides["command"] == [
        "/bin/bash",
        "-c",
        "<snakemake job command of count_kmers-sampleA>",
    ]
    assert {"type": "VCPU", "value": "2"} in overrides["resourceRequirements"]
    assert submit["tags"]["snakemake-run-id"] == RUN_ID
    assert submit["jobDefinition"] in document["job_definitions"]
    for definition in document["job_definitions"].values():
        assert validate_request("RegisterJobDefinition", definition) == []


def test_depends_on_references_the_producing_jobs(example, no_network, tmp_path, capsys):
    code, _, document, report = plan(
        tmp_path,
        capsys,
        "-s",
        str(example / "Snakefile"),
        "-d",
        str(example),
        "--job-queue",
        "q",
        "--multinode-job-queue",
        "m",
    )
    assert code == 0, report
    jobs = by_job(document)

    def depends(key: str) -> list[str]:
        return [d["job"] for d in jobs[key]["submitJob"].get("dependsOn", [])]

    assert depends("split") == []
    assert depends("count_kmers-sampleB") == ["split"]
    assert depends("embed-sampleB") == ["count_kmers-sampleB"]
    expected = [f"count_kmers-sample{s}" for s in "ABC"] + [f"embed-sample{s}" for s in "ABC"]
    assert set(expected) <= set(depends("report"))
    for key in jobs:  # every reference names a job of the plan, upstream of it
        for ref in depends(key):
            assert list(jobs).index(ref) < list(jobs).index(key)
    assert jobs["embed-sampleA"]["queue"] == "q"  # no GPU queue given: the default queue


SNAKEFILE = """
SAMPLES = [f"s{i:02d}" for i in range(25)]
envvars: "PLAN_TEST_SETTING", "PLAN_TEST_TOKEN"

rule all:
    input: "merged.txt", "mpi.out", "fargate.out", "existing.out"

rule make:
    output: "parts/{sample}.txt"
    resources: mem_mb=100
    shell: "echo {wildcards.sample} > {output}"

rule merge:
    input: expand("parts/{sample}.txt", sample=SAMPLES)
    output: "merged.txt"
    shell: "cat {input} > {output}"

rule simulate:
    input: "parts/s00.txt"
    output: "mpi.out"
    threads: 8
    resources: mpi="mpirun", tasks=16, nodes=2, mem_mb=8000
    shell: "{resources.mpi} -n {resources.tasks} hostname > {output}"

rule small_on_fargate:
    output: "fargate.out"
    threads: 3
    resources: mem_mb=1000, awsbatch_queue="fg-q"
    shell: "touch {output}"

rule own_definition:
    output: "existing.out"
    resources: awsbatch_job_definition="my-def:3"
    shell: "touch {output}"
"""


TOKEN_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:plan-token"


@pytest.fixture
def rich(tmp_path) -> Path:
    workdir = tmp_path / "rich"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    return workdir


def test_mpi_fargate_fan_in_and_secrets(rich, no_network, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PLAN_TEST_SETTING", "visible")
    monkeypatch.setenv("PLAN_TEST_TOKEN", "hunter2")
    code, text, document, report = plan(
        tmp_path,
        capsys,
        "-s",
        str(rich / "Snakefile"),
        "-d",
        str(rich),
        "--job-queue",
        "cpu-q",
        "--multinode-job-queue",
        "mpi-q",
        "--fargate-queue",
        "fg-q",
        "--execution-role-arn",
        "arn:aws:iam::123456789012:role/exec",
        "--job-role-arn",
        "arn:aws:iam::123456789012:role/job",
        # A declared secret-looking variable needs a source (it was dropped before).
        "--awsbatch-mpi-secrets",
        f"PLAN_TEST_TOKEN={TOKEN_ARN}",
    )
    assert code == 0, report
    assert "hunter2" not in text and "visible" not in text  # values never enter the plan
    assert "PLAN_TEST_TOKEN" in report  # named as a secret injected by ECS
    for definition in document["job_definitions"].values():
        if "containerProperties" not in definition:
            continue  # the multi-node definition holds them per node range
        props = definition["containerProperties"]
        assert props["secrets"] == [{"name": "PLAN_TEST_TOKEN", "valueFrom": TOKEN_ARN}]
        assert props["executionRoleArn"].endswith("role/exec")
    jobs = by_job(document)

    mpi = jobs["simulate"]["submitJob"]
    assert jobs["simulate"]["queue"] == "mpi-q" and jobs["simulate"]["nodes"] == 2
    assert mpi["nodeOverrides"]["numNodes"] == 2
    env = {
        e["name"]: e["value"]
        for e in mpi["nodeOverrides"]["nodePropertyOverrides"][0]["containerOverrides"][
            "environment"
        ]
    }
    # Where the nodes read their key, never a key (nor anything that looks like one).
    assert env["AWSBATCH_MPI_KEY_URI"] == MPI_KEY_URI
    assert "AWSBATCH_MPI_SECRET" not in text
    assert not re.search(r"[0-9a-f]{64}", text)
    assert env["AWSBATCH_MPI_COMMAND"] == "<snakemake job command of simulate>"
    assert env["PLAN_TEST_SETTING"].startswith("<value")
    assert "PLAN_TEST_TOKEN" not in env

    fargate = jobs["small_on_fargate"]
    assert fargate["platform"] == "FARGATE"
    sizes = fargate["submitJob"]["containerOverrides"]["resourceRequirements"]
    assert {"type": "VCPU", "value": "4"} in sizes  # 3 vCPU rounded up to a Fargate size
    assert "rounded up" in fargate["warnings"][0]

    assert jobs["own_definition"]["submitJob"]["jobDefinition"] == "my-def:3"
    assert jobs["own_definition"]["registerJobDefinition"] is None

    merge = jobs["merge"]["submitJob"]["dependsOn"]
    # 25 producers: two no-op barrier jobs (20 + 5), as the executor does past 20.
    assert [d["job"] for d in merge] == ["merge-fanin0", "merge-fanin1"]
    barriers = {b["job"]: b for b in document["barriers"]}
    assert len(barriers) == 2 and all(
        len(b["submitJob"]["dependsOn"]) <= 20 for b in barriers.values()
    )
    referenced = {d["job"] for d in merge} | {
        d["job"] for b in barriers.values() for d in b["submitJob"]["dependsOn"]
    }
    assert {f"make-s{i:02d}" for i in range(25)} <= referenced


def test_fargate_without_execution_role_is_refused(rich, no_network, tmp_path, capsys):
    code, _, document, report = plan(
        tmp_path,
        capsys,
        "-s",
        str(rich / "Snakefile"),
        "-d",
        str(rich),
        "--job-queue",
        "cpu-q",
        "--multinode-job-queue",
        "mpi-q",
        "--fargate-queue",
        "fg-q",
    )
    assert code == 1, report
    assert by_job(document)["small_on_fargate"]["error"].startswith("Rule 'small_on_fargate'")
    assert "--awsbatch-mpi-execution-role-arn" in report and "NOT valid" in report


def test_bad_resource_fails_naming_the_rule(tmp_path, no_network, capsys):
    workdir = tmp_path / "bad"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        textwrap.dedent(
            """
            rule all:
                input: "short.txt", "mpi.txt"

            rule ok:
                output: "ok.txt"
                shell: "touch {output}"

            rule too_short:
                input: "ok.txt"
                output: "short.txt"
                resources: runtime=0.5
                shell: "touch {output}"

            rule mpi_without_queue:
                output: "mpi.txt"
                resources: mpi="mpirun", tasks=4
                shell: "touch {output}"
            """
        )
    )
    code, _, document, report = plan(
        tmp_path, capsys, "-s", str(workdir / "Snakefile"), "-d", str(workdir), "--job-queue", "q"
    )
    assert code == 1
    assert "The plan is NOT valid (2 problem(s))" in report
    assert "job too_short: Rule 'too_short': resource runtime=" in report
    assert "Rule 'mpi_without_queue'" in report and "--awsbatch-mpi-multinode-job-queue" in report
    assert document["valid"] is False and "submitJob" in by_job(document)["ok"]


def test_plan_needs_a_job_queue_and_a_snakefile(tmp_path, no_network, capsys):
    code, _, _, report = plan(tmp_path, capsys, "-s", str(tmp_path / "Snakefile"))
    assert code == 2 and "no job queue is set" in report
    code, _, _, report = plan(tmp_path, capsys, "-s", str(tmp_path / "nope"), "--job-queue", "q")
    assert code == 1 and "awsbatch-mpi plan:" in report


def test_groups_checkpoints_and_resources_from_input_sizes(tmp_path, no_network, capsys):
    workdir = tmp_path / "groups"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        textwrap.dedent(
            """
            rule all:
                input: expand("b/{s}.txt", s=["x", "y"]), "c.txt", "d/x.txt"

            rule a:
                input: "in/{s}.txt"
                output: "a/{s}.txt"
                group: "g"
                threads: 2
                shell: "cp {input} {output}"

            rule b:
                input: "a/{s}.txt"
                output: "b/{s}.txt"
                group: "g"
                resources: mem_mb=3000
                shell: "cp {input} {output}"

            checkpoint c:
                output: "c.txt"
                shell: "touch {output}"

            rule d:
                input: "in/{s}.txt"
                output: "d/{s}.txt"
                resources: mem_mb=lambda wc, input: max(2 * input.size_mb, 500)
                shell: "cp {input} {output}"
            """
        )
    )
    code, _, document, report = plan(
        tmp_path, capsys, "-s", str(workdir / "Snakefile"), "-d", str(workdir), "--job-queue", "q"
    )
    assert code == 0, report
    jobs = by_job(document)
    # One Batch job per group instance, sized for the group, as the executor submits them.
    assert [k for k in jobs if k.startswith("g_a_b")] == ["g_a_b", "g_a_b-2"]
    sizes = jobs["g_a_b"]["submitJob"]["containerOverrides"]["resourceRequirements"]
    assert {"type": "VCPU", "value": "2"} in sizes and {"type": "MEMORY", "value": "2862"} in sizes
    assert sorted(document["source_files"]) == ["in/x.txt", "in/y.txt"]
    # mem_mb from input sizes is only known at submission: not an error, but said.
    assert jobs["d-x"]["resources_at_run_time"] == ["mem_mb", "mem_mib"]
    assert "Rule 'd': mem_mb, mem_mib depend on the sizes of input files" in report
    assert "Checkpoint rule(s) c" in report


def test_declared_secret_without_a_source_is_a_problem(rich, no_network, monkeypatch, tmp_path,
                                                       capsys):
    monkeypatch.setenv("PLAN_TEST_TOKEN", "hunter2")
    code, text, _, report = plan(
        tmp_path, capsys, "-s", str(rich / "Snakefile"), "-d", str(rich),
        "--job-queue", "cpu-q", "--multinode-job-queue", "mpi-q", "--fargate-queue", "fg-q",
        "--execution-role-arn", "arn:aws:iam::123456789012:role/exec",
    )
    assert code == 1
    assert "declares the environment variable(s) PLAN_TEST_TOKEN" in report
    assert "--awsbatch-mpi-secrets PLAN_TEST_TOKEN=" in report and "hunter2" not in text


def test_plan_refuses_an_out_of_range_setting(rich, no_network, tmp_path, capsys):
    code, _, _, report = plan(
        tmp_path, capsys, "-s", str(rich / "Snakefile"), "-d", str(rich),
        "--job-queue", "cpu-q", "--awsbatch-mpi-log-tail-lines", "-1",
    )
    assert code != 0
    assert "--awsbatch-mpi-log-tail-lines is -1; allowed are 1 to 10000" in report


@pytest.mark.parametrize(
    ("flag", "value"), [("--awsbatch-mpi-tags", "team"), ("--awsbatch-mpi-volumes", "nfs:/x")]
)
def test_plan_refuses_a_malformed_mapping_setting_without_a_traceback(
    flag, value, rich, no_network, tmp_path, capsys
):
    code, _, _, report = plan(
        tmp_path, capsys, "-s", str(rich / "Snakefile"), "-d", str(rich),
        "--job-queue", "cpu-q", flag, value,
    )
    assert code != 0
    assert flag in report and value in report
    assert "Traceback" not in report


def test_plan_refuses_pipes_and_wildcard_values_like_the_executor(tmp_path, no_network, capsys):
    """The offline plan applies the executor's workflow-wide refusals, so CI catches them."""
    workdir = tmp_path / "refused"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        textwrap.dedent(
            """
            rule all:
                input: "counted.txt", "sample_a,b.txt"

            rule produce:
                output: pipe("piped.fifo")
                shell: "echo x > {output}"

            rule count:
                input: "piped.fifo"
                output: "counted.txt"
                shell: "wc -l < {input} > {output}"

            rule sample:
                output: "sample_{name}.txt"
                shell: "touch {output}"
            """
        )
    )
    code, _, document, report = plan(
        tmp_path, capsys, "-s", str(workdir / "Snakefile"), "-d", str(workdir), "--job-queue", "q"
    )
    assert code == 1 and document["valid"] is False
    assert "Rule 'produce' writes its output 'piped.fifo' with pipe()" in report
    assert "Rule 'sample'" in report and "a,b" in report


def test_plan_shows_shared_volumes_and_validates_them(tmp_path, no_network, capsys):
    workdir = tmp_path / "shared"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        textwrap.dedent(
            """
            rule all:
                input: "md.out", "plain.out"

            rule md:
                output: "md.out"
                resources: mpi="mpirun", tasks=4, nodes=2, \\
                    awsbatch_volumes="efs:fs-0123abcd:fsap-0456abcd:/efs", \\
                    awsbatch_workdir="/efs/runs", awsbatch_efa=2
                shell: "{resources.mpi} -n {resources.tasks} hostname > {output}"

            rule plain:
                output: "plain.out"
                shell: "touch {output}"
            """
        )
    )
    code, _, document, report = plan(
        tmp_path, capsys, "-s", str(workdir / "Snakefile"), "-d", str(workdir),
        "--job-queue", "q", "--multinode-job-queue", "mpi-q", "--volumes", "host:/fsx:/fsx:ro",
    )
    assert code == 0, report
    assert "md: 1 job(s) on mpi-q (2 vCPU, 2048 MiB, 2 nodes); mounts " \
        "efs:fs-0123abcd:fsap-0456abcd:/efs host:/fsx:/fsx:ro; 2 EFA device(s) per node" in report
    assert "plain: 1 job(s) on q (1 vCPU, 2048 MiB); mounts host:/fsx:/fsx:ro" in report
    assert document["settings"]["volumes"] == ["host:/fsx:/fsx:ro"]
    jobs = by_job(document)
    md = document["job_definitions"][jobs["md"]["registerJobDefinition"]]
    node = md["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert [m["containerPath"] for m in node["mountPoints"]] == ["/efs", "/fsx"]
    assert len(node["linuxParameters"]["devices"]) == 2
    assert node["volumes"][0]["efsVolumeConfiguration"]["authorizationConfig"] == {
        "accessPointId": "fsap-0456abcd"
    }
    overrides = jobs["md"]["submitJob"]["nodeOverrides"]["nodePropertyOverrides"][0]
    command = {e["name"]: e["value"] for e in overrides["containerOverrides"]["environment"]}
    assert 'cd -P "$d"' in command["AWSBATCH_MPI_COMMAND"]


def test_a_malformed_volume_setting_is_one_sentence_naming_flag_value_and_forms():
    """plan/doctor read the settings as Snakemake does; the parser's error is a load error."""
    from snakemake_executor_plugin_awsbatch_mpi.ops.workflow import (
        WorkflowLoadError,
        executor_settings,
        parse_arguments,
    )

    argv = ["--executor", "awsbatch-mpi", "--awsbatch-mpi-job-queue", "q",
            "--awsbatch-mpi-volumes", "efs:fs-0123abcd:/efs efs:fs-1:/efs"]
    with pytest.raises(WorkflowLoadError) as err:
        executor_settings(parse_arguments(argv))
    message = str(err.value)
    assert message.startswith("--awsbatch-mpi-volumes: 'efs:fs-1:/efs': 'fs-1' is not an EFS")
    assert "'host:/HOST/PATH:/CONTAINER/PATH[:ro]'" in message
    assert "Nothing was submitted." not in message  # plan submits nothing in any case


def test_template_placeholders_are_warned_about_naming_the_setting(example, no_network,
                                                                   tmp_path, capsys):
    """The shipped profiles/aws, untouched (issue 21 item 5): one warning per setting."""
    code, _, document, report = plan(
        tmp_path, capsys, "--snakefile", str(example / "Snakefile"), "--directory",
        str(example), "--profile", str(example / "profiles" / "aws"),
    )
    assert code == 0, report
    warnings = [line for line in report.splitlines() if "template's placeholder" in line]
    assert (
        "Warning: The setting awsbatch-mpi-job-queue still holds the template's placeholder "
        "<cpu-job-queue>: replace it with your own value; until then the requests are valid in "
        "form only." in warnings
    )
    named = {line.split()[3] for line in warnings}
    assert named == {
        "awsbatch-mpi-job-queue", "awsbatch-mpi-gpu-job-queue", "awsbatch-mpi-multinode-job-queue",
        "awsbatch-mpi-region", "awsbatch-mpi-job-role-arn", "container-image",
        "default-storage-prefix", "storage-s3-region",
    }
    assert any("placeholders <account>, <snakemake-batch-job-role>" in w for w in warnings)
    assert any("placeholders <bucket>, <prefix>" in w for w in warnings)
    # The local profile has none.
    _, _, _, local = plan(
        tmp_path, capsys, "--snakefile", str(example / "Snakefile"), "--directory",
        str(example), "--profile", str(example / "profiles" / "local"),
    )
    assert "template's placeholder" not in local


def test_placeholders_in_values_of_every_kind():
    from snakemake_executor_plugin_awsbatch_mpi.ops.placeholders import (
        placeholder_warnings,
        placeholders_in,
    )

    assert placeholders_in({"project": "<project>", "owner": "<team>"}) == ["<project>", "<team>"]
    assert placeholders_in(["a", "<b>", "<b>"]) == ["<b>"]
    assert placeholders_in("s3://bucket/run") == [] and placeholders_in(None) == []
    assert placeholders_in("a < b > c") == []  # not a placeholder
    assert placeholder_warnings([("x", "ok"), ("awsbatch-mpi-tags", {"p": "<project>"})]) == [
        "The setting awsbatch-mpi-tags still holds the template's placeholder <project>: "
        "replace it with your own value; until then the requests are valid in form only."
    ]


def test_snakemakes_image_is_named_unless_every_rule_names_its_own(tmp_path, no_network,
                                                                    capsys):
    """Issue 21 item 6: the same one sentence the executor logs before its first SubmitJob."""
    workdir = tmp_path / "img"
    workdir.mkdir()
    snakefile = workdir / "Snakefile"
    rules = """
        rule all:
            input: "a.txt", "b.txt"
        rule a:
            output: "a.txt"
            resources: awsbatch_image="ours:1"
            shell: "touch {output}"
        rule b:
            output: "b.txt"
            shell: "touch {output}"
    """
    snakefile.write_text(textwrap.dedent(rules))
    argv = ("-s", str(snakefile), "-d", str(workdir), "--job-queue", "q")
    code, _, document, report = plan(tmp_path, capsys, *argv)
    assert code == 0, report
    [warning] = [line for line in report.splitlines() if "Snakemake's own image" in line]
    assert warning.startswith("Warning: Jobs of rule b would run in snakemake/snakemake:v")
    assert "containers/README.md" in warning
    # Every rule names its image: nothing to say.
    snakefile.write_text(textwrap.dedent(rules.replace(
        'output: "b.txt"', 'output: "b.txt"\n            resources: awsbatch_image="ours:1"')))
    code, _, document, report = plan(tmp_path, capsys, *argv)
    assert code == 0 and len(document["jobs"]) == 2, report
    assert "Snakemake's own image" not in report
    # --container-image names ours: nothing to say either.
    code, _, document, report = plan(tmp_path, capsys, *argv, "--container-image", "ours:1")
    assert code == 0 and len(document["jobs"]) == 2, report
    assert "Snakemake's own image" not in report


def test_a_resource_typo_is_one_warning_per_rule(tmp_path, no_network, capsys):
    """Issue 21 item 3 in `plan`: mem_mbb on a rule with two jobs, one warning."""
    workdir = tmp_path / "typo"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(textwrap.dedent("""
        rule all:
            input: expand("o-{i}.txt", i=[1, 2])
        rule typo:
            output: "o-{i}.txt"
            resources: mem_mbb=1000
            shell: "touch {output}"
    """))
    code, _, document, report = plan(
        tmp_path, capsys, "-s", str(workdir / "Snakefile"), "-d", str(workdir),
        "--job-queue", "q",
    )
    assert code == 0, report
    warning = (
        "Warning: Rule 'typo': resource mem_mbb (did you mean mem_mb?) is not read by Snakemake "
        "or this plugin, so it changes nothing in the Batch job. Fix the name, or ignore this "
        "warning if mem_mbb is a custom resource of your own."
    )
    assert report.splitlines().count(warning) == 1, report
    assert len(document["jobs"]) == 2


DISK_SNAKEFILE = """
rule all:
    input: "big.txt", "small.txt", "plain.txt", "set.txt"

rule big:
    output: "big.txt"
    resources: disk_mb=50000
    shell: "touch {output}"

rule small:
    output: "small.txt"
    resources: disk_mb=1000
    shell: "touch {output}"

rule plain:
    output: "plain.txt"
    shell: "touch {output}"

rule set_later:
    output: "set.txt"
    shell: "touch {output}"
"""


def test_plan_warns_once_per_rule_whose_disk_exceeds_the_root_volume(tmp_path, no_network, capsys):
    """Issue 19 §2: offline, the volume is the AMI's 30 GiB unless --root-volume-gib says
    otherwise, and the warning says which; Snakemake's default disk_mb (given to every job of
    a cloud run) is not the rule's."""
    workdir = tmp_path / "disk"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(DISK_SNAKEFILE)
    base = ["-s", str(workdir / "Snakefile"), "-d", str(workdir), "--job-queue", "q"]
    code, _, document, report = plan(
        tmp_path, capsys, *base, "--set-resources", "set_later:disk_mb=40000"
    )
    assert code == 0, report
    disk = [w for w in document["warnings"] if "root volume" in w]
    assert [w.split("'")[1] for w in disk] == ["big", "set_later"]
    assert disk[0].startswith(
        "Rule 'big' asks for disk_mb=50000 (47 GiB), but on EC2 a job gets no disk of its own: "
        "all jobs on an instance share its root volume, and the instances of queue 'q' have 30 "
        "GiB (assumed by plan: the ECS-optimized AMI's default; pass --root-volume-gib N"
    )
    assert f"Warning: {disk[0]}" in report
    jobs = by_job(document)
    # The in-job check is part of the command of the jobs whose rule gives a disk.
    for name in ("big", "small", "set_later"):
        command = jobs[name]["submitJob"]["containerOverrides"]["command"]
        assert command[2].startswith("python -c "), command
        assert command[2].endswith(" || exit $?; <snakemake job command of " + name + ">")
    plain = jobs["plain"]["submitJob"]["containerOverrides"]["command"]
    assert plain == ["/bin/bash", "-c", "<snakemake job command of plain>"]

    code, _, document, report = plan(tmp_path, capsys, *base, "--root-volume-gib", "45")
    [warning] = [w for w in document["warnings"] if "root volume" in w]
    assert "queue 'q' have 45 GiB (given with --root-volume-gib)" in warning
    code, _, document, report = plan(tmp_path, capsys, *base, "--root-volume-gib", "100")
    assert not [w for w in document["warnings"] if "root volume" in w]


def test_plan_shows_the_fallback_request_of_each_job(tmp_path, no_network, capsys):
    workdir = tmp_path / "fallback"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(textwrap.dedent("""
        rule all:
            input: "a.txt", "b.txt", "m.txt"
        rule a:
            output: "a.txt"
            shell: "touch {output}"
        rule b:
            output: "b.txt"
            resources: awsbatch_fallback_queue="od-big"
            shell: "touch {output}"
        rule m:
            output: "m.txt"
            resources: mpi="mpirun", tasks=2, nodes=2
            shell: "touch {output}"
    """))
    code, _, document, report = plan(
        tmp_path, capsys, "-s", str(workdir / "Snakefile"), "-d", str(workdir),
        "--job-queue", "spot", "--multinode-job-queue", "mpi", "--fallback-job-queue", "od",
    )
    assert code == 0, report
    jobs = {job["rule"]: job for job in document["jobs"]}
    fallback = jobs["a"]["fallbackSubmitJob"]
    assert fallback["jobQueue"] == "od" and jobs["a"]["submitJob"]["jobQueue"] == "spot"
    assert fallback["tags"]["snakemake-fallback-of"] == "00000000-0000-0000-0000-000000000000"
    def rest(payload):
        return {k: v for k, v in payload.items() if k not in ("jobQueue", "tags")}

    assert rest(fallback) == rest(jobs["a"]["submitJob"])
    assert validate_request("SubmitJob", fallback) == []
    assert jobs["b"]["fallbackSubmitJob"]["jobQueue"] == "od-big"
    assert "fallbackSubmitJob" not in jobs["m"]  # multi-node jobs never run on Spot
    assert document["settings"]["fallback_job_queue"] == "od"
    assert "a: 1 job(s) on spot (1 vCPU, 2048 MiB); after a Spot reclaim once more on od" in report


ANY_IMAGE_SNAKEFILE = """
rule all:
    input: "aligned.txt", "plain.txt", "own.txt", "md.txt"

rule align:
    output: "aligned.txt"
    container: "docker://quay.io/biocontainers/bwa:0.7.17--h7132678_9"
    shell: "bwa 2> {output} || true"

rule plain:
    output: "plain.txt"
    shell: "touch {output}"

rule own:
    output: "own.txt"
    container: "docker://snakemake-awsbatch-mpi:0.1.0"
    shell: "touch {output}"

rule md:
    output: "md.txt"
    container: "docker://ghcr.io/lab/gromacs-openmpi:2024"
    resources: mpi="mpirun", tasks=4, nodes=2
    shell: "{resources.mpi} -n {resources.tasks} hostname > {output}"
"""


def test_plan_shows_each_rules_image_and_whether_the_runtime_is_mounted(
    tmp_path, no_network, capsys
):
    workdir = tmp_path / "anyimage"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(ANY_IMAGE_SNAKEFILE)
    base = ["-s", str(workdir / "Snakefile"), "-d", str(workdir), "--job-queue", "q",
            "--multinode-job-queue", "mpi-q", "--container-image", "snakemake-awsbatch-mpi:0.1.0"]
    code, _, document, report = plan(tmp_path, capsys, *base, "--runtime-volume", "efs:fs-0123abcd")
    assert code == 0, report
    bwa = "quay.io/biocontainers/bwa:0.7.17--h7132678_9"
    assert f"    image {bwa} (from the rule's container: directive); Snakemake runs from the " \
        "plugin's runtime, mounted read-only" in report
    assert "    image snakemake-awsbatch-mpi:0.1.0 (from --container-image); the image's own " \
        "Snakemake" in report
    jobs = by_job(document)
    assert (jobs["align"]["image"], jobs["align"]["runtime_mounted"]) == (bwa, True)
    assert (jobs["own"]["image_source"], jobs["own"]["runtime_mounted"]) == ("container", False)
    assert (jobs["plain"]["image_source"], jobs["plain"]["runtime_mounted"]) == ("default", False)
    assert jobs["md"]["runtime_mounted"] and jobs["md"]["nodes"] == 2
    assert document["settings"]["runtime_volume"] == "efs:fs-0123abcd:/opt/awsbatch-mpi/runtime:ro"
    align = document["job_definitions"][jobs["align"]["registerJobDefinition"]]
    assert align["containerProperties"]["mountPoints"][0]["readOnly"] is True

    # Without the runtime's file system the tool-image rules are problems, the others fine.
    code, _, document, report = plan(tmp_path, capsys, *base)
    assert code == 1
    problems = " ".join(document["problems"])
    assert "Rule 'align': resource container=" in problems and "runtime install" in problems
    assert "Rule 'md'" in problems and "'own'" not in problems and "'plain'" not in problems

    # When Snakemake runs the containers itself (apptainer), container: is not the Batch image.
    code, _, document, report = plan(
        tmp_path, capsys, *base, "--software-deployment-method", "apptainer"
    )
    assert code == 0, report
    assert {job["image_source"] for job in document["jobs"]} == {"default"}


def test_plan_refuses_a_group_whose_rules_name_different_images(tmp_path, no_network, capsys):
    workdir = tmp_path / "mixed"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(textwrap.dedent(
        """
        rule all:
            input: "b.txt"
        rule a:
            output: "a.txt"
            group: "g"
            container: "docker://quay.io/biocontainers/bwa:0.7.17--h7132678_9"
            shell: "touch {output}"
        rule b:
            input: "a.txt"
            output: "b.txt"
            group: "g"
            container: "docker://quay.io/biocontainers/samtools:1.19--h50ea8bc_0"
            shell: "touch {output}"
        """
    ))
    code, _, document, report = plan(
        tmp_path, capsys, "-s", str(workdir / "Snakefile"), "-d", str(workdir),
        "--job-queue", "q", "--runtime-volume", "efs:fs-0123abcd",
    )
    assert code == 1
    assert any("its rules name different container images" in p for p in document["problems"])
