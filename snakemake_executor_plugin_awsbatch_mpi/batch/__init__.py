"""The only code that calls AWS for a run: clients, the Batch client, queues, status, logs and
run records (see docs/architecture.md)."""
