"""Sequence parallelism on the local layer spec (nemo_recipes/model/sequence_parallel_norm.py).

TP1 here: every norm of the local spec is ours, unmarked (its bit-for-bit equality with megatron's stock
local spec is tests/model/test_packed_attention.py's). TP2 over 2 gloo ranks: every norm is marked for
the TP gradient sum under SP, and the same packed row through the same weights with and without sequence
parallelism gives the same logits, per-token losses and gradients after megatron-core's
`finalize_model_grads` (which sums the marked norms' gradients over the TP group); before that sum the
residual-stream norms' gradients differ (each rank saw half the row), so the comparison would catch
a norm left unmarked.

The TP2 check runs this file as a torchrun worker:
    python -m torch.distributed.run --nproc-per-node 2 -m tests.model.test_sequence_parallel OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import pytest
import torch
from megatron.core.distributed import finalize_model_grads

from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import load_config
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model
from nemo_recipes.model.packed_attention import packed_position_ids, packed_seq_params
from nemo_recipes.model.sequence_parallel_norm import SequenceParallelRMSNorm
from tests.conftest import run_torchrun
from tests.worker_results import write_worst

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the local spec on a CPU-only torch")

LENGTHS = [5, 1, 9, 3, 6]
"""Documents of one packed row of 24 tokens (a multiple of TP 2), a document of length 1 among them."""
NORMS = ("input_layernorm", "pre_mlp_layernorm", "q_layernorm", "k_layernorm", "final_layernorm")


def run_config(*sets: str) -> RunConfig:
    return load_config(RunConfig, None, ["model.hf_config=tiny-qwen3", *sets])


def norms(chunk: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {name: m for name, m in chunk.named_modules() if name.rsplit(".", 1)[-1] in NORMS}


def assert_norms_are_ours(chunk: torch.nn.Module, num_layers: int, marked: bool) -> None:
    """Every norm of the chunk (four per layer, the final one) is ours, its weight marked as `marked`."""
    found = norms(chunk)
    kinds = {name.rsplit(".", 1)[-1] for name in found}
    assert kinds == set(NORMS) and len(found) == 4 * num_layers + 1, sorted(found)
    for name, module in found.items():
        assert type(module) is SequenceParallelRMSNorm, name
        assert module.weight.sequence_parallel is marked, name


def test_every_local_norm_is_ours_and_unmarked_without_sp() -> None:
    cfg = run_config()
    init_distributed(cfg.parallel, read_launch_env())
    try:
        model, tc, _ = build_model(cfg.model, cfg.parallel)
        assert_norms_are_ours(model[0].module, tc.num_layers, marked=False)
    finally:
        shutdown()


@pytest.mark.parallel
def test_tp2_sequence_parallel_matches_tp2(tmp_path: Path) -> None:
    out = tmp_path / "sp.json"
    run_torchrun(["-m", "tests.model.test_sequence_parallel", str(out)])
    diffs = json.loads(out.read_text())
    assert diffs["grad_scale"] > 1e-3 and diffs["norm_grad_before_sum"] > 1e-3, diffs
    assert max(diffs["logits"], diffs["loss"], diffs["grad"]) <= 1e-5, diffs


def row_pass(ddp_model, vocab: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], dict]:
    """Logits, per-token losses, and gradients of the summed loss (by parameter name) of one packed row,
    before and after `finalize_model_grads`."""
    gen = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, vocab, (1, sum(LENGTHS)), generator=gen)
    labels = torch.randint(0, vocab, (1, sum(LENGTHS)), generator=gen)
    args = (tokens, packed_position_ids(LENGTHS), None)
    extra = {"packed_seq_params": packed_seq_params(LENGTHS)}
    ddp_model.zero_grad_buffer()
    with torch.no_grad():
        logits = ddp_model(*args, **extra)
    losses = ddp_model(*args, labels=labels, **extra)
    losses.sum().backward()
    named = [(n, p) for n, p in ddp_model.named_parameters() if p.requires_grad]
    partial = {n: p.main_grad.clone() for n, p in named}
    finalize_model_grads([ddp_model])
    grads = {n: p.main_grad.clone() for n, p in named}
    return logits, losses.detach(), grads, partial


def sp_worker(out: Path) -> None:
    cfg = run_config("parallel.tensor_model_parallel_size=2")
    init_distributed(cfg.parallel, read_launch_env())
    try:
        runs = []
        for sequence_parallel in (False, True):
            parallel = cfg.parallel.model_copy(update={"sequence_parallel": sequence_parallel})
            seed_all(cfg.seed)
            model, tc, arch = build_model(cfg.model, parallel)
            assert tc.sequence_parallel is sequence_parallel
            assert_norms_are_ours(model[0].module, tc.num_layers, marked=sequence_parallel)
            runs.append(row_pass(model[0], arch.vocab_size))
        (logits, losses, grads, partial), (sp_logits, sp_losses, sp_grads, sp_partial) = runs
        assert sp_logits.shape == logits.shape == (1, sum(LENGTHS), arch.vocab_size // 2)
        residual_norms = [n for n in grads if "input_layernorm" in n or "final_layernorm" in n]
        diffs = {
            "logits": (logits - sp_logits).abs().max().item(),
            "loss": (losses - sp_losses).abs().max().item(),
            "grad": max((grads[n] - sp_grads[n]).abs().max().item() for n in grads),
            "grad_scale": max(g.abs().max().item() for g in grads.values()),
            "norm_grad_before_sum": max(
                (partial[n] - sp_partial[n]).abs().max().item() for n in residual_norms
            ),
        }
        write_worst(diffs, out)
    finally:
        shutdown()


if __name__ == "__main__":
    sp_worker(Path(sys.argv[1]))
