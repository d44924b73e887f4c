"""The shell command a Batch job runs: Snakemake's job command with its job arguments quoted.

Why this module exists: Snakemake builds the remote command as one string for `bash -c` and
quotes the job-specific arguments (`--target-jobs RULE:WILDCARD=VALUE`, `--unneeded-temp-files`)
with Python's `repr()`, which is not shell quoting. A wildcard value holding `'` is wrapped in
double quotes, so `$(…)` and backticks in it run inside the job; a value holding both kinds of
quote yields `'…\\'…'`, which bash cannot parse. Wildcard values come from file names, often
from sample sheets, so they are data, never code.

`--config KEY=VALUE` items (and `--configfiles` paths) get the same `repr()` quoting, so a
config value such as `x'$(touch y)` ran too; they are user input just as much.

The fix keeps everything else Snakemake puts into the command (source deployment, storage and
general arguments) and swaps only its job arguments and its config arguments for the same
arguments rebuilt here, each quoted with `shlex.quote`. Two kinds of value cannot survive
Snakemake's `--target-jobs` parser whatever the quoting (it splits on every `,` and strips
`'`/`"` from both ends of a value); jobs with such values are refused before anything is
submitted (`wildcard_problem`). `snakemake_jobs.job_command` reads the Snakemake job into the
plain `JobArgs` rendered here: the core knows no Snakemake object.

`--cores` becomes the vCPUs the job asked for (per node for MPI jobs) instead of `all`, so a
job sees the cores Batch reserved for it rather than the whole host.

Snakemake's command starts two interpreters, `python -m snakemake --deploy-sources … && python
-m snakemake …`, each importing Snakemake and every installed plugin (about 1.1 s of CPU), and
each job's Snakemake then waits up to a second at exit for its scheduler's re-evaluation timer
(a non-daemon `threading.Timer`). `one_interpreter` runs both steps in one interpreter
(`JOB_LAUNCHER`, Snakemake's own `main` twice, the second only if the first succeeded, as `&&`
does) with that timer a daemon thread: a job takes 1.5 s instead of 3.7–4.2 s before its rule's
own work (measured in the local emulation; benchmarks/side_by_side.py).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from .multinode import mpi_layout_of
from .request import JobRequest
from .sizes import vcpus_of

# What the job runs its command with (the MPI node agent and array children do the same).
SHELL = ("/bin/bash", "-c")
# Snakemake's `--target-jobs` parser: `RULE:W1=V1,W2=V2`, values stripped of these at both ends.
_STRIPPED_QUOTES = "'\""
# What Snakemake's job command is made of when it deploys the workflow sources first.
DEPLOY_STEP = "python -m snakemake --deploy-sources "
JOB_STEP = " && python -m snakemake "
# Separates the two steps' arguments in the launcher's argv (never a Snakemake argument).
THEN = "--awsbatch-mpi-then-run-job"
# Runs Snakemake's deploy step, then (if it succeeded) its job step, in one interpreter. The
# scheduler's re-evaluation timer becomes a daemon thread so the job exits when it is done.
JOB_LAUNCHER = f"""\
import sys, threading
class DaemonTimer(threading.Timer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.daemon = True
threading.Timer = DaemonTimer
from snakemake.cli import main
args = sys.argv[1:]
cut = args.index({THEN!r})
try:
    main(args[:cut])
except SystemExit as done:
    if done.code not in (0, None):
        raise
main(args[cut + 1:])
"""
LAUNCHER_HEAD = f"python -c {shlex.quote(JOB_LAUNCHER)} "


@dataclass(frozen=True)
class TargetJob:
    """One job a (group) job command runs: its rule and wildcard values."""

    rule: str
    wildcards: tuple[tuple[str, str], ...]

    def spec(self) -> str:
        """The `--target-jobs` item Snakemake parses (`snakemake.target_jobs`)."""
        return f"{self.rule}:" + ",".join(f"{key}={value}" for key, value in self.wildcards)


@dataclass(frozen=True)
class JobArgs:
    """The job-specific part of a job's Snakemake command (RealExecutor.get_job_args)."""

    targets: tuple[TargetJob, ...]
    rules: tuple[str, ...]
    cores: int
    attempt: int
    group_id: str | None = None
    unneeded_temp_files: tuple[str, ...] = ()


def repr_quoting_is_safe(text: str) -> bool:
    """Whether Snakemake's `repr()` quoting gives bash this text back, and nothing more.

    `repr()` uses single quotes, which bash keeps verbatim, unless the text holds a `'`
    (then double quotes, where `$()` and backticks run, or `\\'`, which bash cannot parse),
    a backslash or a character it escapes.
    """
    return "'" not in text and "\\" not in text and text.isprintable()


def needs_threads(args: JobArgs) -> bool:
    """Whether the job's Snakemake must run `run:` jobs in threads (`--force-use-threads`).

    Snakemake passes it for single jobs. A group job's Snakemake spawns each `run:` or
    `shadow` job through `bash -c` with its own `repr()`-quoted `--target-jobs`, which is safe
    only when every value survives `repr()`; otherwise the group runs them in threads (where
    `shadow` jobs share the process's working directory, so do not run in parallel safely).
    """
    if args.group_id is None:
        return True
    texts = [target.spec() for target in args.targets] + list(args.unneeded_temp_files)
    return not all(repr_quoting_is_safe(text) for text in texts)


def render_job_args(args: JobArgs) -> str:
    """The arguments as one shell-safe string: every value goes through `shlex.quote`.

    Same flags and order as Snakemake's own `get_job_args`; `--force-use-threads` also for
    group jobs whose values Snakemake itself would quote unsafely (`needs_threads`).
    """
    words: list[str] = ["--target-jobs", *(target.spec() for target in args.targets)]
    words += ["--allowed-rules", *args.rules]
    if args.group_id is not None:
        words += ["--local-groupid", args.group_id]
    words += ["--cores", str(args.cores), "--attempt", str(args.attempt)]
    if needs_threads(args):
        words.append("--force-use-threads")
    if args.unneeded_temp_files:
        words += ["--unneeded-temp-files", *args.unneeded_temp_files]
    return " ".join(shlex.quote(word) for word in words)


def swap_job_args(command: str, snakemake_args: str, safe_args: str) -> str:
    """Snakemake's `command` with its own job arguments replaced by `safe_args`.

    `snakemake_args` is exactly what Snakemake inserted; it must occur once, else Snakemake
    changed how it builds commands and guessing would be unsafe.
    """
    if not snakemake_args.strip() or command.count(snakemake_args) != 1:
        raise RuntimeError(
            "Snakemake's job command no longer contains its job arguments exactly once, so "
            "the plugin cannot quote them safely; please report this with your Snakemake "
            "version."
        )
    return command.replace(snakemake_args, safe_args)


def one_interpreter(command: str) -> str:
    """Snakemake's two-step job command as one `python -c JOB_LAUNCHER` (see the module's
    docstring); any other command is returned as it is. Both steps' arguments stay exactly
    as Snakemake quoted them for bash: only the two `python -m snakemake` heads change."""
    if not command.startswith(DEPLOY_STEP) or command.count(JOB_STEP) != 1:
        return command
    deploy, job = command[len(DEPLOY_STEP) :].split(JOB_STEP)
    return f"{LAUNCHER_HEAD}--deploy-sources {deploy} {THEN} {job}"


# Characters bash takes literally outside quotes; anything else sends a command through bash.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=,@%+-")


def launcher_args(command: str) -> list[str] | None:
    """The launcher's arguments when `command` is `one_interpreter`'s output made only of
    plain words and single-quoted strings (what bash would pass, without running a shell),
    else None. An array child with such a command runs the launcher in its own interpreter
    (array.py); every other command, hostile wildcard values included, goes through bash."""
    if not command.startswith(LAUNCHER_HEAD):
        return None
    words: list[str] = []
    word: list[str] | None = None  # the parts of the word being read; None between words
    text = command[len(LAUNCHER_HEAD) :]
    i = 0
    while i < len(text):
        char = text[i]
        if char == " ":
            if word is not None:
                words.append("".join(word))
            word, i = None, i + 1
            continue
        if char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return None
            part, i = text[i + 1 : end], end + 1
        elif char in _PLAIN:
            part, i = char, i + 1
        else:
            return None
        if word is None:
            word = []
        word.append(part)
    if word is not None:
        words.append("".join(word))
    return words if THEN in words else None


def render_list_arg(flag: str, values: Iterable[object]) -> str:
    """`flag v1 v2 ...` with every value quoted for bash ("" when there are none)."""
    words = [str(value) for value in values]
    return " ".join(shlex.quote(word) for word in [flag, *words]) if words else ""


def wildcard_problem(target: TargetJob) -> str | None:
    """Why Snakemake's `--target-jobs` parser would change or reject a wildcard value, or None.

    Snakemake splits the wildcards at every comma (even inside quotes) and strips quote
    characters from both ends of each value, so such a job would fail inside Batch or,
    worse, run the job of other wildcard values.
    """
    for key, value in target.wildcards:
        if "," in value:
            why = "contains a comma"
        elif value != value.strip(_STRIPPED_QUOTES):
            why = "starts or ends with a quote character"
        else:
            continue
        return (
            f"Rule '{target.rule}': wildcard {key}={value!r} {why}, which Snakemake cannot "
            "pass to a job that runs elsewhere (its --target-jobs argument splits values at "
            "commas and strips quotes at their ends)."
        )
    return None


def job_cores(request: JobRequest) -> int:
    """The cores a job's Snakemake may use: the vCPUs it asked Batch for (per node for MPI).

    The Snakemake job of an MPI rule runs on the main node, which has
    tasks_per_node x cpus_per_task vCPUs like every node of the job.
    """
    layout = mpi_layout_of(request)
    if layout is not None:
        return layout.tasks_per_node * layout.cpus_per_task
    return max(1, math.ceil(vcpus_of(request)))


def wildcard_problems(targets: Iterable[TargetJob]) -> list[str]:
    """`wildcard_problem` over the target jobs of a run (groups included), one per rule."""
    problems: dict[str, str] = {}
    for target in targets:
        if target.rule not in problems:
            problem = wildcard_problem(target)
            if problem:
                problems[target.rule] = problem
    return list(problems.values())
