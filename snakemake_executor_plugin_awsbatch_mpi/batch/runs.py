"""`awsbatch-mpi status` and `awsbatch-mpi logs`: look at a run after the client has gone.

Every job is tagged with its run id. The executor also appends each submission to
`.snakemake/awsbatch-mpi/runs/<run-id>.tsv`, so `status` started in the workflow directory
describes exactly those jobs; elsewhere it scans the given queues for the tag (Batch's
ListJobs cannot filter by tag). Summaries are pure functions over DescribeJobs answers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .clients import describe_in_chunks

RUNS_DIR = Path(".snakemake/awsbatch-mpi/runs")
STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def run_file(run_id: str, root: Path = Path(".")) -> Path:
    return root / RUNS_DIR / f"{run_id}.tsv"


def record_submission(run_id: str, job_id: str, rule: str) -> None:
    path = run_file(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(f"{job_id}\t{rule}\n")


def recorded_job_ids(run_id: str, root: Path = Path(".")) -> list[str] | None:
    path = run_file(run_id, root)
    if not path.exists():
        return None
    ids = [line.split("\t", 1)[0] for line in path.read_text().splitlines() if line.strip()]
    return list(dict.fromkeys(ids))


def summarize(descriptions: Iterable[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Jobs per rule and state; an array job counts its children, barriers are left out."""
    table: dict[str, Counter[str]] = {}
    for desc in descriptions:
        tags = desc.get("tags") or {}
        if tags.get("snakemake-barrier") == "true":
            continue
        rule = tags.get("snakemake-rule", desc.get("jobName", "?"))
        counts = table.setdefault(rule, Counter())
        summary = (desc.get("arrayProperties") or {}).get("statusSummary")
        if summary and "index" not in (desc.get("arrayProperties") or {}):
            for state, n in summary.items():
                if n:
                    counts[state] += n
        else:
            counts[desc.get("status", "?")] += 1
    return table


def format_summary(run_id: str, table: dict[str, Counter[str]]) -> str:
    states = [s for s in STATES if any(c[s] for c in table.values())]
    header = ["rule", *states, "total"]
    rows = [
        [rule, *(str(counts[s]) for s in states), str(sum(counts.values()))]
        for rule, counts in sorted(table.items())
    ]
    totals = Counter()
    for counts in table.values():
        totals.update(counts)
    rows.append(["all", *(str(totals[s]) for s in states), str(sum(totals.values()))])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"Run {run_id}:"]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def has_failed(table: dict[str, Counter[str]]) -> bool:
    return any(counts["FAILED"] for counts in table.values())


# --- AWS reads (the CLI's thin shell) -------------------------------------------------------


def describe_all(
    batch: Any, ids: list[str], known: Mapping[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Descriptions of `ids`; those in `known` (already described, e.g. by the executor's
    status checks once the job ended) are not asked for again."""
    known = known or {}
    missing = [i for i in ids if i not in known]
    answers = describe_in_chunks(batch.describe_jobs, "jobs", "jobs", missing)
    found = {d["jobId"]: d for d in answers}
    return [d for i in ids if (d := known.get(i) or found.get(i)) is not None]


def queue_job_ids(batch: Any, queues: Iterable[str]) -> list[str]:
    """Ids of every job Batch still lists in the queues, in any state."""
    ids: list[str] = []
    for queue in queues:
        for state in STATES:
            pages = batch.get_paginator("list_jobs").paginate(jobQueue=queue, jobStatus=state)
            ids += [j["jobId"] for page in pages for j in page["jobSummaryList"]]
    return ids


def find_run_jobs(
    batch: Any,
    run_id: str,
    queues: Iterable[str],
    known: Mapping[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Jobs tagged with the run id: from the local run record, else by scanning queues."""
    ids = recorded_job_ids(run_id)
    if ids is None:
        ids = queue_job_ids(batch, queues)
    jobs = describe_all(batch, list(dict.fromkeys(ids)), known)
    return [j for j in jobs if (j.get("tags") or {}).get("snakemake-run-id") == run_id]


def run_details(
    batch: Any,
    jobs: Iterable[dict[str, Any]],
    known: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Children of array jobs (`<id>:<i>`) and nodes of multi-node jobs (`<id>#<i>`), by job id.

    The run report needs their own times; one DescribeJobs per 100 of them not in `known`.
    """
    wanted: dict[str, list[str]] = {}
    for job in jobs:
        props = job.get("arrayProperties") or {}
        size = props.get("size") if "index" not in props else None
        nodes = (job.get("nodeProperties") or {}).get("numNodes")
        if size:
            wanted[job["jobId"]] = [f"{job['jobId']}:{i}" for i in range(int(size))]
        elif nodes and int(nodes) > 1:
            wanted[job["jobId"]] = [f"{job['jobId']}#{i}" for i in range(int(nodes))]
    ids = [i for group in wanted.values() for i in group]
    found = {d["jobId"]: d for d in describe_all(batch, ids, known)} if ids else {}
    return {job_id: [found[i] for i in group if i in found] for job_id, group in wanted.items()}


def log_streams(batch: Any, job_id: str) -> list[tuple[str, str]]:
    """(label, stream) of a job: one per node for a multi-node job."""
    jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
    if not jobs:
        raise LookupError(f"AWS Batch does not know job {job_id} (jobs expire after ~7 days).")
    job = jobs[0]
    nodes = (job.get("nodeProperties") or {}).get("numNodes")
    if nodes:
        node_jobs = describe_all(batch, [f"{job_id}#{i}" for i in range(int(nodes))])
        streams = []
        for node in sorted(node_jobs, key=lambda d: d["jobId"]):
            stream = (node.get("container") or {}).get("logStreamName")
            if stream:
                streams.append((f"node {node['jobId'].rsplit('#', 1)[-1]}", stream))
        if streams:
            return streams
    stream = (job.get("container") or {}).get("logStreamName")
    attempts = job.get("attempts") or []
    stream = stream or (
        (attempts[-1].get("container") or {}).get("logStreamName") if attempts else None
    )
    if not stream:
        raise LookupError(f"Job {job_id} has no log stream yet (status {job.get('status')}).")
    return [("", stream)]


def read_log(logs: Any, group: str, stream: str, lines: int) -> list[str]:
    answer = logs.get_log_events(
        logGroupName=group, logStreamName=stream, limit=lines, startFromHead=False
    )
    return [event.get("message", "") for event in answer.get("events", [])]
