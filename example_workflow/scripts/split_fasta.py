"""Rule `split`: split the multi-sample FASTA into one FASTA per sample."""

import sys
from collections import defaultdict
from typing import Any

from seqtools import Record, read_fasta, write_fasta


def split(reads: str, samples: list[str], outputs: list[str]) -> dict[str, int]:
    """Write the records of ``samples[i]`` to ``outputs[i]``; return reads per sample."""
    by_sample: dict[str, list[Record]] = defaultdict(list)
    for record in read_fasta(reads):
        by_sample[record.sample].append(record)
    missing = [sample for sample in samples if not by_sample.get(sample)]
    if missing:
        raise ValueError(f"no reads for sample(s) {', '.join(missing)} in {reads}")
    for sample, path in zip(samples, outputs, strict=True):
        write_fasta(path, by_sample[sample])
    ignored = sorted(set(by_sample) - set(samples))
    if ignored:
        sys.stderr.write(f"split: ignoring samples not in config: {', '.join(ignored)}\n")
    return {sample: len(by_sample[sample]) for sample in samples}


def main(smk: Any) -> None:
    counts = split(smk.input.reads, list(smk.params.samples), list(smk.output))
    for sample, n in counts.items():
        sys.stderr.write(f"split: {sample}: {n} sequences\n")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 -- injected by Snakemake's `script:` directive
