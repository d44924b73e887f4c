import json

from snakemake_executor_plugin_awsbatch_mpi.batch.model import validate_request
from snakemake_executor_plugin_awsbatch_mpi.core.array_jobs import (
    array_rules,
    array_spec,
    command_map,
    group_for_arrays,
)
from snakemake_executor_plugin_awsbatch_mpi.core.jobdef import submit_payload
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest, TranslationSettings
from snakemake_executor_plugin_awsbatch_mpi.core.resources import translate
from snakemake_executor_plugin_awsbatch_mpi.core.spec import QueueInfo

SETTINGS = TranslationSettings(job_queue="cpu", default_image="img", multinode_job_queue="m")


def spec(rule="r", i=0, **resources):
    return translate(
        JobRequest(rule, 1, resources, {"i": str(i)}),
        SETTINGS,
        QueueInfo("m" if "mpi" in resources else "cpu"),
        ("/bin/bash", "-c", f"python -m snakemake job{i}"),
        {},
        f"{rule}-{i}",
        {"snakemake-rule": rule},
        mpi_key_uri="s3://bucket/k",
    )


def test_grouping_by_rule_and_shape():
    items = [(f"a{i}", spec("a", i)) for i in range(5)]
    items += [(f"big{i}", spec("a", i, mem_mb=9000)) for i in range(2)]
    items += [("b0", spec("b", 0))]
    items += [(f"m{i}", spec("m", i, mpi="mpirun", tasks=2)) for i in range(3)]
    arrays, singles = group_for_arrays(items, ["all"])
    assert sorted(len(g) for g in arrays) == [2, 5]
    assert {job for job, _ in singles} == {"b0", "m0", "m1", "m2"}  # lone rule, MPI jobs


def test_only_selected_rules():
    items = [(f"a{i}", spec("a", i)) for i in range(3)] + [
        (f"b{i}", spec("b", i)) for i in range(3)
    ]
    arrays, singles = group_for_arrays(items, ["b"])
    assert [[job for job, _ in g] for g in arrays] == [["b0", "b1", "b2"]]
    assert len(singles) == 3


def test_arrays_are_the_default_and_none_turns_them_off():
    items = [(f"a{i}", spec("a", i)) for i in range(3)] + [("b0", spec("b", 0))]
    arrays, singles = group_for_arrays(items, None)  # the setting not given
    assert [[job for job, _ in g] for g in arrays] == [["a0", "a1", "a2"]]
    assert [job for job, _ in singles] == ["b0"]  # a lone ready job stays a plain job
    assert group_for_arrays(items, ["none"]) == ([], items)
    assert group_for_arrays(items, []) == ([], items)
    assert array_rules(None) == ("all",) and array_rules(["none"]) == ()
    assert array_rules(["a", "b"]) == ("a", "b")


def test_jobs_with_their_own_job_definition_are_never_grouped():
    items = [(f"d{i}", spec("d", i, awsbatch_job_definition="mine:3")) for i in range(3)]
    arrays, singles = group_for_arrays(items, ["all"])
    assert arrays == [] and len(singles) == 3


def test_command_map_and_array_payload():
    specs = [spec("a", i) for i in range(50)]
    commands = json.loads(command_map(specs))
    assert commands["0"] == "python -m snakemake job0" and commands["49"].endswith("job49")
    parent = array_spec(specs[0], "s3://bucket/run/.awsbatch-mpi/arrays/x.json", 50)
    payload = submit_payload(parent, "jd", depends_on=["up"], array_size=50)
    assert payload["arrayProperties"] == {"size": 50}
    command = payload["containerOverrides"]["command"][-1]
    assert "job0" not in command  # commands travel through S3, not the payload
    assert command.endswith(".array s3://bucket/run/.awsbatch-mpi/arrays/x.json")
    assert validate_request("SubmitJob", payload) == []


def test_array_runner_gets_the_map_url_as_one_word(tmp_path):
    import subprocess

    url = "s3://bucket/my run $(touch pwned)/x'y.json"
    parent = array_spec(spec(), url, 2)
    assert parent.command[:2] == ("/bin/bash", "-c")
    runner = parent.command[2].replace("exec python -m", "printf '%s\\0'")
    words = subprocess.run(["/bin/bash", "-c", runner], capture_output=True, cwd=tmp_path,
                           check=True).stdout.decode().split("\0")[:-1]
    assert words[-1] == url and list(tmp_path.iterdir()) == []
