"""Conversion time and peak memory for a Qwen3-0.6B-shaped model (random weights), both directions.

Each `redone convert` command runs as a child process; its wall time and the peak PSS of its process
tree (sampled every 20 ms) are reported. The reference, measured in the same run: reading every
tensor of the HF directory with safetensors and writing it back, the I/O any conversion pays. The
export is also checked bit-exact against the source, and `verify` runs on the converted checkpoint.
Usage:

    python benchmarks/convert_roundtrip.py [--workdir DIR] [--dtype bfloat16] [--skip-verify]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch
from safetensors.torch import load_file, save_file

from conversion.hf_io import expected_hf_shapes, read_hf_tensors, write_safetensors_shards
from nemo_recipes.config.assets import ASSETS

QWEN3_0_6B_SHAPE = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "vocab_size": 151936,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "bos_token_id": 0,
    "eos_token_id": 2,
}
SAMPLE_SECONDS = 0.02


def make_hf_dir(out: Path, dtype: str) -> Path:
    """Config, tokenizer (the shipped tiny one) and seeded random weights of the 0.6B shape."""
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({**QWEN3_0_6B_SHAPE, "dtype": dtype}, indent=1))
    for f in (ASSETS / "tokenizer" / "tiny").iterdir():
        shutil.copyfile(f, out / f.name)
    gen = torch.Generator().manual_seed(0)

    def tensors():
        for name, shape in expected_hf_shapes(out).items():
            base = 1.0 if name.endswith("norm.weight") else 0.0
            yield name, (base + 0.02 * torch.randn(shape, generator=gen)).to(getattr(torch, dtype))

    write_safetensors_shards(tensors(), out, max_shard_bytes=5000 << 20)
    return out


def io_reference_seconds(hf_dir: Path) -> float:
    """Read every tensor and write it back: the floor any conversion pays."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i, shard in enumerate(sorted(hf_dir.glob("*.safetensors"))):
            save_file(load_file(shard), Path(tmp) / f"{i}.safetensors")
        return time.perf_counter() - start


def measure(args: list[str]) -> tuple[float, float, str]:
    """Run `redone ARGS`; (wall seconds, peak memory of the process tree in GiB, stdout).

    Memory is PSS (proportional set size): pages a forked helper shares with its parent count once,
    where summed RSS would count them in every process.
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nemo_recipes.cli", *args], env=env, stdout=subprocess.PIPE, text=True
    )
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_full_info().pss for p in tree))
        except psutil.NoSuchProcess:
            pass
        time.sleep(SAMPLE_SECONDS)
    seconds = time.perf_counter() - start
    out = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"redone {' '.join(args)} exited {proc.returncode}\n{out}")
    return seconds, peak / 2**30, out


def bit_exact(a: Path, b: Path) -> bool:
    left, right = dict(read_hf_tensors(a)), dict(read_hf_tensors(b))
    return set(left) == set(right) and all(torch.equal(left[k], right[k]) for k in left)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="conversion_bench_"))
    hf, mcore, export = work / "hf", work / "mcore", work / "export"
    make_hf_dir(hf, args.dtype)
    size_gib = sum(p.stat().st_size for p in hf.glob("*.safetensors")) / 2**30
    reference = io_reference_seconds(hf)
    rows = [
        ("hf-to-mcore", ["convert", "hf-to-mcore", str(hf), str(mcore)]),
        ("mcore-to-hf", ["convert", "mcore-to-hf", str(mcore), str(export), "--dtype", args.dtype]),
    ]
    if not args.skip_verify:
        rows.append(("verify", ["convert", "verify", str(hf), str(mcore)]))
    print(f"Qwen3-0.6B shape, {args.dtype}, {size_gib:.2f} GiB of weights; cores: {os.cpu_count()}")
    print(f"reference (safetensors read + write): {reference:.1f} s")
    print("| step | wall s | x reference | peak PSS GiB |\n|---|---|---|---|")
    for name, cmd in rows:
        seconds, peak, out = measure(cmd)
        print(f"| {name} | {seconds:.1f} | {seconds / reference:.1f} | {peak:.2f} |")
        if name == "verify":
            print(out.strip().splitlines()[-1])
    print(f"export bit-exact vs source: {bit_exact(hf, export)}")


if __name__ == "__main__":
    main()
