"""The `awsbatch-mpi` command: `local` (the emulation) and `demo`."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="awsbatch-mpi",
        description="Tools for the Snakemake AWS Batch executor plugin.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    local = sub.add_parser("local", help="Serve a local AWS Batch/S3/Logs emulation.")
    local.add_argument("--port", type=int, default=4566, help="Port on 127.0.0.1 (default 4566).")
    demo = sub.add_parser("demo", help="Run the example workflow on the local emulation.")
    demo.add_argument("--fresh", action="store_true", help="Rerun every job from scratch.")
    demo.add_argument(
        "--workdir", default=None, help="Where to copy the example (default: ./awsbatch-mpi-demo)."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "local":
        from .local import EmulationError
        from .local.server import describe_environment, serve_forever

        try:
            serve_forever(
                args.port, on_ready=lambda emu: print(describe_environment(emu), flush=True)
            )
        except EmulationError as err:
            print(f"awsbatch-mpi local: {err}", file=sys.stderr)
            return 1
        return 0
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(fresh=args.fresh, workdir=args.workdir)
    return 2


if __name__ == "__main__":
    sys.exit(main())
