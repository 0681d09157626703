"""Optimizer state in megatron-core distributed checkpoints, exact with torch Adam.

Without Transformer Engine or Apex (always on CPU), megatron-core's optimizer is torch.optim.Adam /
AdamW, which keeps a `step` tensor per parameter; the DistributedOptimizer's checkpoint code is
written for FusedAdam, which keeps it per param group. Loaded as megatron-core does it, such a
checkpoint either fails to load into a fresh optimizer or resumes with wrong Adam bias corrections
(silently). This module owns the two calls a trainer makes, with the fixes:
  * `optimizer_sharded_state_dict`: what goes under "optimizer" in `dist_checkpointing.save`;
  * `load_optimizer_state`: the matching load into a freshly built optimizer.

`sharding_type` selects the DistributedOptimizer's format (the non-distributed optimizer's format
is always reshardable and ignores it):
  * "dp_reshardable": each DP rank writes its own buckets; loads at the same TP/PP (any DP);
  * "fully_reshardable": gathered into model-parameter shapes; loads at any TP/PP/DP.
megatron-core's default, "fully_sharded_model_space", cannot be saved (`flattened_range is not
supported`). Optimizers other than torch Adam (TE/Apex FusedAdam) go through megatron-core as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch
from megatron.core import dist_checkpointing
from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

SHARDING_TYPES = ("dp_reshardable", "fully_reshardable")

_PARAM_STATE_LOADERS = {
    "dp_reshardable": DistributedOptimizer.load_parameter_state_from_dp_reshardable,
    "fully_reshardable": DistributedOptimizer.load_parameter_state_from_fully_reshardable,
}


def optimizer_sharded_state_dict(optimizer, model_sharded_state_dict: dict, sharding_type: str) -> dict:
    """The optimizer's sharded state dict for `dist_checkpointing.save` (collective for
    "fully_reshardable", which gathers over data-parallel ranks)."""
    metadata = _metadata(sharding_type)
    for leaf in _leaves(optimizer):
        if _is_torch_adam(leaf):
            # A save before the first step: torch Adam creates its per-parameter state only then;
            # DistributedOptimizer.state_dict() asserts on the missing step (distrib_optimizer.py:
            # 641-642) and the non-distributed optimizer would save no moments for its load to find.
            _init_adam_state(leaf.optimizer)
    return optimizer.sharded_state_dict(model_sharded_state_dict, is_loading=False, metadata=metadata)


def load_optimizer_state(
    optimizer, model_sharded_state_dict: dict, ckpt_dir: str | Path, sharding_type: str
) -> None:
    """Load the optimizer state saved by `optimizer_sharded_state_dict` into `optimizer`, freshly
    built the same way (no step taken). Collective. The model's own weights are loaded separately;
    the TP/PP layout may differ from the saved one only with "fully_reshardable"."""
    metadata = _metadata(sharding_type)
    leaves = _leaves(optimizer)
    _check_saved_format(leaves, str(ckpt_dir), sharding_type)
    if not any(_is_torch_adam(leaf) for leaf in leaves):
        sharded = optimizer.sharded_state_dict(model_sharded_state_dict, is_loading=True, metadata=metadata)
        optimizer.load_state_dict(dist_checkpointing.load({"optimizer": sharded}, str(ckpt_dir))["optimizer"])
        return

    # Fix 1: DistributedOptimizer.sharded_state_dict(is_loading=True) calls state_dict(), which
    # asserts one common step over the per-parameter state (distrib_optimizer.py:641-642); a fresh
    # torch Adam has none yet. Create it as torch Adam's first step would (zeros, step 0), not with
    # megatron's _init_optimizer_states_with_dummy_values, whose real step applies weight decay.
    for leaf in leaves:
        if _is_distributed_torch_adam(leaf):
            _init_adam_state(leaf.optimizer)
    sharded = optimizer.sharded_state_dict(model_sharded_state_dict, is_loading=True, metadata=metadata)
    loaded = dist_checkpointing.load({"optimizer": sharded}, str(ckpt_dir))["optimizer"]
    for leaf, state_dict in zip(leaves, _leaf_parts(leaves, loaded), strict=True):
        if _is_distributed_torch_adam(leaf):
            _load_distributed_adam(leaf, state_dict)
        elif _is_torch_adam(leaf):
            _load_adam(leaf, state_dict)
        else:
            leaf.load_state_dict(state_dict)


def _load_distributed_adam(leaf: DistributedOptimizer, state_dict: dict) -> None:
    sharding_type = state_dict.pop("param_state_sharding_type")
    param_state = state_dict.pop("param_state")
    groups = state_dict["optimizer"]["param_groups"]
    steps = {g["step"] for g in groups}
    if len(steps) != 1:
        raise RuntimeError(f"optimizer checkpoint: param groups saved different steps {sorted(steps)}")
    # Fix 2: the param-state loaders copy into the main params in place
    # (_set_main_param_and_optimizer_states, distrib_optimizer.py:938-940); for fp32 models those
    # are views of the model's leaf parameters (distrib_optimizer.py:421), which autograd refuses
    # outside no_grad (only the fully_sharded_model_space loader is decorated with it).
    with torch.no_grad():
        # Param groups, grad scaler (param_state popped: the tensors are loaded below).
        leaf.load_state_dict(state_dict)
        # Fix 3: load_state_dict put ONE `step` tensor into every parameter's state
        # (distrib_optimizer.py:817-825); torch Adam increments it in place per parameter
        # (torch/optim/adam.py:414), so after one update it is off by the number of parameters.
        # The loaders then copy into every destination key, `step` included (distrib_optimizer.py:
        # 938-940): dp_reshardable overwrites it with the fresh optimizer's step captured at
        # is_loading time (a LocalNonpersistentObject, distrib_optimizer.py:1664-1667), and
        # fully_reshardable, which leaves `step` out of its source (distrib_optimizer.py:2101-2103),
        # raises KeyError: 'step'. So drop `step` for the load and give each parameter its own.
        for param_state_dict in leaf.optimizer.state.values():
            param_state_dict.pop("step", None)
        _PARAM_STATE_LOADERS[sharding_type](leaf, param_state)
    _set_adam_steps(leaf.optimizer, steps.pop())


def _load_adam(leaf, state_dict: dict) -> None:
    """Non-distributed (FP32 / Float16) optimizer: megatron-core saves one common step and restores
    a copy of it per parameter (optimizer.py:340-342), which is right for torch Adam."""
    inner = state_dict.get("optimizer", state_dict)
    if inner["state"] and "common_step" not in inner["state"]:
        # A save before the first update: megatron-core's `if step:` (optimizer.py:845, 1033) leaves
        # the zero step out, and torch Adam refuses per-parameter state without one.
        inner["state"]["common_step"] = torch.tensor(0.0)
    step = float(inner["state"].get("common_step", 0.0))
    leaf.load_state_dict(state_dict)
    _set_adam_steps(leaf.optimizer, step)


def _init_adam_state(adam: torch.optim.Optimizer) -> None:
    """The state torch Adam creates at a parameter's first step (its update is the same)."""
    for group in adam.param_groups:
        for param in group["params"]:
            state = adam.state[param]
            if state:
                continue
            state["step"] = _step_tensor(0.0, param, group)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group.get("amsgrad"):
                state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)


