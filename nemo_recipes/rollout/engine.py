"""What a rollout engine is to the RL stage: typed completions and a small protocol.

A second backend (SGLang, an HTTP server) is one new module implementing `RolloutEngine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import torch

from nemo_recipes.config.generation import GenerationConfig
from nemo_recipes.records.rollout import Completion


class RolloutEngine(Protocol):
    """An inference engine colocated with the trainer, refit with the trainer's weights each step."""

    def generate(
        self, prompts: Sequence[Sequence[int]], generation: GenerationConfig, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        """`generation.num_generations_per_prompt` completions per prompt, in prompt order.

        `seeds[i]` seeds prompt i's sampling: a prompt's completions depend only on the prompt, the
        sampling settings, its seed and the weights (not on the other prompts in the call).
        """
        ...

    def refit(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the engine's weights with these HF-named full tensors (consumes the whole iterable)."""
        ...

    def refit_adapter(self, adapter_dir: Path) -> None:
        """Serve the weights with this PEFT adapter directory instead of the last one (model.lora)."""
        ...

    def sleep(self) -> None:
        """Free accelerator memory (weights, KV cache) while the trainer steps."""
        ...

    def wake_up(self) -> None:
        """Undo `sleep` before the next refit / generation."""
        ...

    def shutdown(self) -> None:
        """Stop the engine and release everything it holds."""
        ...
