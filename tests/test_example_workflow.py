"""Run example_workflow/ locally (plain `snakemake --cores 2`, no executor plugin, no
storage) and check its outputs against values computed here, independently of the
workflow's scripts, from the committed input FASTA."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from itertools import product
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / "example_workflow"

REPORT_COLUMNS = [
    "sample",
    "n_sequences",
    "total_bases",
    "gc_fraction",
    "top_kmer",
    "top_kmer_count",
    "embedding_norm",
]


# --------------------------------------------------------------------------- helpers


def copy_workflow(dest: Path) -> Path:
    shutil.copytree(
        WORKFLOW,
        dest,
        ignore=shutil.ignore_patterns(".snakemake", "results", "logs", "__pycache__"),
    )
    return dest


def run_snakemake(workdir: Path, *args: str, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{output}"
    return output


def parse_fasta(path: Path) -> list[tuple[str, str]]:
    records: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            records.append((line[1:], []))
        elif line.strip():
            records[-1][1].append(line.strip().upper())
    return [(header, "".join(parts)) for header, parts in records]


def lcg_matrix(rows: int, cols: int, seed: int) -> list[list[float]]:
    """32-bit LCG (a=1664525, c=1013904223), values mapped to [-1, 1), row-major."""
    state, matrix = seed, []
    for _ in range(rows):
        row = []
        for _ in range(cols):
            state = (1664525 * state + 1013904223) % 2**32
            row.append(state / 2**32 * 2.0 - 1.0)
        matrix.append(row)
    return matrix


def expected_embedding(counts: Counter[str], k: int, dim: int, seed: int) -> list[float]:
    kmers = ["".join(p) for p in product("ACGT", repeat=k)]
    total = sum(counts.values())
    vector = [0.0] * dim
    for kmer, row in zip(kmers, lcg_matrix(len(kmers), dim, seed), strict=True):
        freq = counts[kmer] / total
        for j in range(dim):
            vector[j] += freq * row[j]
    return vector


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((WORKFLOW / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def expected(config: dict) -> dict[str, dict]:
    """Per-sample expectations, computed from data/reads.fasta and the config only."""
    k, dim, seed = config["k"], config["embedding_dim"], config["embedding_seed"]
    records = parse_fasta(WORKFLOW / config["reads"])
    result: dict[str, dict] = {}
    for sample in config["samples"]:
        sample_records = [(h, s) for h, s in records if h.split("|")[0] == sample]
        seqs = [s for _, s in sample_records]
        joined = "".join(seqs)
        acgt = sum(joined.count(base) for base in "ACGT")
        gc = joined.count("G") + joined.count("C")
        kmers = Counter(
            seq[i : i + k]
            for seq in seqs
            for i in range(len(seq) - k + 1)
            if set(seq[i : i + k]) <= set("ACGT")
        )
        top_kmer, top_count = sorted(kmers.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        embedding = expected_embedding(kmers, k, dim, seed)
        result[sample] = {
            "records": sample_records,
            "n_sequences": len(seqs),
            "total_bases": len(joined),
            "gc_fraction": gc / acgt,
            "kmers": kmers,
            "top_kmer": top_kmer,
            "top_count": top_count,
            "embedding": embedding,
            "norm": math.sqrt(sum(x * x for x in embedding)),
        }
    return result


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = copy_workflow(tmp_path_factory.mktemp("wf") / "example_workflow")
    # The workflow logic without the MPI rule: gc_mpi needs an MPI launcher and hosts; it is
    # run through the executor and real MPI in tests/test_demo.py.
    output = run_snakemake(workdir, "--cores", "2", "results/report.tsv")
    return workdir, output


# --------------------------------------------------------------------------- tests


def test_input_fasta_matches_config(config: dict) -> None:
    records = parse_fasta(WORKFLOW / config["reads"])
    samples_in_fasta = {header.split("|")[0] for header, _ in records}
    assert samples_in_fasta == set(config["samples"])
    assert all(set(seq) <= set("ACGTN") for _, seq in records)


def expected_report(expected: dict) -> str:
    """The exact report.tsv the workflow must produce, built from the expectations."""
    lines = ["\t".join(REPORT_COLUMNS)]
    for sample, exp in expected.items():
        row = [
            sample,
            str(exp["n_sequences"]),
            str(exp["total_bases"]),
            f"{exp['gc_fraction']:.4f}",
            exp["top_kmer"],
            str(exp["top_count"]),
            f"{exp['norm']:.4f}",
        ]
        lines.append("\t".join(row))
    return "\n".join(lines) + "\n"


def test_report_exact_content(finished_run: tuple[Path, str], expected: dict) -> None:
    workdir, _ = finished_run
    assert (workdir / "results" / "report.tsv").read_text() == expected_report(expected)


def test_split_outputs(finished_run: tuple[Path, str], expected: dict) -> None:
    workdir, _ = finished_run
    for sample, exp in expected.items():
        path = workdir / "results" / "samples" / f"{sample}.fasta"
        assert parse_fasta(path) == exp["records"]


def test_kmer_tables(finished_run: tuple[Path, str], expected: dict, config: dict) -> None:
    workdir, _ = finished_run
    for sample, exp in expected.items():
        text = (workdir / "results" / "kmers" / f"{sample}.tsv").read_text()
        meta = dict(line[1:].split("=", 1) for line in text.splitlines() if line.startswith("#"))
        assert meta["sample"] == sample
        assert int(meta["k"]) == config["k"]
        assert int(meta["n_sequences"]) == exp["n_sequences"]
        assert int(meta["total_bases"]) == exp["total_bases"]
        rows = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
        assert rows[0] == ["kmer", "count"]
        counts = {kmer: int(count) for kmer, count in rows[1:]}
        assert counts == dict(exp["kmers"])
        assert rows[1] == [exp["top_kmer"], str(exp["top_count"])]


def test_embeddings(finished_run: tuple[Path, str], expected: dict, config: dict) -> None:
    workdir, _ = finished_run
    for sample, exp in expected.items():
        data = json.loads((workdir / "results" / "embed" / f"{sample}.json").read_text())
        assert data["sample"] == sample
        assert data["dim"] == config["embedding_dim"] == len(data["embedding"])
        assert data["norm"] == pytest.approx(exp["norm"], abs=1e-12)
        assert data["embedding"] == pytest.approx(exp["embedding"], abs=1e-6)


def test_logs_written(finished_run: tuple[Path, str], config: dict) -> None:
    workdir, _ = finished_run
    logs = ["logs/split.log", "logs/report.log"]
    for sample in config["samples"]:
        logs += [f"logs/count_kmers/{sample}.log", f"logs/embed/{sample}.log"]
    for log in logs:
        assert (workdir / log).read_text().strip(), log


def test_rerun_is_noop(finished_run: tuple[Path, str]) -> None:
    workdir, _ = finished_run
    output = run_snakemake(workdir, "--dry-run", "--cores", "2", "results/report.tsv")
    assert "Nothing to be done" in output


def test_dry_run_jobs_and_resources(tmp_path: Path, config: dict) -> None:
    """The job graph and per-rule resources the awsbatch-mpi executor relies on."""
    workdir = copy_workflow(tmp_path / "example_workflow")
    output = run_snakemake(workdir, "--dry-run", "--cores", "2")

    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", output.split("Job stats:")[1], re.M))
    n = len(config["samples"])
    assert {k: int(v) for k, v in stats.items()} == {
        "split": 1,
        "count_kmers": n,
        "embed": n,
        "report": 1,
        "gc_mpi": 1,
        "all": 1,
        "total": 2 * n + 4,
    }

    declared: dict[str, dict[str, str]] = {}
    for block in re.split(r"^(?=(?:local)?rule \w+:)", output, flags=re.M):
        match = re.match(r"(?:local)?rule (\w+):", block)
        if not match or match.group(1) in declared:
            continue
        info: dict[str, str] = {}
        threads = re.search(r"^\s+threads: (\d+)", block, re.M)
        info["threads"] = threads.group(1) if threads else "1"
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if res:
            info.update(item.split("=", 1) for item in res.group(1).split(", "))
        declared[match.group(1)] = info

    def pick(rule: str, *keys: str) -> dict[str, str | None]:
        return {key: declared[rule].get(key) for key in keys}

    keys = ("threads", "mem_mb", "runtime", "gpu")
    assert pick("split", *keys) == {"threads": "1", "mem_mb": "512", "runtime": "5", "gpu": None}
    assert pick("count_kmers", *keys) == {
        "threads": "2",
        "mem_mb": "1024",
        "runtime": "10",
        "gpu": None,
    }
    assert pick("embed", *keys) == {"threads": "1", "mem_mb": "2048", "runtime": "10", "gpu": "1"}
    assert pick("report", *keys) == {"threads": "1", "mem_mb": "512", "runtime": "5", "gpu": None}
    assert pick("gc_mpi", "mpi", "tasks", "nodes") == {"mpi": "mpirun", "tasks": "6", "nodes": "3"}


@pytest.mark.parametrize("profile", ["local", "aws"])
def test_profiles(profile: str) -> None:
    """Profiles are valid YAML with the keys the executor needs (a real `snakemake
    --profile ... -n` needs the emulation or AWS, so it is exercised elsewhere)."""
    data = yaml.safe_load((WORKFLOW / "profiles" / profile / "config.yaml").read_text())
    assert data["executor"] == "awsbatch-mpi"
    assert data["default-storage-provider"] == "s3"
    assert data["default-storage-prefix"].startswith("s3://")
    for key in ("job-queue", "gpu-job-queue", "multinode-job-queue"):
        assert data[f"awsbatch-mpi-{key}"]
    assert not any("endpoint" in key or "secret" in key or "access-key" in key for key in data)
    if profile == "local":
        assert data["default-storage-prefix"] == "s3://snakemake-local/demo"
        assert (
            data["awsbatch-mpi-job-queue"],
            data["awsbatch-mpi-gpu-job-queue"],
            data["awsbatch-mpi-multinode-job-queue"],
        ) == ("local-cpu", "local-gpu", "local-mpi")
