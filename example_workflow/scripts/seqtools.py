"""Small, dependency-free sequence helpers shared by the workflow scripts.

Snakemake puts the directory of a `script:` on ``sys.path`` and ships every file in
that directory with the workflow sources, so the scripts can ``import seqtools``
both locally and inside an AWS Batch job.
"""

import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path

ALPHABET = "ACGT"
FASTA_LINE_WIDTH = 60


@dataclass(frozen=True)
class Record:
    """One FASTA record: the header without ``>`` and the upper-case sequence."""

    header: str
    sequence: str

    @property
    def sample(self) -> str:
        """Sample id: the header up to the first ``|``."""
        return self.header.split("|", 1)[0].split()[0]


def read_fasta(path: str | Path) -> list[Record]:
    """Parse a (multi-line) FASTA file."""
    records: list[Record] = []
    header: str | None = None
    chunks: list[str] = []
    with open(path, encoding="ascii") as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            if line.startswith(">"):
                if header is not None:
                    records.append(Record(header, "".join(chunks).upper()))
                header, chunks = line[1:].strip(), []
            elif header is None:
                raise ValueError(f"{path}: sequence data before the first header")
            else:
                chunks.append(line)
    if header is not None:
        records.append(Record(header, "".join(chunks).upper()))
    return records


def write_fasta(path: str | Path, records: Iterable[Record]) -> None:
    """Write records as FASTA, wrapping sequences at 60 columns."""
    with open(path, "w", encoding="ascii") as handle:
        for record in records:
            handle.write(f">{record.header}\n")
            seq = record.sequence
            for start in range(0, len(seq), FASTA_LINE_WIDTH):
                handle.write(seq[start : start + FASTA_LINE_WIDTH] + "\n")


def iter_kmers(sequence: str, k: int) -> Iterator[str]:
    """Yield the k-mers of ``sequence`` (forward strand), skipping any with non-ACGT."""
    for start in range(len(sequence) - k + 1):
        kmer = sequence[start : start + k]
        if all(base in ALPHABET for base in kmer):
            yield kmer


def count_kmers(sequence: str, k: int) -> Counter[str]:
    return Counter(iter_kmers(sequence, k))


def all_kmers(k: int) -> list[str]:
    """All 4**k k-mers in lexicographic order (the embedding's row order)."""
    return ["".join(letters) for letters in product(ALPHABET, repeat=k)]


def projection_matrix(n_rows: int, n_cols: int, seed: int) -> list[list[float]]:
    """A fixed pseudo-random matrix with entries in [-1, 1).

    Uses a 32-bit linear congruential generator (Numerical Recipes constants), so the
    values are identical on every platform and Python version.
    """
    state = seed % 2**32
    matrix: list[list[float]] = []
    for _ in range(n_rows):
        row: list[float] = []
        for _ in range(n_cols):
            state = (1664525 * state + 1013904223) % 2**32
            row.append(state / 2**32 * 2.0 - 1.0)
        matrix.append(row)
    return matrix


def embed_profile(counts: dict[str, int], k: int, dim: int, seed: int) -> list[float]:
    """Project the k-mer frequency profile onto ``dim`` dimensions."""
    kmers = all_kmers(k)
    total = sum(counts.get(kmer, 0) for kmer in kmers)
    if total == 0:
        return [0.0] * dim
    matrix = projection_matrix(len(kmers), dim, seed)
    embedding = [0.0] * dim
    for kmer, row in zip(kmers, matrix, strict=True):
        freq = counts.get(kmer, 0) / total
        if freq:
            for j in range(dim):
                embedding[j] += freq * row[j]
    return embedding


def l2_norm(vector: Iterable[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def read_kmer_table(path: str | Path) -> tuple[dict[str, str], dict[str, int]]:
    """Read a `count_kmers` table: (``#key=value`` metadata, k-mer counts in file order)."""
    meta: dict[str, str] = {}
    counts: dict[str, int] = {}
    with open(path, encoding="ascii") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if not line:
                continue
            if line.startswith("#"):
                key, _, value = line[1:].partition("=")
                meta[key] = value
            elif line != "kmer\tcount":
                kmer, count = line.split("\t")
                counts[kmer] = int(count)
    return meta, counts


def job_logger(name: str, log_paths: Sequence[str] = ()) -> Callable[[str], None]:
    """Return ``log(message)`` writing to stderr (CloudWatch on AWS Batch) and the job's
    log file (``log:`` directive; Snakemake uploads it to storage with the outputs)."""
    path = log_paths[0] if log_paths else None
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("", encoding="utf-8")

    def log(message: str) -> None:
        line = f"{name}: {message}\n"
        sys.stderr.write(line)
        if path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line)

    return log
