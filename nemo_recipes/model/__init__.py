"""megatron-core GPTModel construction from HF-style configs."""
