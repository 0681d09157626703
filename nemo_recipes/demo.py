"""`redone demo`: the whole recipe on CPU in minutes, from nothing but the shipped data.

1. A tokenizer trained on the shipped chat and SNS training data (`run_dir/tokenizer`).
2. A tiny base model: a short warm-up SFT from random weights on the shipped data as chat
   (`run_dir/base`, recipe `demo_base.yaml`), so that RL finds rewards to work with: it stands in for
   the instruction-tuned general model the paper starts from.
3. The pipeline (`demo.yaml`): stage 1 RL, diagnosis, stage 2 data and SFT, stage 3 RL, the report.
Every step resumes: run the command again after an interruption.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nemo_recipes.checkpoint.files import latest_checkpoint
from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import load_config
from nemo_recipes.pipeline.child_process import STOPPED, ChildRunner
from nemo_recipes.pipeline.outputs import EvalUnitOutputs, read_outputs
from nemo_recipes.pipeline.report import STAGE_LABELS
from nemo_recipes.pipeline.runner import run_pipeline
from nemo_recipes.tasks import load_task_table, read_task_records
from nemo_recipes.tokenizer.build import build_tokenizer

RECIPES = Path(__file__).parent / "recipes"
WARMUP_DATA = ("sns_demo/train.jsonl", "general/train.jsonl")
"""The task records the base model warms up on (as chat), with the tables that render them."""
WARMUP_TABLES = ("sns_demo", "general")


def write_warmup_data(out: Path) -> Path:
    """The SNS and general demo training records as chat records (prompt template applied), once."""
    if out.is_file():
        return out
    table = load_task_table(*WARMUP_TABLES)
    records = [
        r for name in WARMUP_DATA for r in read_task_records(resolve_asset(name, "data"), table).records
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(
        "".join(
            r.to_chat(table.spec(r.task).prompt_template).model_dump_json(exclude_none=True) + "\n"
            for r in records
        ),
        encoding="utf-8",
    )
    tmp.replace(out)
    return out


def build_demo_tokenizer(corpus: list[Path], out: Path) -> Path:
    if not (out / "tokenizer.json").is_file():
        build_tokenizer(corpus, out)
    return out


def warm_up_base(run_dir: Path, tokenizer: Path, warmup: Path, verbose: bool) -> Path:
    """The base model: `redone sft demo_base.yaml` (resumes; a finished run only reloads its last step)."""
    base = run_dir / "base"
    base.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "nemo_recipes.cli",
        "sft",
        str(RECIPES / "demo_base.yaml"),
        "--set",
        f"run_dir={base}",
        "--set",
        f"model.tokenizer={tokenizer}",
        "--set",
        f"sft.train_data=[{warmup},toy_chat/train.jsonl]",
    ]
    print(f"[demo] base model: warm-up SFT (log: {base / 'log.txt'})", flush=True)
    code = ChildRunner(verbose).run(cmd, base / "log.txt")
    if code != 0:
        raise SystemExit(
            code if code == STOPPED else f"[demo] the warm-up SFT failed ({code}): see {base / 'log.txt'}"
        )
    checkpoint = latest_checkpoint(base / "checkpoints")
    if checkpoint is None:
        raise SystemExit(f"[demo] the warm-up SFT left no checkpoint: see {base / 'log.txt'}")
    return checkpoint


def summary_table(run_dir: Path) -> str:
    """Suite scores per stage (the evaluated units' outputs), as printed at the end."""
    scores = {
        label: read_outputs(run_dir / unit, EvalUnitOutputs).scores for unit, label in STAGE_LABELS.items()
    }
    lines = [f"{'':14s}" + "".join(f"{label:>12s}" for label in scores)]
    for suite in dict.fromkeys(suite for by_suite in scores.values() for suite in by_suite):
        values = (by_suite.get(suite) for by_suite in scores.values())
        cells = ("-" if value is None else f"{value:.1f}" for value in values)
        lines.append(f"{suite:14s}" + "".join(f"{cell:>12s}" for cell in cells))
    return "\n".join(lines)


def run_demo(run_dir: Path, verbose: bool = False) -> int:
    run_dir = run_dir.resolve()
    warmup = write_warmup_data(run_dir / "data" / "sns_demo_chat.jsonl")
    tokenizer = build_demo_tokenizer(
        [warmup, resolve_asset("toy_chat/train.jsonl", "data")], run_dir / "tokenizer"
    )
    base = warm_up_base(run_dir, tokenizer, warmup, verbose)
    overrides = [f"run_dir={run_dir / 'pipeline'}", f"model.init_from={base}", f"model.tokenizer={tokenizer}"]
    cfg = load_config(RunConfig, RECIPES / "demo.yaml", overrides)
    code = run_pipeline(cfg, verbose=verbose)
    if code == 0:
        report = run_dir / "pipeline" / "final" / "report.md"
        print(f"\n{summary_table(run_dir / 'pipeline')}\n\nreport: {report}")
    return code
