#!/usr/bin/env bash
# Build the training image from containers/Dockerfile; optionally import it for pyxis with enroot.
#
#   containers/build.sh [--variant gpu|cpu] [--tag NAME:TAG] [--engine docker|podman] [--sqsh DIR]
#                       [--host-pip] [-- EXTRA BUILD ARGS]
#
#   --variant  gpu (default): on the NGC PyTorch base; cpu: with podman on a base made locally from
#              Debian's packages (containers/cpu_base.sh, run first if the base is missing)
#   --tag      image name (default redone:<git short sha>, plus -cpu, plus -dirty for uncommitted changes)
#   --engine   docker (default where present) or podman; the cpu variant always uses podman
#   --sqsh     after building, `enroot import` the image into DIR/<name>+<tag>.sqsh: the file that
#              `redone slurm submit --container-image DIR/...sqsh` (pyxis) runs
#   --host-pip pip inside the build uses this machine's pip setup (podman only): its settings, CA bundle
#              and local wheel directories and indexes are mounted read-only, and the CPU torch comes from
#              them as in install.sh. For networks that intercept TLS, or a local package mirror.
#   extra args go to the build, e.g. -- --build-arg TORCH_CUDA_ARCH_LIST="9.0 10.0"
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sha=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
variant=gpu
tag=""
engine=""
sqsh_dir=""
host_pip=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) variant=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --sqsh) sqsh_dir=$2; shift 2 ;;
    --host-pip) host_pip=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$variant" in
  gpu) ;;
  cpu) sha="$sha-cpu"
    [ "${engine:-podman}" = podman ] || { echo "build.sh: the cpu variant builds with podman" >&2; exit 2; }
    engine=podman ;;
  *) echo "build.sh: --variant $variant: expected gpu or cpu" >&2; exit 2 ;;
esac
if [ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ]; then
  sha="$sha-dirty"
fi
tag=${tag:-redone:$sha}
if [ -z "$engine" ]; then
  if command -v docker >/dev/null; then engine=docker; else engine=podman; fi
fi
command -v "$engine" >/dev/null || { echo "build.sh: $engine not found" >&2; exit 1; }
if [ -n "$host_pip" ] && [ "$engine" != podman ]; then
  echo "build.sh: --host-pip mounts into the build, which needs podman (--engine podman)" >&2; exit 2
fi

full_sha=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
case "$sha" in *-dirty) full_sha="$full_sha-dirty" ;; esac
args=(--build-arg "VARIANT=$variant" --build-arg "REDONE_GIT_SHA=$full_sha")
if [ "$engine" = podman ]; then
  # shellcheck source=containers/podman_limits.sh
  source "$repo/containers/podman_limits.sh"
  # docker format: the OCI format has no SHELL, and the Dockerfile's RUN lines rely on bash's pipefail.
  args+=(--format docker "${podman_limits[@]}")
fi
if [ "$variant" = cpu ]; then
  base=localhost/redone-cpu-base:bookworm
  podman image exists "$base" || "$repo/containers/cpu_base.sh" --tag "$base"
  args+=(--pull=never --build-arg "BASE_IMAGE=$base")
fi

# The host's pip settings as one pip.conf (environment variables win over files, as in pip), mounted
# with every local path they name (CA bundle, wheel directories, file:// indexes).
host_pip_args() {
  local py line key value section last="" path conf
  local -A settings
  py=$(command -v python3 || command -v python)
  while IFS= read -r line; do
    key=${line%%=*} value=${line#*=}
    value=${value#\'} value=${value%\'}
    case "$key" in
      :env:.*) settings[global.${key#:env:.}]=$value ;;
      *) [ -n "${settings[$key]+set}" ] || settings[$key]=$value ;;
    esac
  done < <("$py" -m pip config list)
  conf="$work/pip.conf"
  : >"$conf"
  while IFS= read -r key; do
    section=${key%%.*}
    [ "$section" = "$last" ] || { echo "[$section]" >>"$conf"; last=$section; }
    echo "${key#*.} = ${settings[$key]}" >>"$conf"
    for path in ${settings[$key]}; do
      case "$path" in
        # a local index (PEP 503: <root>/simple/<name>/) links to its files relative to its root
        file://*) path=${path#file://}; path=${path%/}; path=${path%/simple} ;;
        /*) ;;
        *) continue ;;
      esac
      if [ -e "$path" ]; then args+=(--volume "$path:$path:ro"); fi
    done
  done < <(printf '%s\n' "${!settings[@]}" | sort)
  args+=(--volume "$conf:/etc/pip.conf:ro" --build-arg TORCH_INDEX_URL=)
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$host_pip" ]; then
  host_pip_args
fi

echo "building $tag ($variant) with $engine from $repo/containers/Dockerfile"
"$engine" build -f "$repo/containers/Dockerfile" -t "$tag" "${args[@]}" "${extra[@]}" "$repo"

if [ -n "$sqsh_dir" ]; then
  command -v enroot >/dev/null || { echo "build.sh: enroot not found (needed for --sqsh)" >&2; exit 1; }
  mkdir -p "$sqsh_dir"
  out="$sqsh_dir/${tag//:/+}.sqsh"
  # dockerd:// reads from the local docker daemon, podman:// from local podman storage.
  enroot import --output "$out" "${engine/docker/dockerd}://$tag"
  echo "pyxis image: $out  (redone slurm submit ... --container-image $out)"
fi
