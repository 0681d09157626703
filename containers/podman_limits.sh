# shellcheck shell=bash
# Sourced by the podman scripts here. podman gives containers 1048576 open files and processes by
# default, which fails where the host allows fewer ("error setting rlimit ... operation not
# permitted"): containers get the caller's hard limits instead, processes capped at the kernel's pid_max.
nproc=$(ulimit -Hu)
pid_max=$(cat /proc/sys/kernel/pid_max)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc=$pid_max; fi
# shellcheck disable=SC2034  # used by the scripts that source this file
podman_limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$nproc:$nproc")
unset nproc pid_max
