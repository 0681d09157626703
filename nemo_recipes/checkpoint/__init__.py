"""Training checkpoints (megatron-core dist_checkpointing): atomic saves, resume, optimizer-state adapter."""
