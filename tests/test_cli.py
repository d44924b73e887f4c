"""The `awsbatch-mpi` command line: help texts and executor flags derived from the settings."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from snakemake_executor_plugin_awsbatch_mpi import ExecutorSettings
from snakemake_executor_plugin_awsbatch_mpi.cli import build_parser, snakemake_argv
from snakemake_executor_plugin_awsbatch_mpi.core.spec import Volume, VolumeKind
from snakemake_executor_plugin_awsbatch_mpi.ops.workflow import executor_settings, parse_arguments

FIELDS = dataclasses.fields(ExecutorSettings)


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_and_every_setup_option_is_described():
    commands = subparsers(build_parser())
    for name in ("local", "demo", "setup", "doctor", "plan"):
        assert commands[name].description, f"`awsbatch-mpi {name} --help` has no description"
    undocumented = [
        a.option_strings[0]
        for a in commands["setup"]._actions
        if a.option_strings and a.help in (None, "") and a.dest != "help"
    ]
    assert undocumented == []


def test_every_setting_has_an_environment_variable():
    assert [f.name for f in FIELDS if not f.metadata.get("env_var")] == []


# A value for every setting, as a user would type it; and what the setting becomes.
VALUES = {
    "job_queue": ("q-cpu", "q-cpu"),
    "region": ("eu-west-1", "eu-west-1"),
    "job_role_arn": ("arn:aws:iam::1:role/j", "arn:aws:iam::1:role/j"),
    "execution_role_arn": ("arn:aws:iam::1:role/e", "arn:aws:iam::1:role/e"),
    "gpu_job_queue": ("q-gpu", "q-gpu"),
    "multinode_job_queue": ("q-mpi", "q-mpi"),
    "gpu_queues": ("a100=q-a100", {"a100": "q-a100"}),
    "tags": ("team=x", {"team": "x"}),
    "log_group": ("/my/group", "/my/group"),
    "default_memory_mib": ("4096", 4096),
    "api_calls_per_second": ("2.5", 2.5),
    "log_tail_lines": ("7", 7),
    "array_jobs": ("a,b", ["a", "b"]),
    "batch_attempts": ("2", 2),
    "mpi_join_timeout": ("30", 30),
    "runnable_warning": ("2.5", 2.5),
    "fallback_job_queue": ("q-ondemand", "q-ondemand"),
    "secrets": (
        "TOKEN=arn:aws:ssm:eu-west-1:123456789012:parameter/t",
        {"TOKEN": "arn:aws:ssm:eu-west-1:123456789012:parameter/t"},
    ),
    "assign_public_ip": (True, True),
    "volumes": (
        "efs:fs-0123abcd:/efs host:/fsx:/fsx:ro",
        [Volume(VolumeKind.EFS, "fs-0123abcd", "/efs"),
         Volume(VolumeKind.HOST, "/fsx", "/fsx", read_only=True)],
    ),
    "runtime_volume": (
        "efs:fs-0123abcd",
        Volume(VolumeKind.EFS, "fs-0123abcd", "/opt/awsbatch-mpi/runtime", read_only=True),
    ),
    "snakemake_images": ("ghcr.io/lab/snk:1,ghcr.io/lab/*", ["ghcr.io/lab/snk:1", "ghcr.io/lab/*"]),
}


def test_plan_takes_every_executor_setting_and_snakemake_reads_it_back():
    """plan/doctor flags come from ExecutorSettings: a new setting cannot be forgotten."""
    assert set(VALUES) == {f.name for f in FIELDS}, "give the new setting a value here"
    argv = ["plan"]
    for name, (typed, _) in VALUES.items():
        flag = "--" + name.replace("_", "-")
        argv += [flag] if typed is True else [flag, typed]
    args, extra = build_parser().parse_known_args(argv)
    assert extra == []
    settings = executor_settings(parse_arguments(snakemake_argv(args, [])))
    assert {name: getattr(settings, name) for name in VALUES} == {
        name: value for name, (_, value) in VALUES.items()
    }


def test_doctor_takes_the_queue_and_identity_settings_only():
    doctor = subparsers(build_parser())["doctor"]
    flags = {s for a in doctor._actions for s in a.option_strings}
    assert {"--job-queue", "--gpu-job-queue", "--multinode-job-queue", "--job-role-arn",
            "--region"} <= flags
    assert "--default-memory-mib" not in flags


@pytest.mark.parametrize("name", [f.name for f in FIELDS if f.type in (int, float, bool)])
def test_numeric_and_boolean_settings_read_their_variable(name, monkeypatch):
    typed, value = VALUES[name]
    variable = "SNAKEMAKE_AWSBATCH_MPI_" + name.upper()
    monkeypatch.setenv(variable, "true" if typed is True else typed)
    settings = executor_settings(
        parse_arguments(["--executor", "awsbatch-mpi", "--awsbatch-mpi-job-queue", "q"])
    )
    assert getattr(settings, name) == value
    assert getattr(ExecutorSettings(), name) != value  # the variable, not the default
