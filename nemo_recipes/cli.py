"""`redone <command>`: the one entry point.

Multi-process runs: under torchrun or srun each rank runs the command; `--nproc N` on a plain shell
re-launches the command under torchrun with N local processes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from conversion import cli as convert_cli
from eval import cli as eval_cli
from eval.scoring import suite_of
from nemo_recipes import preemption
from nemo_recipes.config import RunConfig
from nemo_recipes.config.explain import explain
from nemo_recipes.config.loader import ConfigError, load_config
from nemo_recipes.config.pipeline import UNITS
from nemo_recipes.data.prompt_lengths import format_report, model_window, prompt_lengths, prompt_sources
from nemo_recipes.launcher import launched_world_size, relaunch_under_torchrun
from nemo_recipes.preflight import Command, commands_of, preflight
from nemo_recipes.records.chat import RecordValidationError
from nemo_recipes.tasks import TaskRecord, load_task_table
from slurm import submit as slurm_submit

# Errors in what the user gave us (config, data): a message, exit code 2, no traceback.
USER_ERRORS = (ConfigError, RecordValidationError)

CHECKED: dict[str, Command] = {
    "sft": "sft",
    "grpo": "grpo",
    "diagnose": "diagnose",
    "build-sft-data": "build-sft-data",
}
"""Commands whose whole input is checked (`preflight`) before anything heavy is imported or written:
their config arrives checked as `args.config` (`redone run` and `redone eval` check their own)."""


def _add_run_args(p: argparse.ArgumentParser, nproc_help: str) -> None:
    p.add_argument("recipe", nargs="?", type=Path, help="YAML recipe (only what differs from the defaults)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set sft.optimizer.lr=1e-4 (repeatable)",
    )
    p.add_argument("--nproc", type=int, default=1, help=nproc_help)


def _cmd_sft(args: argparse.Namespace) -> int:
    cfg = args.config
    preemption.install_handlers()  # before the heavy imports: a stop signal then is recorded, not fatal
    from nemo_recipes.stages.sft import run_sft

    return 0 if run_sft(cfg).completed else 3  # 3: stopped by a signal after checkpointing


def _cmd_rollout_server(args: argparse.Namespace) -> int:
    cfg = load_config(RunConfig, args.recipe, args.overrides)
    from nemo_recipes.rollout.server import serve

    serve(cfg, args.address, args.cpus)
    return 0


def _cmd_grpo(args: argparse.Namespace) -> int:
    cfg = args.config
    preemption.install_handlers()
    from nemo_recipes.stages.grpo import run_grpo

    return 0 if run_grpo(cfg).completed else 3


def _cmd_run(args: argparse.Namespace) -> int:
    from nemo_recipes.pipeline.runner import PipelineError, run_pipeline

    cfg = load_config(RunConfig, args.recipe, args.overrides)
    try:
        return run_pipeline(cfg, args.nproc, args.verbose, args.redo_from)
    except PipelineError as e:
        print(f"redone run: {e}", file=sys.stderr)
        return 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from nemo_recipes.demo import build_base, run_demo

    if args.build_base is not None:
        build_base(args.build_base, args.run_dir / "base-build", args.verbose)
        return 0
    return run_demo(args.run_dir, args.verbose, args.seed)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    cfg = args.config
    from nemo_recipes.stages.diagnose import run_diagnose

    path = run_diagnose(cfg)
    selected = json.loads(path.read_text(encoding="utf-8"))["selected"]
    print(
        f"selected for stage 2: {', '.join(selected) or 'none'}\nwrote {path} and {path.with_suffix('.md')}"
    )
    return 0


def _cmd_build_sft_data(args: argparse.Namespace) -> int:
    cfg = args.config
    from nemo_recipes.stages.build_sft_data import run_build_sft_data

    print(f"wrote {run_build_sft_data(cfg)} (statistics: stats.json next to it)")
    return 0


def _cmd_init_model(args: argparse.Namespace) -> int:
    cfg = load_config(RunConfig, args.recipe, args.overrides)
    from nemo_recipes.model.init_checkpoint import init_model_checkpoint

    print(f"saved {init_model_checkpoint(cfg, args.out)}")
    return 0


def _cmd_slurm(args: argparse.Namespace) -> int:
    return slurm_submit.run(args)


def _cmd_data(args: argparse.Namespace) -> int:
    from data_prep.cli import run

    return run(args.recipe, args.overrides, args.restart)


def _cmd_config(args: argparse.Namespace) -> int:
    """Check the recipe as the commands it is written for would (`preflight`), then print the resolved
    config, with --explain every field documented, or with --prompt-tokens how long the prompts of each
    data key the commands generate from are (to size `generation.max_prompt_tokens`). Writes nothing."""
    cfg = load_config(RunConfig, args.recipe, args.overrides)
    commands = commands_of(cfg)
    preflight(cfg, args.nproc, *commands)
    if args.prompt_tokens:
        # Imported here, as each command's module is: transformers would make `redone --help` slow.
        from nemo_recipes.tokenizer.load import load_tokenizer

        table = load_task_table(*cfg.task_tables)
        ev = cfg.eval

        def evaluated(record: TaskRecord) -> bool:  # the records `redone eval` selects (eval.runner)
            return suite_of(table, record.task) in ev.suites and (not ev.tasks or record.task in ev.tasks)

        files = prompt_lengths(prompt_sources(cfg, commands, evaluated), table, load_tokenizer(cfg.model))
        print(format_report(files, cfg.model.tokenizer, model_window(cfg)), end="")
    elif args.explain:
        print(explain(cfg, RunConfig()), end="")
    else:
        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    return 0


COMMANDS = {
    "run": (
        _cmd_run,
        "the whole recipe: RL -> diagnosis -> targeted SFT with rehearsal -> RL -> report (resumable)",
    ),
    "demo": (
        _cmd_demo,
        "the CPU demo: the whole pipeline and the SFT-only arm from the shipped base on the SNS demo data",
    ),
    "sft": (_cmd_sft, "supervised fine-tuning (packed, answer-only) on chat records"),
    "grpo": (_cmd_grpo, "GRPO with DAPO options on task records, vLLM rollouts (RL stages 1 and 3)"),
    "rollout-server": (
        _cmd_rollout_server,
        "the engines of a grpo.placement: separate run (started by the trainer on one machine, by Slurm "
        "on nodes of their own)",
    ),
    "diagnose": (_cmd_diagnose, "evaluate a model per task and name the weak tasks (diagnosis.json)"),
    "build-sft-data": (
        _cmd_build_sft_data,
        "stage 2's data: the diagnosed tasks' records plus judged best-of-n general rehearsal",
    ),
    "init-model": (
        _cmd_init_model,
        "save the configured model, randomly initialised (seeded), as a checkpoint",
    ),
    "config": (
        _cmd_config,
        "check a recipe as its commands would, print the resolved config (--explain: every field)",
    ),
    "data": (_cmd_data, "curate raw text into training data: dedup, filters, PII, decontamination, ..."),
    "convert": (convert_cli.run, "HF <-> megatron checkpoints: hf-to-mcore, mcore-to-hf, verify"),
    "eval": (eval_cli.run, "score a checkpoint or HF model on the SNS, translation and general suites"),
    "slurm": (_cmd_slurm, "run a stage as a Slurm job: submit (renders, submits, records the sbatch script)"),
}


def build_parser() -> argparse.ArgumentParser:
    """`redone`'s argument parser: one subcommand per entry of COMMANDS."""
    parser = argparse.ArgumentParser(prog="redone", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "slurm":
            slurm_submit.add_subcommands(p)
            continue
        if name == "convert":
            convert_cli.add_arguments(p)
            continue
        if name == "eval":
            eval_cli.add_arguments(p)
            continue
        if name == "demo":
            p.set_defaults(nproc=1)
            p.add_argument("--run-dir", type=Path, default=Path("runs/demo"), help="where everything goes")
            p.add_argument(
                "--seed", type=int, help="run the whole demo under this seed (default: the recipe's)"
            )
            p.add_argument(
                "--build-base",
                type=Path,
                metavar="DIR",
                help="rebuild the demo's base model into DIR instead (work files under RUN_DIR/base-build)",
            )
            p.add_argument("-v", "--verbose", action="store_true", help="stream every stage's output")
            continue
        if name == "run":
            _add_run_args(
                p,
                "ranks of each training stage: local processes under torchrun, or, with "
                "pipeline.launcher set, the number of ranks it starts",
            )
            p.add_argument(
                "--from", dest="redo_from", choices=UNITS, help="redo this unit and the ones after"
            )
            p.add_argument(
                "-v", "--verbose", action="store_true", help="stream the units' output (not to log.txt)"
            )
        else:
            _add_run_args(p, "local processes (re-launches under torchrun)")
        if name == "config":
            shown = p.add_mutually_exclusive_group()
            shown.add_argument(
                "--explain", action="store_true", help="every field: type, default, the recipe's value, doc"
            )
            shown.add_argument(
                "--prompt-tokens",
                action="store_true",
                help="prompt lengths (tokens) per data key and file against generation.max_prompt_tokens",
            )
        if name == "rollout-server":
            p.add_argument(
                "--address",
                required=True,
                metavar="HOST:PORT",
                help="the trainer's first rank and grpo.rollout_port",
            )
            p.add_argument(
                "--cpus",
                metavar="CORES|CORES",
                help="CPU only: each engine's cores, engines separated by '|' (the trainer sets it when it "
                "starts the process on its own machine)",
            )
        if name == "init-model":
            p.add_argument("--out", type=Path, required=True, help="checkpoint directory to create")
        if name == "data":
            p.add_argument(
                "--restart", action="store_true", help="delete output_dir's earlier run of the recipe first"
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spawns_its_own = args.command in ("run", "demo")  # their training stages get --nproc themselves
    launched = launched_world_size()
    try:
        if args.command in CHECKED:  # checked before a relaunch too: a bad recipe never starts ranks
            args.config = load_config(RunConfig, args.recipe, args.overrides)
            preflight(args.config, launched or args.nproc, CHECKED[args.command])
        if args.nproc > 1 and not spawns_its_own and launched is None:
            return relaunch_under_torchrun(sys.argv[1:], args.nproc)
        return COMMANDS[args.command][0](args)
    except USER_ERRORS as e:
        print(f"redone {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
