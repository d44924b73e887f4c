"""The job command's arguments quoted for bash, and cores from the job's request (core)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap

import pytest
from snakemake.target_jobs import parse_target_jobs_cli_args
from snakemake_interface_executor_plugins.utils import format_cli_value

from snakemake_executor_plugin_awsbatch_mpi.core.command import (
    JOB_LAUNCHER,
    LAUNCHER_HEAD,
    THEN,
    JobArgs,
    TargetJob,
    job_cores,
    launcher_args,
    one_interpreter,
    render_job_args,
    repr_quoting_is_safe,
    swap_job_args,
    wildcard_problem,
)
from snakemake_executor_plugin_awsbatch_mpi.core.request import JobRequest

HOSTILE = [
    "a'$(touch pwned)",
    'b"$(touch pwned)"c',
    "c`touch pwned`d",
    "d;touch pwned;e",
    "e'both\"quotes",
    "with some spaces",
    "non-ascii é✓",
    "new\nline",
    "back\\slash $HOME !x",
    "a=b:c",
]


def bash_words(text: str, cwd) -> list[str]:
    """The words bash makes of `text` (prints each one NUL-terminated, runs nothing else)."""
    done = subprocess.run(
        ["/bin/bash", "-c", f"printf '%s\\0' {text}"], capture_output=True, cwd=cwd, check=True
    )
    return done.stdout.decode().split("\0")[:-1]


def test_hostile_wildcards_reach_snakemake_unchanged_and_run_nothing(tmp_path):
    targets = tuple(TargetJob("r", (("x", v), ("y", "1"))) for v in HOSTILE)
    args = JobArgs(targets=targets, rules=("r",), cores=3, attempt=2,
                   unneeded_temp_files=tuple(f"tmp/{v}.txt" for v in HOSTILE))
    words = bash_words(render_job_args(args), tmp_path)
    assert list(tmp_path.iterdir()) == []  # no `touch pwned` ran
    start = words.index("--target-jobs") + 1
    specs = words[start : start + len(HOSTILE)]
    parsed = parse_target_jobs_cli_args(specs)  # Snakemake's own parser, in the job
    assert [spec.wildcards_dict for spec in parsed] == [{"x": v, "y": "1"} for v in HOSTILE]
    assert words[words.index("--unneeded-temp-files") + 1 :] == [f"tmp/{v}.txt" for v in HOSTILE]
    assert words[words.index("--cores") + 1] == "3"
    assert words[words.index("--attempt") + 1] == "2"


def test_group_args_name_the_group_and_keep_snakemakes_processes(tmp_path):
    args = JobArgs(
        targets=(TargetJob("a", (("s", "1 é"),)), TargetJob("b", ())),
        rules=("a", "b"), cores=4, attempt=1, group_id="5e1c-uuid",
    )
    words = bash_words(render_job_args(args), tmp_path)
    assert words == [
        "--target-jobs", "a:s=1 é", "b:",
        "--allowed-rules", "a", "b",
        "--local-groupid", "5e1c-uuid",
        "--cores", "4", "--attempt", "1",
    ]


@pytest.mark.parametrize("value", [v for v in HOSTILE if not repr_quoting_is_safe(v)])
def test_group_with_values_snakemake_quotes_unsafely_runs_its_jobs_in_threads(value, tmp_path):
    # else the group's Snakemake spawns each run: job through bash -c with repr() quoting
    args = JobArgs(targets=(TargetJob("a", (("s", value),)),), rules=("a",), cores=1,
                   attempt=1, group_id="g")
    assert "--force-use-threads" in bash_words(render_job_args(args), tmp_path)


@pytest.mark.parametrize("value", HOSTILE + ["plain", "x y", "é✓", 'say "hi"', "$HOME"])
def test_values_called_safe_survive_snakemakes_own_quoting(value, tmp_path):
    quoted = format_cli_value(f"r:x={value}", quote=True)  # what Snakemake puts in commands
    if repr_quoting_is_safe(value):
        assert bash_words(quoted, tmp_path) == [f"r:x={value}"]
    assert list(tmp_path.iterdir()) == []


def test_snakemakes_own_quoting_runs_the_reported_value(tmp_path):
    """The root cause (snakemake-interface-executor-plugins 9.4: repr() as shell quoting)."""
    value = "a'$(touch pwned)"
    assert not repr_quoting_is_safe(value)
    bash_words(format_cli_value(f"r:x={value}", quote=True), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["pwned"]


def test_swap_replaces_exactly_snakemakes_job_arguments():
    theirs = "--target-jobs \"r:x=a'$(id)\" --cores all"
    command = f"python -m snakemake --snakefile S {theirs} --mode remote"
    swapped = swap_job_args(command, theirs, "SAFE")
    assert swapped == "python -m snakemake --snakefile S SAFE --mode remote"


@pytest.mark.parametrize("found", ["", "--cores all"])
def test_swap_refuses_when_the_arguments_are_not_there_exactly_once(found):
    with pytest.raises(RuntimeError, match="exactly once"):
        swap_job_args("x --cores all y --cores all", found, "SAFE")


@pytest.mark.parametrize(
    ("value", "why"),
    [("a,b", "contains a comma"), ("'a", "starts or ends"), ('a"', "starts or ends")],
)
def test_values_snakemakes_parser_would_change_are_named(value, why):
    problem = wildcard_problem(TargetJob("r", (("s", "ok"), ("x", value))))
    assert problem is not None and "Rule 'r'" in problem and f"x={value!r}" in problem
    assert why in problem
    # the reason is real: Snakemake's parser does not give the value back
    parsed = None
    try:
        parsed = parse_target_jobs_cli_args([TargetJob("r", (("x", value),)).spec()])
    except ValueError:
        pass
    assert parsed is None or parsed[0].wildcards_dict != {"x": value}


@pytest.mark.parametrize("value", HOSTILE)
def test_values_that_survive_the_parser_are_accepted(value):
    assert wildcard_problem(TargetJob("r", (("x", value),))) is None


@pytest.mark.parametrize(
    ("threads", "resources", "is_group", "cores"),
    [
        (3, {}, False, 3),
        (8, {"cpus_per_task": 2}, False, 2),
        (1, {"_cores": 6}, True, 6),
        # MPI: the main node's vCPUs, not the whole job's
        (16, {"mpi": "mpirun", "tasks": 8, "nodes": 2}, False, 4),
        (1, {"mpi": "mpirun", "tasks": 8, "tasks_per_node": 2, "cpus_per_task": 3}, False, 6),
        (4, {"mpi": "mpirun", "tasks": 10}, False, 4),
    ],
)
def test_cores_are_the_vcpus_the_job_asked_for(threads, resources, is_group, cores):
    request = JobRequest(rule="r", threads=threads, resources=resources, is_group=is_group)
    assert job_cores(request) == cores


TWO_STEPS = (
    "python -m snakemake --deploy-sources s3://b/w.tar.xz 0f --default-storage-provider 's3' "
    "&& python -m snakemake --snakefile 'Snakefile' --target-jobs 'r:x=1' --mode 'remote'"
)


def test_snakemakes_two_steps_become_one_interpreter_with_the_same_arguments(tmp_path):
    command = one_interpreter(TWO_STEPS)
    assert command.startswith("python -c ") and "&&" not in command.replace(JOB_LAUNCHER, "")
    words = bash_words(command, tmp_path)
    assert words[:3] == ["python", "-c", JOB_LAUNCHER]
    assert words[3:] == [
        "--deploy-sources", "s3://b/w.tar.xz", "0f", "--default-storage-provider", "s3", THEN,
        "--snakefile", "Snakefile", "--target-jobs", "r:x=1", "--mode", "remote",
    ]


@pytest.mark.parametrize("command", [
    "python -m snakemake --snakefile Snakefile --mode remote",  # no deployment step
    # the separator's text inside a quoted value: which one is Snakemake's is not guessed
    TWO_STEPS + " --config 'k= && python -m snakemake x'",
    "echo hi && " + TWO_STEPS,
])
def test_other_commands_are_left_as_they_are(command):
    assert one_interpreter(command) == command


def launch(cwd, *steps: list[str]) -> subprocess.CompletedProcess:
    first, second = steps
    return subprocess.run(
        [sys.executable, "-c", JOB_LAUNCHER, *first, THEN, *second],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def test_the_launcher_runs_the_second_step_after_the_first_succeeded(tmp_path):
    """Snakemake's own main twice in one interpreter; the scheduler's re-evaluation timer is a
    daemon thread when the run ends (so the job does not wait a second for it at exit)."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent("""
        import threading
        onsuccess:
            timers = [t.daemon for t in threading.enumerate() if isinstance(t, threading.Timer)]
            print(f"timers-daemon={timers}")
        rule a:
            output: "a.txt"
            shell: "echo ran > {output}"
    """))
    done = launch(tmp_path, ["--version"], ["-c1", "--nolock"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0][0].isdigit()  # the first step printed the version
    assert (tmp_path / "a.txt").read_text() == "ran\n"
    assert "timers-daemon=[True" in done.stdout + done.stderr
    assert "False" not in (done.stdout + done.stderr).split("timers-daemon=")[1].split("]")[0]


def test_the_launcher_stops_with_the_first_steps_exit_code(tmp_path):
    rule = 'rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'
    (tmp_path / "Snakefile").write_text(rule)
    done = launch(tmp_path, ["--no-such-flag"], ["-c1", "--nolock"])
    assert done.returncode == 2  # argparse's usage error, as `python -m snakemake` exits
    assert not (tmp_path / "a.txt").exists()
    failed = launch(tmp_path, ["-c1", "--nolock", "no-such-target"], ["-c1", "--nolock"])
    assert failed.returncode == 1 and not (tmp_path / "a.txt").exists()


def test_launcher_args_are_the_words_bash_would_pass(tmp_path):
    command = one_interpreter(TWO_STEPS)
    assert launcher_args(command) == bash_words(command, tmp_path)[3:]


@pytest.mark.parametrize("value", HOSTILE)
def test_launcher_args_are_what_bash_passes_or_none(value, tmp_path):
    """Hostile values: the words are bash's own, or the command is left to bash (a value
    with a quote in it, which `shlex.quote` splices with double quotes)."""
    command = one_interpreter(TWO_STEPS.replace("'r:x=1'", shlex.quote(f"r:x={value}")))
    words = launcher_args(command)
    assert words is None if "'" in value else words == bash_words(command, tmp_path)[3:]
    assert list(tmp_path.iterdir()) == []


def test_launcher_args_need_the_launcher_and_its_separator():
    assert launcher_args(TWO_STEPS) is None
    assert launcher_args(f"{LAUNCHER_HEAD}--version -c1") is None  # no THEN
    assert launcher_args(f"{LAUNCHER_HEAD}'unterminated {THEN}") is None
    assert launcher_args(f"{LAUNCHER_HEAD}a''b 'c d'e {THEN} x") == ["ab", "c de", THEN, "x"]
