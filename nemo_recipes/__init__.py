"""redone: RL-first three-stage post-training (the RedOne 2.0 recipe) on megatron-core and vLLM."""

__version__ = "0.1.0"
