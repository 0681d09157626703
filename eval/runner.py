"""`run_eval`: one model, the selected suites, a report directory (predictions, report.json/.md, plots)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoTokenizer

from eval.intervals import add_intervals
from eval.model_source import context_budget, hf_model_dir, stated_model_sources
from eval.predict import item_key, predict, read_predictions
from eval.report import write_report
from eval.scoring import Item, score_suites, suite_of
from nemo_recipes.checkpoint.files import check_model_source
from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.data.rl_prompts import RecordSet, read_prompt_records, tokenize_prompts
from nemo_recipes.rollout.vllm_engine import VLLMEngine
from nemo_recipes.tasks import TaskTable, load_task_table

MODEL_FILE = "model.json"
"""In the output directory: which model its predictions belong to."""


def claim_out_dir(out: Path, model: Path) -> None:
    """Tie `out` to `model`: resuming into a directory of another model's predictions is an error."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / MODEL_FILE
    source = str(Path(model).resolve())
    if marker.exists():
        recorded = json.loads(marker.read_text(encoding="utf-8"))["model"]
        if recorded != source:
            raise ConfigError(f"{out} holds the evaluation of {recorded}, not {source}: choose another --out")
        return
    marker.write_text(json.dumps({"model": source}) + "\n", encoding="utf-8")


def add_lm_eval(general: dict | None, harness: dict) -> dict:
    """The general suite with lm-eval's results under `lm_eval`: each lm-eval task with a headline
    score counts as one more task in the suite score (the mean over the local general tasks and the
    lm-eval tasks), and their mean is the capability `lm_eval`."""
    general = dict(general or {"score": None, "capabilities": {}, "tasks": {}})
    local = [t["score"] for t in general["tasks"].values()]
    harness_scores = [t["score"] for t in harness["tasks"].values() if t["score"] is not None]
    scores = local + harness_scores
    general["score"] = sum(scores) / len(scores) if scores else None
    if harness_scores:
        general["capabilities"] = {**general["capabilities"], "lm_eval": harness["score"]}
    general["lm_eval"] = harness
    return general


@dataclass(frozen=True)
class EvalInput:
    """What an evaluation scores, checked before anything is written or exported."""

    table: TaskTable
    records: RecordSet
    """The selected suites' and tasks' records (and the errors of those skipped)."""
    lm_eval: bool
    """Whether lm-evaluation-harness tasks join the general suite."""


def check_eval_input(model: Path, cfg: RunConfig) -> EvalInput:
    """The model is a model, the task table loads, every eval record passes (file:line on error), the
    suites and tasks select something; writes nothing."""
    ev = cfg.eval
    check_model_source(model)
    table = load_task_table(*cfg.task_tables)
    unknown = [t for t in ev.tasks if t not in table.names]
    if unknown:
        raise ConfigError(
            f"eval.tasks {unknown} are not in the task tables {list(cfg.task_tables)} ({table.names})"
        )
    read = read_prompt_records(ev.data, table, ev.on_bad_record, "eval.data")
    wanted = [
        (record, where)
        for record, where in read.records
        if suite_of(table, record.task) in ev.suites and (not ev.tasks or record.task in ev.tasks)
    ]
    lm_eval = bool(ev.lm_eval_tasks) and "general" in ev.suites
    if not wanted and not lm_eval:
        raise ConfigError(
            f"eval.data {ev.data}: no records of suites {ev.suites} / tasks {ev.tasks or 'any'}"
        )
    if lm_eval:  # unknown lm-eval tasks fail now, not after generation
        from eval.lm_eval_suite import DEFAULT_INCLUDE_PATH, task_specs

        task_specs(ev.lm_eval_tasks, [Path(p) for p in ev.lm_eval_include_path] or [DEFAULT_INCLUDE_PATH])
    return EvalInput(table, RecordSet(wanted, read.skipped), lm_eval)


def run_eval(model: Path, cfg: RunConfig, out: Path, label: str | None = None, progress: bool = True) -> dict:
    """Evaluate `model` (an HF directory or our checkpoint) as `cfg.eval` says, with the run's task
    table, engine and seed; returns the report written under `out`."""
    start = time.perf_counter()
    ev, generation = cfg.eval, cfg.eval.generation
    checked = check_eval_input(model, cfg)
    table = checked.table
    predictions = out / "predictions.jsonl"
    done = read_predictions(predictions, generation.num_generations_per_prompt)  # another k: refused
    claim_out_dir(out, model)  # the input is checked: only now is anything written
    hf_dir = hf_model_dir(model, out, *stated_model_sources(cfg.model))
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    max_len, max_prompt = context_budget(hf_dir, generation.max_prompt_tokens, generation.max_response_tokens)
    prompts = tokenize_prompts(checked.records, table, tokenizer, max_prompt, "eval.data").prompts
    responses = {}
    if prompts:
        engine = VLLMEngine(hf_dir, cfg.engine.dtype, cfg.engine, max_len, seed=cfg.seed, load_weights=True)
        try:
            responses = predict(
                engine,
                tokenizer,
                prompts,
                generation,
                predictions,
                done,
                ev.batch_size,
                cfg.seed,
                progress,
            )
        finally:
            engine.shutdown()
    items = [Item(p.record, tuple(responses[item_key(p)])) for p in prompts]
    suites = score_suites(table, items, ev.suites)
    if checked.lm_eval:  # after the engine is gone: lm-eval loads the model itself (HF backend)
        from eval.lm_eval_suite import run_lm_eval

        harness = run_lm_eval(
            hf_dir,
            ev.lm_eval_tasks,
            [Path(p) for p in ev.lm_eval_include_path] or None,
            limit=ev.lm_eval_limit,
            batch_size=ev.lm_eval_batch_size,
            seed=cfg.seed,
            dtype=cfg.engine.dtype,
            cache=out / "lm_eval_cache",
        )
        suites["general"] = add_lm_eval(suites.get("general"), harness)
    # after lm-eval joined the general suite: its suite interval averages the same tasks as its score
    bootstrap = add_intervals(suites, cfg.seed, ev.bootstrap_samples) if ev.bootstrap_samples else None
    report = {
        "label": label or Path(model).name,
        "model": str(Path(model).resolve()),
        "hf_dir": str(hf_dir),
        "items": len(items),
        "skipped_records": checked.records.skipped,
        "suites": suites,
        "bootstrap": bootstrap,
        "config": cfg.model_dump(mode="json"),
        "seconds": time.perf_counter() - start,
    }
    write_report(out, report)
    return report
