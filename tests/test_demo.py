"""The demo's shipped base model: what its provenance records is what ships, and a changed file is
refused before anything runs. Rebuilding it is `redone demo --build-base DIR` (slow test below)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nemo_recipes.config.assets import resolve_asset
from nemo_recipes.demo import (
    BASE_DATA,
    CHAT_DATA,
    RECIPES,
    SHIPPED_BASE,
    claims_verdict,
    shipped_base,
    weight_digests,
)
from nemo_recipes.pipeline.manifest import file_digest
from tests.conftest import REPO, run_cli

BASE = resolve_asset(SHIPPED_BASE, "models")


def provenance() -> dict:
    return json.loads((BASE / "provenance.json").read_text(encoding="utf-8"))


def test_the_shipped_base_is_what_its_provenance_records() -> None:
    """Weights, recipe, data and tokenizer: a change to any of them without a rebuild fails here."""
    recorded = provenance()
    assert shipped_base() == BASE
    assert weight_digests(BASE) == recorded["weights"]["sha256"]
    assert recorded["recipe"]["sha256"] == file_digest(RECIPES / "demo_base.yaml")
    assert recorded["data"] == {
        name: file_digest(resolve_asset(name, "data")) for name in (*BASE_DATA, CHAT_DATA)
    }
    assert recorded["tokenizer"]["sha256"] == file_digest(BASE / "tokenizer.json")
    size = sum(p.stat().st_size for p in BASE.iterdir())
    assert size < 25 * 2**20, f"the shipped base is {size / 2**20:.1f} MB"


def test_a_changed_weight_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / SHIPPED_BASE
    shutil.copytree(BASE, copy)
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    monkeypatch.setattr("nemo_recipes.demo.resolve_asset", lambda name, kind: copy)
    with pytest.raises(
        SystemExit, match=r"do not match its provenance\.json: rebuild them with `redone demo"
    ):
        shipped_base()


@pytest.mark.slow
def test_the_base_rebuilds_from_its_recipe(tmp_path: Path) -> None:
    """`redone demo --build-base` from the shipped data and recipe (about 5 minutes on 2 cores), from a
    process with one OMP thread (the tests' environment): the build's SFT runs at its own thread count
    (`BUILD_THREADS`), so the weights equal the shipped ones on the machine that built them; on another
    CPU or torch build the float sums may round differently, which this test then reports."""
    out = tmp_path / "base"
    run_cli(["demo", "--build-base", str(out), "--run-dir", str(tmp_path / "work")], timeout=3600)
    rebuilt = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    for key in ("recipe", "seed", "train_steps", "threads", "data", "tokenizer"):
        assert rebuilt[key] == provenance()[key], key
    assert rebuilt["weights"] == provenance()["weights"]


def test_the_verdict_counts_the_claims_and_points_to_the_why() -> None:
    def claim(name: str, holds: bool | None) -> dict:
        return {"name": name, "statement": name, "holds": holds, "evidence": "-"}

    some = {"claims": [claim("a", True), claim("b", False), claim("c", None), claim("d", True)]}
    verdict = claims_verdict(some)
    assert verdict.startswith("2 of 4 claims hold on this run.")
    assert 'docs/pipeline.md, "What the demo gives"' in verdict
    assert "What the demo gives" in (REPO / "docs/pipeline.md").read_text()  # the section it names
    assert claims_verdict({"claims": [claim("a", True)]}) == "All 1 claims hold on this run."
