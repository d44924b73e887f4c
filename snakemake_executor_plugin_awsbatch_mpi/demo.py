"""`awsbatch-mpi demo`: the example workflow on the local emulation, start to finish.

The emulation lives only as long as this process, so the demo keeps the emulated bucket in
`<workdir>/.emulated-s3/` between runs and restores it (objects in their original order of
modification) before Snakemake looks at it: a second run then finds the outputs up to date,
exactly as it would against a real bucket.

With ``runtime="docker"`` every job runs in a container of the images in containers/ (built
first when missing): the job image for every rule, the MPI image for the multi-node rule, as
``--container-image`` and ``awsbatch_image`` would name them on AWS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batch.runs import describe_all, queue_job_ids, run_details

PREFIX = "demo"
STATE_DIR = ".emulated-s3"
MPI_RULE = "gc_mpi"
# Snakemake's own progress lines, echoed while it runs: top-level lines only (indented ones
# belong to a job's log inside an error message). Error lines are not echoed: out of context
# they were fragments ("WorkflowError:" and nothing after it); `failure_summary` shows the
# failure whole at the end.
PROGRESS = re.compile(r"^(\d+ of \d+ steps|Nothing to be done|rule \w+:|Submitted|Exiting because)")
# The executor's last line names the run's HTML report (relative to the workflow directory).
REPORT_LINE = re.compile(r"\bReport: (\S+\.html)")
# The executor's failure message (batch/status.py, batch/rule_logs.py).
_HEADLINE = re.compile(r"^\s*message: (.*\bof rule '.*)$")
_RULE_LOG = ("The rule's own log ", "The rule's log ")


def example_source() -> Path:
    """The example workflow: shipped inside the wheel, or next to the package in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "example_workflow", here.parent / "example_workflow"):
        if (candidate / "Snakefile").exists():
            return candidate
    raise FileNotFoundError("The example workflow is missing from this installation.")


@dataclass(frozen=True)
class JobRow:
    rule: str
    job_id: str
    status: str
    seconds: float | None
    vcpus: str
    memory: str
    gpus: str
    nodes: int = 1


def _requirements(desc: dict[str, Any]) -> dict[str, str]:
    """Requested sizes; a multi-node job's are per node (from its node range)."""
    ranges = (desc.get("nodeProperties") or {}).get("nodeRangeProperties") or []
    container = (ranges[0].get("container") if ranges else desc.get("container")) or {}
    reqs = {r["type"]: r["value"] for r in container.get("resourceRequirements", [])}
    reqs.setdefault("VCPU", str(container.get("vcpus", "?")))
    reqs.setdefault("MEMORY", str(container.get("memory", "?")))
    return reqs


def collect_rows(batch: Any, queues: tuple[str, ...]) -> list[JobRow]:
    """Every job the emulation ran, oldest first, as rows of the summary table.

    An array job (same-rule jobs go as one by default) is shown as its children, one row
    per Snakemake job, named by the parent's rule; its own row would count them once.
    """
    listed = describe_all(batch, queue_job_ids(batch, queues))
    # Children are described through their parent (ListJobs may or may not list them).
    parents = [d for d in listed if ":" not in d["jobId"]]
    children = run_details(
        batch, [d for d in parents if (d.get("arrayProperties") or {}).get("size")]
    )
    rows = []
    for desc in sorted(parents, key=lambda d: d.get("createdAt", 0)):
        rule = (desc.get("tags") or {}).get("snakemake-rule", desc["jobName"])
        parent_reqs = _requirements(desc)
        for shown in children.get(desc["jobId"]) or [desc]:
            reqs = {**parent_reqs, **{k: v for k, v in _requirements(shown).items() if v != "?"}}
            started, stopped = shown.get("startedAt"), shown.get("stoppedAt")
            rows.append(
                JobRow(
                    rule=rule,
                    job_id=shown["jobId"],
                    status=shown["status"],
                    seconds=(stopped - started) / 1000 if started and stopped else None,
                    vcpus=reqs.get("VCPU", "?"),
                    memory=reqs.get("MEMORY", "?"),
                    gpus=reqs.get("GPU", "0"),
                    nodes=int((desc.get("nodeProperties") or {}).get("numNodes") or 1),
                )
            )
    return rows


