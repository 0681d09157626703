"""The SFT stage: packed, answer-only supervised fine-tuning on chat records.

`run_sft(cfg)` is the whole stage: the shared set-up (`stages/setup.py`: launch, tokenizer, policy,
run log), the rows, then the loop: step, evaluate, log, checkpoint. It reads top to bottom; every step
it calls is a shared component (model, optimizer, train step, checkpoint, metrics).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from nemo_recipes.parallel.distributed import is_logging_rank

import torch

from nemo_recipes.algorithms.sft_loss import masked_token_loss
from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.model import ModelConfig
from nemo_recipes.config.training import SFTConfig
from nemo_recipes.data.sft_dataset import (
    ChatTemplateError,
    SFTBatch,
    collate,
    pack_sequences,
    tokenize_chat,
    unpacked_rows,
)
from nemo_recipes.data.sft_records import read_sft_records
from nemo_recipes.metrics import MetricsLogger
from nemo_recipes.model.context_parallel import counted_once, gather_tokens, packed_inputs, shard
from nemo_recipes.stages.setup import (
    Policy,
    StageOutcome,
    build_policy,
    launched,
    pad_token_id,
    run_log,
)
from nemo_recipes.tasks import TaskTable, load_task_table
from nemo_recipes.tokenizer.load import load_tokenizer
from nemo_recipes.training.step import StepResult, run_step

METRICS = ("lm_loss",)


def record_table(cfg: RunConfig) -> TaskTable | None:
    """The task table SFT records are rendered with: the run's, for task records; none for chat records."""
    return load_task_table(*cfg.task_tables) if cfg.sft.record_format == "task" else None


def load_rows(files: Sequence[str], tokenizer, sft: SFTConfig, table: TaskTable | None) -> tuple[list, dict]:
    """Records (chat, or task records of `table`: `sft.record_format`) -> tokenized, masked, packed (or
    padded) rows; plus counts for the log.

    Every example is named `file:line` so a later error (too long, template) points at its record.
    """
    examples, skipped = [], 0
    for name in files:
        path = resolve_asset(name, "data")
        result = read_sft_records(path, sft.record_format, sft.on_bad_record, table)
        skipped += result.skipped_line_count
        for err in result.errors if is_logging_rank() else []:
            print(f"[sft] skipped {err}", flush=True)
        for record, line in zip(result.records, result.line_numbers, strict=True):
            where = f"{path}:{line}"
            try:
                example = tokenize_chat(tokenizer, record)
            except ChatTemplateError as e:
                raise ConfigError(f"{where}: {e}") from e
            examples.append(dataclasses.replace(example, record_id=where))
    layout = pack_sequences if sft.packing else unpacked_rows
    try:
        rows = layout(examples, sft.seq_length, pad_token_id=pad_token_id(tokenizer), truncate=sft.truncate)
    except ValueError as e:  # a conversation longer than seq_length, named by file:line
        raise ConfigError(f"{e} (raise sft.seq_length or set sft.truncate: true)") from e
    return rows, {"records": len(examples), "skipped_records": skipped, "rows": len(rows)}


def global_batch_indices(step: int, num_rows: int, global_batch: int, seed: int) -> list[int]:
    """Row indices of the global batch at `step`: consecutive slices of seeded per-epoch permutations.

    A pure function of the step, so resuming needs nothing but the step.
    """
    perms: dict[int, list[int]] = {}
    out = []
    for pos in range(step * global_batch, (step + 1) * global_batch):
        epoch, offset = divmod(pos, num_rows)
        if epoch not in perms:
            perms[epoch] = torch.randperm(
                num_rows, generator=torch.Generator().manual_seed(seed + epoch)
            ).tolist()
        out.append(perms[epoch][offset])
    return out


def conversations_in(rows: list, step: int, sft: SFTConfig, seed: int) -> int:
    """Conversations (packed documents) in the global batch of `step`: the examples it trains on."""
    indices = global_batch_indices(step, len(rows), sft.global_batch_size, seed)
    return sum(len(rows[i].document_lengths) for i in indices)


def micro_batches(
    rows: list, indices: Sequence[int], micro_batch_size: int, dp_rank: int, dp_size: int
) -> list:
    """This data-parallel rank's contiguous share of the global batch, as collated micro-batches."""
    share = len(indices) // dp_size
    mine = indices[dp_rank * share : (dp_rank + 1) * share]
    return [
        collate([rows[i] for i in mine[j : j + micro_batch_size]]) for j in range(0, share, micro_batch_size)
    ]


def sft_forward_step(batch: SFTBatch, model):
    """Per-token cross entropy from megatron's GPTModel on a packed row (thd; this context-parallel rank's
    share of it, gathered back whole), reduced to an answer-token sum."""
    lengths = batch.document_lengths
    inputs = packed_inputs(batch.tokens, batch.position_ids, lengths)
    per_token_loss = model(
        inputs.tokens,
        inputs.position_ids,
        None,
        labels=shard(batch.labels, lengths),
        packed_seq_params=inputs.params,
    )

    def loss_fn(output):
        loss_sum, num_tokens, metrics = masked_token_loss(gather_tokens(output, lengths), batch.loss_mask)
        return loss_sum, counted_once(num_tokens), metrics

    return per_token_loss, loss_fn


