"""CPU device layer: lets megatron-core, which assumes CUDA, run on a CPU-only torch.

This module owns every CUDA -> CPU stand-in the trainer needs. `install()` applies them once, only
when CUDA is absent, and must run before `megatron.core` is first imported (importing
`nemo_recipes.device` does it). No library file is edited. Pieces, one section each below:
  * `torch.cuda.current_device()` -> `torch.device("cpu")`;
  * the CUDA RNG API -> the CPU default generator, and `torch.cuda._lazy_call` runs at once;
  * no-op synchronize / empty_cache / streams / events / nvtx ranges;
  * `Tensor.cuda()` returns the tensor, `Tensor.pin_memory()` returns a copy (as a real one does);
  * `Tensor.type()` reports `torch.cuda.*Tensor` names to callers inside megatron only;
  * a TorchFunctionMode, entered for the life of the process, rewrites CUDA device arguments to
    the CPU and drops pin_memory=True.

Limits: the function mode is per thread and autograd switches it off inside backward, so there
(and in other threads) only the patched functions apply; hence current_device returns a
torch.device, usable as-is, not the ordinal 0. A process started with "spawn" must import
`nemo_recipes.device` itself. Warnings raised inside torch calls point at this file's
`__torch_function__` line instead of the caller.

Cost (2-core CPU, torch 2.13): +1.1 to 2.0 us per torch call made from Python (torch.add on
8-element tensors 1.23 -> 2.35 us; torch.zeros(device=) 1.40 -> 3.12 us; Tensor.to 0.95 -> 2.94 us).
One fwd/bwd + Adam step of the 2-layer, 64-wide test GPT makes ~1,000 such calls: ~1.5 ms of 12.6 ms.
"""

import contextlib
import logging
import sys

import torch
from torch.overrides import TorchFunctionMode

_CPU = torch.device("cpu")
_TENSOR_TO = torch.Tensor.to
_PARSE_TO = torch._C._nn._parse_to
_installed = False


def is_installed() -> bool:
    return _installed


def install() -> bool:
    """Install the layer; return True if it is (now) installed, False when CUDA is available."""
    global _installed
    if _installed:
        return True
    if torch.cuda.is_available():
        return False
    if "megatron.core.tensor_parallel.random" in sys.modules:
        # That module binds torch.cuda._lazy_call at import; patching later would silently leave
        # megatron's RNG tracker unable to restore state.
        raise RuntimeError("import nemo_recipes.device before megatron.core (CPU device layer)")
    if torch._C._len_torch_function_stack():
        # A mode entered by a `with` (e.g. torch.device(...)) pops whatever is on top at its exit:
        # it would pop ours and leave itself active for good.
        raise RuntimeError("install the CPU device layer outside any torch function mode / device context")
    _install_current_device()
    _install_rng()
    _install_no_ops()
    _install_tensor_methods()
    _CudaToCpuMode().__enter__()  # entered for the life of the process: never exited
    _installed = True
    return True


# --- current device ---------------------------------------------------------------------------
# ~175 megatron call sites pass torch.cuda.current_device() as `device=`. A torch.device (not 0)
# keeps them on the CPU even where the function mode is off (autograd backward, other threads).
def _install_current_device() -> None:
    torch.cuda.current_device = lambda: _CPU


# --- RNG --------------------------------------------------------------------------------------
# megatron's model-parallel RNG tracker (dropout, TP weight init) saves, reseeds and restores the
# "CUDA" generator. On the CPU that generator is the CPU default one.
class _DefaultGenerators:
    """torch.cuda.default_generators indexed by megatron with an int or a torch.device."""

    def __getitem__(self, index):
        return torch.default_generator

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        yield torch.default_generator


def _install_rng() -> None:
    def get_rng_state(device="cuda"):
        return torch.get_rng_state()

    def set_rng_state(new_state, device="cuda"):
        torch.set_rng_state(new_state)

    def manual_seed(seed):
        # Not torch.manual_seed: it calls torch.cuda.manual_seed_all, which would recurse.
        torch.default_generator.manual_seed(int(seed))

    for module in (torch.cuda, torch.cuda.random):
        module.get_rng_state = get_rng_state
        module.set_rng_state = set_rng_state
        module.manual_seed = manual_seed
        module.manual_seed_all = manual_seed
    torch.cuda.default_generators = _DefaultGenerators()
    # megatron's _set_cuda_rng_state hands its work to _lazy_call, which on a CPU build queues the
    # callback forever: the tracker would never restore the state after fork().
    torch.cuda._lazy_call = lambda callback, **kwargs: callback()
    # fork() warns when the CPU generator moved inside it; here the CPU generator IS the tracked
    # one, so the warning would fire on every dropout or init under the tracker.
    logging.getLogger("megatron.core.tensor_parallel.random").addFilter(_drop_cpu_rng_warning)


