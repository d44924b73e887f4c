"""``python -m snakemake_executor_plugin_awsbatch_mpi.mpi``: the container entry point."""

import sys

from .agent import main

sys.exit(main())
