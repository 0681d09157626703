#!/usr/bin/env bash
# Build the GPU training image from containers/Dockerfile; optionally import it for pyxis with enroot.
#
#   containers/build.sh [--tag NAME:TAG] [--engine docker|podman] [--sqsh DIR] [-- EXTRA BUILD ARGS]
#
#   --tag      image name (default redone:<git short sha>, plus -dirty for uncommitted changes)
#   --engine   docker (default where present) or podman
#   --sqsh     after building, `enroot import` the image into DIR/<name>+<tag>.sqsh: the file that
#              `redone slurm submit --container-image DIR/...sqsh` (pyxis) runs
#   extra args go to the build, e.g. -- --build-arg TORCH_CUDA_ARCH_LIST="9.0 10.0"
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sha=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ]; then
  sha="$sha-dirty"
fi
tag="redone:$sha"
engine=""
sqsh_dir=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --sqsh) sqsh_dir=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$engine" ]; then
  if command -v docker >/dev/null; then engine=docker; else engine=podman; fi
fi
command -v "$engine" >/dev/null || { echo "build.sh: $engine not found" >&2; exit 1; }

echo "building $tag with $engine from $repo/containers/Dockerfile"
"$engine" build -f "$repo/containers/Dockerfile" -t "$tag" "${extra[@]}" "$repo"

if [ -n "$sqsh_dir" ]; then
  command -v enroot >/dev/null || { echo "build.sh: enroot not found (needed for --sqsh)" >&2; exit 1; }
  mkdir -p "$sqsh_dir"
  out="$sqsh_dir/${tag//:/+}.sqsh"
  # dockerd:// reads from the local docker daemon, podman:// from local podman storage.
  enroot import --output "$out" "${engine/docker/dockerd}://$tag"
  echo "pyxis image: $out  (redone slurm submit ... --container-image $out)"
fi
