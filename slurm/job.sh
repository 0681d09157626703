# The body of every rendered sbatch script (`redone slurm submit` puts the #SBATCH lines and the
# REDONE_* settings above it). Launches the job step (a pipeline job runs `redone run` here, which
# launches a step per stage), turns the time-limit warning into a checkpoint and a requeue, and fails
# loudly when a rank fails.
#
# Settings (from the rendered header):
#   REDONE_CMD            the command every rank runs: redone <stage> RECIPE --set ...
#                         (driver mode: the pipeline, redone run RECIPE ..., run once by this script)
#   REDONE_MODE           ranks (a job step runs REDONE_CMD on every rank) | driver (this script runs it;
#                         it starts each stage as a job step of its own)
#   REDONE_LAUNCHER       srun (one task per rank) | torchrun (one task per node, torchrun starts the ranks)
#   REDONE_PROCS_PER_NODE ranks per node
#   REDONE_TORCHRUN       the torchrun executable (torchrun launcher only)
#   REDONE_SRUN_ARGS      extra srun options (container image, mounts, workdir, cpus per task)
#   REDONE_RANK_WRAPPER   what each rank's task runs around the command (bash -c; see slurm/submit.py)
#   REDONE_LOG_DIR        job logs go here; rank (or node) logs into REDONE_LOG_DIR/<job name>-<job id>/
#   REDONE_GRACE_S        seconds the trainer gets to checkpoint after a stop signal
#   REDONE_ROLLOUT_CMD    grpo.placement: separate: the rollout process (redone rollout-server ...), run
#                         as a one-task step on the job's last node; the trainer's step gets the others
#                         (empty: no rollout process)
set -uo pipefail

# GPU-cluster defaults (H100, NCCL). A value exported before sbatch, or given with --env, wins.
export CUDA_DEVICE_MAX_CONNECTIONS=${CUDA_DEVICE_MAX_CONNECTIONS:-1}   # megatron's TP/SP overlap ordering
export TORCH_NCCL_AVOID_RECORD_STREAMS=${TORCH_NCCL_AVOID_RECORD_STREAMS:-1}  # frees comm buffers early
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}   # NVLink SHARP buffers cost GPU memory for little gain
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}     # what torchrun sets; the same under plain srun
export PYTHONUNBUFFERED=1                        # rank logs are current when a job dies
# How long torchrun waits for its workers after forwarding a stop signal (read by torch releases that
# have torchrun --shutdown-timeout; older ones wait 30 s).
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-$REDONE_GRACE_S}

say() { echo "[redone-slurm $(date +%FT%T)] $*"; }

restart=${SLURM_RESTART_COUNT:-0}
mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
rollout_host=""
if [ "${#REDONE_ROLLOUT_CMD[@]}" -gt 0 ]; then
  rollout_host=${hosts[-1]}
  unset 'hosts[-1]'
fi
export MASTER_ADDR=${hosts[0]}
# Derived from the job and its restart, so that a requeued run never meets its predecessor's socket.
export MASTER_PORT=$((20000 + (SLURM_JOB_ID * 16 + restart) % 20000))
rank_logs="$REDONE_LOG_DIR/$SLURM_JOB_NAME-$SLURM_JOB_ID"
mkdir -p "$rank_logs"
if [ -n "$rollout_host" ]; then
  # The rollout process connects to the first trainer rank on the port after MASTER_PORT's block.
  rollout_port=$((20000 + (MASTER_PORT - 20000 + 8) % 20000))
  REDONE_CMD+=(--set "grpo.rollout_port=$rollout_port")
  REDONE_ROLLOUT_CMD+=(--set "grpo.rollout_port=$rollout_port" --address "$MASTER_ADDR:$rollout_port")
fi
# A rank whose trainer exits 3 (checkpointed after a stop signal) touches this file and exits 0 (the
# rank wrapper): this script, and the pipeline, tell a stopped run from a finished one by it.
export REDONE_STOPPED_MARK="$rank_logs/stopped-restart-$restart"
rm -f "$REDONE_STOPPED_MARK"

say "job $SLURM_JOB_ID restart $restart (SLURM_RESTART_COUNT): ${#hosts[@]} nodes (${hosts[*]})," \
  "$REDONE_PROCS_PER_NODE ranks per node, launcher $REDONE_LAUNCHER, rendezvous $MASTER_ADDR:$MASTER_PORT"
printf -v cmd_line ' %q' "${REDONE_CMD[@]}"
say "command:$cmd_line"

if [ "$REDONE_MODE" = driver ]; then
  say "the pipeline runs here and starts each unit as a job step; a unit's output (every rank's," \
    "labelled) goes to <run_dir>/<unit>/log.txt"
  step=("${REDONE_CMD[@]}")
