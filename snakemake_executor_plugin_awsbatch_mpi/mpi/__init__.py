"""Node agent for AWS Batch multi-node parallel jobs (standard library only)."""
