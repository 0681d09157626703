"""What the trainer adds to vLLM's worker (`LLM(worker_extension_cls=...)`): refit and routing capture."""

from __future__ import annotations

from nemo_recipes.rollout.vllm_refit import RefitWorkerExtension
from nemo_recipes.rollout.vllm_routing import RoutingWorkerExtension


class WorkerExtension(RefitWorkerExtension, RoutingWorkerExtension):
    """Refit (`nemo_recipes.rollout.vllm_refit`) and routing capture (`nemo_recipes.rollout.vllm_routing`)."""
