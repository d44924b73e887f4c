"""The real launcher's command line and environment on the job's nodes (pure).

Which launcher family it is (``--version``: Open MPI 4, Open MPI 5/PRRTE, MPICH/Intel
hydra), which options the rule's command already gives, and what the shim adds: the job's
hostfile, ``-n $AWSBATCH_MPI_TASKS`` when no process count is given, our ``rsh`` as
remote-launch agent, TCP restricted to the nodes' network and the run-as-root switches.
Whatever the command already says wins. Used by ``launch`` (standard library only).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import SHIM_NAMES, TOOL_MARK
from .hostfile import LOOPBACK_CIDR, NodeInfo, covering_cidr, shared_hostname

OPENMPI4 = "openmpi4"
OPENMPI5 = "openmpi5"
HYDRA = "hydra"
UNKNOWN = "unknown"

FLAVOUR_NAMES = {
    OPENMPI4: "Open MPI 4",
    OPENMPI5: "Open MPI 5 / PRRTE",
    HYDRA: "MPICH hydra",
    UNKNOWN: "unknown launcher",
}

SHIM_MARK = TOOL_MARK.encode()

# Launcher options that take values (so their values are not mistaken for the program).
OPENMPI_VALUES: dict[str, int] = {
    **dict.fromkeys(("-mca", "--mca", "-gmca", "--gmca", "--prtemca", "--pmixmca"), 2),
    **dict.fromkeys(
        """
            -am --am -app --app --bind-to -bind-to -c -np --np -n --n -N -cf --cartofile
            -cpu-list --cpu-list -cpu-set --cpu-set -cpus-per-proc --cpus-per-proc
            -cpus-per-rank --cpus-per-rank -debugger --debugger -default-hostfile
            --default-hostfile -H -host --host -hnp --hnp -hostfile --hostfile -launch-agent
            --launch-agent -machinefile --machinefile --map-by -map-by -max-restarts
            --max-restarts -max-vm-size --max-vm-size -npernode --npernode -npersocket
            --npersocket -ompi-server --ompi-server -output-filename --output-filename -path
            --path -personality --personality --ppr -ppr --prefix -prefix --preload-files
            -preload-files --rank-by -rank-by -report-events --report-events -report-pid
            --report-pid -report-uri --report-uri -rf --rankfile -stdin --stdin -timeout
            --timeout -tune --tune -wd --wd -wdir --wdir -x -xml-file --xml-file -xterm
            --xterm --output --display --runtime-options --pset --stream-buffering
            --pmix-prefix --dvm --dvm-uri
        """.split(),
        1,
    ),
}
OPENMPI_HOSTS = set(
    """
    -H -host --host -hostfile --hostfile -machinefile --machinefile -default-hostfile
    --default-hostfile -app --app -rf --rankfile
    """.split()
)
OPENMPI_COUNTS = set(
    """
    -n --n -np --np -c -N -npernode --npernode -npersocket --npersocket --ppr -ppr -app
    --app
    """.split()
)

HYDRA_VALUES: dict[str, int] = {
    **dict.fromkeys(("-genv", "-env"), 2),
    **dict.fromkeys(
        """
            -n -np -f -hostfile -machinefile -mfile -hosts -host -ppn -wdir -configfile
            -genvlist -envlist -bootstrap -bootstrap-exec -launcher -launcher-exec -rmk
            -demux -iface -nameserver -prepend-pattern -outfile-pattern -errfile-pattern
            -bind-to -map-by -membind -topolib -ckpointlib -ckpoint-prefix -ckpoint-num
            -ckpoint-interval -tmpdir -usize -gpus-per-proc -gpu-subdevs-per-proc -localhost
            -binding -print-rank-map
        """.split(),
        1,
    ),
}
HYDRA_HOSTS = {"-f", "-hostfile", "-machinefile", "-mfile", "-hosts", "-host", "-configfile"}
HYDRA_COUNTS = {"-n", "-np", "-configfile"}
HYDRA_LAUNCHER = {"-launcher", "-bootstrap", "-launcher-exec", "-bootstrap-exec"}


def detect_flavour(version_output: str) -> str:
    """Which launcher family printed this ``--version`` output."""
    text = version_output
    if "HYDRA" in text or "Intel(R) MPI" in text:
        return HYDRA
    if "PRRTE" in text or "prterun" in text or "prte " in text:
        return OPENMPI5
    match = re.search(r"(?:Open MPI|OpenRTE)\)?\s*(\d+)\.", text)
    if match:
        return OPENMPI5 if int(match.group(1)) >= 5 else OPENMPI4
    return UNKNOWN


def launcher_options(args: Sequence[str], values: Mapping[str, int]) -> set[str]:
    """Names of the launcher options in args, skipping program arguments.

    An MPMD command (``a : -n 2 b``) has option sections after each ``:``.
    """
    seen: set[str] = set()
    i = 0
    in_program = False
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == ":":
            in_program = False
        elif in_program:
            continue
        elif arg.startswith("-") and arg != "-":
            name, eq, value = arg.partition("=")
            seen.add(name)
            if not eq:
                value = args[i] if i < len(args) else ""
                i += values.get(name, 0)
            if name in ("--map-by", "-map-by") and value.startswith("ppr"):
                seen.add("--ppr")  # processes per resource: the count is implied
        else:
            in_program = True
    return seen


def find_real_launcher(name: str, path: str, shim_dir: str | None) -> str | None:
    """The first ``name`` on PATH that is not one of our shims."""
    skip = os.path.realpath(shim_dir) if shim_dir else None
    for directory in path.split(os.pathsep):
        if not directory or (skip and os.path.realpath(directory) == skip):
            continue
        candidate = os.path.join(directory, name)
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        try:
            with open(candidate, "rb") as handle:
                if SHIM_MARK in handle.read(512):
                    continue
        except OSError:
            continue
        return candidate
    return None


@dataclass
class LaunchPlan:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # additions to the environment
    added: list[str] = field(default_factory=list)  # for the log


def _default(env: Mapping[str, str], updates: dict[str, str], name: str, value: str) -> None:
    if name not in env:
        updates[name] = value


def build_launch(
    flavour: str,
    launcher: str,
    user_args: Sequence[str],
    nodes: Sequence[NodeInfo],
    tasks: int,
    rsh_agent: str,
    hostfile: str,
    hostfile_mpich: str,
    env: Mapping[str, str],
    is_root: bool,
) -> LaunchPlan:
    """The real launcher's argv and environment additions (pure: no I/O)."""
    updates: dict[str, str] = {}
    extra: list[str] = []
    cidr = covering_cidr([n.address for n in nodes])
    if flavour in (OPENMPI4, OPENMPI5):
        seen = launcher_options(user_args, OPENMPI_VALUES)
        if not seen & OPENMPI_HOSTS:
            extra += ["--hostfile", hostfile]
        if not seen & OPENMPI_COUNTS:
            extra += ["-n", str(tasks)]
        if flavour == OPENMPI4:
            updates["OMPI_MCA_plm_rsh_agent"] = rsh_agent
            _default(env, updates, "OMPI_MCA_rtc_hwloc_vmhole", "none")
            runtime = "OMPI_MCA_"
        else:
            updates["PRTE_MCA_plm_ssh_agent"] = rsh_agent
            runtime = "PRTE_MCA_"
        if shared_hostname(nodes):
            # Ranks on different "nodes" would think they share memory, and crash.
            _default(env, updates, "OMPI_MCA_btl", "self,tcp")
        if "OMPI_MCA_btl_tcp_if_exclude" not in env:
            _default(env, updates, "OMPI_MCA_btl_tcp_if_include", cidr)
        # PRRTE's out-of-band transport never uses loopback interfaces, even when told to;
        # with loopback "nodes" (local emulation) it must keep its default choice.
        loopback_only = cidr == LOOPBACK_CIDR
        if f"{runtime}oob_tcp_if_exclude" not in env and not (
            flavour == OPENMPI5 and loopback_only
        ):
            _default(env, updates, f"{runtime}oob_tcp_if_include", cidr)
        _default(env, updates, "PMIX_MCA_gds", "hash")
        if is_root:
            roots = ["OMPI"] + (["PRTE"] if flavour == OPENMPI5 else [])
            for prefix in roots:
                _default(env, updates, f"{prefix}_ALLOW_RUN_AS_ROOT", "1")
                _default(env, updates, f"{prefix}_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    elif flavour == HYDRA:
        seen = launcher_options(user_args, HYDRA_VALUES)
        if not seen & HYDRA_HOSTS:
            extra += ["-f", hostfile_mpich]
        if not seen & HYDRA_COUNTS:
            extra += ["-n", str(tasks)]
        if not seen & HYDRA_LAUNCHER:
            extra += ["-launcher", "ssh", "-launcher-exec", rsh_agent]
    added = list(extra) + [f"{k}={v}" for k, v in updates.items()]
    return LaunchPlan([launcher, *extra, *user_args], updates, added)


def launcher_env(env: Mapping[str, str], bin_dir: str) -> dict[str, str]:
    """The real launcher's environment, without the shims.

    Some launchers are scripts that call ``mpiexec`` by name (Intel MPI's ``mpirun``); found
    through PATH or the exported bash functions, that would be the shim again, which would
    add its arguments a second time.
    """
    functions = {f"BASH_FUNC_{name}%%" for name in SHIM_NAMES}  # see agent.shim_functions
    clean = {k: v for k, v in env.items() if k not in functions}
    skip = os.path.realpath(bin_dir)
    clean["PATH"] = os.pathsep.join(
        part
        for part in env.get("PATH", os.defpath).split(os.pathsep)
        if not part or os.path.realpath(part) != skip
    )
    return clean
