"""torchrun worker (4 ranks): every layout x architecture x dtype in one launch.

Dense and MoE architectures run every TP/PP/VP layout; MoE ones also the expert-parallel layouts (in
float32 only: the dtype does not touch the expert mapping, and it keeps the launch short).

For each case: build our model, load the HF weights, compare fp32 logits with transformers, and
stream the weights back out (bit-exact check). Also writes a checkpoint loaded through a deliberately
wrong gate/up mapping (negative control for `redone convert verify`). Rank 0 writes a JSON report.
Usage: torchrun --nproc-per-node=4 layouts_worker.py HF_ROOT OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import torch
import torch.distributed as dist
from megatron.core import parallel_state

from conversion import mapping
from conversion.convert import build_for_conversion
from conversion.hf_config import read_hf_config
from conversion.hf_io import read_hf_tensors
from conversion.verify import compare_logits, megatron_logits
from conversion.weights import iter_hf_weights, load_hf_weights
from nemo_recipes.checkpoint.manager import save_model_weights
from nemo_recipes.config.model import ParallelConfig
from nemo_recipes.launcher import read_launch_env
from tests.conversion.hf_models import ALL_ARCHS, ARCHS, DTYPES, MOE_ARCHS

LAYOUTS = ((1, 1, None, 1), (2, 1, None, 1), (1, 2, None, 1), (2, 2, None, 1), (1, 2, 2, 1))  # tp pp vp ep
EP_LAYOUTS = ((2, 1, None, 2), (1, 2, None, 2), (1, 1, None, 4))  # MoE architectures only, float32 only
SEQ_LENGTHS = (24, 40)


def set_layout(tp: int, pp: int, vp: int | None, ep: int = 1) -> ParallelConfig:
    """(Re-)initialise model parallel; the old groups are destroyed, else their gloo threads pile up."""
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
        for group in list(dist.distributed_c10d._world.pg_map):
            if group is not dist.GroupMember.WORLD:
                dist.destroy_process_group(group)
    parallel = ParallelConfig(
        tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, expert_model_parallel_size=ep
    )
    parallel.virtual_pipeline_model_parallel_size = vp
    init_distributed(parallel, read_launch_env())
    seed_all(0)
    return parallel


def reference(hf_dir: Path, prompts: list[list[int]]) -> list[torch.Tensor]:
    from conversion.verify import hf_logits

    return hf_logits(hf_dir, prompts)


def round_trip(chunks: list, model_type: str, hf_dir: Path) -> dict:
    """Stream the weights out (refit flavour: tied lm_head included) and compare with the source."""
    out = {n: t.clone() for n, t in iter_hf_weights(chunks, model_type, with_tied_lm_head=True)}
    if dist.get_rank() != 0:
        return {}
    src = dict(read_hf_tensors(hf_dir))
    tied = chunks[0].share_embeddings_and_output_weights
    lm_head_ok = (not tied) or torch.equal(out.pop("lm_head.weight"), src["model.embed_tokens.weight"])
    names_ok = set(out) == set(src)
    exact = names_ok and all(out[n].dtype == src[n].dtype and torch.equal(out[n], src[n]) for n in src)
    return {"names_ok": names_ok, "bit_exact": exact, "lm_head_ok": lm_head_ok}


def run_case(arch: str, dtype: str, parallel: ParallelConfig, hf_root: Path, refs: dict) -> dict:
    hf_dir = hf_root / f"{arch}-{dtype}"
    hf = read_hf_config(hf_dir)
    chunks, _ = build_for_conversion(hf, dtype, parallel)
    load_hf_weights(chunks, hf_dir)
    vp = parallel.virtual_pipeline_model_parallel_size
    tp, pp = parallel.tensor_model_parallel_size, parallel.pipeline_model_parallel_size
    ep = parallel.expert_model_parallel_size
    result = {"arch": arch, "dtype": dtype, "tp": tp, "pp": pp, "vp": vp, "ep": ep}
    start = time.perf_counter()
    if dtype == "float32" and vp is None:
        got = [megatron_logits(chunks, p) for p in refs["prompts"]]
        if dist.get_rank() == 0:
            result["max_abs_diff"] = compare_logits(refs[arch], got).max_abs_diff
    result.update(round_trip(chunks, hf["model_type"], hf_dir))
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def wrong_mapping_checkpoint(hf_root: Path, out: Path, refs: dict) -> float:
    """Load tiny-qwen3 with gate and up swapped, save it; return its logits error (negative control)."""
    right = mapping.ADAPTED["qwen3"]
    gate_up = right._MLP_MAPPING["mlp.linear_fc1.weight"]
    wrong = type("SwappedGateUp", (right,), {})
    wrong._MLP_MAPPING = {**right._MLP_MAPPING, "mlp.linear_fc1.weight": gate_up[::-1]}
    hf_dir = hf_root / "tiny-qwen3-float32"
    chunks, _ = build_for_conversion(read_hf_config(hf_dir), "float32", set_layout(1, 1, None))
    mapping.ADAPTED["qwen3"] = wrong
    try:
        load_hf_weights(chunks, hf_dir)
    finally:
        mapping.ADAPTED["qwen3"] = right
    save_model_weights(out, chunks)
    got = [megatron_logits(chunks, p) for p in refs["prompts"]]
    return compare_logits(refs["tiny-qwen3"], got).max_abs_diff if dist.get_rank() == 0 else 0.0


def main(hf_root: Path, out_dir: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    refs: dict = {"prompts": [torch.randint(0, 2048, (n,), generator=gen).tolist() for n in SEQ_LENGTHS]}
    if read_launch_env().rank == 0:
        refs.update({a: reference(hf_root / f"{a}-float32", refs["prompts"]) for a in ALL_ARCHS})
    results = []
    for layout in LAYOUTS + EP_LAYOUTS:
        parallel = set_layout(*layout)
        expert_parallel = parallel.expert_model_parallel_size > 1
        archs, dtypes = (MOE_ARCHS, ("float32",)) if expert_parallel else (ARCHS, DTYPES)
        cases = [(arch, dtype) for arch in archs for dtype in dtypes]
        results += [run_case(arch, dtype, parallel, hf_root, refs) for arch, dtype in cases]
    wrong_diff = wrong_mapping_checkpoint(hf_root, out_dir / "wrong_ckpt", refs)
    if dist.get_rank() == 0:
        report = {"cases": results, "wrong_mapping_max_abs_diff": wrong_diff}
        (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
