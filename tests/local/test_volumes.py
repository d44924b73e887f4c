"""Shared file systems of a job definition in the emulation (local/volumes.py)."""

from __future__ import annotations

from pathlib import Path

from snakemake_executor_plugin_awsbatch_mpi.core.jobdef import container_properties
from snakemake_executor_plugin_awsbatch_mpi.core.mounts import parse_volumes
from snakemake_executor_plugin_awsbatch_mpi.core.spec import JobShape
from snakemake_executor_plugin_awsbatch_mpi.local.docker_runner import docker_run_args
from snakemake_executor_plugin_awsbatch_mpi.local.runner import StartRequest
from snakemake_executor_plugin_awsbatch_mpi.local.volumes import (
    Mount,
    docker_volume_args,
    link_mounts,
    mounts_of,
)

VOLUMES = "efs:fs-0123abcd:/efs efs:fs-0123abcd:fsap-0456abcd:/home host:/fsx:/mnt/fsx:ro"


def properties() -> dict:
    return container_properties(JobShape(image="img", volumes=parse_volumes(VOLUMES)))


def test_mounts_of_the_plugins_own_definition():
    assert mounts_of(properties()) == (
        Mount("efs/fs-0123abcd", "/efs"),
        Mount("efs/fs-0123abcd/access-points/fsap-0456abcd", "/home"),
        Mount("host/fsx", "/mnt/fsx", read_only=True),
    )
    assert mounts_of({"image": "img"}) == ()
    # Docker-managed scratch volumes and escapes are not shared file systems.
    odd = {
        "volumes": [{"name": "a"}, {"name": "b", "host": {"sourcePath": "/x/../../etc"}}],
        "mountPoints": [
            {"sourceVolume": "a", "containerPath": "/a"},
            {"sourceVolume": "b", "containerPath": "/b"},
        ],
    }
    assert mounts_of(odd) == ()


def test_every_container_sees_the_same_directory(tmp_path: Path):
    volumes = tmp_path / "volumes"
    first, second = tmp_path / "c1" / "fs", tmp_path / "c2" / "fs"
    for root in (first, second):
        link_mounts(root, mounts_of(properties()), volumes)
    (first / "efs" / "written-by-1").write_text("x")
    assert (second / "efs" / "written-by-1").read_text() == "x"
    assert (second / "mnt" / "fsx").resolve() == volumes / "host" / "fsx"
    assert not (second / "home" / "written-by-1").exists()  # an access point is its own root


def test_docker_mounts_each_volume(tmp_path: Path):
    mounts = mounts_of(properties())
    volumes = docker_volume_args(mounts, tmp_path)
    assert volumes == [
        "--volume", f"{tmp_path}/efs/fs-0123abcd:/efs",
        "--volume", f"{tmp_path}/efs/fs-0123abcd/access-points/fsap-0456abcd:/home",
        "--volume", f"{tmp_path}/host/fsx:/mnt/fsx:ro",
    ]
    args = docker_run_args(
        StartRequest("n", "img", ["true"], {}, mounts=mounts), "c", "net", "l", 2, volumes
    )
    assert args[args.index("--volume") : args.index("--volume") + 6] == volumes
    assert args.index("--volume") < args.index("img")
