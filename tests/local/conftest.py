"""One local emulation for the whole test session: starting moto costs a few seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from snakemake_executor_plugin_awsbatch_mpi.local import LocalEmulation

from ._helpers import SUBMITTER_SECRET, Aws


@pytest.fixture(scope="session")
def emulation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEmulation]:
    emu = LocalEmulation(workdir=tmp_path_factory.mktemp("emulation"))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def aws(emulation: LocalEmulation) -> Aws:
    """boto3 clients as a submitter would make them, with a distinctive secret key."""
    return Aws.connect(emulation, secret=SUBMITTER_SECRET)


@pytest.fixture(scope="session")
def shell_def(aws: Aws) -> str:
    """A plain container job definition; tests put their script in containerOverrides."""
    return aws.register("local-test-shell")