def _drop_cpu_rng_warning(record: logging.LogRecord) -> bool:
    return "CPU RNG state changed within GPU RNG context" not in record.getMessage()


# --- synchronisation, streams, events, nvtx ---------------------------------------------------
# CPU work is synchronous and unprofiled: megatron's DDP, optimizer and schedules call these around
# communication and timing, and the CPU build raises on each of them. torch.cuda.device_count()
# stays 0: megatron's in-process uses accept it (the dataset builder takes max(1, count)) and 1
# would tell torch and other libraries that a GPU exists.
class _NullEvent:
    def __init__(self, *args, **kwargs):
        pass

    def record(self, stream=None):
        pass

    def wait(self, stream=None):
        pass

    def synchronize(self):
        pass

    def query(self) -> bool:
        return True

    def elapsed_time(self, end_event) -> float:
        return 0.0


class _NullStream:
    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def wait_stream(self, stream):
        pass

    def wait_event(self, event):
        pass

    def record_event(self, event=None):
        return event if event is not None else _NullEvent()

    def synchronize(self):
        pass

    def query(self) -> bool:
        return True


def _no_op(*args, **kwargs):
    pass


def _install_no_ops() -> None:
    torch.cuda.synchronize = _no_op
    torch.cuda.empty_cache = _no_op
    torch.cuda.Stream = _NullStream
    torch.cuda.ExternalStream = _NullStream
    torch.cuda.Event = _NullEvent
    torch.cuda.current_stream = lambda device=None: _NullStream()
    torch.cuda.default_stream = lambda device=None: _NullStream()
    torch.cuda.stream = lambda stream=None: contextlib.nullcontext()
    torch.cuda.nvtx.range_push = _no_op
    torch.cuda.nvtx.range_pop = _no_op


# --- Tensor methods ---------------------------------------------------------------------------
_tensor_type = torch.Tensor.type


def _cuda(self, device=None, non_blocking=False, memory_format=torch.preserve_format):
    # Every tensor is already on "the device"; like .to("cpu") on a CPU tensor, return it.
    return self


def _pin_memory(self, device=None):
    # A real pin_memory() copies; megatron's param-buffer offload keeps the copy, frees the original.
    return self.clone()


def _type(self, *args, **kwargs):
    # clip_grads and the optimizers assert `param.type() == "torch.cuda.FloatTensor"`; anyone
    # else (our code, tests, other libraries) sees the true CPU name.
    if not args and not kwargs and self.device.type == "cpu" and _called_from_megatron():
        return _tensor_type(self).replace("torch.", "torch.cuda.", 1)
    return _tensor_type(self, *args, **kwargs)


def _called_from_megatron() -> bool:
    caller = sys._getframe(2).f_globals.get("__name__", "")
    return caller == "megatron" or caller.startswith("megatron.")


def _install_tensor_methods() -> None:
    torch.Tensor.cuda = _cuda
    torch.Tensor.pin_memory = _pin_memory
    torch.Tensor.type = _type


# --- device arguments -------------------------------------------------------------------------
# ~80 megatron call sites hard-code device="cuda" (token counters, causal masks, clip_grads, the
# optimizer) or pin_memory=True; the mode sees every torch call with its arguments and moves them.
def _cpu_if_cuda(device):
    if isinstance(device, str):
        return _CPU if device.startswith("cuda") else device
    if isinstance(device, torch.device):
        return _CPU if device.type == "cuda" else device
    if isinstance(device, int) and not isinstance(device, bool):
        return _CPU  # a bare ordinal means an accelerator
    return device


class _CudaToCpuMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not kwargs:
            kwargs = {}
        elif "device" in kwargs or "pin_memory" in kwargs:
            kwargs = dict(kwargs)
            if "device" in kwargs:
                kwargs["device"] = _cpu_if_cuda(kwargs["device"])
            if kwargs.get("pin_memory"):
                del kwargs["pin_memory"]
        if func is _TENSOR_TO and len(args) > 1:  # x.to("cuda"), x.to(0, torch.float32)
            args = (args[0], _cpu_if_cuda(args[1]), *args[2:])
        elif func is _PARSE_TO and args:  # Module.to(0)
            args = (_cpu_if_cuda(args[0]), *args[1:])
        return func(*args, **kwargs)
