"""`redone demo`: the whole recipe on CPU in minutes, from the shipped base model.

The base (`assets/models/demo-base`, about 2 MB in bf16) stands in for the instruction-tuned general
model the paper starts from: the tiny model trained by the project's own SFT on the base split of the
shipped SNS and general sets (records kept apart from the train and test splits) and the toy chat set,
so that it can partly do the tasks and RL has rewards to learn from. `redone demo --build-base DIR`
rebuilds it in one command: a tokenizer trained on that data, `redone sft demo_base.yaml` from random
weights, an HF export in bf16, and `provenance.json` (recipe, seed, data and tokenizer sha256, the
weights' sha256, versions).

`redone demo [--seed N]` checks the shipped weights against their provenance, then runs the pipeline
(`demo.yaml`: stage 1 RL, diagnosis, stage 2 data and SFT, stage 3 RL, and the SFT-only arm), prints
the suite scores with their 95 % intervals, which of the recipe's claims hold
(nemo_recipes/pipeline/claims.py), and how many: when not all, where the docs measure why. Every step
resumes: run the command again after an interruption.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from eval.report import format_score
from nemo_recipes.checkpoint.files import latest_checkpoint
from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import load_config
from nemo_recipes.pipeline.child_process import STOPPED, ChildRunner
from nemo_recipes.pipeline.claims import Claim
from nemo_recipes.pipeline.manifest import file_digest
from nemo_recipes.pipeline.runner import run_pipeline
from nemo_recipes.tasks import load_task_table, read_task_records
from nemo_recipes.tokenizer.build import build_tokenizer

RECIPES = Path(__file__).parent / "recipes"
SHIPPED_BASE = "demo-base"
"""The shipped base model, under assets/models: config, tokenizer, weights, provenance.json."""
BASE_DATA = ("sns_demo/base.jsonl", "general/base.jsonl")
"""The task records the base model trains on (as chat), apart from every train and test split."""
BASE_TABLES = ("sns_demo", "general")
CHAT_DATA = "toy_chat/train.jsonl"
"""General chat the base model also trains on (and its tokenizer is trained on)."""
BUILD_THREADS = 2
"""CPU threads of the base model's SFT, whatever the caller's OMP_NUM_THREADS: the thread count sets
how float sums split, so the weights are bit-identical only at the count they were built with."""


def write_base_data(out: Path) -> Path:
    """The base split's SNS and general records as chat records (prompt template applied), once."""
    if out.is_file():
        return out
    table = load_task_table(*BASE_TABLES)
    records = [r for name in BASE_DATA for r in read_task_records(resolve_asset(name, "data"), table).records]
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


def _child(cmd: list[str], log: Path, what: str, verbose: bool, env: dict[str, str] | None = None) -> None:
    code = ChildRunner(verbose).run([sys.executable, "-m", "nemo_recipes.cli", *cmd], log, env)
    if code != 0:
        raise SystemExit(code if code == STOPPED else f"[demo] {what} failed ({code}): see {log}")


