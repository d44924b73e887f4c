"""Operations: `awsbatch-mpi setup`, `doctor` and `plan`, and the executor's preflight.

- `checks.py`: pure checks over describe_* answers (`CheckResult`, PASS/WARN/FAIL).
- `aws.py`: the only AWS caller of this package part (doctor reads, setup's CloudFormation
  calls, the executor's `preflight`).
- `stack.py` + `template.yaml`: the CloudFormation stack of `setup` (pure).
- `workflow.py`: a Snakefile's jobs through Snakemake's API (no AWS).
- `plan.py`: every Batch request of a workflow, rendered and validated (pure).
- `doctor.py`: the order of the doctor's checks.

Importing this package is cheap (no Snakemake, no moto): the executor imports `preflight`.
"""

from .aws import preflight
from .checks import CheckResult, Status, has_failures, render

__all__ = ["CheckResult", "Status", "has_failures", "preflight", "render"]
