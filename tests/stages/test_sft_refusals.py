"""What SFT refuses before set-up rather than train wrongly: packed rows under Transformer Engine."""

from __future__ import annotations

import pytest

from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import ConfigError, load_config
from nemo_recipes.stages import sft


def test_packing_under_transformer_engine_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # TE with CUDA is absent here: the layer-spec resolution is what a GPU machine would return.
    monkeypatch.setattr(sft, "resolve_transformer_impl", lambda model, parallel: "transformer_engine")
    cfg = load_config(RunConfig, None, [f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match=r"set sft\.packing: false"):
        sft.run_sft(cfg)
    assert not (tmp_path / "run").exists()
