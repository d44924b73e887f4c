"""The README's "Try it by hand" section, run as written in a copy of the repository.

The code block is taken from README.md itself: terminal 1's lines start the emulation in
the background, terminal 2's lines run in bash once it is ready. Only the port may change
(when 4566 is taken on this machine, a free one is used in both terminals' lines).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Try it by hand on the emulation"
TERMINAL_2 = "# Terminal 2"
README_PORT = "4566"


def by_hand_block() -> tuple[str, str]:
    """(terminal 1's commands, terminal 2's commands) from the README's section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(SECTION):]
    block = re.search(r"```[a-z]*\n(.*?)```", section, re.S)
    assert block, "the by-hand section has no code block"
    first, second = block.group(1).split(TERMINAL_2, 1)
    return first, TERMINAL_2 + second


def port_for_the_test() -> str:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", int(README_PORT))) != 0:
            return README_PORT
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


@pytest.mark.skipif(not (REPO / ".venv/bin/awsbatch-mpi").exists(), reason="needs make install")
@pytest.mark.usefixtures("usable_mpi")  # the example's gc_mpi rule
def test_the_readme_by_hand_section_works_as_written(tmp_path):
    terminal_1, terminal_2 = by_hand_block()
    assert ".venv/bin/awsbatch-mpi local" in terminal_1
    assert "aws " not in terminal_2, "the AWS CLI is not installed by this project"
    port = port_for_the_test()
    terminal_1 = terminal_1.replace(README_PORT, port)
    terminal_2 = terminal_2.replace(README_PORT, port)

    # A fresh clone after `make install`: the example workflow and the project's venv.
    clone = tmp_path / "clone"
    shutil.copytree(REPO / "example_workflow", clone / "example_workflow",
                    ignore=shutil.ignore_patterns(".snakemake", "results", "logs"))
    (clone / ".venv").symlink_to(REPO / ".venv")
    shutil.copy(REPO / "README.md", clone / "README.md")
    # A user's shell: none of the test's AWS variables, no venv activated.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SNAKEMAKE_AWSBATCH_MPI_")) and k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))
    )

    server = subprocess.Popen(["bash", "-c", terminal_1], cwd=clone, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        assert server.stdout is not None
        printed = []
        while not any(line.startswith("# Jobs run as") for line in printed):
            line = server.stdout.readline()
            assert line, "terminal 1 ended early:\n" + "".join(printed)
            printed.append(line)
        # What terminal 1 prints is what terminal 2 exports.
        exports = [line.strip() for line in printed if line.startswith("export ")]
        for export in exports:
            name, value = export.removeprefix("export ").split("=", 1)
            assert f"{name}={value}" in terminal_2

        run = subprocess.run(["bash", "-euo", "pipefail", "-c", terminal_2], cwd=clone,
                             env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "command not found" not in run.stderr
        report = run.stdout.splitlines()
        assert report[0].startswith("sample\tn_sequences\ttotal_bases")
        assert [line.split("\t")[0] for line in report[1:4]] == ["sampleA", "sampleB", "sampleC"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.communicate()