else
  say "rank logs: $rank_logs/"
  step=(srun --kill-on-bad-exit=1 --open-mode=append "${REDONE_SRUN_ARGS[@]}")
  if [ -n "$rollout_host" ]; then  # the trainer's nodes only (the job's task count includes the rollout's)
    tasks=$((${#hosts[@]} * REDONE_PROCS_PER_NODE))
    if [ "$REDONE_LAUNCHER" = torchrun ]; then tasks=${#hosts[@]}; fi
    step+=(--nodes="${#hosts[@]}" --ntasks="$tasks" --nodelist="$(IFS=,; echo "${hosts[*]}")")
  fi
  if [ "$REDONE_LAUNCHER" = torchrun ]; then
    step+=(--ntasks-per-node=1 --output="$rank_logs/node-%n.log"
      "$REDONE_TORCHRUN" --nnodes="${#hosts[@]}" --nproc-per-node="$REDONE_PROCS_PER_NODE"
      --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv-id="$SLURM_JOB_ID-$restart"
      --no-python)
  else
    step+=(--ntasks-per-node="$REDONE_PROCS_PER_NODE" --output="$rank_logs/rank-%t.log")
  fi
  step+=(bash -c "$REDONE_RANK_WRAPPER" redone-rank "${REDONE_CMD[@]}")
fi

# USR1 is the job's own warning before its time limit (--signal=B:USR1@N): this script asks the ranks
# to checkpoint (in driver mode through the pipeline, which passes the signal on to its running step and
# starts no other), then requeues the job. TERM means Slurm itself is ending the job (scancel, preemption,
# scontrol requeue, time limit): Slurm signals the ranks too (scancel would only be refused while the
# job is being requeued), they checkpoint, and Slurm decides whether the job comes back.
warned="" ended_by_slurm="" pid=""
# shellcheck disable=SC2317,SC2329  # called from the traps
on_usr1() {
  warned=1
  say "got SIGUSR1 (time limit near): asking every rank to checkpoint at its next step and exit"
  if [ "$REDONE_MODE" = driver ]; then
    if [ -n "$pid" ]; then kill -TERM "$pid"; fi  # else at its start, below
  else
    scancel --signal=TERM "$SLURM_JOB_ID"  # the job's steps, not this script
  fi
}
# shellcheck disable=SC2317,SC2329
on_term() {
  ended_by_slurm=1
  say "got SIGTERM: Slurm is ending the job; the ranks checkpoint at their next step and exit"
}
trap on_usr1 USR1
trap on_term TERM

rollout_pid=""
if [ -n "$rollout_host" ]; then
  say "rollout process on $rollout_host, connecting to $MASTER_ADDR:$rollout_port: $rank_logs/rollout.log"
  srun --nodes=1 --ntasks=1 --nodelist="$rollout_host" --open-mode=append --output="$rank_logs/rollout.log" \
    "${REDONE_SRUN_ARGS[@]}" "${REDONE_ROLLOUT_CMD[@]}" &
  rollout_pid=$!
fi
"${step[@]}" &
pid=$!
if [ -n "$warned" ] && [ "$REDONE_MODE" = driver ]; then kill -TERM "$pid"; fi
# A trapped signal interrupts `wait`: keep waiting for the step itself.
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
wait "$pid"
rc=$?
if [ -n "$rollout_pid" ]; then
  # The trainer stops the rollout process when it ends; one still running after a minute is killed.
  for _ in $(seq 60); do kill -0 "$rollout_pid" 2>/dev/null || break; sleep 1; done
  kill -KILL "$rollout_pid" 2>/dev/null
  wait "$rollout_pid" 2>/dev/null
fi

if [ -e "$REDONE_STOPPED_MARK" ] || { [ "$REDONE_MODE" = driver ] && [ "$rc" -eq 3 ]; }; then
  if [ -n "$ended_by_slurm" ]; then
    say "checkpointed and stopped (step exit $rc); Slurm is ending the job: a requeued run resumes"
    exit "$rc"
  fi
  say "checkpointed and stopped (step exit $rc): requeueing, the run resumes as restart $((restart + 1))"
  if scontrol requeue "$SLURM_JOB_ID"; then
    exit 0
  fi
  say "scontrol requeue failed: resubmit $REDONE_LOG_DIR/job-$SLURM_JOB_ID.sbatch to resume"
  exit 3
fi
if [ "$rc" -eq 0 ]; then
  say "finished"
  exit 0
fi
if [ -n "$ended_by_slurm" ]; then
  say "stopped by Slurm before a checkpoint (step exit $rc); a requeued run resumes from the last one"
  exit "$rc"
fi
if [ -n "$warned" ]; then
  say "stopped at the time-limit warning before a checkpoint (step exit $rc): requeueing"
  scontrol requeue "$SLURM_JOB_ID" && exit 0
fi
if [ "$REDONE_MODE" = driver ]; then
  say "FAILED: the pipeline exited with code $rc (its message above names the unit and shows its log)"
  exit "$rc"
fi
say "FAILED: the job step exited with code $rc: a rank failed and srun stopped the others" \
  "(srun's lines above name the task)."
shown=0
for log in "$rank_logs"/*.log; do
  if [ "$shown" -lt 4 ] && grep -q -E "Traceback|Error|error:|the trainer was killed by" "$log"; then
    say "--- last lines of $log"
    tail -n 25 "$log"
    shown=$((shown + 1))
  fi
done
if [ "$shown" -eq 0 ]; then
  say "no rank logged an error (killed from outside, e.g. out of memory); rank logs: $rank_logs/"
fi
exit "$rc"
