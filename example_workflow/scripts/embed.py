"""Rule `embed`: a stand-in for a GPU model that embeds a sample's k-mer profile.

A real workflow would run e.g. a PyTorch model here; this one multiplies the k-mer
frequency profile with a fixed pseudo-random matrix in pure Python, so it runs on the
CPU anywhere (the rule still requests ``gpu=1`` to show GPU-queue routing).
"""

import json
import os
from typing import Any

from seqtools import embed_profile, job_logger, l2_norm, read_kmer_table


def embed(table: str, dim: int, seed: int) -> dict[str, Any]:
    meta, counts = read_kmer_table(table)
    k = int(meta["k"])
    vector = embed_profile(counts, k, dim, seed)
    return {
        "sample": meta["sample"],
        "k": k,
        "dim": dim,
        "seed": seed,
        # Full precision: the norm is computed from the unrounded vector.
        "norm": l2_norm(vector),
        "embedding": [round(x, 6) for x in vector],
    }


def main(smk: Any) -> None:
    result = embed(smk.input.tsv, int(smk.params.dim), int(smk.params.seed))
    result["device"] = {
        # Informational only: AWS Batch sets NVIDIA_VISIBLE_DEVICES for GPU jobs.
        "nvidia_visible_devices": os.environ.get("NVIDIA_VISIBLE_DEVICES"),
        "computed_on": "cpu",
    }
    with open(smk.output.json, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
        handle.write("\n")
    job_logger("embed", list(smk.log))(
        f"{result['sample']}: dim={result['dim']} norm={result['norm']:.4f} "
        f"(NVIDIA_VISIBLE_DEVICES={result['device']['nvidia_visible_devices']})"
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 -- injected by Snakemake's `script:` directive
