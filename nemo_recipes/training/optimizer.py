"""AdamW through megatron-core's optimizer (distributed or not) and its LR/WD scheduler."""

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
    model: list, opt_cfg: OptimizerConfig, parallel_cfg: ParallelConfig, total_steps: int
) -> tuple:
    """megatron-core optimizer over all model chunks, and a scheduler for `total_steps` updates."""
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
    warmup = opt_cfg.warmup_for(total_steps)
    scheduler = OptimizerParamScheduler(
        optimizer,
        init_lr=0.0 if warmup else opt_cfg.lr,
        max_lr=opt_cfg.lr,
        min_lr=opt_cfg.min_lr if opt_cfg.lr_schedule != "constant" else opt_cfg.lr,
        lr_warmup_steps=warmup,
        lr_decay_steps=max(total_steps, warmup + 1),
        lr_decay_style=opt_cfg.lr_schedule,
        start_wd=opt_cfg.weight_decay,
        end_wd=opt_cfg.weight_decay,
        wd_incr_steps=total_steps,
        wd_incr_style="constant",
    )
    _attach_schedule_hooks(model, optimizer)
    return optimizer, scheduler


def _attach_schedule_hooks(model: list, optimizer) -> None:
    """What megatron-core's pipeline schedules call around forward/backward."""
    mcfg = get_model_config(model[0])
    mcfg.grad_scale_func = optimizer.scale_loss
    mcfg.finalize_model_grads_func = finalize_model_grads
    if model[0].ddp_config.overlap_grad_reduce:
        no_sync = [m.no_sync for m in model]
        mcfg.no_sync_func = no_sync[0] if len(model) == 1 else no_sync
