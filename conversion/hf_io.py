"""HF model directories: read and check them, and write serving-ready ones.

A directory is checked against what transformers itself builds from its config.json (a model on the
meta device, so no memory): every expected tensor present with the expected shape, nothing extra.
Errors name the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conversion.hf_config import ConversionError
from conversion.mapping import LM_HEAD_NAME
from nemo_recipes.checkpoint.files import TOKENIZER_FILES

INDEX_FILE = "model.safetensors.index.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MAX_LISTED_PROBLEMS = 8


def _weight_files(hf_dir: Path) -> dict[str, Path]:
    """HF tensor name -> safetensors file, from the index or by reading every file's header."""
    index = hf_dir / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        files = {name: hf_dir / f for name, f in weight_map.items()}
        for f in sorted(set(files.values())):
            if not f.is_file():
                raise ConversionError(f"{index} lists {f.name}, which does not exist")
        return files
    files = {}
    for f in sorted(hf_dir.glob("*.safetensors")):
        with safe_open(f, framework="pt") as st:
            files.update({name: f for name in st.keys()})  # noqa: SIM118  (safe_open has no __iter__)
    if not files:
        raise ConversionError(f"{hf_dir}: no *.safetensors weights (.bin checkpoints are not supported)")
    return files


def expected_hf_shapes(hf_dir_or_config: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape as transformers saves the model of this config (tied lm_head dropped).

    Names are the saved ones: transformers 5 fuses MoE experts in memory (`experts.gate_up_proj`)
    but saves them per expert (`experts.<i>.gate_proj.weight`), as published checkpoints are.
    """
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.core_model_loading import revert_weight_conversion

    config = AutoConfig.from_pretrained(hf_dir_or_config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    saved = revert_weight_conversion(model, model.state_dict())
    shapes = {k: tuple(v.shape) for k, v in saved.items()}
    if config.tie_word_embeddings:
        shapes.pop(LM_HEAD_NAME, None)
    return shapes


def check_hf_weights(hf_dir: Path) -> None:
    """Every tensor the config implies is in the directory, with the right shape, and nothing else."""
    expected = expected_hf_shapes(hf_dir)
    files = _weight_files(hf_dir)
    problems = [f"missing {name} {shape}" for name, shape in expected.items() if name not in files]
    tied_extra = {LM_HEAD_NAME} - set(expected)  # some tied checkpoints still carry lm_head
    problems += [
        f"{files[n].name}: unexpected tensor {n}" for n in files if n not in expected and n not in tied_extra
    ]
    for path in sorted(set(files.values())):
        with safe_open(path, framework="pt") as st:
            for name in st.keys():  # noqa: SIM118
                got = tuple(st.get_slice(name).get_shape())
                if name in expected and got != expected[name]:
                    problems.append(
                        f"{path.name}: {name} has shape {got}, config.json implies {expected[name]}"
                    )
    if problems:
        shown = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > 8 else ""
        raise ConversionError(f"{hf_dir}: weights do not match config.json:\n  {shown}{more}")


def read_hf_tensors(hf_dir: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of an HF directory (for comparisons)."""
    for path in sorted(set(_weight_files(Path(hf_dir)).values())):
        with safe_open(path, framework="pt") as st:
            for name in st.keys():  # noqa: SIM118
                yield name, st.get_tensor(name)


def write_safetensors_shards(
    tensors: Iterable[tuple[str, torch.Tensor]], out_dir: Path, max_shard_bytes: int
) -> dict[str, str]:
    """Write `model-0000i-of-0000n.safetensors` shards and their index; returns name -> file."""
    shards: list[list[str]] = [[]]
    pending: dict[str, torch.Tensor] = {}
    pending_bytes, total_bytes = 0, 0

    def flush() -> None:
        nonlocal pending, pending_bytes
        save_file(pending, out_dir / f"shard-{len(shards):05d}.tmp", metadata={"format": "pt"})
        shards.append([])
        pending, pending_bytes = {}, 0

    for name, tensor in tensors:
        size = tensor.numel() * tensor.element_size()
        if pending and pending_bytes + size > max_shard_bytes:
            flush()
        pending[name] = tensor.detach().contiguous()
        shards[-1].append(name)
        pending_bytes += size
        total_bytes += size
    flush()
    shards.pop()  # flush() always opens a next, empty one
    weight_map = {}
    for i, names in enumerate(shards, start=1):
        final = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        os.replace(out_dir / f"shard-{i:05d}.tmp", out_dir / final)
        weight_map.update({n: final for n in names})
    index = {"metadata": {"total_size": total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
    (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return weight_map


def write_config(out_dir: Path, hf_config_dir: Path, dtype: str) -> None:
    """config.json of the source, normalised by transformers, with the serving dtype."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(hf_config_dir)
    config.dtype = dtype
    config.save_pretrained(out_dir)


def write_generation_config(out_dir: Path, sources: Iterable[Path]) -> None:
    """The first generation_config.json found among `sources`, else one derived from config.json."""
    from transformers import AutoConfig, GenerationConfig

    for src in sources:
        if (src / "generation_config.json").is_file():
            shutil.copyfile(src / "generation_config.json", out_dir / "generation_config.json")
            return
    GenerationConfig.from_model_config(AutoConfig.from_pretrained(out_dir)).save_pretrained(out_dir)


def write_tokenizer(out_dir: Path, tokenizer_dir: Path, vocab_size: int) -> None:
    """Copy the tokenizer files verbatim; check the copy loads, fits the vocab and has a chat template."""
    from transformers import AutoTokenizer

    copied = [f for f in TOKENIZER_FILES if (tokenizer_dir / f).is_file()]
    if not any(f in copied for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise ConversionError(
            f"{tokenizer_dir}: no tokenizer files (tokenizer.json, tokenizer.model, vocab.json)"
        )
    for f in copied:
        shutil.copyfile(tokenizer_dir / f, out_dir / f)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    if len(tokenizer) > vocab_size:
        raise ConversionError(
            f"{tokenizer_dir}: the tokenizer has {len(tokenizer)} tokens, more than vocab_size {vocab_size}"
        )
    if not tokenizer.chat_template:
        raise ConversionError(f"{tokenizer_dir}: the tokenizer has no chat template (needed for serving)")
