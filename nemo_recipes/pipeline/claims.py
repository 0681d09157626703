"""The recipe's claims, checked on a finished run's eval reports with paired 95 % bootstrap intervals.

RedOne 2.0's recipe claims that RL first lifts the domain without the SFT seesaw, and that targeted
SFT with rehearsal then RL lifts it further. On a run they read as four checks, each a paired
difference between two evaluated units on the same items (eval/intervals.py):

1. stage 1 raises SNS over the base: the interval of (stage1 RL - base) on the SNS suite lies above 0;
2. the general suite does not fall below the base across the recipe: for no stage does the interval
   of (stage - base) on the general suite lie below 0;
3. the diagnosed tasks improve from stage 1 to stage 3: the interval of (stage3 RL - stage1 RL) on the
   mean score of the tasks the diagnosis selected lies above 0;
4. RL-first keeps more general ability than SFT-only: the interval of (stage3 RL - sft-only) on the
   general suite lies above 0 (needs `pipeline.baseline_sft: true`).

A check whose scores or intervals are missing (the arm did not run, a suite was not scored) is
reported as not checked, never as holding. Torch-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eval.intervals import Difference, bootstrap_settings, paired_differences, paired_task_mean_difference

PATH = ("base", "stage1 RL", "stage2 SFT", "stage3 RL")
"""The labels of the RL-first path's evaluated units, in order."""
BASELINE = "sft-only"


@dataclass(frozen=True)
class Claim:
    """One claim: whether it holds (None: it could not be checked) and the differences behind it."""

    name: str
    statement: str
    holds: bool | None
    evidence: str

    def line(self) -> str:
        verdict = {True: "holds", False: "does not hold", None: "not checked"}[self.holds]
        return f"[{verdict}] {self.statement}: {self.evidence}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _cell(label: str, diff: Difference | None) -> str:
    if diff is None:
        return f"{label} not scored"
    if diff.interval is None:
        return f"{label} {diff.difference:+.1f} (no interval)"
    lo, hi = diff.interval
    return f"{label} {diff.difference:+.1f} [{lo:+.1f}, {hi:+.1f}]"


class _Pairs:
    """Paired differences between the reports of two labels, each pair bootstrapped once."""

    def __init__(self, reports: dict[str, dict]) -> None:
        self.reports = reports
        self._done: dict[tuple[str, str], dict] = {}

    def suite(self, a: str, b: str, suite: str) -> Difference | None:
        """B - A on a suite's score, paired; None when either report lacks the score."""
        if a not in self.reports or b not in self.reports:
            return None
        if (a, b) not in self._done:
            seed, samples = bootstrap_settings(self.reports[a])
            self._done[(a, b)] = paired_differences(self.reports[a], self.reports[b], seed, samples)
        return self._done[(a, b)].get((suite, "suite"))


def _above(diff: Difference | None) -> bool | None:
    return None if diff is None or diff.interval is None else diff.interval[0] > 0


def check_claims(reports: dict[str, dict], diagnosed: list[str]) -> list[Claim]:
    """The four claims on `reports` (label -> eval report, PATH's labels and BASELINE's when it ran)."""
    pairs = _Pairs(reports)
    rise = pairs.suite("base", "stage1 RL", "sns")
    claims = [
        Claim("stage1_raises_sns", "stage 1 raises SNS over the base", _above(rise), _cell("SNS", rise))
    ]

    kept = {label: pairs.suite("base", label, "general") for label in PATH[1:]}
    if any(d is None or d.interval is None for d in kept.values()):
        holds = None
    else:
        holds = not any(d.interval[1] < 0 for d in kept.values())
    claims.append(
        Claim(
            "general_not_below_base",
            "the general suite does not fall below the base across the recipe (no stage significantly "
            "below it)",
            holds,
            ", ".join(_cell(f"{label} - base", d) for label, d in kept.items()),
        )
    )

    if "stage1 RL" in reports and "stage3 RL" in reports and diagnosed:
        seed, samples = bootstrap_settings(reports["stage1 RL"])
        lift = paired_task_mean_difference(
            reports["stage1 RL"], reports["stage3 RL"], diagnosed, seed, samples
        )
    else:
        lift = None
    claims.append(
        Claim(
            "diagnosed_tasks_improve",
            f"the diagnosed tasks ({', '.join(diagnosed) or 'none'}) improve from stage 1 to stage 3",
            _above(lift),
            _cell("mean of their scores", lift),
        )
    )

    if BASELINE in reports:
        margin = pairs.suite(BASELINE, "stage3 RL", "general")
        evidence = _cell("general, stage3 RL - sft-only", margin)
    else:
        margin, evidence = None, "the SFT-only arm did not run (pipeline.baseline_sft: false)"
    claims.append(
        Claim(
            "rl_first_keeps_general",
            "RL-first keeps more general ability than SFT-only",
            _above(margin),
            evidence,
        )
    )
    return claims


def versus_baseline(reports: dict[str, dict]) -> str | None:
    """`RL-first vs SFT-only: SNS +x [lo, hi], general +y [lo, hi]` (stage3 RL - sft-only, paired),
    or None when the SFT-only arm did not run."""
    if BASELINE not in reports or "stage3 RL" not in reports:
        return None
    pairs, cells = _Pairs(reports), []
    for suite, title in (("sns", "SNS"), ("translation", "translation"), ("general", "general")):
        diff = pairs.suite(BASELINE, "stage3 RL", suite)
        if diff is not None:
            cells.append(_cell(title, diff))
    return "RL-first vs SFT-only: " + ", ".join(cells)
