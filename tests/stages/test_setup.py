"""The stages' shared policy bookkeeping: when it checkpoints, and the outcome it reports (the collective
save and the stop-signal check faked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemo_recipes.checkpoint.manager import TrainerState
from nemo_recipes.config.training import CheckpointConfig
from nemo_recipes.stages import setup


class Scheduler:
    def state_dict(self) -> dict:
        return {"num_steps": 1}


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The steps saved; the fake save returns `<root>/step_<n>`."""
    steps: list[int] = []

    def save(
        root: Path, model, optimizer, state: TrainerState, ckpt_cfg, lora_record=None, extra=None
    ) -> Path:
        steps.append(state.step)
        return root / f"step_{state.step}"

    monkeypatch.setattr(setup, "save_checkpoint", save)
    return steps


def policy(tmp_path: Path, interval: int, resumed_from: Path | None = None) -> setup.Policy:
    state = TrainerState(step=0, consumed_rows=0, scheduler={}, layout={})
    return setup.Policy(
        model=[],
        optimizer=None,
        scheduler=Scheduler(),
        arch=None,
        state=state,
        checkpoints=tmp_path,
        ckpt_cfg=CheckpointConfig(save_interval_steps=interval),
        resumed_from=resumed_from,
        initialized_from=None,
        last_checkpoint=resumed_from,
    )


def run(p: setup.Policy, total_steps: int) -> list[bool]:
    stops = []
    while p.state.step < total_steps:
        p.state.step += 1
        stops.append(p.checkpoint_if_due(total_steps))
    return stops


def test_saves_at_the_interval_and_the_last_step(tmp_path: Path, saved: list[int], monkeypatch) -> None:
    monkeypatch.setattr(setup.preemption, "should_stop", lambda: False)
    p = policy(tmp_path, interval=3)
    assert run(p, 7) == [False] * 7
    assert saved == [3, 6, 7]
    assert p.state.scheduler == {"num_steps": 1}
    assert p.finished() == setup.StageOutcome(tmp_path / "step_7", completed=True, steps=7)


def test_a_stop_signal_saves_then_stops(tmp_path: Path, saved: list[int], monkeypatch, capsys) -> None:
    monkeypatch.setattr(setup.preemption, "should_stop", lambda: True)
    monkeypatch.setattr(setup.preemption, "received_signal", lambda: 15)
    p = policy(tmp_path, interval=100)
    p.state.step = 1
    assert p.checkpoint_if_due(10) is True
    assert saved == [1]
    assert p.stopped("sft") == setup.StageOutcome(tmp_path / "step_1", completed=False, steps=1)
    assert capsys.readouterr().out == f"[sft] signal 15: saved {tmp_path / 'step_1'}, exiting\n"
