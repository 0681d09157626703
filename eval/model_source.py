"""What `redone eval MODEL` generates with: an HF directory as is, or one of our checkpoints exported."""

from __future__ import annotations

from pathlib import Path


def hf_model_dir(
    model: Path, work_dir: Path, hf_config: str | None = None, tokenizer: str | None = None
) -> Path:
    """`model` itself when it is an HF model directory; else our checkpoint exported (in its own dtype)
    to `work_dir/hf` once, reused by later runs (the export publishes atomically). `hf_config` and
    `tokenizer` name the architecture and tokenizer when the checkpoint's run does not record them."""
    from conversion.convert import checkpoint_dtype, mcore_to_hf
    from conversion.weights import is_hf_dir

    model = Path(model)
    if is_hf_dir(model):
        return model
    out = work_dir / "hf"
    if not (out / "config.json").is_file():
        mcore_to_hf(model, out, hf_config, tokenizer, dtype=checkpoint_dtype(model))
    return out
