"""LoRA adapters on megatron-core's tensor-parallel linears, beside a frozen base (`model.lora`).

Each adapted base linear gets y = W x + (alpha / rank) B A dropout(x), with A and B built from
megatron-core's own parallel layers, so the tensor-parallel communication (forward and backward) is
megatron's and gradients are exact at any TP size:
  * column-parallel base (linear_qkv, linear_fc1; output split over TP): A is a ColumnParallelLinear
    over the rank with its output gathered (A split along r), B a ColumnParallelLinear split along
    the output like the base weight (its input copy all-reduces dB's input gradient);
  * row-parallel base (linear_proj, linear_fc2; input split over TP): A is a RowParallelLinear (split
    along the input, output all-reduced), B a ColumnParallelLinear with its output gathered.
B of a fused base is one ColumnParallelLinear per output part (q, k, v of linear_qkv; gate, up of
linear_fc1), so each part is a plain TP shard (reshardable in checkpoints, and exactly PEFT's
q_proj / k_proj / ... lora_B once gathered); their outputs are interleaved as the base's are.

The adapters are attached with forward hooks: the base keeps its module tree and parameter names, so
conversion, weights-only checkpoints and the KL reference see a plain GPTModel (`.module`), and the
adapters live beside it in `LoRAModel.adapters`, under the wrappers (bf16, DDP) that train them.
Initial A is drawn from a generator seeded by (seed, layer, role), so it is the same at every layout;
B starts at zero (the adapted model starts equal to the base), as in PEFT.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import comm_device

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.dist_checkpointing.mapping import ShardedStateDict
from megatron.core.models.gpt import GPTModel
from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.utils import ensure_metadata_has_dp_cp_group

from nemo_recipes.config.loader import ConfigError
from nemo_recipes.config.model import LoRAConfig

COLUMN_ROLES = ("linear_qkv", "linear_fc1")
ROLE_PARENT = {
    "linear_qkv": "self_attention",
    "linear_proj": "self_attention",
    "linear_fc1": "mlp",
    "linear_fc2": "mlp",
}
PART_NAMES = {"linear_qkv": ("q", "k", "v"), "linear_fc1": ("gate", "up")}
"""The output parts of a fused base, in the order their B modules are kept."""


def _part_sizes(role: str, cfg: TransformerConfig) -> list[int]:
    """Global output size of each B part of a `role` base linear."""
    head_dim, groups = cfg.kv_channels, cfg.num_query_groups
    if role == "linear_qkv":
        return [cfg.num_attention_heads * head_dim, groups * head_dim, groups * head_dim]
    if role == "linear_fc1":
        return [cfg.ffn_hidden_size, cfg.ffn_hidden_size]
    return [cfg.hidden_size]


def _in_size(role: str, cfg: TransformerConfig) -> int:
    if role == "linear_proj":
        return cfg.num_attention_heads * cfg.kv_channels
    if role == "linear_fc2":
        return cfg.ffn_hidden_size
    return cfg.hidden_size


def adapter_seed(seed: int, layer: int, role: str) -> int:
    """The generator seed of one adapter's initial A: a function of the run seed, layer and role only."""
    return int.from_bytes(hashlib.sha256(f"lora:{seed}:{layer}:{role}".encode()).digest()[:8], "little")


