"""LoRA on megatron-core's parallel linears (nemo_recipes/model/lora.py): a frozen base, adapters only in
the optimizer, a base that is bit-identical after training, and the same losses at TP2 and with the
distributed optimizer over DP2 as on one rank."""

from __future__ import annotations

import re
from pathlib import Path

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
from nemo_recipes.parallel.distributed import init_distributed, seed_all, shutdown

import pytest
import torch

from nemo_recipes.config import RunConfig, check_launch
from nemo_recipes.config.loader import ConfigError, load_config
from nemo_recipes.launcher import read_launch_env
from nemo_recipes.model.build import build_model
from nemo_recipes.model.lora import LoRAModel, lora_model
from nemo_recipes.training.optimizer import build_optimizer
from nemo_recipes.training.step import run_step
from tests.conftest import losses, run_cli
from tests.parallel.test_sft_invariance import sft_args

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the local spec on a CPU-only torch")

LORA = ["model.lora.rank=8", "model.lora.alpha=16"]
SEQ = 32


def run_config(*extra: str) -> RunConfig:
    return load_config(RunConfig, None, ["model.hf_config=tiny-qwen3", *extra])


@pytest.fixture(scope="module")
def one_process():
    """A single gloo rank with megatron's model-parallel state (TP1), torn down after the module."""
    cfg = run_config(*LORA, "parallel.use_distributed_optimizer=true")
    init_distributed(cfg.parallel, read_launch_env())
    yield cfg
    shutdown()


def _forward_step(batch: torch.Tensor, model: torch.nn.Module):
    tokens, labels = batch[:, :-1], batch[:, 1:]
    position_ids = torch.arange(tokens.shape[1]).expand_as(tokens)
    per_token = model(tokens, position_ids, None, labels=labels)

    def loss_fn(output: torch.Tensor):
        total = output.float().sum()
        count = torch.tensor(output.numel())
        return total, count, {"loss": torch.stack([total.detach(), count.float()])}

    return per_token, loss_fn


