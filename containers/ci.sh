#!/usr/bin/env bash
# CI for the container images and --runtime docker (called by .ci/run after `make test`):
# Debian's Docker engine and debootstrap (installed as root with apt-get), dockerd started when
# no engine answers (and stopped at the end by its PID), the base and both images, their sizes,
# then tests/local/test_docker_runtime.py with AWSBATCH_MPI_REQUIRE_DOCKER=1 (a missing engine
# fails instead of skipping): jobs in the images, an over-memory job, a timeout, a multi-node
# job, the example workflow with its MPI rule's 3 nodes as 3 containers, and the example
# application image (containers/example-app, built by `make images`) as a 3-node MPI rule.
# Then rules in any image (issue 22): containers/test-images.sh (Python-less images, ~15 s) and
# the runtime tests (the runtime image comes from `make images`, ~45 s to build); together
# 1.5-3 minutes more on 2 cores, depending on the load.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
dockerd_pid=""
stop_dockerd() {
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
  fi
}
trap stop_dockerd EXIT

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  dockerd >/tmp/awsbatch-mpi-dockerd.log 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
echo "containers: engine ready after $(( $(date +%s) - started )) s"
make images
echo "containers: images ready after $(( $(date +%s) - started )) s"
# BuildKit too, with a CLI that has it built in (Debian's docker.io CLI does; a bare newer CLI
# needs the buildx plugin, which no Debian package here provides).
buildkit_log=/tmp/awsbatch-mpi-buildkit.log
buildkit_cli=""
for cli in docker /usr/bin/docker; do
  if DOCKER_BUILDKIT=1 "$cli" build -q -f containers/Dockerfile -t awsbatch-mpi-buildkit-check . \
      >"$buildkit_log" 2>&1; then
    buildkit_cli=$cli
    break
  elif ! grep -q "buildx component is missing" "$buildkit_log"; then
    cat "$buildkit_log" >&2
    echo "containers: the BuildKit build of the job image failed ($cli)" >&2
    exit 1
  fi
done
if [ -n "$buildkit_cli" ]; then
  docker rmi awsbatch-mpi-buildkit-check >/dev/null
  echo "containers: job image built with BuildKit ($buildkit_cli) after $(( $(date +%s) - started )) s"
else
  echo "containers: no docker CLI here has BuildKit; built with the classic builder only"
fi
.venv/bin/python benchmarks/images.py --no-build
AWSBATCH_MPI_REQUIRE_DOCKER=1 .venv/bin/pytest -q tests/local/test_docker_runtime.py
# Rules in any image (issue 22): the Python-less test images (seconds), then the runtime in
# them, through the plugin on the docker emulation (shell, script: and a 2-node MPI rule).
containers/test-images.sh
echo "containers: test images ready after $(( $(date +%s) - started )) s"
AWSBATCH_MPI_REQUIRE_DOCKER=1 .venv/bin/pytest -q tests/local/test_anyimage_runtime.py \
  tests/local/test_anyimage_workflow.py
echo "containers: done in $(( $(date +%s) - started )) s"
