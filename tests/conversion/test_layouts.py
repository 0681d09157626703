"""Every architecture x layout x dtype in one 4-rank launch: logits vs transformers and exact round trips.

Layouts: TP1, TP2, PP2, TP2xPP2 (logits and round trip) and PP2 with 2 virtual stages (round trip);
Qwen3-MoE (both routings) also at expert parallel EP2xTP2, EP2xPP2, EP4 (float32 logits and round
trip: the streamed export gathers the experts of every expert-parallel rank).
A checkpoint written through a deliberately wrong gate/up mapping must fail `redone convert verify`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env, run_cli
from tests.conversion.hf_models import ARCHS, DTYPES, MOE_ARCHS

MAX_LOGITS_DIFF = 1e-4
LAYOUTS = {(1, 1, None, 1), (2, 1, None, 1), (1, 2, None, 1), (2, 2, None, 1), (1, 2, 2, 1)}  # tp pp vp ep
EP_LAYOUTS = {(2, 1, None, 2), (1, 2, None, 2), (1, 1, None, 4)}


@pytest.fixture(scope="module")
def report(hf_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("layouts")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"]
    cmd += ["-m", "tests.conversion.layouts_worker", str(hf_root), str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"layouts worker exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    report = json.loads((out / "report.json").read_text())
    report["wrong_ckpt"] = out / "wrong_ckpt"
    return report


@pytest.mark.parallel
def test_every_case_ran(report: dict) -> None:
    ran = {(c["arch"], c["dtype"], (c["tp"], c["pp"], c["vp"], c["ep"])) for c in report["cases"]}
    expected = {(a, d, layout) for a in ARCHS for d in DTYPES for layout in LAYOUTS}
    expected |= {(a, "float32", layout) for a in MOE_ARCHS for layout in EP_LAYOUTS}
    assert ran == expected


@pytest.mark.parallel
def test_logits_match_transformers_fp32(report: dict) -> None:
    compared = [c for c in report["cases"] if "max_abs_diff" in c]
    # every arch at TP1, TP2, PP2, TP2xPP2; MoE ones also at every EP layout
    assert len(compared) == len(ARCHS) * 4 + len(MOE_ARCHS) * len(EP_LAYOUTS)
    bad = [c for c in compared if c["max_abs_diff"] > MAX_LOGITS_DIFF]
    assert not bad, bad


@pytest.mark.parallel
def test_round_trip_is_bit_exact_and_refit_stream_has_lm_head(report: dict) -> None:
    bad = [c for c in report["cases"] if not (c["names_ok"] and c["bit_exact"] and c["lm_head_ok"])]
    assert not bad, bad


@pytest.mark.parallel
def test_verify_catches_a_wrong_mapping(report: dict, hf_root: Path) -> None:
    assert report["wrong_mapping_max_abs_diff"] > 0.1  # the logits are far off ...
    hf_dir = hf_root / "tiny-qwen3-float32"
    proc = run_cli(["convert", "verify", str(hf_dir), str(report["wrong_ckpt"])], check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]  # ... and verify says so
    assert "FAIL: max_abs_diff=" in proc.stdout and "top1_agreement=" in proc.stdout
