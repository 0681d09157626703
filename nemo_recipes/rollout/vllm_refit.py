"""The vLLM worker side of a refit: load HF-named weights into the serving model, in chunks.

`RefitWorkerExtension` is mixed into vLLM's worker class (`LLM(worker_extension_cls=...)`), so it
runs in vLLM's worker process, next to the model. A refit is begin, any number of loads, finish:
vLLM's layerwise reload (the mechanism behind its own `reload_weights` and weight-transfer engines)
restores each layer to checkpoint format, loads the HF tensors through the model's own
`load_weights` (fusing q/k/v, gate/up), and re-processes a layer (e.g. the CPU GEMM repacking) once
all its weights arrived, so a layer may be split across chunks. Imports only vLLM and safetensors:
no megatron here.

Mixture-of-experts layers on CPU: vLLM 0.32's unquantized MoE method prepacks the experts into its CPU
grouped-GEMM layout (`CPUUnquantizedExperts.process_weights_after_loading`) only when its kernel is
first built; a reload copies the new weights back in checkpoint layout and never prepacks them, so
the CPU kernel then reads unpacked weights as packed ones (measured on tiny-qwen3-moe: 0.27 mean
absolute logprob error after one refit of the very weights it was loaded with, 3e-7 before). The
finish step prepacks them again (`_repack_cpu_experts`), as the first load did.
"""

from __future__ import annotations

from safetensors.torch import load as load_safetensors
from vllm.config import set_current_vllm_config
from vllm.model_executor.layers.fused_moe.experts.cpu_moe import CPUUnquantizedExperts
from vllm.model_executor.model_loader.reload import (
    finalize_layerwise_reload,
    initialize_layerwise_reload,
)


class RefitWorkerExtension:
    """Methods added to vLLM's worker; called through `LLM.collective_rpc` by `VLLMEngine.refit`."""

    def redone_begin_refit(self) -> None:
        with set_current_vllm_config(self.vllm_config):
            initialize_layerwise_reload(self.model_runner.get_model())

    def redone_load_weights(self, blob: bytes) -> None:
        """Load one chunk of HF-named tensors, serialised with safetensors."""
        with set_current_vllm_config(self.vllm_config):
            self.model_runner.get_model().load_weights(load_safetensors(blob).items())

    def redone_finish_refit(self) -> None:
        model = self.model_runner.get_model()
        with set_current_vllm_config(self.vllm_config):
            finalize_layerwise_reload(model, self.vllm_config.model_config)
            _repack_cpu_experts(model)


def _repack_cpu_experts(model) -> None:
    """Prepack every CPU MoE layer's reloaded experts into the kernel's layout (see the module's
    docstring). A refit reloads every layer (the trainer streams all weights), so each holds weights
    in checkpoint layout here."""
    for layer in model.modules():
        kernel = getattr(getattr(layer, "quant_method", None), "moe_kernel", None)
        experts = getattr(kernel, "fused_experts", None)
        if isinstance(experts, CPUUnquantizedExperts):
            experts.process_weights_after_loading(layer)
