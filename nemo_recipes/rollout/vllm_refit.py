"""The vLLM worker side of a refit: load HF-named weights into the serving model, in chunks.

`RefitWorkerExtension` is mixed into vLLM's worker class (`LLM(worker_extension_cls=...)`), so it
runs in vLLM's worker process, next to the model. A refit is begin, any number of loads, finish:
vLLM's layerwise reload (the mechanism behind its own `reload_weights` and weight-transfer engines)
restores each layer to checkpoint format, loads the HF tensors through the model's own
`load_weights` (fusing q/k/v, gate/up), and re-processes a layer (e.g. the CPU GEMM repacking) once
all its weights arrived, so a layer may be split across chunks. Imports only vLLM and safetensors:
no megatron here.
"""

from __future__ import annotations

from safetensors.torch import load as load_safetensors
from vllm.config import set_current_vllm_config
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
        with set_current_vllm_config(self.vllm_config):
            finalize_layerwise_reload(self.model_runner.get_model(), self.vllm_config.model_config)
