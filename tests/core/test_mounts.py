import pytest


def test_volumes_parse_efs_access_point_host_and_read_only():
    from snakemake_executor_plugin_awsbatch_mpi.core.mounts import parse_volumes
    from snakemake_executor_plugin_awsbatch_mpi.core.spec import Volume, VolumeKind

    text = "efs:fs-0123abcd:/efs, efs:fs-0123abcd:fsap-0456abcd:/home/ ; host:/fsx:/fsx:ro"
    with pytest.raises(ValueError, match="';'"):
        parse_volumes(text)
    volumes = parse_volumes(text.replace(" ; ", " "))
    assert volumes == (
        Volume(VolumeKind.EFS, "fs-0123abcd", "/efs"),
        Volume(VolumeKind.EFS, "fs-0123abcd", "/home", "fsap-0456abcd"),
        Volume(VolumeKind.HOST, "/fsx", "/fsx", read_only=True),
    )
    assert [str(v) for v in volumes] == [
        "efs:fs-0123abcd:/efs", "efs:fs-0123abcd:fsap-0456abcd:/home", "host:/fsx:/fsx:ro"
    ]
