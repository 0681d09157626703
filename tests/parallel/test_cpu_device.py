"""The CPU device layer: each test fails without the layer installed (this machine has no CUDA)."""

import logging
import subprocess
import sys

import nemo_recipes.device  # noqa: F401  installs the layer before megatron.core is imported
from nemo_recipes.device import cpu as cpu_device

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the layer is only for CPU-only torch")

CUDA_DEVICES = ["cuda", "cuda:0", torch.device("cuda"), torch.device("cuda", 0), 0]


def test_install_is_idempotent_and_reports_installed():
    assert cpu_device.install() is True
    assert cpu_device.install() is True
    assert cpu_device.is_installed()
    assert not torch.cuda.is_available()  # the layer maps CUDA onto the CPU; it does not fake a GPU


@pytest.mark.parametrize(
    "before",
    ["import megatron.core.tensor_parallel", "import torch; torch.set_default_device('cpu')"],
    ids=["megatron_imported_first", "function_mode_active"],
)
def test_install_refuses_to_run_where_it_cannot_take_effect(before):
    code = f"{before}\nimport nemo_recipes.device"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "RuntimeError" in result.stderr and "CPU device layer" in result.stderr


def test_current_device_is_a_cpu_device():
    device = torch.cuda.current_device()
    assert isinstance(device, torch.device) and device.type == "cpu"


@pytest.mark.parametrize("device", CUDA_DEVICES, ids=str)
def test_cuda_device_arguments_give_cpu_tensors(device):
    x = torch.arange(4.0)
    made = [
        torch.zeros(2, device=device),
        torch.empty(2, 3, device=device),
        torch.randn(2, device=device),
        torch.tensor([1, 2], device=device),
        torch.arange(3, device=device),
        x.new_zeros(2, device=device),
        torch.zeros_like(x, device=device),
        x.to(device),
        x.to(device=device),
    ]
    assert all(t.device.type == "cpu" for t in made)
    assert x.to(device, torch.float64).dtype == torch.float64
    assert torch.nn.Linear(2, 2).to(device).weight.device.type == "cpu"


def test_cuda_methods_give_cpu_tensors_and_modules():
    x = torch.arange(4.0)
    assert x.cuda() is x
    assert x.cuda(torch.cuda.current_device(), non_blocking=True) is x
    linear = torch.nn.Linear(2, 2).cuda()
    assert linear.weight.device.type == "cpu"
    assert torch.nn.Linear(2, 2).to("cuda").weight.device.type == "cpu"


def test_pin_memory_is_accepted_and_copies():
    assert torch.empty(3, pin_memory=True).device.type == "cpu"
    assert torch.tensor([1, 2], device="cuda", pin_memory=True).tolist() == [1, 2]
    x = torch.arange(4.0)
    pinned = x.pin_memory()
    # A real pin_memory() returns a copy; megatron's param offload frees the original after it.
    assert torch.equal(pinned, x) and pinned.data_ptr() != x.data_ptr()


def test_current_device_works_inside_backward_where_the_function_mode_is_off():
    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, grad):
            return grad * torch.full_like(grad, 2.0, device=torch.cuda.current_device())

    x = torch.ones(3, requires_grad=True)
    Double.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_sync_stream_event_and_nvtx_calls_are_no_ops():
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    torch.cuda.default_stream().wait_stream(stream)
    with torch.cuda.stream(stream), torch.cuda.nvtx.range("step"):
        torch.cuda.nvtx.range_push("inner")
        torch.cuda.nvtx.range_pop()
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    event.wait()
    event.synchronize()
    assert event.query() and event.elapsed_time(torch.cuda.Event()) == 0.0
    torch.cuda.ExternalStream(0).synchronize()


def test_cuda_rng_state_round_trips_through_the_cpu_generator():
    torch.cuda.manual_seed(1)
    state = torch.cuda.get_rng_state()
    first = torch.randn(4)
    torch.cuda.manual_seed(2)
    assert not torch.equal(torch.randn(4), first)
    torch.cuda.set_rng_state(state)
    assert torch.equal(torch.randn(4), first)
    torch.cuda.random.set_rng_state(state)
    assert torch.equal(torch.cuda.random.get_rng_state(), state)
    torch.manual_seed(5)  # calls torch.cuda.manual_seed_all: must neither recurse nor reseed differently
    reference = torch.randn(4)
    torch.cuda.manual_seed_all(5)
    assert torch.equal(torch.randn(4), reference)


def test_lazy_call_runs_its_callback_immediately():
    calls = []
    torch.cuda._lazy_call(lambda: calls.append(1))
    assert calls == [1]


def _draws(seed, *sizes):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(size, generator=generator) for size in sizes]


def test_megatron_rng_tracker_forks_and_restores_the_default_state(caplog):
    from megatron.core import tensor_parallel

    tensor_parallel.model_parallel_cuda_manual_seed(123, tp_rank=0, ep_rank=0, etp_rank=0)
    tracker = tensor_parallel.get_cuda_rng_tracker()
    with caplog.at_level(logging.WARNING):
        default_1 = torch.randn(4)
        with tracker.fork():
            forked_1 = torch.randn(4)
        default_2 = torch.randn(4)
        with tracker.fork():
            forked_2 = torch.randn(4)
        default_3 = torch.randn(4)
    # Default state: seed 123; the model-parallel state: 123 + 2718 + tp_rank.
    assert all(map(torch.equal, (default_1, default_2, default_3), _draws(123, 4, 4, 4)))
    assert all(map(torch.equal, (forked_1, forked_2), _draws(123 + 2718, 4, 4)))
    assert not any("CPU RNG state changed" in r.getMessage() for r in caplog.records)