class LinearAdapter(torch.nn.Module):
    """(alpha / rank) B A dropout(x) for one base linear, sharded over TP like it (module docstring)."""

    def __init__(self, role: str, layer: int, cfg: TransformerConfig, lora: LoRAConfig, seed: int) -> None:
        super().__init__()
        self.role, self.layer, self.column = role, layer, role in COLUMN_ROLES
        self.scale, self.dropout = lora.scale, lora.dropout
        self.num_query_groups = cfg.num_query_groups

        def init_a(weight: torch.Tensor) -> None:  # called on the full A (use_cpu_initialization)
            generator = torch.Generator().manual_seed(adapter_seed(seed, layer, role))
            torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)

        common = dict(config=cfg, bias=False)
        if self.column:
            self.lora_a = ColumnParallelLinear(
                _in_size(role, cfg), lora.rank, init_method=init_a, gather_output=True, **common
            )
        else:
            self.lora_a = RowParallelLinear(
                _in_size(role, cfg),
                lora.rank,
                init_method=init_a,
                input_is_parallel=True,
                skip_bias_add=True,
                **common,
            )
        self.lora_b = torch.nn.ModuleDict(
            {
                name: ColumnParallelLinear(
                    lora.rank, size, init_method=torch.nn.init.zeros_, gather_output=not self.column, **common
                )
                for name, size in zip(PART_NAMES.get(role, ("out",)), _part_sizes(role, cfg), strict=True)
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout > 0:
            x = self._dropout(x)
        h, _ = self.lora_a(x)
        parts = [b(h)[0] for b in self.lora_b.values()]
        return self.compose(parts, dim=-1) * self.scale

    def sharded_state_dict(self, prefix: str = "") -> ShardedStateDict:
        """A and each B part as megatron-core's layers shard them (any TP at load)."""
        metadata = ensure_metadata_has_dp_cp_group(None)
        out = self.lora_a.sharded_state_dict(prefix=f"{prefix}lora_a.", metadata=metadata)
        for name, part in self.lora_b.items():
            out.update(part.sharded_state_dict(prefix=f"{prefix}lora_b.{name}.", metadata=metadata))
        return out

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout with the mask the whole input gets on one rank, so the masks (and the losses) are the
        same at any TP size. It is drawn from the default generator, whose stream is the same on every
        TP rank (`seed_all`) and which megatron's recompute restores: a column-parallel base's input is
        whole on every rank, which all use that mask; a row-parallel base's is split along its last dim
        over TP, and each rank keeps its slice of the whole input's mask (drawn whole: TP times the
        random numbers of its shard, transient)."""
        shards = 1 if self.column else parallel_state.get_tensor_model_parallel_world_size()
        width = x.shape[-1]
        keep = x.new_empty(*x.shape[:-1], width * shards).bernoulli_(1 - self.dropout)
        if shards > 1:  # a copy of this rank's slice: autograd keeps it, not the whole mask
            rank = parallel_state.get_tensor_model_parallel_rank()
            keep = keep[..., rank * width : (rank + 1) * width].clone()
        return x * keep / (1 - self.dropout)

    def compose(self, parts: list[torch.Tensor], dim: int) -> torch.Tensor:
        """This rank's parts laid out as the base linear's output shard along `dim`: q, k, v
        interleaved per query group (megatron's fused qkv), gate then up, or the one part."""
        if self.role != "linear_qkv":
            return torch.cat(parts, dim=dim)
        groups = self.num_query_groups // parallel_state.get_tensor_model_parallel_world_size()
        dim = dim % parts[0].dim()
        split = [p.unflatten(dim, (groups, -1)) for p in parts]
        return torch.cat(split, dim=dim + 1).flatten(dim, dim + 1)

    def delta_weight(self) -> torch.Tensor:
        """This rank's shard of (alpha / rank) B A, shaped as the base weight's (collective over TP)."""
        a = self.lora_a.weight
        b = [part.weight for part in self.lora_b.values()]
        if self.column:  # A split along r: gather it; B parts are this rank's output rows
            return self.compose([p @ gather_tp(a, 0) for p in b], dim=0) * self.scale
        return gather_tp(b[0], 0) @ a * self.scale  # A split along the input; B gathered along the output


def gather_tp(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    """The full tensor from its tensor-parallel shards along `dim` (collective over TP)."""
    group = parallel_state.get_tensor_model_parallel_group()
    size = dist.get_world_size(group)
    if size == 1:
        return tensor.detach()
    shards = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(shards, tensor.detach().contiguous(), group=group)
    return torch.cat(shards, dim=dim)


class Adapters(torch.nn.ModuleDict):
    """A chunk's adapters keyed `<global layer>-<role>`; what a LoRA training checkpoint holds."""

    def sharded_state_dict(
        self, prefix: str = "", sharded_offsets: tuple = (), metadata: dict | None = None
    ) -> ShardedStateDict:
        """Keyed like `state_dict()` (for `load_state_dict`), checkpointed under global, layout-free
        names (`lora.layers.<l>.<role>.lora_a.weight`, ...): loads at any TP / PP / VP."""
        out: ShardedStateDict = {}
        for key, adapter in self.items():
            saved = f"lora.layers.{adapter.layer}.{adapter.role}."
            for name, sharded in adapter.sharded_state_dict(prefix=saved).items():
                out[f"{prefix}{key}.{name[len(saved) :]}"] = sharded
        return out


def _base_linear(gpt_layer: torch.nn.Module, role: str) -> torch.nn.Module:
    return getattr(getattr(gpt_layer, ROLE_PARENT[role]), role)


class LoRAModel(torch.nn.Module):
    """A GPTModel chunk (`module`, frozen) and the adapters hooked into it (`adapters`)."""

    def __init__(self, module: GPTModel, lora: LoRAConfig, seed: int) -> None:
        super().__init__()
        self.module = module
        self.lora = lora
        cfg: TransformerConfig = module.config
        if cfg.num_moe_experts and {"linear_fc1", "linear_fc2"} & set(lora.target_modules):
            raise ConfigError(
                f"model.lora.target_modules {lora.target_modules}: a mixture-of-experts model's MLPs are "
                "its experts, which LoRA does not adapt here; target linear_qkv / linear_proj only"
            )
        if cfg.transformer_impl != "local":
            raise ConfigError(
                "model.lora needs megatron-core's local layer spec (model.transformer_impl: local): "
                "Transformer Engine fuses the norm into linear_qkv / linear_fc1, so the adapter's input "
                "is not available there"
            )
        module.requires_grad_(False)
        self.adapters = Adapters()
        for gpt_layer in module.decoder.layers:
            layer = gpt_layer.layer_number - 1  # global, 0-based (pipeline offset included)
            for role in lora.target_modules:
                adapter = LinearAdapter(role, layer, cfg, lora, seed)
                self.adapters[f"{layer}-{role}"] = adapter
                _base_linear(gpt_layer, role).register_forward_hook(_adapter_hook(adapter))

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def set_input_tensor(self, input_tensor) -> None:
        self.module.set_input_tensor(input_tensor)

    @torch.no_grad()
    def merge_(self) -> None:
        """Add each adapter's B A (scaled) into its base weight, in place (collective over TP)."""
        for gpt_layer in self.module.decoder.layers:
            for role in self.lora.target_modules:
                adapter = self.adapters[f"{gpt_layer.layer_number - 1}-{role}"]
                weight = _base_linear(gpt_layer, role).weight
                weight += adapter.delta_weight().to(weight.dtype)


def _adapter_hook(adapter: LinearAdapter):
    def hook(module: torch.nn.Module, args: tuple, output: tuple) -> tuple:
        out, bias = output
        return out + adapter(args[0]).to(out.dtype), bias

    return hook


def apply_lora(chunks: list[GPTModel], lora: LoRAConfig, seed: int) -> list[LoRAModel]:
    """Freeze each chunk and wrap it with its adapters (before the bf16 / DDP wrappers)."""
    tp = parallel_state.get_tensor_model_parallel_world_size()
    if lora.rank % tp:
        raise ConfigError(
            f"model.lora.rank {lora.rank} must be divisible by parallel.tensor_model_parallel_size {tp} "
            "(A of a column-parallel layer is split along the rank)"
        )
    return [LoRAModel(chunk, lora, seed) for chunk in chunks]


def lora_model(chunk: torch.nn.Module) -> LoRAModel | None:
    """The LoRAModel inside a chunk's wrappers, or None when the chunk has no adapters."""
    while not isinstance(chunk, LoRAModel):
        if not hasattr(chunk, "module"):
            return None
        chunk = chunk.module
    return chunk


@dataclass(frozen=True)
class AdapterWeights:
    """One adapter, gathered over TP: full A (rank x in) and each B part (out_part x rank)."""

    layer: int
    role: str
    a: torch.Tensor
    b: dict[str, torch.Tensor]
    """Part name (q, k, v / gate, up / out) -> full B of that part."""


def iter_adapter_weights(model: list) -> Iterator[AdapterWeights]:
    """Every adapter of this rank's chunks, gathered over TP (collective over TP; PP stages each
    yield their own layers)."""
    for chunk in model:
        lora = lora_model(chunk)
        for adapter in lora.adapters.values():
            a = gather_tp(adapter.lora_a.weight, 0 if adapter.column else 1)
            b = {name: gather_tp(part.weight, 0) for name, part in adapter.lora_b.items()}
            yield AdapterWeights(adapter.layer, adapter.role, a, b)


def adapter_parameter_count(model: list) -> int:
    """Trainable (adapter) parameters of the whole model, summed over TP and PP (collective)."""
    local = sum(p.numel() for c in model for p in lora_model(c).adapters.parameters())
    total = torch.tensor([local], dtype=torch.int64, device=comm_device())
    dist.all_reduce(total, group=parallel_state.get_model_parallel_group())
    return int(total.item())