def train_step(
    model: list,
    optimizer,
    scheduler,
    rows: list,
    step: int,
    sft: SFTConfig,
    seed: int,
    dp_rank: int,
    dp_size: int,
) -> StepResult:
    """One optimizer step on the global batch of `step` (this rank's share of it)."""
    indices = global_batch_indices(step, len(rows), sft.global_batch_size, seed)
    batches = micro_batches(rows, indices, sft.micro_batch_size, dp_rank, dp_size)
    return run_step(model, batches, sft_forward_step, *step_shape(sft), METRICS, optimizer, scheduler)


def step_shape(sft: SFTConfig) -> tuple[int, int]:
    """(sequence length, micro-batch size) megatron-core's schedule is given: a micro-batch's rows
    run as one packed row of micro_batch_size x seq_length tokens."""
    return sft.micro_batch_size * sft.seq_length, 1


def _total_steps(sft: SFTConfig, num_rows: int) -> int:
    if sft.train_steps is not None:
        return sft.train_steps
    return max(1, math.ceil(sft.epochs * num_rows / sft.global_batch_size))


def run_sft(cfg: RunConfig) -> StageOutcome:
    """Run (or resume) the SFT stage described by `cfg` on this process's rank."""
    sft = cfg.sft
    with launched(cfg, "sft") as replica:
        tokenizer = load_tokenizer(cfg.model)
        table = record_table(cfg)
        train_rows, data_stats = load_rows(sft.train_data, tokenizer, sft, table)
        valid_rows, _ = load_rows(sft.valid_data, tokenizer, sft, table) if sft.valid_data else ([], {})
        total_steps = _total_steps(sft, len(train_rows))
        _check_vocab(tokenizer, cfg.model)
        policy = build_policy(cfg, sft.optimizer, sft.checkpoint, total_steps)
        if policy.initialized_from is not None and is_logging_rank():
            print(f"[sft] initial weights from {policy.initialized_from}", flush=True)
        with run_log(cfg, "sft", total_steps, policy.state.step) as logger:
            if logger:
                start = policy.resumed_from or "scratch"
                print(f"[sft] {data_stats}, {total_steps} steps, resume from {start}", flush=True)
            return _train(cfg, policy, train_rows, valid_rows, total_steps, replica, logger)


def _check_vocab(tokenizer, model_cfg: ModelConfig) -> None:
    """Every token id the tokenizer can produce must have an embedding row."""
    vocab_size = model_cfg.hf_config_dict()["vocab_size"]
    if len(tokenizer) > vocab_size:
        raise ConfigError(
            f"tokenizer has {len(tokenizer)} tokens, more than the model's vocab_size {vocab_size}"
        )


def _train(
    cfg: RunConfig,
    policy: Policy,
    train_rows: list,
    valid_rows: list,
    total_steps: int,
    replica: tuple[int, int],
    logger: MetricsLogger | None,
) -> StageOutcome:
    """The steps left: train, evaluate at the interval, log, checkpoint; a stop signal ends it early."""
    sft, state, optimizer = cfg.sft, policy.state, policy.optimizer
    seen = sum(conversations_in(train_rows, step, sft, cfg.seed) for step in range(state.step))
    while state.step < total_steps:
        seen += conversations_in(train_rows, state.step, sft, cfg.seed)
        result = train_step(
            policy.model, optimizer, policy.scheduler, train_rows, state.step, sft, cfg.seed, *replica
        )
        state.step += 1
        state.consumed_rows += sft.global_batch_size
        metrics = {
            "loss": result.mean("lm_loss"),
            "grad_norm": result.grad_norm,
            "lr": result.lr,
            "answer_tokens": int(result.sums["lm_loss"][1]),
            "tokens_per_s": sft.global_batch_size * sft.seq_length / result.seconds,
            "step_seconds": result.seconds,
            "update_skipped": result.update_skipped,
            "conversations_seen": seen,
        }
        last = state.step == total_steps
        if valid_rows and (state.step % sft.eval_interval_steps == 0 or last):
            metrics["val_loss"] = evaluate(policy.model, valid_rows, sft, *replica)
        if logger and (state.step % cfg.logging.log_interval_steps == 0 or last):
            logger.log(state.step, metrics)
        if policy.checkpoint_if_due(total_steps):
            return policy.stopped("sft")
    return policy.finished()


def evaluate(model: list, rows: list, sft: SFTConfig, dp_rank: int, dp_size: int) -> float:
    """Answer-token loss over the first `eval_max_rows` validation rows (a multiple of mbs x dp)."""
    unit = sft.micro_batch_size * dp_size
    count = min(len(rows), sft.eval_max_rows) // unit * unit
    if count == 0:
        raise ConfigError(f"sft.valid_data has {len(rows)} rows: fewer than micro_batch_size x dp = {unit}")
    batches = micro_batches(rows, list(range(count)), sft.micro_batch_size, dp_rank, dp_size)
    result = run_step(model, batches, sft_forward_step, *step_shape(sft), METRICS)
    return result.mean("lm_loss")