def build_base(out: Path, work: Path, verbose: bool = False) -> Path:
    """Rebuild the demo base model into `out` (an HF directory with provenance.json); `work` keeps the
    SFT run, so an interrupted build resumes. Returns `out`."""
    work = work.resolve()
    data = write_base_data(work / "data" / "base_chat.jsonl")
    chat = resolve_asset(CHAT_DATA, "data")
    tokenizer = work / "tokenizer"
    if not (tokenizer / "tokenizer.json").is_file():
        build_tokenizer([data, chat], tokenizer)
    recipe = RECIPES / "demo_base.yaml"
    overrides = [
        f"run_dir={work / 'sft'}",
        f"model.tokenizer={tokenizer}",
        f"sft.train_data=[{data},{CHAT_DATA}]",
    ]
    cfg = load_config(RunConfig, recipe, overrides)
    log = work / "sft" / "log.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"[demo] base model: SFT from random weights (log: {log})", flush=True)
    threads = {**os.environ, "OMP_NUM_THREADS": str(BUILD_THREADS)}
    _child(["sft", str(recipe), *(a for o in overrides for a in ("--set", o))], log, "SFT", verbose, threads)
    checkpoint = latest_checkpoint(work / "sft" / "checkpoints")
    if checkpoint is None:
        raise SystemExit(f"[demo] the base SFT left no checkpoint: see {log}")
    export = work / "hf"
    shutil.rmtree(export, ignore_errors=True)
    cmd = ["convert", "mcore-to-hf", str(checkpoint), str(export), "--dtype", "bfloat16"]
    _child(cmd, work / "export.log", "the HF export", verbose)
    provenance = {
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"redone demo --build-base {out}",
        "recipe": {"file": f"nemo_recipes/recipes/{recipe.name}", "sha256": file_digest(recipe)},
        "overrides": [o.replace(str(work), "WORK") for o in overrides],
        "seed": cfg.seed,
        "train_steps": cfg.sft.train_steps,
        "threads": BUILD_THREADS,
        "data": {name: file_digest(resolve_asset(name, "data")) for name in (*BASE_DATA, CHAT_DATA)},
        "tokenizer": {"sha256": file_digest(tokenizer / "tokenizer.json")},
        "weights": {"dtype": "bfloat16", "sha256": weight_digests(export)},
        "versions": {
            "python": platform.python_version(),
            **{name: metadata.version(name) for name in ("torch", "megatron-core", "redone")},
        },
    }
    (export / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(export, out)
    print(f"[demo] base model: {out} (provenance.json)")
    return out


def weight_digests(model_dir: Path) -> dict[str, str]:
    """sha256 of each safetensors file of an HF directory."""
    return {path.name: file_digest(path) for path in sorted(model_dir.glob("*.safetensors"))}


def shipped_base() -> Path:
    """The shipped base model's directory, its weights checked against provenance.json."""
    base = resolve_asset(SHIPPED_BASE, "models")
    recorded = json.loads((base / "provenance.json").read_text(encoding="utf-8"))["weights"]["sha256"]
    if weight_digests(base) != recorded:
        raise SystemExit(
            f"[demo] the weights in {base} do not match its provenance.json: "
            f"rebuild them with `redone demo --build-base {base}`"
        )
    return base


def summary_table(summary: dict) -> str:
    """Suite scores per evaluated unit with their 95 % intervals (summary.json), as printed at the end."""
    labels = list(dict.fromkeys(label for by_label in summary["suites"].values() for label in by_label))
    lines = [f"{'':12s}" + "".join(f"{label:>20s}" for label in labels)]
    for suite, by_label in summary["suites"].items():
        intervals = summary.get("intervals", {}).get(suite, {})
        cells = (format_score(by_label.get(label), intervals.get(label)) for label in labels)
        lines.append(f"{suite:12s}" + "".join(f"{cell:>20s}" for cell in cells))
    return "\n".join(lines)


def claims_lines(summary: dict) -> list[str]:
    """The recipe's claims as the final report checked them, one line each."""
    return [Claim(**claim).line() for claim in summary.get("claims", [])]


def claims_verdict(summary: dict) -> str:
    """How many claims hold on this run and, when some do not, where the docs measure why."""
    claims = [Claim(**claim) for claim in summary.get("claims", [])]
    holding = sum(claim.holds is True for claim in claims)
    if holding == len(claims):
        return f"All {len(claims)} claims hold on this run."
    return (
        f"{holding} of {len(claims)} claims hold on this run. Why the others do not at this scale "
        "(three seeds, greedy and sampled scores, what RL changes here): docs/pipeline.md, "
        '"What the demo gives".'
    )


def run_demo(run_dir: Path, verbose: bool = False, seed: int | None = None) -> int:
    run_dir = run_dir.resolve()
    base = shipped_base()
    overrides = [
        f"run_dir={run_dir / 'pipeline'}",
        f"model.init_from={base}",
        f"model.tokenizer={base}",
        *([f"seed={seed}"] if seed is not None else []),
    ]
    cfg = load_config(RunConfig, RECIPES / "demo.yaml", overrides)
    print(f"[demo] base model: {base} (seed {cfg.seed})", flush=True)
    code = run_pipeline(cfg, verbose=verbose)
    if code == 0:
        final = run_dir / "pipeline" / "final"
        summary = json.loads((final / "summary.json").read_text(encoding="utf-8"))
        claims = "\n".join(f"  {line}" for line in claims_lines(summary))
        print(f"\n{summary_table(summary)}\n\nThe recipe's claims (paired 95 % intervals):\n{claims}")
        print(f"\n{claims_verdict(summary)}")
        print(f"\nreport: {final / 'report.md'}")
    return code
