"""Rollout generation for the RL stage: the engine protocol, the vLLM engine, and weight refit.

Kept free of imports: vLLM's spawned worker processes import `nemo_recipes.rollout.vllm_refit`, and
must not pull in megatron-core or the CPU device layer on the way.
"""
