"""`redone slurm submit`: render the sbatch script for a recipe, submit it, record it in the run dir.

One template serves every command: the #SBATCH header and REDONE_* settings rendered here, then the
fixed body `slurm/job.sh` (launch, stop-signal forwarding, requeue, failure report). A stage job
(`--stage sft|grpo`) runs `redone <stage> RECIPE --set ...` on every rank. A pipeline job
(`--stage run`) runs `redone run` once, in the batch script: it starts each training stage as a job
step over every node (`pipeline.launcher`) and the one-process units as a step on one node
(`pipeline.single_launcher`). A GRPO job whose recipe says `grpo.placement: separate` gets one node
more than `--nodes`, for the rollout process (`redone rollout-server`, a step of its own beside the
trainer's). The logs and the submitted script live in `<run_dir>/slurm/`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from nemo_recipes.config import RunConfig, check_launch
from nemo_recipes.config.loader import ConfigError, load_config
from nemo_recipes.preflight import preflight

BODY = Path(__file__).with_name("job.sh")
STAGES = ("sft", "grpo", "run")
"""The redone commands a job can run: a training stage, or the whole pipeline."""
LAUNCHERS = ("srun", "torchrun")
RANK_WRAPPER = (
    'trap : TERM USR1; "$@"; rc=$?; '
    'if [ "$rc" -eq 3 ]; then touch "$REDONE_STOPPED_MARK" || exit 3; exit 0; fi; '
    'if [ "$rc" -gt 128 ]; then echo "[redone-slurm] rank ${RANK:-$SLURM_PROCID} on '
    "${SLURMD_NODENAME:-$(hostname)}: the trainer was killed by SIG$(kill -l $((rc - 128))) "
    '(signal $((rc - 128)))" >&2; fi; exit "$rc"'
)
"""What each rank's task runs (bash -c RANK_WRAPPER redone-rank CMD...). The trainer handles stop
signals itself; the wrapper outlives them. A trainer's exit 3 (checkpointed after a stop signal) becomes
exit 0 plus the file $REDONE_STOPPED_MARK: srun's --kill-on-bad-exit, there to stop every rank when one
fails, then leaves the other ranks to finish their checkpoint, and the job script (or the pipeline)
tells a stopped run from a finished one by the mark. A rank killed by a signal says so in its log."""


@dataclass(frozen=True)
class JobSpec:
    """Everything the rendered script depends on."""

    command: list[str]
    """What every rank runs, e.g. [".venv/bin/redone", "sft", "recipe.yaml", "--set", "k=v"]; with
    `driver`, what the batch script runs once."""
    job_name: str
    workdir: Path
    log_dir: Path
    nodes: int
    procs_per_node: int
    gpus_per_node: int = 0
    launcher: str = "srun"
    torchrun: str = "torchrun"
    time_limit: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    exclusive: bool = False
    grace_s: int = 300
    container_image: str | None = None
    container_mounts: str | None = None
    container_workdir: str | None = None
    env: list[str] = field(default_factory=list)
    sbatch_args: list[str] = field(default_factory=list)
    srun_args: list[str] = field(default_factory=list)
    driver: bool = False
    """`command` is the pipeline, run in the batch script; it starts its stages as job steps."""
    rollout_command: list[str] = field(default_factory=list)
    """grpo.placement: separate: the rollout process (`redone rollout-server ...`), a one-task step on
    a node of its own (the job's last), beside the trainer's step on the other `nodes`."""


def _sbatch_lines(spec: JobSpec) -> list[str]:
    tasks = 1 if spec.launcher == "torchrun" else spec.procs_per_node
    opts = [
        f"--job-name={spec.job_name}",
        f"--nodes={spec.nodes + (1 if spec.rollout_command else 0)}",
        f"--ntasks-per-node={tasks}",
        f"--chdir={spec.workdir}",
        f"--output={spec.log_dir}/%x-%j.log",
        "--open-mode=append",
        "--requeue",
        f"--signal=B:USR1@{spec.grace_s}",
    ]
    optional = {
        "gpus-per-node": spec.gpus_per_node or None,
        "cpus-per-task": spec.cpus_per_task,
        "mem": spec.mem,
        "time": spec.time_limit,
        "partition": spec.partition,
        "account": spec.account,
        "qos": spec.qos,
    }
    opts += [f"--{k}={v}" for k, v in optional.items() if v is not None]
    opts += (["--exclusive"] if spec.exclusive else []) + spec.sbatch_args
    return [f"#SBATCH {_quoted(o)}" for o in opts]


def _quoted(option: str) -> str:
    """sbatch reads double quotes in #SBATCH lines: needed for values with spaces."""
    name, sep, value = option.partition("=")
    if sep and any(c.isspace() for c in value):
        if '"' in value:
            raise ConfigError(f"#SBATCH {option}: a value cannot hold both spaces and double quotes")
        return f'{name}="{value}"'
    return option


def _srun_args(spec: JobSpec) -> list[str]:
    args = [f"--cpus-per-task={spec.cpus_per_task}"] if spec.cpus_per_task else []
    if spec.container_image:  # pyxis options
        args.append(f"--container-image={spec.container_image}")
        if spec.container_mounts:
            args.append(f"--container-mounts={spec.container_mounts}")
        args.append(f"--container-workdir={spec.container_workdir or spec.workdir}")
    return args + spec.srun_args


def _bash_array(items: list[str]) -> str:
    return "(" + " ".join(shlex.quote(i) for i in items) + ")"


def render(spec: JobSpec) -> str:
    """The complete sbatch script for `spec`."""
    settings = [
        f"REDONE_CMD={_bash_array(spec.command)}",
        f"REDONE_MODE={'driver' if spec.driver else 'ranks'}",
        f"REDONE_LAUNCHER={spec.launcher}",
        f"REDONE_PROCS_PER_NODE={spec.procs_per_node}",
        f"REDONE_TORCHRUN={shlex.quote(spec.torchrun)}",
        f"REDONE_SRUN_ARGS={_bash_array(_srun_args(spec))}",
        f"REDONE_RANK_WRAPPER={shlex.quote(RANK_WRAPPER)}",
        f"REDONE_LOG_DIR={shlex.quote(str(spec.log_dir))}",
        f"REDONE_GRACE_S={spec.grace_s}",
        f"REDONE_ROLLOUT_CMD={_bash_array(spec.rollout_command)}",
    ]
    exports = [f"export {k}={shlex.quote(v)}" for k, _, v in (e.partition("=") for e in spec.env)]
    return "\n".join(
        [
            "#!/bin/bash",
            "# Rendered by `redone slurm submit`; the body below the settings is slurm/job.sh.",
            "# shellcheck disable=SC2016  # the rank wrapper's $ are for the ranks' bash",
            *_sbatch_lines(spec),
            "",
            *settings,
            *exports,
            "",
            BODY.read_text(),
        ]
    )


class SubmitError(RuntimeError):
    """sbatch refused the job."""


def sbatch(script: str) -> str:
    """Submit `script` (on stdin); returns the job id."""
    proc = subprocess.run(["sbatch", "--parsable"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SubmitError(f"sbatch exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.strip().split(";")[0]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", type=Path, help="YAML recipe")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--stage",
        choices=STAGES,
        default="sft",
        help="the redone command the job runs: a training stage, or `run` (the whole pipeline)",
    )
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--gpus-per-node", type=int, default=0)
    p.add_argument("--procs-per-node", type=int, help="ranks per node (default: GPUs per node, or 1)")
    p.add_argument("--launcher", choices=LAUNCHERS, default="srun", help="srun: a task per rank")
    p.add_argument("--job-name", help="default: the run directory's name")
    p.add_argument("--time", dest="time_limit", help="time limit, e.g. 04:00:00")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--qos")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--mem", help="memory per node, e.g. 0 (all) or 1000G")
    p.add_argument("--exclusive", action="store_true")
    p.add_argument(
        "--grace-s",
        type=int,
        default=300,
        help="the job asks the trainer to checkpoint this many seconds before its time limit",
    )
    p.add_argument("--container-image", help="pyxis/enroot image (.sqsh file or registry#image)")
    p.add_argument("--container-mounts", help="pyxis mounts, e.g. /lustre:/lustre")
    p.add_argument("--container-workdir", help="default: the submit directory")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="export in the job")
    p.add_argument(
        "--sbatch-arg",
        dest="sbatch_args",
        action="append",
        default=[],
        help="an extra #SBATCH option, e.g. --sbatch-arg=--constraint=h100 (repeatable)",
    )
    p.add_argument(
        "--srun-arg",
        dest="srun_args",
        action="append",
        default=[],
        help="an extra option of the job step, e.g. --srun-arg=--container-env=NCCL_DEBUG (repeatable)",
    )
    p.add_argument(
        "--bin-dir",
        help="where redone and torchrun are in the job steps (default: this install; PATH in a container)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the script, submit nothing")


