"""Routing replay on the trainer side (tiny-qwen3-moe, one gloo rank, no engine): replaying the trainer's
own routing changes nothing, replaying another routing is what the routers use (and changes the
logprobs), the routing travels through packing with placeholders where the engine routed nothing,
the routers' choices are counted per layer and expert, and megatron-core's load-balancing loss is
read back per step."""

from __future__ import annotations

import itertools
import json

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import numpy as np
import pytest
import torch

from nemo_recipes.config import RunConfig
from nemo_recipes.config.assets import ASSETS
from nemo_recipes.config.loader import load_config
from nemo_recipes.data.bin_packing import split_to_count
from nemo_recipes.data.rl_batch import RolloutSample, collate_rollouts, micro_batches
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model
from nemo_recipes.training.logprobs import compute_logprobs, packed_logits
from nemo_recipes.training.moe_routing import RoutingStats, aux_loss_metrics, moe_routers

LAYERS, EXPERTS, TOPK = 4, 4, 2


@pytest.fixture(scope="module")
def moe_model():
    cfg = load_config(RunConfig, None, ["model.hf_config=tiny-qwen3-moe"])
    init_distributed(cfg.parallel, read_launch_env())
    seed_all(cfg.seed)
    try:
        model, _, _ = build_model(cfg.model, cfg.parallel)
        yield model
    finally:
        shutdown()


def samples(routing: list[np.ndarray] | None = None) -> list[RolloutSample]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for i, (p, r) in enumerate(((5, 7), (9, 4), (3, 11))):
        ids = torch.randint(3, 2048, (p + r,), generator=gen).tolist()
        routed = routing[i] if routing is not None else None
        out.append(RolloutSample(ids[:p], ids[p:], [0.0] * r, 0.0, "t", routed_experts=routed))
    return out


def own_routing(model: list, batch) -> np.ndarray:
    """The trainer's own top-k per position of the row, [t, layers, k] (its routers' choices)."""
    seen: dict[int, torch.Tensor] = {}
    hooks = [
        router.register_forward_hook(lambda m, i, o, layer=layer: seen.__setitem__(layer, o[1]))
        for layer, router in moe_routers(model[0])
    ]
    compute_logprobs(model, [batch], 1.0)
    for h in hooks:
        h.remove()
    chosen = [seen[layer].nonzero()[:, 1].view(-1, TOPK) for layer in range(LAYERS)]
    return torch.stack(chosen, dim=1).numpy().astype(np.uint8)


def test_replaying_own_routing_is_exact_and_another_routing_is_used(moe_model: list) -> None:
    batch = collate_rollouts(samples(), 0)
    own = own_routing(moe_model, batch)
    starts = np.cumsum([0] + [s.length for s in samples()])
    per_sample = [own[a : b - 1] for a, b in itertools.pairwise(starts)]
    replayed_batch = collate_rollouts(samples(per_sample), 0)
    assert replayed_batch.routed_tokens.sum() == sum(s.length - 1 for s in samples())
    base = compute_logprobs(moe_model, [batch], 1.0)[0]
    same = compute_logprobs(moe_model, [replayed_batch], 1.0, replay=True)[0]
    assert torch.allclose(base, same, atol=1e-6), (base - same).abs().max()

    other = [(r + 1) % EXPERTS for r in per_sample]  # every expert shifted by one
    shifted = collate_rollouts(samples(other), 0)
    stats = RoutingStats(LAYERS, EXPERTS)
    moved = compute_logprobs(moe_model, [shifted], 1.0, replay=True, stats=stats)[0]
    assert (moved - base).abs().max() > 1e-3
    routed = int(shifted.routed_tokens.sum())
    assert stats.tokens_per_expert.sum() == LAYERS * routed * TOPK  # counted over engine-routed tokens
    expected = torch.zeros(LAYERS, EXPERTS, dtype=torch.float64)
    for r in other:
        for layer in range(LAYERS):
            expected[layer] += torch.bincount(
                torch.from_numpy(r[:, layer].astype(np.int64)).flatten(), minlength=4
            )
    assert torch.equal(stats.tokens_per_expert, expected)

    # the unreplayed pass of a batch carrying the engine's routing measures agreement
    agreement = RoutingStats(LAYERS, EXPERTS)
    compute_logprobs(moe_model, [replayed_batch], 1.0, stats=agreement)
    compute_logprobs(moe_model, [shifted], 1.0, stats=agreement)
    assert agreement.metrics()["routing_agreement"] == pytest.approx(0.5)  # own: all; shifted: none


def test_packing_carries_routing_and_rejects_a_mixed_row() -> None:
    routing = [np.full((s.length - 1, LAYERS, TOPK), i, dtype=np.uint8) for i, s in enumerate(samples())]
    batch = collate_rollouts(samples(routing), 0, row_length=48)
    assert batch.routed_experts.shape == (48, LAYERS, TOPK)
    ends = np.cumsum([s.length for s in samples()])
    for i, end in enumerate(ends):
        assert not batch.routed_tokens[end - 1]  # a sequence's last token: no engine routing
        assert (batch.routed_experts[end - 2] == i).all()
    assert not batch.routed_tokens[ends[-1] :].any()  # padding
    with pytest.raises(ValueError, match="some samples of a row carry"):
        collate_rollouts([*samples(routing)[:1], *samples()[1:]], 0)
    with pytest.raises(ValueError, match="routing of 3 tokens for a sequence of 12"):
        RolloutSample([1] * 5, [2] * 7, [0.0] * 7, 0.0, "t", routed_experts=routing[0][:3])


def test_expert_parallel_packing_gives_every_rank_as_many_rows() -> None:
    many = [RolloutSample([1] * 4, [2] * n, [0.0] * n, 0.0, "t") for n in (10, 19, 29, 16, 28, 17)]
    assert [len(micro_batches(many, 40, 0, r, 2)) for r in (0, 1)] == [3, 2]
    rows = [micro_batches(many, 40, 0, r, 2, fixed_row_length=True, same_count=True) for r in (0, 1)]
    assert [len(r) for r in rows] == [3, 3]
    assert {b.tokens.shape[1] for r in rows for b in r} == {40}
    assert split_to_count([[0, 1, 2], [3]], 3) == [[0], [1, 2], [3]]
    with pytest.raises(ValueError, match="cannot fill"):
        split_to_count([[0], [1]], 3)


def test_load_balancing_loss_is_read_from_megatron_and_cleared(moe_model: list, tmp_path) -> None:
    """A model whose config has an auxiliary loss (`output_router_logits`) reports megatron-core's
    load-balancing loss of its training forwards (the switch loss, about 1 for near-uniform routers)."""
    hf = json.loads((ASSETS / "models" / "tiny-qwen3-moe" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**hf, "output_router_logits": True}))
    cfg = load_config(RunConfig, None, [f"model.hf_config={tmp_path}"])
    model, transformer_cfg, _ = build_model(cfg.model, cfg.parallel)
    assert transformer_cfg.moe_aux_loss_coeff == hf["router_aux_loss_coef"]
    batch = collate_rollouts(samples(), 0)
    model[0].train()
    for _ in range(2):  # two training micro-batches
        packed_logits(model[0], batch)
    metrics = aux_loss_metrics(LAYERS, micro_batches=2)
    assert 0.9 < metrics["moe/load_balancing_loss"] < 2.0, metrics
    assert aux_loss_metrics(LAYERS, micro_batches=2) == {"moe/load_balancing_loss": 0.0}  # cleared
    assert aux_loss_metrics(LAYERS, micro_batches=0) == {}
