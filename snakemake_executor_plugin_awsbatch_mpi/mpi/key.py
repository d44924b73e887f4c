"""The per-job rendezvous key: where it lives, how nodes read it, how it is cleaned up.

The key authenticates the nodes of one multi-node job to each other (``protocol``). It must
never travel in a Batch request: SubmitJob overrides are shown by DescribeJobs to anyone
allowed to call it and are kept in CloudTrail. So the submitter writes it to an S3 object
under the run's storage prefix just before SubmitJob, and the request carries only the
object's URI (``AWSBATCH_MPI_KEY_URI``). Every node reads it at start with the job role's
credentials; the main node deletes it when it finishes (the submitter deletes it too when
it sees the job end; deleting twice is harmless).

Inside the node the key goes to a private file (``AWSBATCH_MPI_KEY_FILE``) that the
launcher shim and the rsh agent read: not into the environment, where a rule that prints
its environment would copy it into the job's log.

Standard library only, like the rest of the agent; boto3 (in every job image, because the
S3 storage plugin needs it) is imported only when an ``s3://`` key is read. ``file://``
URIs serve tests and shared filesystems.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping
from urllib.parse import unquote, urlparse

from . import ENV_KEY_FILE
from .protocol import secret_key

KEY_DIR = ".awsbatch-mpi/keys"
KEY_HEX_BYTES = 32  # 64 hex characters


class KeyUnavailable(RuntimeError):
    """The key object cannot be read (missing, no permission, no boto3)."""


def new_key() -> str:
    return secrets.token_hex(KEY_HEX_BYTES)


def key_uri(prefix: str, run_id: str, token: str) -> str:
    """``<prefix>/.awsbatch-mpi/keys/<run id>/<token>``: one object per submitted job."""
    return f"{prefix.rstrip('/')}/{KEY_DIR}/{run_id}/{token}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ValueError for anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ValueError(f"{uri!r} does not name a bucket and an object")
    return bucket, key


def _s3_client():  # type: ignore[no-untyped-def]
    try:
        import boto3  # noqa: PLC0415 - only nodes with an s3:// key need it
    except ImportError:
        raise KeyUnavailable(
            "boto3 is not installed in this image; the node agent needs it to read the "
            "rendezvous key from S3 (install boto3, which the S3 storage plugin needs too)"
        ) from None
    return boto3.client("s3")


def read_key(uri: str) -> bytes:
    """The key stored at uri (``s3://`` or ``file://``), checked for length."""
    if uri.startswith("file://"):
        path = unquote(urlparse(uri).path)
        try:
            with open(path, encoding="ascii") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyUnavailable(f"cannot read the rendezvous key file {path}: {exc}") from None
    else:
        try:
            bucket, name = split_s3_uri(uri)
        except ValueError as exc:
            raise KeyUnavailable(str(exc)) from None
        client = _s3_client()
        try:
            body = client.get_object(Bucket=bucket, Key=name)["Body"].read()
            text = body.decode("ascii")
        except Exception as exc:  # noqa: BLE001 - botocore's errors, without importing it
            raise KeyUnavailable(
                f"cannot read the rendezvous key {uri}: {exc}. The job role needs "
                "s3:GetObject on the storage prefix; the object is deleted once the job has "
                "ended (or was cancelled)"
            ) from None
    try:
        return secret_key(text)
    except ValueError as exc:
        raise KeyUnavailable(f"{uri}: {exc}") from None


def delete_key(uri: str) -> str | None:
    """Delete an ``s3://`` key object; the error as text if that failed (best effort).

    ``file://`` keys belong to whoever made them and are left alone.
    """
    if not uri.startswith("s3://"):
        return None
    try:
        bucket, name = split_s3_uri(uri)
        _s3_client().delete_object(Bucket=bucket, Key=name)
    except Exception as exc:  # noqa: BLE001 - best effort, the submitter deletes it too
        return str(exc)
    return None


def write_key_file(secret: bytes) -> str:
    """A private (0600) file holding the key, for the launcher shim and rsh agent."""
    fd, path = tempfile.mkstemp(prefix="awsbatch-mpi-key-")
    try:
        os.write(fd, secret)
    finally:
        os.close(fd)
    return path


def load_secret(env: Mapping[str, str]) -> bytes:
    """The key the node agent left for its helpers (ValueError when there is none)."""
    path = env.get(ENV_KEY_FILE, "")
    if not path:
        raise ValueError(f"{ENV_KEY_FILE} is not set: not started by the awsbatch-mpi node agent")
    try:
        with open(path, encoding="ascii") as handle:
            return secret_key(handle.read())
    except OSError as exc:
        raise ValueError(f"cannot read the rendezvous key file {path}: {exc}") from None
