"""Fixtures: tiny HF model directories (every architecture, fp32 and bf16), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conversion.hf_models import ALL_ARCHS, DTYPES, make_hf_model


@pytest.fixture(scope="session")
def hf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<root>/<arch>-<dtype>/`: HF directories saved by transformers, with the tiny tokenizer."""
    root = tmp_path_factory.mktemp("hf")
    for arch in ALL_ARCHS:
        for dtype in DTYPES:
            make_hf_model(arch, root / f"{arch}-{dtype}", dtype)
    return root
