#!/usr/bin/env bash
# Run one rank's command in an image with podman, as a job step runs it (a stand-in for pyxis where
# only podman is installed; the CPU image's tests use it under the local Slurm).
#
#   containers/podman_run.sh [--volume SRC:DST]... IMAGE COMMAND [ARGS...]
#
# The container shares the host's network and IPC (rendezvous, gloo and vLLM's shared memory), works in
# the current directory (mounted at the same path, as pyxis's --container-workdir), and gets the
# launcher's environment (SLURM_*, RANK, WORLD_SIZE, MASTER_ADDR ..., REDONE_*, OMP_NUM_THREADS).
# podman forwards SIGTERM/SIGUSR1 to the command, so the trainer checkpoints on a stop signal as it
# does outside a container; the exit code is the command's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=containers/podman_limits.sh
source "$here/podman_limits.sh"

mounts=(--volume "$PWD:$PWD")
while [ $# -gt 0 ]; do
  case "$1" in
    --volume) mounts+=(--volume "$2"); shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "podman_run.sh: expected IMAGE COMMAND [ARGS...] (see --help)" >&2; exit 2; }
image=$1
shift

passed=()
for name in 'SLURM_*' 'REDONE_*' 'NCCL_*' 'TORCH_*' RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE \
  MASTER_ADDR MASTER_PORT OMP_NUM_THREADS PYTHONUNBUFFERED PYTHONWARNINGS CUDA_DEVICE_MAX_CONNECTIONS; do
  passed+=(--env "$name")
done
exec podman run --rm --network host --ipc host "${podman_limits[@]}" "${mounts[@]}" --workdir "$PWD" \
  "${passed[@]}" "$image" "$@"
