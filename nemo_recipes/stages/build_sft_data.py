"""Stage 2's data set: the failing tasks' records plus general rehearsal with judged best-of-n targets.

Reads the diagnosis (`diagnosis.json`: the failing tasks), draws their records stratified by
capability (`nemo_recipes/data/sft_selection.py`), then for `rehearsal_ratio` of the final set draws
general prompts, lets the stage-1 model (`rehearsal_model`) answer each best-of-n times with vLLM,
scores the answers with the task's own reward (the judge: exact match, pattern, sandboxed tests or an
LLM judge, whatever the task table gives that task) and keeps the best as the SFT target. Writes
`run_dir/sft_data/train.jsonl` (chat records, shuffled) and `stats.json`.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path

from transformers import AutoTokenizer

from eval.model_source import context_budget, hf_model_dir
from eval.predict import item_key
from eval.runner import claim_out_dir
from nemo_recipes.checkpoint.files import check_model_source
from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.data.rl_prompts import load_prompts
from nemo_recipes.data.sft_selection import rehearsal_count, rehearsal_target, select_targeted
from nemo_recipes.records.chat import ChatMessage, ChatRecord
from nemo_recipes.rollout.generate import generate_and_score
from nemo_recipes.rollout.vllm_engine import VLLMEngine
from nemo_recipes.tasks import TaskRecord, TaskTable, load_task_table, read_task_records

OUT_DIR = "sft_data"


def read_selected_tasks(path: Path, table: TaskTable) -> list[str]:
    """The failing tasks named by a diagnosis.json (each must be in the task table)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no diagnosis (run `redone diagnose` first, or set sft_data.diagnosis)")
    selected = json.loads(path.read_text(encoding="utf-8"))["selected"]
    unknown = [t for t in selected if t not in table.names]
    if unknown:
        raise ConfigError(f"{path}: selected tasks {unknown} are not in the task table ({table.names})")
    return selected


def read_records(files: list[str], table: TaskTable) -> list[TaskRecord]:
    return [r for name in files for r in read_task_records(resolve_asset(name, "data"), table).records]


def rehearsal(cfg: RunConfig, table: TaskTable, count: int, work_dir: Path) -> tuple[list, dict]:
    """`count` general prompts answered best-of-n by the rehearsal model: (chat records, stats)."""
    data, generation = cfg.sft_data, cfg.sft_data.generation
    if data.rehearsal_model is None:
        raise ConfigError(
            "sft_data.rehearsal_ratio > 0 needs sft_data.rehearsal_model (stage 1's checkpoint)"
        )
    check_model_source(data.rehearsal_model)
    claim_out_dir(work_dir, data.rehearsal_model)  # an export of another model is never reused
    hf_dir = hf_model_dir(data.rehearsal_model, work_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    max_len, max_prompt = context_budget(hf_dir, generation.max_prompt_tokens, generation.max_response_tokens)
    prompts = load_prompts(data.general_data, table, tokenizer, max_prompt, "raise", "sft_data.general_data")
    prompts = [p for p in prompts.prompts if table.spec(p.record.task).capability == "general"]
    if not prompts:
        raise ConfigError(
            f"sft_data.general_data {data.general_data}: no records of a general-capability task"
        )
    drawn = random.Random(cfg.seed).sample(prompts, min(count, len(prompts)))
    engine = VLLMEngine(hf_dir, cfg.engine.dtype, cfg.engine, max_len, cfg.seed, load_weights=True)
    try:
        answered = generate_and_score(
            engine, drawn, [item_key(p) for p in drawn], generation, table, tokenizer, cfg.seed
        )
    finally:
        engine.shutdown()
    records, best_scores, dropped = [], [], Counter()
    for generated in answered:
        scores = [r.score for r in generated.results]
        best = rehearsal_target(generated.texts, scores, data.min_judge_score)
        if isinstance(best, str):
            dropped[best] += 1
            continue
        best_scores.append(scores[best])
        record = generated.prompt.record
        messages = [
            *record.prompt_messages(table.spec(record.task).prompt_template),
            ChatMessage(role="assistant", content=generated.texts[best]),
        ]
        meta = {"rehearsal": True, "judge_score": scores[best], "language": record.language}
        records.append(ChatRecord(messages=messages, task=record.task, id=record.id, meta=meta))
    stats = {
        "wanted": count,
        "available_prompts": len(prompts),
        "drawn": len(drawn),
        **{f"dropped_{reason}": dropped[reason] for reason in ("below_min_judge_score", "blank_best_answer")},
        "kept": len(records),
        "best_score_mean": sum(best_scores) / len(best_scores) if best_scores else None,
    }
    return records, stats


def run_build_sft_data(cfg: RunConfig) -> Path:
    """Build stage 2's SFT data; returns the train.jsonl path."""
    data = cfg.sft_data
    table = load_task_table(*cfg.task_tables)
    diagnosis = data.diagnosis or cfg.run_dir / "diagnosis" / "diagnosis.json"
    selected = read_selected_tasks(diagnosis, table)
    out = cfg.run_dir / OUT_DIR
    targeted, selection = select_targeted(
        read_records(data.sns_data, table), selected, table, data.max_sns_records, data.upweight, cfg.seed
    )
    if not targeted:
        raise ConfigError(f"sft_data.sns_data {data.sns_data}: no records of the selected tasks {selected}")
    chats = [r.to_chat(table.spec(r.task).prompt_template) for r in targeted]
    count = rehearsal_count(len(targeted), data.rehearsal_ratio)
    rehearsal_stats = None
    if count:
        extra, rehearsal_stats = rehearsal(cfg, table, count, out / "rehearsal_model")
        chats += extra
    random.Random(cfg.seed).shuffle(chats)
    out.mkdir(parents=True, exist_ok=True)
    train = out / "train.jsonl"
    tmp = train.with_name(train.name + ".tmp")
    tmp.write_text("".join(c.model_dump_json(exclude_none=True) + "\n" for c in chats), encoding="utf-8")
    os.replace(tmp, train)
    stats = {
        "diagnosis": str(diagnosis),
        "selected_tasks": selected,
        "targeted": {"records": len(targeted), **selection.__dict__},
        "rehearsal": rehearsal_stats,
        "total": len(chats),
        "rehearsal_share": (rehearsal_stats["kept"] / len(chats)) if rehearsal_stats else 0.0,
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return train
