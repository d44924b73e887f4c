#!/usr/bin/env bash
# Build the stock-like tool images the "any image" tests run rules in (issue 22): images with
# no Python and no Snakemake, as a rule's `container:` would name them. No registry needed.
#
#   awsbatch-anyimage-busybox:1   Debian's static busybox (busybox-static) as /bin/sh and
#                                 the usual tools, /etc/passwd, /tmp, uid 1000 in /work;
#                                 no C library at all (~2 MB)
#   awsbatch-anyimage-noshell:1   nothing but /etc/passwd: no /bin/sh (the clear error)
#   awsbatch-anyimage-openmpi:1   the MPI job image (containers/Dockerfile.mpi) with every
#                                 Python removed: Open MPI's mpirun and mpicc, bash, no Python
#
# Usage: containers/test-images.sh [--force]   (needs the MPI image for the second one;
# `make images` builds it). Each image is built only when missing, unless --force.
set -euo pipefail
cd "$(dirname "$0")/.."
force=0
[ "${1:-}" = "--force" ] && force=1
BUSYBOX=awsbatch-anyimage-busybox:1
OPENMPI=awsbatch-anyimage-openmpi:1
NOSHELL=awsbatch-anyimage-noshell:1
MPI_IMAGE=${MPI_IMAGE:-snakemake-awsbatch-mpi:0.1.0-mpi}

missing() { [ "$force" = 1 ] || ! docker image inspect "$1" >/dev/null 2>&1; }

if missing "$BUSYBOX"; then
  work=$(mktemp -d /tmp/awsbatch-anyimage-busybox.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download busybox-static >/dev/null 2>&1) || {
    echo "test-images.sh: apt-get download busybox-static failed (is a Debian mirror reachable?)" >&2
    exit 1
  }
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/deb"
  root="$work/root"
  mkdir -p "$root"/{bin,etc,tmp,work,home/user,root}
  cp "$work/deb/bin/busybox" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' \
    > "$root/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp"
  # /work and the home directory belong to uid 1000, the user jobs run as.
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$work/base.tar" --exclude=./work \
    --exclude=./home/user .
  tar -C "$root" --numeric-owner --owner=1000 --group=1000 -rf "$work/base.tar" ./work ./home/user
  docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV HOME=/home/user' \
    --change 'USER 1000:1000' \
    --change 'WORKDIR /work' \
    --change 'CMD ["/bin/sh"]' \
    "$work/base.tar" "$BUSYBOX" >/dev/null
  echo "test-images.sh: built $BUSYBOX ($(docker image inspect --format '{{.Size}}' "$BUSYBOX" | awk '{ printf "%.1f MB", $1 / 1e6 }'))."
fi

if missing "$NOSHELL"; then
  work=$(mktemp -d /tmp/awsbatch-anyimage-noshell.XXXXXX)
  mkdir -p "$work/etc"
  printf 'root:x:0:0:root:/:/nonexistent\n' > "$work/etc/passwd"
  tar -C "$work" --numeric-owner --owner=0 --group=0 -c . | docker import - "$NOSHELL" >/dev/null
  rm -rf "$work"
  echo "test-images.sh: built $NOSHELL."
fi

if missing "$OPENMPI"; then
  docker image inspect "$MPI_IMAGE" >/dev/null 2>&1 || {
    echo "test-images.sh: $MPI_IMAGE is missing: run make images first." >&2
    exit 1
  }
  cid=$(docker create --user 0 "$MPI_IMAGE" /bin/true)
  # A flat copy without Python (not a layer that hides it): export, drop, import.
  docker export "$cid" \
    | python3 -c '
import sys, tarfile
src = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
dst = tarfile.open(fileobj=sys.stdout.buffer, mode="w|")
for member in src:
    name = member.name.lstrip("./")
    base = name.rsplit("/", 1)[-1]
    if base.startswith(("python", "pip", "pydoc", "2to3", "idle")) and name.startswith(("usr/bin/", "usr/local/bin/")):
        continue
    if name.startswith(("usr/lib/python3", "usr/local/lib/python3", "usr/lib/x86_64-linux-gnu/libpython", "usr/lib/aarch64-linux-gnu/libpython")):
        continue
    dst.addfile(member, src.extractfile(member) if member.isfile() else None)
dst.close()
' \
    | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV HOME=/home/snakemake' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'USER 1000:1000' \
      --change 'WORKDIR /work' \
      --change 'CMD ["/bin/bash"]' \
      - "$OPENMPI" >/dev/null
  docker rm "$cid" >/dev/null
  if docker run --rm "$OPENMPI" sh -c 'command -v python3 || command -v python' >/dev/null; then
    echo "test-images.sh: $OPENMPI still has a Python." >&2
    exit 1
  fi
  echo "test-images.sh: built $OPENMPI ($(docker image inspect --format '{{.Size}}' "$OPENMPI" | awk '{ printf "%.0f MB", $1 / 1e6 }'))."
fi