def _set_adam_steps(adam: torch.optim.Optimizer, step: float) -> None:
    """Give every parameter its own `step` tensor holding `step`; fail on missing moments."""
    for group in adam.param_groups:
        for param in group["params"]:
            state = adam.state[param]
            for key in ("exp_avg", "exp_avg_sq"):
                if key not in state or state[key].shape != param.shape:
                    raise RuntimeError(
                        f"optimizer checkpoint load left {key} missing or misshapen for a parameter "
                        f"of shape {tuple(param.shape)}"
                    )
            state["step"] = _step_tensor(step, param, group)


def _step_tensor(step: float, param: torch.Tensor, group: dict) -> torch.Tensor:
    # torch Adam keeps `step` as a float32 CPU scalar unless capturable/fused put it on the device.
    on_device = group.get("capturable") or group.get("fused")
    return torch.tensor(float(step), dtype=torch.float32, device=param.device if on_device else "cpu")


def _metadata(sharding_type: str) -> dict[str, Any]:
    if sharding_type not in SHARDING_TYPES:
        raise ValueError(
            f"optimizer sharding_type {sharding_type!r} is not supported; choose one of {SHARDING_TYPES} "
            "(megatron-core's default 'fully_sharded_model_space' cannot be saved)"
        )
    return {"distrib_optim_sharding_type": sharding_type}


def _leaves(optimizer) -> list:
    """The megatron optimizers that each wrap one torch optimizer (a ChainedOptimizer's parts)."""
    return list(getattr(optimizer, "chained_optimizers", [optimizer]))


def _leaf_parts(leaves: list, state_dict: Any) -> list:
    # ChainedOptimizer: a single part is the whole state dict, several are keyed 0..n-1.
    return [state_dict] if len(leaves) == 1 else [state_dict[i] for i in range(len(leaves))]


def _is_torch_adam(leaf) -> bool:
    return isinstance(getattr(leaf, "optimizer", None), (torch.optim.Adam, torch.optim.AdamW))


def _is_distributed_torch_adam(leaf) -> bool:
    return isinstance(leaf, DistributedOptimizer) and _is_torch_adam(leaf)


def _check_saved_format(leaves: list, ckpt_dir: str, sharding_type: str) -> None:
    """Name a distributed/non-distributed or sharding-type mismatch before megatron-core reports
    it as missing tensor keys."""
    common = dist_checkpointing.load_common_state_dict(ckpt_dir)
    if "optimizer" not in common:
        raise FileNotFoundError(f"{ckpt_dir}: the checkpoint holds no optimizer state")
    for i, part in enumerate(_leaf_parts(leaves, common["optimizer"])):
        saved = part.get("param_state_sharding_type")  # written by the distributed optimizer only
        wanted = sharding_type if isinstance(leaves[i], DistributedOptimizer) else None
        if saved != wanted:
            raise ValueError(
                f"{ckpt_dir}: optimizer state was saved by {_describe(saved)}, but is being loaded by "
                f"{_describe(wanted)}: use the use_distributed_optimizer and sharding type of the save"
            )


def _describe(sharding_type: str | None) -> str:
    if sharding_type is None:
        return "the non-distributed optimizer"
    return f"the distributed optimizer as {sharding_type!r}"
