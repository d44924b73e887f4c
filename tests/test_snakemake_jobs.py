"""The Snakemake side of the translation: Snakemake's objects read into the core's plain data."""

from types import SimpleNamespace

import pytest
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.real import RealExecutor
from snakemake_interface_executor_plugins.utils import TargetSpec, format_cli_arg

from snakemake_executor_plugin_awsbatch_mpi.core.command import THEN
from snakemake_executor_plugin_awsbatch_mpi.snakemake_jobs import (
    job_command,
    job_request,
    written_resources,
)

from .core.test_command import HOSTILE, bash_words


def test_written_resources_come_from_the_rule_as_declared():
    rule = SimpleNamespace(ruleinfo=SimpleNamespace(resources=((), {
        "gpu": 1.5, "mem_mb": -100, "cb": lambda wildcards: 1})))
    assert written_resources(rule) == {"gpu": 1.5, "mem_mb": -100}
    assert written_resources(SimpleNamespace()) == {}
    # --set-resources r:gpu=2 r:mem_mib=500 replaces what the Snakefile says
    rule.name = "r"
    rule.workflow = SimpleNamespace(resource_settings=SimpleNamespace(
        overwrite_resources={"r": {"gpu": 2, "mem_mib": 500}}))
    assert written_resources(rule) == {}


def _rule(name: str, resources: dict, overwritten: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        ruleinfo=SimpleNamespace(resources=((), resources)),
        workflow=SimpleNamespace(resource_settings=SimpleNamespace(
            overwrite_resources={name: overwritten} if overwritten else {})),
        # No container: directive (issue 22 reads it for every job).
        expand_container_img=lambda wildcards: None,
    )


def test_declared_resources_are_the_users_not_snakemakes_defaults():
    """Issue 19 §2: only a disk the user gave is checked (rule, callable, --set-resources)."""
    defaults = {"disk_mb": 50000, "disk_mib": 47684, "mem_mb": 1000, "_cores": 1}

    def single(rule):
        return SimpleNamespace(is_group=lambda: False, rule=rule, threads=1, wildcards={},
                               wildcards_dict={}, resources=defaults)

    assert job_request(single(_rule("a", {}))).declared == frozenset()
    assert job_request(single(_rule("b", {"disk_mb": lambda wc: 1}))).declared == {"disk_mb"}
    assert job_request(single(_rule("c", {}, {"disk_mb": 9}))).declared == {"disk_mb"}
    # A group's disk adds up its jobs': it counts only when every rule gave one.
    members = [single(_rule("d", {"disk_mb": 5, "mem_mb": 1})), single(_rule("e", {"disk_mb": 7}))]
    group = SimpleNamespace(is_group=lambda: True, name="g", jobs=members, resources=defaults)
    assert job_request(group).declared == {"disk_mb"}
    members.append(single(_rule("f", {})))
    assert job_request(group).declared == frozenset()


class FakeJob:
    """The attributes of a Snakemake job that Snakemake's get_job_args and the plugin read."""

    def __init__(self, wildcards: dict[str, str], group: bool = False) -> None:
        self.wildcards = wildcards
        self.group = group
        self.rules = ["r"]
        self.attempt = 1
        self.jobid = "gid"
        self.is_updated = False

    def get_target_spec(self):
        return [TargetSpec("r", self.wildcards)]

    def is_group(self):
        return self.group


class FakeExecutor:
    """Builds its command the way RealExecutor.format_job_exec does around get_job_args,
    with Snakemake's own rendering of `--config` items."""

    cores = "all"

    def __init__(self, config_args=()):
        self.workflow = SimpleNamespace(
            dag=SimpleNamespace(get_unneeded_temp_files=lambda job: []),
            config_settings=SimpleNamespace(config_args=list(config_args)),
        )

    def format_job_exec(self, job):
        config = format_cli_arg("--config", self.workflow.config_settings.config_args)
        return (
            "python -m snakemake --deploy-sources s3://b/x.tar.xz 1 && python -m snakemake "
            f"--snakefile Snakefile {config} --latency-wait 5 "
            f"{RealExecutor.get_job_args(self, job)} --mode remote"
        )


def test_job_command_keeps_snakemakes_command_around_safe_arguments(tmp_path):
    value = "a'$(touch pwned)"
    command = job_command(FakeExecutor(), FakeJob({"x": value}), cores=2)
    assert command[:2] == ("/bin/bash", "-c")
    # Snakemake's two steps run in one interpreter (core.command.one_interpreter).
    assert command[2].startswith("python -c ")
    assert command[2].endswith(" --mode remote")
    words = bash_words(command[2], tmp_path)
    assert words[3:6] == ["--deploy-sources", "s3://b/x.tar.xz", "1"]
    words = words[words.index(THEN) + 1 :]
    assert list(tmp_path.iterdir()) == []
    assert words[words.index("--target-jobs") + 1] == f"r:x={value}"
    assert words[words.index("--cores") + 1] == "2"


def test_job_command_refuses_a_value_snakemake_cannot_carry():
    with pytest.raises(WorkflowError, match="contains a comma.*Rename the files"):
        job_command(FakeExecutor(), FakeJob({"x": "a,b"}), cores=1)


@pytest.mark.parametrize("value", HOSTILE)
def test_config_values_are_data_in_the_job_command(value, tmp_path):
    """`--config k=v` items get Snakemake's repr() quoting too: `x'$(touch y)` ran in jobs."""
    items = [f"kk={value}", "other=1"]
    command = job_command(FakeExecutor(items), FakeJob({"x": "1"}), cores=1)
    words = bash_words(command[2], tmp_path)
    words = words[words.index(THEN) + 1 :]
    assert list(tmp_path.iterdir()) == []
    start = words.index("--config") + 1
    assert words[start : start + 2] == items
    assert words[start + 2] == "--latency-wait"


def test_local_file_notices_name_the_file_once_per_rule_and_spare_localrules():
    from snakemake.io import local

    from snakemake_executor_plugin_awsbatch_mpi.snakemake_jobs import local_file_notices

    def rule(name, resources=None):
        info = SimpleNamespace(resources=((), resources) if resources else None)
        return SimpleNamespace(name=name, ruleinfo=info)

    def job(rule, inputs=(), outputs=(), is_local=True):
        return SimpleNamespace(rule=rule, input=list(inputs), output=list(outputs),
                               is_local=is_local, is_group=lambda: False)

    sim, copy, mine = rule("sim", {"mpi": "mpirun", "tasks": 4}), rule("copy"), rule("mine")
    workflow = SimpleNamespace(is_local=lambda r: r.name == "mine")
    jobs = [
        job(sim, [local("mesh.msh"), local("b.dat")]),
        job(copy, outputs=[local("out1.txt")]),
        job(copy, outputs=[local("out2.txt")]),
        job(mine, [local("x")]),  # a localrule: the user chose it
        job(rule("remote"), ["s3://b/x"], is_local=False),
    ]
    notices = local_file_notices(jobs, workflow)
    assert notices == [
        "Rule 'sim' has the local() input 'mesh.msh' (and 1 more local() file(s)): Snakemake "
        "runs its jobs on this machine, not on AWS Batch. As an MPI rule, its mpirun then "
        "starts ranks on this machine only. Remove local() to run it on Batch (the file then "
        "goes through the default storage), or list the rule in localrules to say it belongs "
        "here.",
        "Rule 'copy' has the local() output 'out1.txt': Snakemake runs its jobs on this "
        "machine, not on AWS Batch. Remove local() to run it on Batch (the file then goes "
        "through the default storage), or list the rule in localrules to say it belongs here.",
    ]
