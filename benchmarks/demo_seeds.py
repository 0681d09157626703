"""`redone demo` under several seeds: the demo's table and claims per seed, and which claims hold in all.

Runs `redone demo --seed N --run-dir OUT/seed-N` for each seed in turn (each resumes if interrupted:
run the same command again), times it, then prints per seed the suite scores with their 95 % intervals
and the recipe's claims as the final report checked them (nemo_recipes/pipeline/claims.py), as
Markdown for docs/benchmarks.md. The seed changes everything the pipeline draws (RL sampling and data
order, SFT order, stage 2's rehearsal answers, the bootstrap); the shipped base model is the same. Usage:

    python benchmarks/demo_seeds.py [--seeds 1234,1,2] [--out runs/demo-seeds]

Its last line reads `claims holding under every seed: <k>/4 (<names>); demo minutes: <a>, <b>, <c>`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from eval.report import format_score
from nemo_recipes.pipeline.claims import Claim


def markdown_table(summary: dict) -> list[str]:
    """The suite scores per stage label (with intervals), as a Markdown table."""
    labels = list(dict.fromkeys(label for by_label in summary["suites"].values() for label in by_label))
    lines = ["| suite | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for suite, by_label in summary["suites"].items():
        intervals = summary["intervals"].get(suite, {})
        cells = (format_score(by_label.get(label), intervals.get(label)) for label in labels)
        lines.append(f"| {suite} | " + " | ".join(cells) + " |")
    return lines


def run_seed(seed: int, out: Path) -> tuple[dict, float]:
    """`redone demo --seed SEED` in OUT/seed-SEED; its summary.json and its minutes."""
    run_dir = out / f"seed-{seed}"
    start = time.monotonic()
    cmd = [sys.executable, "-m", "nemo_recipes.cli", "demo", "--seed", str(seed), "--run-dir", str(run_dir)]
    code = subprocess.call(cmd)
    if code != 0:
        raise SystemExit(f"redone demo --seed {seed} exited {code}")
    minutes = (time.monotonic() - start) / 60
    summary = json.loads((run_dir / "pipeline" / "final" / "summary.json").read_text(encoding="utf-8"))
    return summary, minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1234,1,2", help="comma-separated seeds")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo-seeds"), help="one run directory per seed"
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {seed: run_seed(seed, args.out) for seed in seeds}
    holding: dict[str, bool] = {}
    for seed, (summary, minutes) in results.items():
        claims = [Claim(**c) for c in summary["claims"]]
        print(f"\n### seed {seed} ({minutes:.1f} min)\n")
        print("\n".join(markdown_table(summary)))
        print()
        print("\n".join(f"- {claim.line()}" for claim in claims))
        for claim in claims:
            holding[claim.name] = holding.get(claim.name, True) and claim.holds is True
    names = [name for name, holds in holding.items() if holds]
    times = ", ".join(f"{minutes:.1f}" for _, minutes in results.values())
    print(
        f"\nclaims holding under every seed: {len(names)}/{len(holding)} ({', '.join(names) or 'none'}); "
        f"demo minutes: {times}"
    )


if __name__ == "__main__":
    main()