def test_tensor_type_reports_cuda_names_to_megatron_only():
    x = torch.ones(2)
    assert x.type() == "torch.FloatTensor"
    as_megatron = {"__name__": "megatron.core.optimizer.clip", "torch": torch, "x": x, "y": x.bfloat16()}
    exec("names = (x.type(), y.type(), x.type(torch.float64).dtype)", as_megatron)
    assert as_megatron["names"] == ("torch.cuda.FloatTensor", "torch.cuda.BFloat16Tensor", torch.float64)


def test_megatron_clip_grads_accepts_cpu_grads():
    from megatron.core.optimizer.clip_grads import clip_grad_by_total_norm_fp32

    param = torch.nn.Parameter(torch.ones(3))
    param.grad = torch.full((3,), 4.0)
    clip_grad_by_total_norm_fp32([param], max_norm=1.0, total_norm=8.0)
    assert torch.allclose(param.grad, torch.full((3,), 0.5), atol=1e-6)


# --- megatron-core smoke: GPT + DDP + optimizer, one step, one process on gloo ---------------------
@pytest.fixture
def model_parallel(tmp_path):
    import torch.distributed as dist
    from megatron.core import parallel_state, tensor_parallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        parallel_state.initialize_model_parallel(1, 1)
        tensor_parallel.model_parallel_cuda_manual_seed(123)
        yield
    finally:
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()


def _tiny_gpt(ddp_config=None):
    from megatron.core.distributed import (
        DistributedDataParallel,
        DistributedDataParallelConfig,
        finalize_model_grads,
    )
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer import TransformerConfig

    config = TransformerConfig(
        num_layers=2,
        hidden_size=64,
        num_attention_heads=4,
        num_query_groups=2,
        kv_channels=16,
        ffn_hidden_size=128,
        normalization="RMSNorm",
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        params_dtype=torch.float32,
        bf16=False,
    )
    config.finalize_model_grads_func = finalize_model_grads
    spec = get_gpt_layer_local_spec(normalization="RMSNorm", qk_layernorm=True)
    model = GPTModel(config, spec, vocab_size=128, max_sequence_length=32, position_embedding_type="rope")
    return DistributedDataParallel(config, ddp_config or DistributedDataParallelConfig(), model)


def _forward_step(data_iterator, model):
    tokens = next(data_iterator)
    position_ids = torch.arange(tokens.shape[1]).expand_as(tokens)
    output = model(tokens[:, :-1], position_ids[:, :-1], None, labels=tokens[:, 1:])

    def loss_func(per_token_loss):
        loss = per_token_loss.float().mean()
        return loss, {"loss": loss.detach()}

    return output, loss_func


def test_megatron_gpt_trains_one_step_on_cpu(model_parallel):
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.pipeline_parallel import get_forward_backward_func

    model = _tiny_gpt()
    optimizer = get_megatron_optimizer(
        OptimizerConfig(optimizer="adam", lr=1e-3, use_distributed_optimizer=False, clip_grad=1.0), [model]
    )
    before = [p.detach().clone() for p in model.parameters()]
    tokens = torch.randint(0, 128, (2, 17), generator=torch.Generator().manual_seed(0))

    model.zero_grad_buffer()
    optimizer.zero_grad()
    losses = get_forward_backward_func()(
        forward_step_func=_forward_step,
        data_iterator=iter([tokens]),
        model=[model],
        num_microbatches=1,
        seq_length=16,
        micro_batch_size=2,
        forward_only=False,
    )
    update_successful, grad_norm, _ = optimizer.step()

    loss = losses[0]["loss"]
    assert torch.isfinite(loss) and 3.0 < loss.item() < 7.0  # about ln(128) = 4.85 at init
    assert update_successful and grad_norm > 0
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_megatron_param_buffer_offload_round_trips(model_parallel):
    # RL offloads the weights during rollout: megatron keeps `param_data.cpu().pin_memory()` as the
    # copy and frees param_data, so pin_memory() must copy (the buffer exists with dist-opt only).
    from megatron.core.distributed import DistributedDataParallelConfig

    model = _tiny_gpt(DistributedDataParallelConfig(use_distributed_optimizer=True))
    weights = [p.detach().clone() for p in model.parameters()]
    for buffer in model.buffers:
        flat_weights = buffer.param_data.clone()
        buffer.offload_to_cpu(move_params=True, move_grads=True)
        assert buffer.param_data.untyped_storage().size() == 0
        assert buffer.param_data_cpu.untyped_storage().size() == flat_weights.untyped_storage().size()
        assert torch.equal(buffer.param_data_cpu, flat_weights)
        buffer.reload_from_cpu(move_params=True, move_grads=True)
    assert all(torch.equal(w, p) for w, p in zip(weights, model.parameters(), strict=True))
