"""`redone convert {hf-to-mcore, mcore-to-hf, verify}`: argument parsing and dispatch.

Torch-free at import (the top-level CLI builds its parser from here). `--tp N --pp M` runs the
command on N x M processes: under torchrun or srun every rank runs it; from a plain shell it
re-launches itself under torchrun.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

UNDER_LAUNCHER = ("RANK", "SLURM_PROCID")
DTYPE_CHOICES = ("float32", "bfloat16")
DEFAULT_MAX_ABS_DIFF = 1e-3
DEFAULT_MIN_TOP1 = 0.99


def _add_layout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel size (processes = tp x pp)")
    p.add_argument("--pp", type=int, default=1, help="pipeline-parallel size")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `convert` sub-commands and their options."""
    parser.set_defaults(nproc=1)
    sub = parser.add_subparsers(dest="convert_command", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser("hf-to-mcore", help="an HF safetensors directory -> our megatron checkpoint")
    p.add_argument("hf_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    _add_layout(p)
    p.add_argument("--dtype", choices=DTYPE_CHOICES, help="weights dtype (default: the HF config's)")

    p = sub.add_parser("mcore-to-hf", help="a checkpoint -> a serving-ready HF directory")
    p.add_argument("ckpt_dir", type=Path, help="runs/x/checkpoints/step_N or a weights-only checkpoint")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--hf-config", help="shipped model name or HF dir (default: the run's config.yaml)")
    p.add_argument("--tokenizer", help="shipped tokenizer name or HF dir (default: the run's config.yaml)")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="bfloat16")
    p.add_argument("--max-shard-mb", type=int, default=5000, help="safetensors shard size limit")
    p.add_argument(
        "--adapter-only",
        action="store_true",
        help="a LoRA checkpoint: write its adapter as a PEFT directory instead of the merged model",
    )

    p = sub.add_parser("verify", help="compare logits of an HF directory and a checkpoint")
    p.add_argument("hf_dir", type=Path)
    p.add_argument("ckpt_dir", type=Path, help="our checkpoint (or an HF directory) to run in megatron")
    _add_layout(p)
    p.add_argument("--max-abs-diff", type=float, default=DEFAULT_MAX_ABS_DIFF)
    p.add_argument("--min-top1", type=float, default=DEFAULT_MIN_TOP1, help="least top-1 agreement")


def _relaunch(nproc: int) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return subprocess.call([*cmd, "-m", "nemo_recipes.cli", *sys.argv[1:]], env=env)


def _is_rank0() -> bool:
    return os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"


def run(args: argparse.Namespace) -> int:
    """Run the parsed `convert` sub-command; returns the exit code."""
    _precheck(args)
    nproc = getattr(args, "tp", 1) * getattr(args, "pp", 1)
    if nproc > 1 and not any(v in os.environ for v in UNDER_LAUNCHER):
        return _relaunch(nproc)
    if args.convert_command == "hf-to-mcore":
        from conversion.convert import hf_to_mcore

        out = hf_to_mcore(args.hf_dir, args.out_dir, args.tp, args.pp, args.dtype)
    elif args.convert_command == "mcore-to-hf":
        from conversion.convert import mcore_to_hf

        out = mcore_to_hf(
            args.ckpt_dir,
            args.out_dir,
            args.hf_config,
            args.tokenizer,
            args.dtype,
            args.max_shard_mb,
            args.adapter_only,
        )
    else:
        return _verify(args)
    if _is_rank0():
        print(f"wrote {out}")
    return 0


def _precheck(args: argparse.Namespace) -> None:
    """Input errors found without loading any framework (and before a re-launch, so printed once)."""
    from conversion.hf_config import ConversionError, check_layout, check_lora_checkpoint, read_hf_config

    if args.convert_command in ("hf-to-mcore", "verify"):
        hf = read_hf_config(args.hf_dir)
        check_layout(hf, args.tp, args.pp, args.hf_dir / "config.json")
    if args.convert_command in ("mcore-to-hf", "verify") and not args.ckpt_dir.is_dir():
        raise ConversionError(f"{args.ckpt_dir}: no such checkpoint directory")
    if getattr(args, "adapter_only", False):
        check_lora_checkpoint(args.ckpt_dir, "--adapter-only")
    if args.convert_command != "verify" and args.out_dir.exists():
        raise ConversionError(f"{args.out_dir} exists; remove it or choose another output directory")


def _verify(args: argparse.Namespace) -> int:
    from conversion.verify import verify

    report = verify(args.hf_dir, args.ckpt_dir, args.tp, args.pp)
    if report is None:
        return 0
    ok = report.passed(args.max_abs_diff, args.min_top1)
    limits = f"max_abs_diff <= {args.max_abs_diff:g}, top1_agreement >= {args.min_top1:g}"
    print(f"{'PASS' if ok else 'FAIL'}: {report.summary()} ({limits})")
    return 0 if ok else 1
