"""Library API for the trainer: HF weights into a sharded model, and HF-named weights out of one.

`load_hf_weights` and `iter_hf_weights` are collective over the model-parallel group (every TP/PP
rank calls them) and, for a mixture-of-experts model split over expert-parallel ranks (EP > 1), over
the expert-parallel group too, which spans data-parallel ranks: then every rank of the job calls them.
They work at any TP/PP/VP/EP layout and with DDP / Float16Module wrappers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist

from conversion.hf_config import ConversionError, read_hf_config
from conversion.hf_io import check_hf_weights
from conversion.mapping import EMBED_NAME, LM_HEAD_NAME, bare_model, bridge_for
from nemo_recipes.checkpoint.files import WEIGHTS_FILE, is_hf_dir
from nemo_recipes.checkpoint.manager import load_model_weights, save_model_weights
from nemo_recipes.config.model import ModelConfig, ParallelConfig
from nemo_recipes.model.build import transformer_config

IMPORT_SOURCE_FILE = "hf_source.json"
"""Inside a cached import: the HF directory it was made from."""

# TransformerConfig fields that must agree between a built model and an HF config.json.
ARCH_FIELDS = (
    "num_layers",
    "hidden_size",
    "ffn_hidden_size",
    "num_attention_heads",
    "num_query_groups",
    "kv_channels",
    "layernorm_epsilon",
    "qk_layernorm",
    "add_qkv_bias",
    "num_moe_experts",
    "moe_ffn_hidden_size",
    "moe_router_topk",
    "moe_router_pre_softmax",
)


def check_model_matches(model_chunks: list, hf: dict, source: Path) -> None:
    """The built model has the architecture `hf` (an HF config dict read from `source`) describes."""
    model = bare_model(model_chunks[0])
    parallel = ParallelConfig(
        tensor_model_parallel_size=model.config.tensor_model_parallel_size,
        pipeline_model_parallel_size=model.config.pipeline_model_parallel_size,
    )
    want, arch = transformer_config(hf, ModelConfig(), parallel, model.config.transformer_impl)
    diffs = [
        f"{f}: model {getattr(model.config, f)} vs {getattr(want, f)}"
        for f in ARCH_FIELDS
        if getattr(model.config, f) != getattr(want, f)
    ]
    got = (model.vocab_size, model.share_embeddings_and_output_weights, float(model.rotary_base))
    for name, mine, theirs in zip(
        ("vocab_size", "tie_word_embeddings", "rope_theta"),
        got,
        (arch.vocab_size, arch.tie_word_embeddings, arch.rotary_base),
        strict=True,
    ):
        if mine != theirs:
            diffs.append(f"{name}: model {mine} vs {theirs}")
    if diffs:
        raise ConversionError(f"{source}: the model was built from another architecture: {'; '.join(diffs)}")


def load_hf_weights(model_chunks: list, hf_dir: Path) -> None:
    """Load an HF safetensors directory into this rank's shard of the model (collective).

    The directory is checked first (names and shapes against its config.json, and that config
    against the built model); every parameter of the model is written.
    """
    hf_dir = Path(hf_dir)
    hf = read_hf_config(hf_dir)
    check_model_matches(model_chunks, hf, hf_dir / "config.json")
    check_hf_weights(hf_dir)  # on every rank (headers only), so all ranks fail alike
    bridge = bridge_for(model_chunks, hf["model_type"])
    with torch.no_grad():
        bridge.load_weights([bare_model(c) for c in model_chunks], str(hf_dir), memory_efficient=True)


def iter_hf_weights(
    model_chunks: list, model_type: str, *, with_tied_lm_head: bool = True
) -> Iterator[tuple[str, torch.Tensor]]:
    """`(hf_name, full tensor)` for every HF weight on every rank, gathered over TP, PP and EP (collective).

    Every rank must consume the whole iterator. MoE experts come out per expert, with global indices
    (`model.layers.<l>.mlp.experts.<e>.{gate,up,down}_proj.weight`), gathered from every
    expert-parallel rank. Tied embeddings appear once as
    `model.embed_tokens.weight` (the copy a later pipeline stage holds is checked equal and skipped);
    `with_tied_lm_head` then also yields it as `lm_head.weight` (vLLM on CPU needs it sent on refit;
    an HF export leaves it out). Tensors are in the model's dtype and may be views of parameters.
    """
    bridge = bridge_for(model_chunks, model_type)
    tied = bare_model(model_chunks[0]).share_embeddings_and_output_weights
    seen: set[str] = set()
    embed = None
    with torch.no_grad():
        for name, tensor in bridge.export_weights([bare_model(c) for c in model_chunks]):
            if name in seen:
                if name != EMBED_NAME or not torch.equal(embed, tensor):
                    raise RuntimeError(f"{name} is exported twice with different values")
                continue
            seen.add(name)
            if name == EMBED_NAME:
                embed = tensor
            yield name, tensor
            if name == EMBED_NAME and tied and with_tied_lm_head:
                yield LM_HEAD_NAME, tensor


def default_import_cache() -> Path:
    """Where HF imports are cached: `$REDONE_CACHE_DIR/hf_imports`, else `~/.cache/redone/hf_imports`."""
    return Path(os.environ.get("REDONE_CACHE_DIR", Path.home() / ".cache" / "redone")) / "hf_imports"


def import_key(hf_dir: Path, dtype: torch.dtype) -> str:
    """Names the cached import of `hf_dir` in `dtype`: its config.json and weight files (size, mtime)."""
    digest = hashlib.sha256((hf_dir / "config.json").read_bytes())
    for f in sorted(hf_dir.glob("*.safetensors")):
        st = f.stat()
        digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    digest.update(str(dtype).encode())
    return f"{hf_dir.resolve().name}-{digest.hexdigest()[:16]}"


def initialize_from(path: Path, model: list, import_cache: Path | None = None) -> Path:
    """Start a stage from `path`: one of our megatron checkpoints, or an HF model directory (collective).

    An HF directory is imported once: its weights are loaded through the mapping, saved as our
    (any-layout) checkpoint under `import_cache`, and later starts from the same directory load that
    checkpoint. Returns the checkpoint the weights came from.
    """
    path = Path(path)
    if not is_hf_dir(path):
        load_model_weights(path, model)
        return path
    check_model_matches(model, read_hf_config(path), path / "config.json")
    cache = Path(import_cache or default_import_cache())
    cached = cache / import_key(path, bare_model(model[0]).config.params_dtype)
    if (cached / WEIGHTS_FILE).is_file():
        load_model_weights(cached, model)
        return cached
    load_hf_weights(model, path)
    token = [uuid.uuid4().hex if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(token, src=0)  # one staging name for every rank of this job
    staging = cached.with_name(f"{cached.name}.import-{token[0]}")
    save_model_weights(staging, model)
    if dist.get_rank() == 0:
        (staging / IMPORT_SOURCE_FILE).write_text(json.dumps({"hf_dir": str(path.resolve())}) + "\n")
        _publish(staging, cached)
    dist.barrier()
    return cached


def _publish(staging: Path, cached: Path) -> None:
    """Rename a finished import into place; a concurrent job that got there first wins."""
    try:
        os.replace(staging, cached)
    except OSError:
        if not (cached / WEIGHTS_FILE).is_file():
            raise
        shutil.rmtree(staging)
