"""``python _spy_snakemake.py ARGS``: Snakemake's command line, with what the plugin sends recorded.

Every Batch request and answer (through ``BatchClient._call``, the one place the plugin
calls Batch), each read of a launch template and every S3 object it writes or deletes are
appended as JSON lines to the file named by ``AWSBATCH_TEST_SPY_FILE``, so a test can search
them for what must not be there (a rendezvous key) although Snakemake runs in its own process.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from typing import Any

from snakemake_executor_plugin_awsbatch_mpi.batch import clients
from snakemake_executor_plugin_awsbatch_mpi.batch.client import BatchClient

SPY_FILE = os.environ["AWSBATCH_TEST_SPY_FILE"]


def record(kind: str, **data: Any) -> None:
    with open(SPY_FILE, "a") as handle:
        handle.write(json.dumps({"kind": kind, **data}, default=str) + "\n")


original_call = BatchClient._call
original_put = BatchClient.put_object
original_delete = BatchClient.delete_object
original_template = clients.launch_template_version


def spy_call(self: BatchClient, operation: str, **kwargs: Any) -> Any:
    record("request", operation=operation, request=kwargs)
    answer = original_call(self, operation, **kwargs)
    record("answer", operation=operation, answer=answer)
    return answer


def spy_put(self: BatchClient, url: str, body: bytes) -> None:
    record("s3-put", url=url, body=body.decode("utf-8", "replace"))
    original_put(self, url, body)


def spy_delete(self: BatchClient, url: str) -> None:
    record("s3-delete", url=url)
    original_delete(self, url)


def spy_template(ec2: Any, params: dict[str, Any]) -> Any:
    """The EC2 call of a run: the launch templates' root volumes (issue 19 §2)."""
    record("request", operation="describe_launch_template_versions", request=params)
    return original_template(ec2, params)


clients.launch_template_version = spy_template
BatchClient._call = spy_call  # type: ignore[method-assign]
BatchClient.put_object = spy_put  # type: ignore[method-assign]
BatchClient.delete_object = spy_delete  # type: ignore[method-assign]

sys.argv = ["snakemake", *sys.argv[1:]]
runpy.run_module("snakemake", run_name="__main__", alter_sys=True)
