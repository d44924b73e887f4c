"""Rule `report`: merge per-sample k-mer statistics and embeddings into one TSV."""

import json
from typing import Any

from seqtools import job_logger, read_kmer_table

COLUMNS = [
    "sample",
    "n_sequences",
    "total_bases",
    "gc_fraction",
    "top_kmer",
    "top_kmer_count",
    "embedding_norm",
]


def report_row(table: str, embedding: str) -> list[str]:
    meta, counts = read_kmer_table(table)
    with open(embedding, encoding="utf-8") as handle:
        emb = json.load(handle)
    if emb["sample"] != meta["sample"]:
        raise ValueError(f"sample mismatch: {table} vs {embedding}")
    acgt = int(meta["acgt_bases"])
    gc_fraction = int(meta["gc_bases"]) / acgt if acgt else 0.0
    # Most frequent k-mer; ties go to the lexicographically smallest one.
    top_kmer, top_count = min(counts.items(), key=lambda item: (-item[1], item[0]))
    return [
        meta["sample"],
        meta["n_sequences"],
        meta["total_bases"],
        f"{gc_fraction:.4f}",
        top_kmer,
        str(top_count),
        f"{emb['norm']:.4f}",
    ]


def write_report(path: str, tables: list[str], embeddings: list[str]) -> int:
    with open(path, "w", encoding="ascii") as handle:
        handle.write("\t".join(COLUMNS) + "\n")
        for table, embedding in zip(tables, embeddings, strict=True):
            handle.write("\t".join(report_row(table, embedding)) + "\n")
    return len(tables)


def main(smk: Any) -> None:
    n = write_report(smk.output.tsv, list(smk.input.tables), list(smk.input.embeddings))
    job_logger("report", list(smk.log))(f"wrote results/report.tsv with {n} samples")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 -- injected by Snakemake's `script:` directive
