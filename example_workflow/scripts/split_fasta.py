"""Rule `split`: split the multi-sample FASTA into one FASTA per sample."""

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from seqtools import Record, job_logger, read_fasta, write_fasta


def split(
    reads: str, samples: list[str], outputs: list[str], log: Callable[[str], None]
) -> dict[str, int]:
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
        log(f"ignoring samples not in the config: {', '.join(ignored)}")
    return {sample: len(by_sample[sample]) for sample in samples}


def main(smk: Any) -> None:
    log = job_logger("split", list(smk.log))
    counts = split(smk.input.reads, list(smk.params.samples), list(smk.output), log)
    for sample, n in counts.items():
        log(f"{sample}: {n} sequences")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 -- injected by Snakemake's `script:` directive
