#!/usr/bin/env bash
# Provide the base image the Dockerfiles start FROM (python:3.11.13-slim-bookworm).
#
# 1. If the engine already has it, nothing to do (unless --force).
# 2. Else pull it from the registry: the real image is always preferred.
# 3. Else (air-gapped sites, CI without a registry) build a stand-in from Debian packages:
#    debootstrap bookworm (minbase) + Debian's Python 3.11 with venv and pip, `python`,
#    `python3`, `pip`, `pip3` in /usr/local/bin where the official image has them, no
#    EXTERNALLY-MANAGED marker (pip installs system-wide, as in the official image), and the
#    host's extra CA certificates (/usr/local/share/ca-certificates/*.crt) trusted, so that
#    pip inside image builds works behind a TLS-inspecting proxy. ~1-2 minutes, ~190 MB.
#
# Usage (as root: debootstrap and chroot need it):
#   containers/build-base.sh [--force] [--stand-in] [IMAGE]
#     --force      rebuild even if the engine has IMAGE
#     --stand-in   do not try to pull; build the stand-in
#     IMAGE        default: the FROM of containers/Dockerfile
# Environment: DEBIAN_MIRROR (default: the first Debian URI in
#   /etc/apt/sources.list.d/debian.sources, else http://deb.debian.org/debian),
#   EXTRA_CA_DIR (default /usr/local/share/ca-certificates).
set -euo pipefail
cd "$(dirname "$0")/.."

force=0 stand_in=0 image=""
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --stand-in) stand_in=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "build-base.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) image="$arg" ;;
  esac
done
if [ -z "$image" ]; then
  image=$(awk 'toupper($1) == "FROM" { print $2; exit }' containers/Dockerfile)
fi

if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "build-base.sh: $image is already present."
  exit 0
fi
if [ "$stand_in" = 0 ] && timeout 300 docker pull "$image" >/dev/null 2>&1; then
  echo "build-base.sh: pulled $image."
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "build-base.sh: $image cannot be pulled and building the stand-in needs root" \
       "(debootstrap, chroot). Run it as root, or pull $image on a machine with registry" \
       "access and 'docker save'/'docker load' it here." >&2
  exit 1
fi
command -v debootstrap >/dev/null || {
  echo "build-base.sh: debootstrap is missing (Debian/Ubuntu: apt-get install debootstrap)." >&2
  exit 1
}

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '$1 == "URIs:" && $2 !~ /security/ { print $2; exit }' \
    /etc/apt/sources.list.d/debian.sources)
fi
mirror=${mirror:-http://deb.debian.org/debian}
ca_dir=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}

root=$(mktemp -d /tmp/awsbatch-mpi-base.XXXXXX)
cleanup() {
  for fs in dev/pts dev sys proc; do
    mountpoint -q "$root/$fs" 2>/dev/null && umount -l "$root/$fs"
  done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

echo "build-base.sh: $image cannot be pulled; building a stand-in from $mirror (bookworm)."
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
mount -t proc proc "$root/proc"
mount --bind /sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "$ca_dir/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp "$ca_dir"/*.crt "$root/usr/local/share/ca-certificates/"
fi
chroot "$root" /bin/sh -euc '
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-pip python-is-python3 ca-certificates bash >/dev/null
  update-ca-certificates >/dev/null
  rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
  for name in python python3 pip pip3; do ln -sf "/usr/bin/$name" "/usr/local/bin/$name"; done
  apt-get clean
  rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
    /usr/share/doc/* /usr/share/man/* /usr/share/info/*
  find /usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +
'
: > "$root/etc/resolv.conf"
for fs in dev/pts dev sys proc; do umount -l "$root/$fs"; done

tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$image" >/dev/null
echo "build-base.sh: built the stand-in $image ($(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))."