def format_table(rows: list[JobRow]) -> str:
    header = ("rule", "Batch job id", "status", "duration", "nodes", "vCPU", "MiB", "GPU")
    body = [
        (
            r.rule,
            r.job_id,
            r.status,
            f"{r.seconds:.1f} s" if r.seconds is not None else "-",
            r.nodes,
            r.vcpus,
            r.memory,
            r.gpus,
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True))
        for row in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_bucket(s3: Any, bucket: str, state: Path) -> None:
    """Copy the bucket to disk with each object's modification time, oldest first."""
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    manifest = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            target = state / "objects" / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
            manifest.append({"key": obj["Key"], "modified": obj["LastModified"].timestamp()})
    manifest.sort(key=lambda m: m["modified"])
    (state / "manifest.json").write_text(json.dumps(manifest, indent=1))


def restore_bucket(s3: Any, bucket: str, state: Path) -> int:
    """Upload a saved bucket in its original order so relative mtimes are kept."""
    manifest_path = state / "manifest.json"
    if not manifest_path.exists():
        return 0
    manifest = json.loads(manifest_path.read_text())
    last = None
    for entry in manifest:
        if last is not None and entry["modified"] > last:
            time.sleep(0.002)  # keep a strict order even within one second
        s3.upload_file(str(state / "objects" / entry["key"]), bucket, entry["key"])
        last = entry["modified"]
    return len(manifest)


def upload_inputs(s3: Any, bucket: str, workdir: Path) -> list[str]:
    """Put the workflow's input data into the bucket when missing or changed."""
    uploaded = []
    for path in sorted((workdir / "data").rglob("*")):
        if not path.is_file():
            continue
        key = f"{PREFIX}/{path.relative_to(workdir).as_posix()}"
        try:
            current = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            current = None
        if current != path.read_bytes():
            s3.upload_file(str(path), bucket, key)
            uploaded.append(key)
    return uploaded


def failure_summary(log_lines: list[str]) -> list[str]:
    """What a failed run's terminal should show: for each failed job, the executor's headline
    and the rule's own log as read back from storage (it holds the cause).

    Lines inside the job's own log (indented, "Last lines of the log") are not matched: only
    the executor's message at the top level is.
    """
    found: list[str] = []
    in_log = False
    for line in (raw.rstrip("\n") for raw in log_lines):
        if line.startswith(("Error in rule ", "Error in group ")):
            found.append(line)
            in_log = False
        elif match := _HEADLINE.match(line):
            found.append("  " + match.group(1))
        elif line.startswith(_RULE_LOG):
            found.append("  " + line)
            in_log = line.endswith(":")
        elif in_log and line.startswith("    "):
            found.append("  " + line)
        else:
            in_log = False
    return found


def report_of(log_lines: list[str], workdir: Path) -> Path | None:
    """The run's HTML report, as the executor named it at the end of the run."""
    for line in reversed(log_lines):
        if match := REPORT_LINE.search(line):
            return (workdir / match.group(1)).resolve()
    return None


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def image_arguments(job_image: str, mpi_image: str) -> list[str]:
    """Snakemake arguments that put the example's jobs into these images."""
    return [
        "--container-image",
        job_image,
        "--set-resources",
        f"{MPI_RULE}:awsbatch_image={mpi_image}",
    ]


def run_snakemake(
    workdir: Path, env: dict[str, str], log_path: Path, extra: list[str] | None = None
) -> int:
    """Run Snakemake with the local profile, echoing its progress lines (all go to the log)."""
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/local", *(extra or [])]
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if PROGRESS.match(line):
                _say("  " + line.rstrip())
        return proc.wait()


