"""Resumable generation for evaluation: greedy (or seeded) vLLM responses appended to a JSONL file.

`predictions.jsonl` holds one line per finished item (`key`, `task`, `id`, `response`; with k > 1
responses per item, `responses` holds all k and `response` the first), appended and flushed batch by
batch; a rerun reads it, drops a torn last line (a kill mid-write), and generates only the missing
items. Each item's sampling seed depends on its key alone, so a resumed run and an uninterrupted one
produce the same responses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from nemo_recipes import preemption
from nemo_recipes.config.generation import GenerationConfig
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.data.rl_prompts import Prompt
from nemo_recipes.rollout.engine import RolloutEngine
from nemo_recipes.rollout.generate import generate


def item_key(prompt: Prompt) -> str:
    return f"{prompt.record.task}/{prompt.record.id}"


def check_unique(prompts: Sequence[Prompt]) -> None:
    """Items are keyed by task and record id: a repeated key is an error naming both records."""
    seen: dict[str, str] = {}
    for p in prompts:
        key = item_key(p)
        if key in seen:
            raise ValueError(
                f"{p.where}: record id {p.record.id!r} of task {p.record.task} repeats {seen[key]}"
            )
        seen[key] = p.where


def read_predictions(path: Path, per_item: int = 1) -> dict[str, list[str]]:
    """Finished responses by key (`per_item` each); a torn last line (killed mid-write) is cut off the
    file. Lines with another number of responses (written under another k) are an error."""
    if not path.exists():
        return {}
    done, good_bytes = {}, 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                if raw.endswith(b"\n"):
                    raise ValueError(f"{path}: a corrupt line in the middle of the file") from None
                break
            responses = row.get("responses", [row["response"]])
            if len(responses) != per_item:
                raise ConfigError(
                    f"{path}:{number}: {len(responses)} responses for {row['key']}, but "
                    f"eval.generation.num_generations_per_prompt is {per_item}: choose another --out"
                )
            done[row["key"]] = responses
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good_bytes)
    return done


def predict(
    engine: RolloutEngine,
    tokenizer,
    prompts: Sequence[Prompt],
    generation: GenerationConfig,
    out: Path,
    done: dict[str, list[str]],
    batch_size: int,
    seed: int,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Responses for every prompt (key -> its `generation.num_generations_per_prompt` texts),
    generating only those not in `done` (what `read_predictions` found in `out`), appending them to
    `out` and adding them to `done`.

    A stop signal (when the caller installed the handlers) ends it after the current batch is saved:
    `preemption.Stopped`.
    """
    check_unique(prompts)
    todo = [p for p in prompts if item_key(p) not in done]
    bar = tqdm(total=len(prompts), initial=len(prompts) - len(todo), desc="eval", disable=not progress)
    with out.open("a", encoding="utf-8") as f:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            keys = [item_key(p) for p in batch]
            lines = []
            for key, generated in zip(
                keys, generate(engine, batch, keys, generation, tokenizer, seed), strict=True
            ):
                prompt, texts = generated.prompt, generated.texts
                done[key] = texts
                row = {"key": key, "task": prompt.record.task, "id": prompt.record.id, "response": texts[0]}
                if len(texts) > 1:
                    row["responses"] = texts
                lines.append(json.dumps(row, ensure_ascii=False) + "\n")
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(batch))
            if preemption.stop_requested() and start + batch_size < len(todo):
                raise preemption.Stopped(f"stopped by a signal with {len(done)} of {len(prompts)} saved")
    bar.close()
    return {item_key(p): done[item_key(p)] for p in prompts}
