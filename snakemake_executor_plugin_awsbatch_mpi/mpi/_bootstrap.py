"""Start ``launch`` or ``rsh`` without importing the plugin package.

``python -m snakemake_executor_plugin_awsbatch_mpi.mpi.launch`` would first import the
package's ``__init__``, which imports the executor and Snakemake: half a second on every
mpirun call and every remote daemon launch, and a failure in images that lack them. The
shims run this file instead; it registers a bare stand-in for the parent package (only its
``__path__``), so just this subpackage and the standard library get imported.

Usage (written into the shims by the agent): ``python _bootstrap.py launch mpirun ARGS...``
or ``python _bootstrap.py rsh ARGS...``; ``python _bootstrap.py agent`` runs the node agent
itself the same way (what ``python -m snakemake_executor_plugin_awsbatch_mpi.mpi`` does,
minus the package import).
"""

import importlib
import os
import sys
import types


def _run() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]  # this directory: its module names must not shadow anything
    package_dir = os.path.dirname(here)
    package = os.path.basename(package_dir)
    if package not in sys.modules:
        stub = types.ModuleType(package)
        stub.__path__ = [package_dir]
        sys.modules[package] = stub
    tool, args = sys.argv[1], sys.argv[2:]
    if tool == "launch":
        launch = importlib.import_module(f"{package}.mpi.launch")
        return launch.main(args[1:], name=args[0])
    if tool == "agent":
        agent = importlib.import_module(f"{package}.mpi.agent")
        return agent.main()
    if tool == "rsh":
        rsh = importlib.import_module(f"{package}.mpi.rsh")
        return rsh.main(args)
    sys.stderr.write(f"_bootstrap: unknown tool {tool!r}\n")
    return 2


if __name__ == "__main__":
    sys.exit(_run())
