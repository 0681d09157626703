"""Per-step metrics: metrics.jsonl (always), TensorBoard, W&B (when asked and installed), a progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nemo_recipes.config.training import LoggingConfig

SUMMARY_KEYS = ("loss", "val_loss", "reward_mean", "pass_rate", "response_tokens_mean")
TOTAL_KEYS = ("conversations_seen",)
"""Running totals: the summary keeps their last logged value (a stage logs its last step)."""


def summarize_metrics(path: Path, window_steps: int = 5) -> dict[str, float]:
    """The run's step count and, for the headline metrics it logged, the mean over its first and last
    `window_steps` logged values (`<name>_first`, `<name>_last`), and the last value of each running
    total (TOTAL_KEYS): for manifests and reports."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out: dict[str, float] = {"steps": max((r["step"] for r in rows), default=0)}
    for key in SUMMARY_KEYS:
        values = [r[key] for r in rows if key in r]
        if values:
            out[f"{key}_first"] = sum(values[:window_steps]) / len(values[:window_steps])
            out[f"{key}_last"] = sum(values[-window_steps:]) / len(values[-window_steps:])
    for key in TOTAL_KEYS:
        values = [r[key] for r in rows if key in r]
        if values:
            out[key] = values[-1]
    return out


class MetricsLogger:
    """Used on the logging rank only. `log(step, metrics)` appends one JSON object per call.

    On resume, lines for steps at or after the resume step are dropped first, so the file reads as
    one uninterrupted run.
    """

    def __init__(
        self, run_dir: Path, cfg: LoggingConfig, total_steps: int, start_step: int, name: str = "train"
    ):
        self.path = run_dir / "metrics.jsonl"
        self._truncate_after(start_step, name)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (held open for the run)
        self._name = name
        self._tb = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard" / name), purge_step=start_step + 1)
        self._wandb = None
        if cfg.wandb_project:
            try:
                import wandb
            except ImportError as e:
                raise RuntimeError(
                    "logging.wandb_project is set but wandb is not installed (pip install wandb)"
                ) from e
            self._wandb = wandb.init(
                project=cfg.wandb_project, name=f"{run_dir.name}-{name}", dir=str(run_dir)
            )
        self._progress = None
        if cfg.progress_bar:
            self._progress = Progress(
                TextColumn(f"[bold]{name}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._progress.add_task(name, total=total_steps, completed=start_step, info="")
            self._progress.start()

    def _truncate_after(self, start_step: int, name: str) -> None:
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text(encoding="utf-8").splitlines()
            if line.strip()
            and not (json.loads(line).get("stage") == name and json.loads(line)["step"] > start_step)
        ]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"stage": self._name, "step": step, **metrics}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        if self._tb is not None:
            for k, v in numeric.items():
                self._tb.add_scalar(f"{self._name}/{k}", v, step)
        if self._wandb is not None:
            self._wandb.log({f"{self._name}/{k}": v for k, v in numeric.items()}, step=step)
        if self._progress is not None:
            info = " ".join(f"{k}={v:.4g}" for k, v in numeric.items() if k in ("loss", "val_loss", "lr"))
            self._progress.update(self._task, completed=step, info=info)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        self._file.close()
