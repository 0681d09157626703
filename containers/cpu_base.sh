#!/usr/bin/env bash
# Make the CPU image's base locally, without a container registry: a Debian 12 root filesystem from
# Debian's own packages (mmdebstrap) imported into podman's storage. It holds what the Dockerfile
# expects of a base (python3 with venv, as the NGC base provides python) and vLLM's libnuma.
#
#   containers/cpu_base.sh [--tag NAME:TAG] [--mirror URL]
#
#   --tag      image name (default localhost/redone-cpu-base:bookworm, what build.sh --variant cpu uses)
#   --mirror   Debian mirror (default http://deb.debian.org/debian); a snapshot.debian.org URL, e.g.
#              http://snapshot.debian.org/archive/debian/20251115T000000Z, pins every package version
# The tarball's timestamps are fixed (SOURCE_DATE_EPOCH, default 2025-01-01), so the same mirror
# state gives the same root filesystem. Needs root, mmdebstrap and podman (Debian packages).
set -euo pipefail

tag=localhost/redone-cpu-base:bookworm
mirror=http://deb.debian.org/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "cpu_base.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in mmdebstrap podman; do
  command -v "$tool" >/dev/null || {
    echo "cpu_base.sh: $tool not found (apt-get install mmdebstrap podman)" >&2; exit 1; }
done

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# minbase: essential packages and apt only; documentation and locales are left out.
mmdebstrap --variant=minbase --quiet \
  --include=python3,python3-venv,libnuma1,ca-certificates \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  bookworm "$work/rootfs.tar" "$mirror"
podman import --quiet --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
  "$work/rootfs.tar" "$tag" >/dev/null
echo "base image $tag: Debian bookworm from $mirror"
