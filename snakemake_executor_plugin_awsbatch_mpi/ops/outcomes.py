"""What a check says: one `CheckResult` per line of `awsbatch-mpi doctor` (PASS / WARN / FAIL,
with a message that says what to do next) and how a list of them is printed and judged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    """One line of `awsbatch-mpi doctor`: what was checked, how it went, what to do."""

    status: Status
    check: str
    message: str

    def line(self) -> str:
        return f"{self.status.value:4}  {self.check}: {self.message}"


def passed(check: str, message: str) -> CheckResult:
    return CheckResult(Status.PASS, check, message)


def warned(check: str, message: str) -> CheckResult:
    return CheckResult(Status.WARN, check, message)


def failed(check: str, message: str) -> CheckResult:
    return CheckResult(Status.FAIL, check, message)


def render(results: Iterable[CheckResult]) -> str:
    """The doctor's report: one line per check, then a one-line summary."""
    results = list(results)
    lines = [r.line() for r in results]
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    summary = (
        f"{counts[Status.PASS]} passed, {counts[Status.WARN]} warning(s), "
        f"{counts[Status.FAIL]} failed."
    )
    if counts[Status.FAIL]:
        summary += " Fix the FAIL lines above before running the workflow."
    elif counts[Status.WARN]:
        summary += " The setup works; the warnings say what may still go wrong."
    else:
        summary += " The setup is ready."
    return "\n".join([*lines, summary])


def has_failures(results: Iterable[CheckResult]) -> bool:
    return any(r.status is Status.FAIL for r in results)
