"""Rule `count_kmers`: k-mer counts and GC content of one sample.

Output (TSV): ``#key=value`` metadata lines, then a ``kmer<TAB>count`` table of the
k-mers seen, sorted by count (descending) and then k-mer (ascending).
"""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from seqtools import ALPHABET, count_kmers, job_logger, read_fasta


def kmer_stats(fasta: str, k: int, threads: int = 1) -> tuple[dict[str, int], Counter[str]]:
    records = read_fasta(fasta)
    sequences = [record.sequence for record in records]
    counts: Counter[str] = Counter()
    # One task per sequence, spread over the threads Snakemake granted the job.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for partial in pool.map(lambda seq: count_kmers(seq, k), sequences):
            counts.update(partial)
    joined = "".join(sequences)
    meta = {
        "n_sequences": len(sequences),
        "total_bases": len(joined),
        "acgt_bases": sum(joined.count(base) for base in ALPHABET),
        "gc_bases": joined.count("G") + joined.count("C"),
        "total_kmers": sum(counts.values()),
    }
    return meta, counts


def write_table(path: str, sample: str, k: int, meta: dict[str, int], counts: Counter[str]) -> None:
    gc_fraction = meta["gc_bases"] / meta["acgt_bases"] if meta["acgt_bases"] else 0.0
    with open(path, "w", encoding="ascii") as handle:
        handle.write(f"#sample={sample}\n#k={k}\n")
        for key, value in meta.items():
            handle.write(f"#{key}={value}\n")
        handle.write(f"#gc_fraction={gc_fraction:.6f}\n")
        handle.write("kmer\tcount\n")
        for kmer, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            handle.write(f"{kmer}\t{count}\n")


def main(smk: Any) -> None:
    k = int(smk.params.k)
    meta, counts = kmer_stats(smk.input.fasta, k, smk.threads)
    write_table(smk.output.tsv, smk.wildcards.sample, k, meta, counts)
    job_logger("count_kmers", list(smk.log))(
        f"{smk.wildcards.sample}: {meta['total_kmers']} {k}-mers "
        f"({len(counts)} distinct) with {smk.threads} thread(s)"
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 -- injected by Snakemake's `script:` directive