def run_demo(
    fresh: bool = False,
    workdir: str | None = None,
    runtime: str = "process",
    images: tuple[str, str] | None = None,
) -> int:
    from .local import LOCAL_BUCKET, LOCAL_QUEUES, EmulationError, LocalEmulation
    from .local.host_mpi import ensure_mpi
    from .local.images import DEFAULT_JOB_IMAGE, DEFAULT_MPI_IMAGE, ensure_images

    started = time.monotonic()
    extra: list[str] = []
    if runtime == "process":
        # The example's MPI rule compiles and runs an MPI program on this machine.
        mpi = ensure_mpi(install=True, say=_say)
        if not mpi.ok:
            _say(mpi.problem)
            return 1
    if runtime == "docker":
        job_image, mpi_image = images or (DEFAULT_JOB_IMAGE, DEFAULT_MPI_IMAGE)
        try:
            for build in ensure_images(job_image, mpi_image):
                _say(f"Built {build.tag} (containers/{build.dockerfile}) in {build.seconds:.0f} s.")
        except EmulationError as err:
            _say(str(err))
            return 1
        _say(f"Jobs run in Docker containers: {job_image}, and {mpi_image} for rule {MPI_RULE}.")
        extra = image_arguments(job_image, mpi_image)
    work = Path(workdir or "awsbatch-mpi-demo").resolve()
    if fresh and work.exists():
        shutil.rmtree(work)
    if not work.exists():
        shutil.copytree(example_source(), work, ignore=shutil.ignore_patterns(".snakemake"))
        _say(f"Copied the example workflow to {work}.")
    try:
        emulation = LocalEmulation(runtime=runtime).start()
    except EmulationError as err:
        _say(str(err))
        return 1
    with emulation as emu:
        _say(f"Local AWS emulation listening on {emu.endpoint_url} (Batch, S3, CloudWatch Logs).")
        env = {**os.environ, **emu.client_env()}
        s3 = emu.boto3_client("s3")
        batch = emu.boto3_client("batch")
        restored = restore_bucket(s3, LOCAL_BUCKET, work / STATE_DIR)
        if restored:
            _say(f"Restored {restored} objects of the previous demo run into the bucket.")
        for key in upload_inputs(s3, LOCAL_BUCKET, work):
            _say(f"Uploaded input s3://{LOCAL_BUCKET}/{key}.")
        _say("Running Snakemake with --executor awsbatch-mpi (profile profiles/local)...")
        code = run_snakemake(work, env, work / "demo.log", extra)
        rows = collect_rows(batch, tuple(LOCAL_QUEUES))
        save_bucket(s3, LOCAL_BUCKET, work / STATE_DIR)
        results = work / "results"
        shutil.rmtree(results, ignore_errors=True)
        saved = work / STATE_DIR / "objects" / PREFIX / "results"
        if saved.exists():
            shutil.copytree(saved, results)
    print()
    if rows:
        print(format_table(rows))
        print()
    elif code == 0:
        _say(
            "Nothing needed to be done: all outputs are up to date. "
            "Run `awsbatch-mpi demo --fresh` to run every job again."
        )
    elapsed = time.monotonic() - started
    log_lines = (work / "demo.log").read_text(errors="replace").splitlines()
    if code != 0:
        for line in failure_summary(log_lines):
            _say(line)
    report_html = report_of(log_lines, work)
    if report_html is not None:
        _say(f"HTML report of the run: {report_html}")
    if code == 0:
        _say(
            f"Done in {elapsed:.0f} s. Results are in s3://{LOCAL_BUCKET}/{PREFIX}/results/ "
            f"(emulated), copied to {results}."
        )
        report = results / "report.tsv"
        if report.exists():
            print(report.read_text())
    else:
        _say(
            f"Snakemake failed (exit code {code}) after {elapsed:.0f} s; "
            f"the full log is {work / 'demo.log'}."
        )
    return code