def spec_from_args(args: argparse.Namespace) -> JobSpec:
    """Validate the recipe (and its layout at this world size) and build the job spec."""
    cfg = load_config(RunConfig, args.recipe, args.overrides)
    procs = args.procs_per_node or args.gpus_per_node or 1
    if args.nodes < 1 or procs < 1:
        raise ConfigError(f"--nodes {args.nodes} and ranks per node {procs} must be at least 1")
    if args.gpus_per_node and procs != args.gpus_per_node:
        raise ConfigError(
            f"--procs-per-node {procs} with --gpus-per-node {args.gpus_per_node}: every rank drives one GPU"
        )
    bad_env = [e for e in args.env if not e.partition("=")[0].isidentifier() or "=" not in e]
    if bad_env:
        raise ConfigError(f"--env {bad_env}: expected NAME=VALUE")
    if args.stage == "run" and args.launcher != "srun":
        raise ConfigError("--stage run: the pipeline starts its training stages with the srun launcher")
    separate = cfg.grpo.placement == "separate"
    if separate and args.stage == "run":
        raise ConfigError(
            "grpo.placement: separate in a pipeline job (--stage run) is not supported: submit the RL "
            "stages as --stage grpo jobs (each gets a node for its rollout process)"
        )
    if (
        separate
        and args.stage == "grpo"
        and args.gpus_per_node
        and cfg.grpo.rollout_engines > args.gpus_per_node
    ):
        raise ConfigError(
            f"grpo.rollout_engines {cfg.grpo.rollout_engines} exceeds --gpus-per-node {args.gpus_per_node}: "
            "the rollout process runs one engine per GPU on its one node"
        )
    if args.stage == "run":
        preflight(cfg, args.nodes * procs, "run")  # every problem of the recipe, before the job queues
    else:  # a stage's files may live on the cluster only: its job checks them when it starts
        check_launch(cfg, args.nodes * procs, args.stage)
    bin_dir = args.bin_dir
    if bin_dir is None and not args.container_image:
        bin_dir = _this_install()
    exe = (lambda name: f"{bin_dir}/{name}") if bin_dir else (lambda name: name)
    workdir = Path.cwd()
    run_dir = cfg.run_dir if cfg.run_dir.is_absolute() else workdir / cfg.run_dir
    sets = [a for s in args.overrides for a in ("--set", s)]
    spec = JobSpec(
        command=[exe("redone"), args.stage, str(args.recipe.resolve()), *sets],
        job_name=args.job_name or run_dir.name,
        workdir=workdir,
        log_dir=run_dir / "slurm",
        nodes=args.nodes,
        procs_per_node=procs,
        gpus_per_node=args.gpus_per_node,
        launcher=args.launcher,
        torchrun=exe("torchrun"),
        time_limit=args.time_limit,
        partition=args.partition,
        account=args.account,
        qos=args.qos,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        exclusive=args.exclusive,
        grace_s=args.grace_s,
        container_image=args.container_image,
        container_mounts=args.container_mounts,
        container_workdir=args.container_workdir,
        env=args.env,
        sbatch_args=args.sbatch_args,
        srun_args=args.srun_args,
        rollout_command=[exe("redone"), "rollout-server", str(args.recipe.resolve()), *sets]
        if separate and args.stage == "grpo"
        else [],
    )
    return pipeline_job(spec) if args.stage == "run" else spec