def _batches(vocab: int, step: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return [torch.randint(0, vocab, (2, SEQ + 1), generator=g) for _ in range(2)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_only_adapters_train_and_the_base_stays_bit_identical(one_process: RunConfig, dtype: str) -> None:
    """Also in bf16 (`model.dtype`): bf16 adapters on a bf16 base, fp32 main weights in the optimizer."""
    cfg = one_process.model_copy(update={"model": one_process.model.model_copy(update={"dtype": dtype})})
    seed_all(cfg.seed)
    model, mcfg, arch = build_model(cfg.model, cfg.parallel, seed=cfg.seed)
    assert mcfg.bf16 == (dtype == "bfloat16")
    lora = lora_model(model[0])
    assert isinstance(lora, LoRAModel)
    adapters = {id(p) for p in lora.adapters.parameters()}
    trainable = {id(p) for p in model[0].parameters() if p.requires_grad}
    assert trainable == adapters and adapters
    optimizer, scheduler = build_optimizer(model, cfg.sft.optimizer, cfg.parallel, total_steps=3)
    scheduler.step(increment=1)
    in_optimizer = [p for g in optimizer.param_groups for p in g["params"]]
    assert sum(p.numel() for p in in_optimizer) == sum(p.numel() for p in lora.adapters.parameters())

    base_before = {k: v.clone() for k, v in lora.module.state_dict().items() if torch.is_tensor(v)}
    dtypes = {v.dtype for k, v in lora.module.state_dict().items() if k.endswith(".weight")}
    assert dtypes == {getattr(torch, dtype)}, dtypes
    assert {p.dtype for p in lora.adapters.parameters()} == {getattr(torch, dtype)}
    adapters_before = {k: v.clone() for k, v in lora.adapters.state_dict().items() if torch.is_tensor(v)}
    assert all(not v.any() for k, v in adapters_before.items() if ".lora_b." in k)  # B starts at zero
    for step in range(3):
        result = run_step(
            model, _batches(arch.vocab_size, step), _forward_step, SEQ, 2, ["loss"], optimizer, scheduler
        )
        assert not result.update_skipped and result.grad_norm > 0
        with_grad = [n for n, p in model[0].named_parameters() if getattr(p, "main_grad", None) is not None]
        assert with_grad and all(".adapters." in n for n in with_grad), with_grad
    base_after = lora.module.state_dict()
    for name, before in base_before.items():
        assert torch.equal(before, base_after[name]), f"base weight {name} changed"
    for name, tensor in lora.adapters.state_dict().items():
        if torch.is_tensor(tensor):
            assert not torch.equal(adapters_before[name], tensor), f"adapter {name} did not train"


def test_zero_b_leaves_the_base_output_and_merge_adds_b_a(one_process: RunConfig) -> None:
    cfg = one_process
    seed_all(cfg.seed)
    model, _, arch = build_model(cfg.model, cfg.parallel, seed=cfg.seed)
    lora = lora_model(model[0])
    tokens = _batches(arch.vocab_size, 7)[0][:, :-1]
    position_ids = torch.arange(tokens.shape[1]).expand_as(tokens)
    lora.eval()
    with torch.no_grad():
        hooks = {k: m._forward_hooks.copy() for k, m in lora.module.named_modules() if m._forward_hooks}
        assert len(hooks) == 4 * len(lora.module.decoder.layers)
        base = lora.module(tokens, position_ids, None)
        for name, p in lora.adapters.named_parameters():
            if ".lora_b." in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
        adapted = lora.module(tokens, position_ids, None)
        assert (adapted - base).abs().max() > 1e-3
        lora.merge_()
        for name, p in lora.adapters.named_parameters():
            if ".lora_b." in name:
                p.zero_()
        merged = lora.module(tokens, position_ids, None)
    assert (merged - adapted).abs().max() <= 1e-5


@pytest.mark.parametrize(
    ("sets", "key"),
    [
        (["model.lora.rank=3", "parallel.tensor_model_parallel_size=2"], "model.lora.rank"),
        (["model.lora.rank=8", "model.init_from=null"], "model.init_from"),
    ],
)
def test_bad_lora_settings_fail_naming_the_key(sets: list[str], key: str, tmp_path: Path) -> None:
    cfg = run_config("model.init_from=" + str(tmp_path), *sets)
    with pytest.raises(ConfigError, match=re.escape(key)):
        check_launch(cfg, 2, "sft")


def test_moe_experts_are_not_adapted(one_process: RunConfig) -> None:
    cfg = run_config("model.hf_config=tiny-qwen3-moe", "model.lora.rank=8")
    with pytest.raises(ConfigError, match=r"model\.lora\.target_modules"):
        build_model(cfg.model, cfg.parallel)
    attention_only = cfg.model.model_copy(
        update={"lora": cfg.model.lora.model_copy(update={"target_modules": ["linear_qkv", "linear_proj"]})}
    )
    model, _, _ = build_model(attention_only, cfg.parallel)
    assert {a.role for a in lora_model(model[0]).adapters.values()} == {"linear_qkv", "linear_proj"}


DROPOUT = [*LORA, "model.lora.dropout=0.1"]
LAYOUTS = {
    # layout: (LoRA settings, the layout's settings); compared with one rank under the same LoRA settings
    "tp2": (LORA, ["parallel.tensor_model_parallel_size=2"]),
    "pp2": (LORA, ["parallel.pipeline_model_parallel_size=2"]),
    "dp2_distopt": (LORA, ["parallel.use_distributed_optimizer=true"]),
    # the adapters' dropout masks are those of one rank at any TP size (LinearAdapter._dropout)
    "tp2_dropout": (DROPOUT, ["parallel.tensor_model_parallel_size=2"]),
    "cp2": (LORA, ["parallel.context_parallel_size=2"]),
}


@pytest.fixture(scope="module")
def lora_reference(tmp_path_factory: pytest.TempPathFactory, init_ckpt: Path):
    """The one-rank losses of 5 LoRA SFT steps under given LoRA settings (each run once per module)."""
    runs: dict[tuple[str, ...], list[float]] = {}

    def reference(settings: list[str]) -> list[float]:
        if tuple(settings) not in runs:
            run_dir = tmp_path_factory.mktemp("lora_ref")
            run_cli(sft_args(run_dir, init_ckpt, "sft.train_steps=5", *settings))
            ref = losses(run_dir)
            assert len(ref) == 5 and ref[-1] < ref[0] - 0.05, f"the LoRA run must learn: {ref}"
            runs[tuple(settings)] = ref
        return runs[tuple(settings)]

    return reference


SLOW_LAYOUTS = {"pp2", "dp2_distopt", "cp2"}
"""Slow (the default run's time budget): pipeline-parallel LoRA also runs in CI through the checkpoint
reshard to PP2 (tests/checkpoint/test_lora_checkpoint.py), data and context parallelism through SFT's
invariance."""


@pytest.mark.parallel
@pytest.mark.parametrize(
    "layout", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW_LAYOUTS else []) for n in LAYOUTS]
)
def test_lora_layout_matches_one_rank(layout: str, lora_reference, init_ckpt: Path, tmp_path: Path) -> None:
    settings, sets = LAYOUTS[layout]
    reference = lora_reference(settings)
    run_cli(sft_args(tmp_path, init_ckpt, "sft.train_steps=5", *settings, *sets), nproc=2)
    got = losses(tmp_path)
    diffs = [abs(a - b) for a, b in zip(got, reference, strict=True)]
    assert max(diffs) <= 1e-5, f"{layout}: {got} vs {reference} (diffs {diffs})"


@pytest.mark.parallel
def test_lora_dropout_is_on_and_reproducible(lora_reference, init_ckpt: Path, tmp_path: Path) -> None:
    """With dropout the losses move off the dropout-free ones (so tp2_dropout compares masks, not
    nothing), and a second run with the same seed repeats them exactly."""
    with_dropout, without = lora_reference(DROPOUT), lora_reference(LORA)
    assert with_dropout[0] == without[0]  # B starts at zero: the first step's loss is the base's
    assert max(abs(a - b) for a, b in zip(with_dropout[1:], without[1:], strict=True)) > 1e-4
    run_cli(sft_args(tmp_path, init_ckpt, "sft.train_steps=5", *DROPOUT))
    assert losses(tmp_path) == with_dropout
