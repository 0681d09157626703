"""`redone eval MODEL [...]` and `redone eval compare REPORT... --out DIR`. Torch-free at import."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.report import compare, format_score, load_report
from nemo_recipes import preemption
from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import load_config
from nemo_recipes.preflight import preflight


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(nproc=1)
    parser.add_argument(
        "model", help="a run's checkpoint (runs/x/checkpoints/step_N) or an HF directory; or `compare`"
    )
    parser.add_argument(
        "reports", nargs="*", help="with `compare`: report.json files or eval directories, in order"
    )
    parser.add_argument("--out", type=Path, help="output directory (default: eval_results/<model name>)")
    parser.add_argument(
        "--config", type=Path, help="run recipe YAML: its eval, task_table, engine, model and seed"
    )
    parser.add_argument("--suite", help="comma-separated: sns,translation,general (default: all three)")
    parser.add_argument("--tasks", help="comma-separated task names (default: every task of the suites)")
    parser.add_argument(
        "--data",
        action="append",
        help="task record JSONL file(s) (default: sns_demo/test.jsonl, general/test.jsonl)",
    )
    parser.add_argument("--task-table", help="task table: shipped name, YAML file or directory")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="dotted.key=value")
    parser.add_argument("--label", help="name of this model in reports (default: the directory name)")
    parser.add_argument("--labels", help="with `compare`: comma-separated names, one per report")
    parser.add_argument("--no-progress", action="store_true")


def _overrides(args: argparse.Namespace) -> list[str]:
    sets = []
    if args.suite:
        sets.append(f"eval.suites=[{args.suite}]")
    if args.tasks:
        sets.append(f"eval.tasks=[{args.tasks}]")
    if args.data:
        sets.append(f"eval.data=[{','.join(args.data)}]")
    if args.task_table:
        sets.append(f"task_table={args.task_table}")
    return sets + args.overrides


def run(args: argparse.Namespace) -> int:

    if args.model == "compare":
        if not args.reports or not args.out:
            raise SystemExit("usage: redone eval compare REPORT [REPORT ...] --out DIR [--labels a,b]")
        reports = [load_report(Path(r)) for r in args.reports]
        if args.labels:
            labels = args.labels.split(",")
            if len(labels) != len(reports):
                raise SystemExit(f"--labels gives {len(labels)} names for {len(reports)} reports")
            for report, label in zip(reports, labels, strict=True):
                report["label"] = label
        compare(reports, args.out)
        print(f"wrote {Path(args.out) / 'comparison.md'}")
        return 0
    if args.reports:
        raise SystemExit(f"unexpected arguments {args.reports}: one MODEL per `redone eval` run")
    cfg = load_config(RunConfig, args.config, _overrides(args))
    model = Path(args.model)
    preflight(cfg, 1, "eval", model=model)  # every input problem, before torch is imported
    preemption.install_handlers()  # a stop signal from now on ends generation after a saved batch
    from eval.runner import run_eval  # torch and vLLM: after the checks and the handlers

    out = args.out or Path("eval_results") / model.name
    try:
        report = run_eval(model, cfg, out, args.label, progress=not args.no_progress)
    except preemption.Stopped as e:
        print(f"redone eval: {e}; rerun the same command to finish", file=sys.stderr)
        return 3
    for suite, result in report["suites"].items():
        score = format_score(result["score"], result.get("interval"))
        print(f"{suite:12s} {score}  ({len(result['tasks'])} tasks)")
    if skipped := len(report["skipped_records"]):
        print(f"skipped {skipped} bad records (on_bad_record: skip; listed in report.md)")
    print(f"wrote {out / 'report.md'}")
    return 0
