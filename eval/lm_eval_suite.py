"""lm-evaluation-harness (`lm-eval`) tasks for the general suite, offline, on local dataset files.

Tasks are lm-eval YAML task files in local directories (`include_path`, indexed by lm-eval's
`TaskManager`; lm-eval's built-in task directory is not indexed, so a name never resolves to a task
that would fetch its data from the hub). A task reads local files through the `json` (or `csv`,
`parquet`) dataset builder: `dataset_path: json` with `dataset_kwargs: {data_files: ...}`; a relative
`data_files` path resolves against the YAML file's own directory. The model is lm-eval's `hf` backend
on an HF model directory. The hub is switched off for the whole process (`HF_HUB_OFFLINE`,
`HF_DATASETS_OFFLINE`), so a task that would download anything fails instead.

Scores: `{task: {metric: value}}` where a metric is lm-eval's `name,filter` key (`,none` dropped; stderr
entries dropped). Fraction metrics (`FRACTION_METRICS`: accuracy, exact match, F1, ...) are scaled by 100
onto the 0-100 scale of every other suite; any other metric (perplexity, lm-eval's own BLEU) is
reported as lm-eval returns it. A task's headline score is its first fraction metric (`headline`), and
`score_stderr` lm-eval's standard error of it (same scale; None when lm-eval gives none): lm-eval
keeps no per-item values here, so the bootstrap intervals (eval/intervals.py) draw such a task's score
from a normal with that standard error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nemo_recipes.config.loader import ConfigError

DEFAULT_INCLUDE_PATH = Path(__file__).resolve().parents[1] / "nemo_recipes" / "assets" / "lm_eval"
"""The shipped local tasks (`redone_arith_mc`, `redone_arith_gen`)."""

FRACTION_METRICS = frozenset(
    {
        "acc",
        "acc_norm",
        "acc_mutual_info",
        "exact_match",
        "em",
        "f1",
        "mc1",
        "mc2",
        "pass@1",
        "prompt_level_strict_acc",
        "inst_level_strict_acc",
        "prompt_level_loose_acc",
        "inst_level_loose_acc",
    }
)
"""lm-eval metrics whose value is a fraction in [0, 1]; reported x100."""


def _offline() -> None:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[var] = "1"


def _resolve_data_files(data_files: Any, base: Path) -> Any:
    """`data_files` (a path, a list, or {split: path or list}) with relative paths made absolute."""
    if isinstance(data_files, dict):
        return {k: _resolve_data_files(v, base) for k, v in data_files.items()}
    if isinstance(data_files, list | tuple):
        return [_resolve_data_files(v, base) for v in data_files]
    path = Path(str(data_files)).expanduser()
    return str(path if path.is_absolute() else base / path)


def task_specs(tasks: Sequence[str], include_path: Sequence[Path]) -> tuple[Any, list[Any]]:
    """lm-eval's TaskManager over `include_path` and one spec per task: its YAML's full config
    (includes and `!function`s resolved) with relative `data_files` made absolute; a group or tag
    name is passed through by name. Unknown names are a ConfigError."""
    _offline()
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    for path in include_path:
        if not Path(path).is_dir():
            raise ConfigError(f"lm_eval_include_path: {path} is not a directory")
    manager = TaskManager(include_path=[str(p) for p in include_path], include_defaults=False)
    specs: list[Any] = []
    for name in tasks:
        entry = manager.task_index.get(name)
        if entry is None:
            raise ConfigError(
                f"lm-eval task {name!r} is not defined under {[str(p) for p in include_path]} "
                f"(known: {manager.all_tasks})"
            )
        if entry.yaml_path is None or entry.kind.name not in ("TASK",):
            specs.append(name)
            continue
        cfg = load_yaml(entry.yaml_path, resolve_func=True)
        cfg["task"] = name
        kwargs = dict(cfg.get("dataset_kwargs") or {})
        if "data_files" in kwargs:
            kwargs["data_files"] = _resolve_data_files(kwargs["data_files"], Path(entry.yaml_path).parent)
            cfg["dataset_kwargs"] = kwargs
        specs.append(cfg)
    return manager, specs


def headline_metric(metrics: dict[str, float]) -> str | None:
    """The key of a task's headline metric: its first fraction metric, None when it has none."""
    return next((key for key in metrics if key.split(",")[0] in FRACTION_METRICS), None)


def headline(metrics: dict[str, float]) -> float | None:
    """A task's score: its first fraction metric (already x100), None when it has none."""
    key = headline_metric(metrics)
    return None if key is None else metrics[key]


def _convert(results: dict[str, dict[str, Any]], stderr: bool) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for task, row in sorted(results.items()):
        metrics: dict[str, float] = {}
        for key, value in row.items():
            if "," not in key or ("_stderr" in key) != stderr or not isinstance(value, int | float):
                continue  # alias, sample_len, stderr entries (or the metrics), "N/A" stderr
            name, _, filt = key.partition(",")
            name = name.removesuffix("_stderr") if stderr else name
            label = name if filt in ("", "none") else f"{name},{filt}"
            metrics[label] = 100.0 * float(value) if name in FRACTION_METRICS else float(value)
        out[task] = metrics
    return out


def convert_results(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """lm-eval's `results` section -> {task: {metric: value}}, fractions x100 (see module doc)."""
    return _convert(results, stderr=False)


def convert_stderr(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """lm-eval's standard errors -> {task: {metric: stderr}}, keyed and scaled like `convert_results`
    (a metric whose stderr lm-eval did not compute, "N/A", is left out)."""
    return _convert(results, stderr=True)


def run_lm_eval(
    hf_dir: Path,
    tasks: Sequence[str],
    include_path: Sequence[Path] | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    seed: int = 1234,
    dtype: str = "auto",
    device: str | None = None,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Run lm-eval's `simple_evaluate` with the `hf` backend on `hf_dir`.

    Returns {"tasks": {task: {"score", "score_stderr", "metrics", "n"}}, "score": mean of the task
    scores (None when no task has a fraction metric), "version"}; `cache` (a file path prefix) makes a
    rerun reuse the model's answers (lm-eval's `use_cache`)."""
    _offline()
    import lm_eval
    import torch

    include = [Path(p) for p in (include_path or [DEFAULT_INCLUDE_PATH])]
    manager, specs = task_specs(tasks, include)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(hf_dir), "dtype": dtype},
        tasks=specs,
        task_manager=manager,
        limit=limit,
        batch_size=batch_size,
        device=device,
        use_cache=str(cache) if cache is not None else None,
        log_samples=False,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    if results is None:  # only on non-zero ranks of a multi-process run
        raise RuntimeError("lm-eval returned no results")
    scores = convert_results(results["results"])
    stderrs = convert_stderr(results["results"])
    n_samples = results.get("n-samples", {})
    per_task = {
        task: {
            "score": headline(metrics),
            "score_stderr": stderrs.get(task, {}).get(headline_metric(metrics) or ""),
            "metrics": metrics,
            "n": n_samples.get(task, {}).get("effective"),
        }
        for task, metrics in scores.items()
    }
    headlines = [t["score"] for t in per_task.values() if t["score"] is not None]
    return {
        "score": sum(headlines) / len(headlines) if headlines else None,
        "tasks": per_task,
        "include_path": [str(p) for p in include],
        "limit": limit,
        "version": getattr(lm_eval, "__version__", None),
    }