def _this_install() -> str | None:
    """The bin directory of the redone that runs this, where it has the `redone` script."""
    here = Path(sys.executable).parent
    return str(here) if (here / "redone").exists() else None


def pipeline_job(spec: JobSpec) -> JobSpec:
    """`spec` with the pipeline as its command: `redone run` in the batch script (the submitting
    install, torch-free), its training stages as steps over every node, the rest as one-task steps."""
    step_redone, stage, recipe, *sets = spec.command
    base = ["srun", "--kill-on-bad-exit=1", *_srun_args(spec)]
    launch = {
        "launcher": [
            *base,
            f"--ntasks-per-node={spec.procs_per_node}",
            "--label",  # each line of the unit's log.txt starts with its rank
            *("bash", "-c", RANK_WRAPPER, "redone-rank"),
        ],
        "single_launcher": [*base, "--nodes=1", "--ntasks=1", "--ntasks-per-node=1"],
        "command": [step_redone],
    }
    sets += [a for key, value in launch.items() for a in ("--set", f"pipeline.{key}={json.dumps(value)}")]
    install = _this_install()
    driver = [f"{install}/redone"] if install else [sys.executable, "-m", "nemo_recipes.cli"]
    world = spec.nodes * spec.procs_per_node
    return replace(spec, command=[*driver, stage, recipe, *sets, "--nproc", str(world)], driver=True)


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    script = render(spec)
    if args.dry_run:
        print(script, end="")
        return 0
    spec.log_dir.mkdir(parents=True, exist_ok=True)  # sbatch does not create the --output directory
    try:
        job_id = sbatch(script)
    except SubmitError as e:
        print(f"redone slurm submit: {e}", file=sys.stderr)
        return 1
    except FileNotFoundError:
        print(
            "redone slurm submit: sbatch not found (run on a Slurm login node, or use --dry-run)",
            file=sys.stderr,
        )
        return 1
    record = spec.log_dir / f"job-{job_id}.sbatch"
    record.write_text(script)
    print(f"submitted job {job_id}: log {spec.log_dir}/{spec.job_name}-{job_id}.log, script {record}")
    return 0


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """`redone slurm submit ...` (the only action so far)."""
    sub = parser.add_subparsers(dest="action", required=True)
    add_arguments(sub.add_parser("submit", help="render, submit and record the sbatch script"))
    parser.set_defaults(nproc=1)
