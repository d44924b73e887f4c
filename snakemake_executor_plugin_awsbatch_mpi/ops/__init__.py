"""Operations: `awsbatch-mpi setup`, `doctor` and `plan`, and the executor's preflight.

- `outcomes.py`: what a check says (`CheckResult`, PASS/WARN/FAIL) and how a list is printed.
- `checks.py`, `instance_fit.py`, `gpu_mpi_checks.py`: pure checks over describe_* answers
  (credentials, queues, role, S3; what a queue's instances can place; GPU and MPI queues).
- `aws_shell.py`: the only AWS caller of this package part (doctor reads, setup's CloudFormation
  calls, the executor's `preflight`).
- `stack.py` + `template.yaml`: the CloudFormation stack of `setup` (pure).
- `workflow.py`: a Snakefile's jobs through Snakemake's API (no AWS).
- `plan.py`: every Batch request of a workflow, rendered and validated (pure).
- `doctor.py`: the order of the doctor's checks.

Importing this package is cheap (no Snakemake, no moto): the executor imports `preflight`.
"""

from .aws_shell import preflight
from .outcomes import CheckResult, Status, has_failures, render

__all__ = ["CheckResult", "Status", "has_failures", "preflight", "render"]
