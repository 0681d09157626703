"""AdamW through megatron-core's optimizer (distributed or not) and its LR/WD schedule.

The schedule is counted in the stage's own steps (SFT: optimizer steps; GRPO: RL steps, each of
`mini_batches_per_step` updates) and positioned so that update k of n runs at the schedule's point k:
the warm-up's first update already moves (lr = peak x 1/warm-up updates, never 0), and the decay ends
one update after the last (which runs above `min_lr`).
"""

from __future__ import annotations

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch
from megatron.core.distributed import finalize_model_grads
from megatron.core.optimizer import OptimizerConfig as McoreOptimizerConfig
from megatron.core.optimizer import get_megatron_optimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
from megatron.core.transformer import TransformerConfig
from megatron.core.utils import get_model_config

from nemo_recipes.config.model import ParallelConfig
from nemo_recipes.config.training import OptimizerConfig


def build_optimizer(
    model: list,
    opt_cfg: OptimizerConfig,
    parallel_cfg: ParallelConfig,
    total_steps: int,
    updates_per_step: int = 1,
) -> tuple:
    """megatron-core optimizer over all model chunks, and the schedule of a stage of `total_steps`
    steps of `updates_per_step` updates each (call `position_schedule` before the first update)."""
    mcfg: TransformerConfig = get_model_config(model[0])
    optimizer = get_megatron_optimizer(
        McoreOptimizerConfig(
            optimizer="adam",
            lr=opt_cfg.lr,
            min_lr=opt_cfg.min_lr,
            weight_decay=opt_cfg.weight_decay,
            adam_beta1=opt_cfg.adam_beta1,
            adam_beta2=opt_cfg.adam_beta2,
            adam_eps=opt_cfg.adam_eps,
            clip_grad=opt_cfg.clip_grad,
            bf16=mcfg.bf16,
            params_dtype=torch.bfloat16 if mcfg.bf16 else torch.float32,
            use_distributed_optimizer=parallel_cfg.use_distributed_optimizer,
            overlap_param_gather=parallel_cfg.overlap_param_gather,
        ),
        model,
    )
    _attach_schedule_hooks(model, optimizer)
    return optimizer, build_schedule(optimizer, opt_cfg, total_steps, updates_per_step)


def build_schedule(
    optimizer, opt_cfg: OptimizerConfig, total_steps: int, updates_per_step: int = 1
) -> OptimizerParamScheduler:
    """megatron-core's LR/WD scheduler for `total_steps` stage steps of `updates_per_step` updates;
    `opt_cfg.warmup_steps` counts stage steps (a stage shorter than its warm-up, e.g. a short run of a
    long recipe, ends still warming up). It steps once per update."""
    warmup, updates = opt_cfg.warmup_for(total_steps) * updates_per_step, total_steps * updates_per_step
    return OptimizerParamScheduler(
        optimizer,
        init_lr=0.0 if warmup else opt_cfg.lr,
        max_lr=opt_cfg.lr,
        min_lr=opt_cfg.min_lr if opt_cfg.lr_schedule != "constant" else opt_cfg.lr,
        lr_warmup_steps=warmup,
        lr_decay_steps=max(updates, warmup) + 1,
        lr_decay_style=opt_cfg.lr_schedule,
        start_wd=opt_cfg.weight_decay,
        end_wd=opt_cfg.weight_decay,
        wd_incr_steps=max(updates, warmup) + 1,
        wd_incr_style="constant",
    )


def position_schedule(scheduler: OptimizerParamScheduler, saved: dict | None) -> None:
    """Set the learning rate of the next update: a resumed stage's saved position, else update 1."""
    if saved:
        scheduler.load_state_dict(saved)
    else:
        scheduler.step(increment=1)


def _attach_schedule_hooks(model: list, optimizer) -> None:
    """What megatron-core's pipeline schedules call around forward/backward."""
    mcfg = get_model_config(model[0])
    mcfg.grad_scale_func = optimizer.scale_loss
    mcfg.finalize_model_grads_func = finalize_model_grads
    if model[0].ddp_config.overlap_grad_reduce:
        no_sync = [m.no_sync for m in model]
        mcfg.no_sync_func = no_sync[0] if len(model) == 1 else no_sync
