"""The array child's entry point (array.py): its command from the map, in-process or via bash."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from snakemake_executor_plugin_awsbatch_mpi.core.command import LAUNCHER_HEAD, THEN

# Runs array.main with the command map served by a fake S3 client (no AWS, no emulation).
CHILD = textwrap.dedent("""
    import io, json, sys
    from snakemake_executor_plugin_awsbatch_mpi import array
    from snakemake_executor_plugin_awsbatch_mpi.batch import clients
    commands = json.loads(sys.argv[1])
    class S3:
        def get_object(self, Bucket, Key):
            assert (Bucket, Key) == ("b", "run/map.json")
            return {"Body": io.BytesIO(json.dumps(commands).encode())}
    clients.client = lambda *args, **kwargs: S3()
    sys.exit(array.main(["s3://b/run/map.json"]))
""")

SNAKEFILE = 'rule a:\n    output: "a.txt"\n    shell: "echo $PPID > {output}"\n'


def child(tmp_path, command: str, index: str = "0") -> subprocess.Popen:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": index, "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps({index: command})],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_a_launcher_command_runs_in_the_childs_own_interpreter(tmp_path):
    proc = child(tmp_path, f"{LAUNCHER_HEAD}--version {THEN} -c1 --nolock 'a.txt'")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith("[awsbatch-mpi] array child 0: running its Snakemake job\n")
    # The rule's shell is a child of this very process: no bash, no second interpreter.
    assert (tmp_path / "a.txt").read_text().strip() == str(proc.pid)


def test_the_launchers_exit_code_is_the_childs(tmp_path):
    proc = child(tmp_path, f"{LAUNCHER_HEAD}--no-such-flag {THEN} -c1 --nolock")
    proc.communicate(timeout=120)
    assert proc.returncode == 2 and not (tmp_path / "a.txt").exists()


def test_any_other_command_goes_through_bash(tmp_path):
    proc = child(tmp_path, "echo $((6 * 7)) > a.txt; exit 3")
    proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert (tmp_path / "a.txt").read_text() == "42\n"
