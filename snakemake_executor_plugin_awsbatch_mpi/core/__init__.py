"""The pure translation of a Snakemake job into AWS Batch requests (see docs/architecture.md).

request → values → sizes and MPI layout → spec → payloads → planner. No AWS client, no
network, no files, no Snakemake object: the faces hand it plain data.
"""
