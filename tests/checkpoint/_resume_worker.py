"""torchrun worker for test_optimizer_state.py: train, save, rebuild, load, continue, per scenario.

    torchrun --nproc-per-node 2 tests/checkpoint/_resume_worker.py WORK_DIR

All scenarios run in one launch (model parallel state is destroyed and re-initialised between
builds). Rank 0 writes WORK_DIR/results.json:
  {scenario: {"reference": 6 losses, "resumed": 3 losses, "controls": {name: losses | error}}}
"reference" is an uninterrupted run in the save layout; "resumed" trains 3 steps, saves, builds
everything fresh with OTHER initial weights in the load layout, loads, and trains 3 more steps.
Controls load the same checkpoint otherwise: "stock" as megatron-core alone does; "init" with the
optimizer state created first; "init_nograd" also under no_grad (all but the per-parameter step
fix); "mismatch" through load_optimizer_state with the other format or kind of optimizer.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)

import torch
import torch.distributed as dist
import torch.nn.functional as F
from megatron.core import dist_checkpointing, parallel_state, tensor_parallel
from megatron.core.distributed import (
    DistributedDataParallel,
    DistributedDataParallelConfig,
    finalize_model_grads,
)
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.module import Float16Module

from nemo_recipes.checkpoint.optimizer_state import (
    _init_adam_state,
    load_optimizer_state,
    optimizer_sharded_state_dict,
)

VOCAB, SEQ, GLOBAL_BATCH, MICRO_BATCH = 128, 32, 4, 2
STEPS = 6
SEED, OTHER_SEED = 1234, 999


@dataclass(frozen=True)
class Scenario:
    name: str
    distopt: bool
    sharding_type: str
    save_tp: int
    load_tp: int
    controls: tuple[str, ...] = ()
    save_at: int = 3
    bf16: bool = False


SCENARIOS = [
    # name, distributed optimizer, sharding type, TP at save, TP at load (world 2: DP = 2 / TP)
    Scenario("distopt_dp2", True, "dp_reshardable", 1, 1, ("stock", "init", "init_nograd", "mismatch")),
    Scenario("nondist_dp2", False, "dp_reshardable", 1, 1, ("stock", "mismatch")),
    Scenario("distopt_full_dp2", True, "fully_reshardable", 1, 1),
    Scenario("distopt_full_tp2_to_tp1", True, "fully_reshardable", 2, 1, ("stock", "init_nograd")),
    # Saved before the first update (torch Adam has no state yet).
    Scenario("distopt_dp2_step0", True, "dp_reshardable", 1, 1, save_at=0),
    Scenario("nondist_dp2_step0", False, "dp_reshardable", 1, 1, save_at=0),
    # bf16 model, fp32 main params held by the distributed optimizer (not views of the model's).
    Scenario("distopt_dp2_bf16", True, "dp_reshardable", 1, 1, ("init", "init_nograd"), bf16=True),
]


def build(tp: int, distopt: bool, seed: int, bf16: bool = False):
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=tp)
    tensor_parallel.model_parallel_cuda_manual_seed(seed)
    torch.manual_seed(seed)
    cfg = TransformerConfig(
        num_layers=2,
        hidden_size=64,
        num_attention_heads=4,
        num_query_groups=2,
        kv_channels=16,
        ffn_hidden_size=128,
        normalization="RMSNorm",
        qk_layernorm=True,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        bias_activation_fusion=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        use_cpu_initialization=True,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        pipeline_dtype=torch.bfloat16 if bf16 else torch.float32,
        bf16=bf16,
        tensor_model_parallel_size=tp,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
    )
    gpt = GPTModel(
        config=cfg,
        transformer_layer_spec=get_gpt_layer_local_spec(normalization="RMSNorm", qk_layernorm=True),
        vocab_size=VOCAB,
        max_sequence_length=SEQ,
        position_embedding_type="rope",
    )
    ddp = DistributedDataParallel(
        config=cfg,
        ddp_config=DistributedDataParallelConfig(grad_reduce_in_fp32=True, use_distributed_optimizer=distopt),
        module=Float16Module(cfg, gpt) if bf16 else gpt,
    )
    optimizer = get_megatron_optimizer(
        OptimizerConfig(
            optimizer="adam",
            lr=1e-3,
            weight_decay=0.1,
            clip_grad=1.0,
            use_distributed_optimizer=distopt,
            bf16=bf16,
            params_dtype=torch.bfloat16 if bf16 else torch.float32,
        ),
        [ddp],
    )
    cfg.finalize_model_grads_func = finalize_model_grads
    cfg.grad_scale_func = optimizer.scale_loss
    return ddp, optimizer


def global_batch(step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randint(VOCAB, (GLOBAL_BATCH, SEQ + 1), generator=gen)


def train_step(ddp, optimizer, step: int) -> float:
    """One update on this DP rank's slice of the step's global batch; the global mean loss."""
    dp, dp_rank = parallel_state.get_data_parallel_world_size(), parallel_state.get_data_parallel_rank()
    per_rank = GLOBAL_BATCH // dp
    rows = global_batch(step)[dp_rank * per_rank : (dp_rank + 1) * per_rank]
    micro_batches = [rows[i : i + MICRO_BATCH] for i in range(0, per_rank, MICRO_BATCH)]
    ddp.zero_grad_buffer()
    optimizer.zero_grad()

    def forward_step(data_iterator, model):
        tokens = next(data_iterator)
        inputs, labels = tokens[:, :-1], tokens[:, 1:]
        positions = torch.arange(SEQ).unsqueeze(0).expand_as(inputs)
        per_token = model(inputs, positions, None, labels=labels)

        def loss_fn(output):
            loss = output.float().mean()
            # clone: the schedule divides the returned loss in place by the micro-batch count
            return loss, {"loss": loss.detach().clone()}

        return per_token, loss_fn

    outputs = get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=iter(micro_batches),
        model=[ddp],
        num_microbatches=len(micro_batches),
        seq_length=SEQ,
        micro_batch_size=MICRO_BATCH,
        forward_only=False,
    )
    ok, _, _ = optimizer.step()
    assert ok, "optimizer step skipped"
    loss = torch.stack([o["loss"] for o in outputs]).mean()
    dist.all_reduce(loss, group=parallel_state.get_data_parallel_group())
    return (loss / dp).item()


def model_sharded(ddp) -> dict:
    return {"model": ddp.module.sharded_state_dict()}


def save(ddp, optimizer, path: Path, sharding_type: str) -> None:
    if dist.get_rank() == 0:
        path.mkdir(parents=True)
    dist.barrier()
    state = model_sharded(ddp)
    state["optimizer"] = optimizer_sharded_state_dict(optimizer, state, sharding_type)
    dist_checkpointing.save(state, str(path))


def load(ddp, optimizer, path: Path, sharding_type: str, how: str) -> None:
    loaded = dist_checkpointing.load(model_sharded(ddp), str(path))
    ddp.module.load_state_dict(loaded["model"], strict=True)
    if how == "fixed":
        load_optimizer_state(optimizer, model_sharded(ddp), path, sharding_type)
        return
    if how == "mismatch":  # the other format; a non-distributed checkpoint also gets a dist-opt
        other = {"dp_reshardable": "fully_reshardable", "fully_reshardable": "dp_reshardable"}
        load_optimizer_state(optimizer, model_sharded(ddp), path, other[sharding_type])
        return
    # Controls: megatron-core's own load, with none ("stock") or some of our fixes.
    if how in ("init", "init_nograd"):
        for leaf in optimizer.chained_optimizers:
            _init_adam_state(leaf.optimizer)
    metadata = {"distrib_optim_sharding_type": sharding_type}
    sharded = optimizer.sharded_state_dict(model_sharded(ddp), is_loading=True, metadata=metadata)
    state = dist_checkpointing.load({"optimizer": sharded}, str(path))["optimizer"]
    with torch.no_grad() if how == "init_nograd" else torch.enable_grad():
        optimizer.load_state_dict(state)


def resume(sc: Scenario, path: Path, how: str) -> list[float] | str:
    # "mismatch" on a non-distributed checkpoint: load it into a distributed optimizer.
    distopt = sc.distopt or how == "mismatch"
    ddp, optimizer = build(sc.load_tp, distopt, OTHER_SEED, sc.bf16)
    try:
        load(ddp, optimizer, path, sc.sharding_type, how)
    except Exception as err:  # a control that fails to load: report the error, not the losses
        if how == "fixed":
            raise
        return f"{type(err).__name__}: {str(err)[:200]}"
    return [train_step(ddp, optimizer, step) for step in range(sc.save_at, STEPS)]


def run(sc: Scenario, work_dir: Path) -> dict:
    start = time.perf_counter()
    ddp, optimizer = build(sc.save_tp, sc.distopt, SEED, sc.bf16)
    reference = [train_step(ddp, optimizer, step) for step in range(STEPS)]
    ddp, optimizer = build(sc.save_tp, sc.distopt, SEED, sc.bf16)
    for step in range(sc.save_at):
        train_step(ddp, optimizer, step)
    path = work_dir / sc.name
    t0 = time.perf_counter()
    save(ddp, optimizer, path, sc.sharding_type)
    t_save = time.perf_counter() - t0
    out = {"reference": reference, "resumed": resume(sc, path, "fixed"), "controls": {}}
    for how in sc.controls:
        out["controls"][how] = resume(sc, path, how)
    out["seconds"] = {"total": time.perf_counter() - start, "save": t_save}
    return out


def main() -> None:
    work_dir = Path(sys.argv[1])
    dist.init_process_group("gloo")
    results = {sc.name: run(sc, work_dir) for sc in SCENARIOS}
    if dist.get_rank() == 0:
        (work_dir / "results.json").write_text(json.dumps(results, indent=1))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
