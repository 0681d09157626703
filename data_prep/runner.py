"""Run a data recipe: sharded, parallel, resumable.

A shard is one input file. The steps are cut into phases: a run of document steps is one *stage*
(each shard read, the steps applied in order, the survivors written); a global step is a *signature
pass* (one signature file per shard) and a *decision* (one process reads every signature and decides
which documents to drop). Decisions are applied when the next stage reads its input, so consecutive
global steps share one copy of the data. Every shard output and decision is written atomically and
then marked done (``*.done``); running the same recipe again skips whatever is marked, so a killed
run resumes where it stopped. Several machines (e.g. Slurm tasks on a shared file system) run the same
recipe with ``rank`` / ``world_size``: each takes the shards ``index % world_size == rank``, waits at a
phase boundary until every shard's marker exists, and rank 0 makes the decisions.

Before any shard, rank 0 fits the steps that learn from files of their own (a quality classifier) into
``.work/fit-<step>/``. A shard writer (the last step, e.g. ``pack``) writes each shard's final documents
next to its JSONL output, into ``<step name>/``; once all are written, rank 0 combines them.

Layout under ``output_dir``: ``data/shard-NNNNN.jsonl`` (the result), ``report.json`` / ``report.txt``,
a shard writer's folder, and ``.work/`` (intermediate shards, signatures, decisions, fitted models,
markers, the recipe they belong to).
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.documents import Doc, read_docs, read_input_file, render_output, write_docs
from data_prep.recipe import DataRecipe, Shard, expand_shards
from data_prep.report import StepStats, format_report, load_stats, merge_by_name, save_stats
from data_prep.steps import DocStep, FittedStep, GlobalStep, ShardWriter, build_step

READ_STEP, WRITE_STEP = "read", "write"


class RecipeMismatchError(ValueError):
    """The output directory holds (part of) a run of a different recipe."""


@dataclass(frozen=True)
class Phase:
    kind: str  # "stage" or "global"
    index: int  # position among phases
    step_indices: tuple[int, ...]


def plan_phases(recipe: DataRecipe) -> list[Phase]:
    """Cut the step list into stages (runs of document steps) and global steps; a stage always ends it."""
    phases: list[Phase] = []
    run: list[int] = []
    for i, step in enumerate(_steps(_recipe_key(recipe))):
        if isinstance(step, ShardWriter):
            continue  # runs when the last stage writes its shards (a recipe keeps it last)
        if isinstance(step, GlobalStep):
            if run:
                phases.append(Phase("stage", len(phases), tuple(run)))
                run = []
            phases.append(Phase("global", len(phases), (i,)))
        else:
            run.append(i)
    phases.append(Phase("stage", len(phases), tuple(run)))
    return phases


def _recipe_key(recipe: DataRecipe) -> str:
    return recipe.model_dump_json(exclude={"num_workers"})


@cache
def _steps(recipe_json: str) -> list[DocStep | GlobalStep]:
    """Built steps, once per process (models and indexes load once)."""
    return [build_step(c) for c in DataRecipe.model_validate_json(recipe_json).steps]


@cache
def _recipe(recipe_json: str) -> DataRecipe:
    return DataRecipe.model_validate_json(recipe_json)


def _writer(recipe_json: str) -> tuple[str, ShardWriter] | None:
    """The recipe's shard writer (its report name and the step), if it has one."""
    names = _recipe(recipe_json).step_names()
    found = [(n, s) for n, s in zip(names, _steps(recipe_json), strict=True) if isinstance(s, ShardWriter)]
    return found[0] if found else None


@dataclass(frozen=True)
class RunContext:
    recipe_json: str
    work: Path
    output_dir: Path
    num_workers: int = 1
    rank: int = 0
    world_size: int = 1
    wait_timeout_s: float = 24 * 3600.0

    @property
    def recipe(self) -> DataRecipe:
        return _recipe(self.recipe_json)

    def stage_dir(self, phase: int) -> Path:
        return self.work / f"phase-{phase:02d}"

    def fit_dir(self, step_name: str) -> Path:
        return self.work / f"fit-{step_name}"


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".done")


def _mark(path: Path) -> None:
    _marker(path).write_text("", encoding="utf-8")


def _load_base(ctx: RunContext, shard: Shard, base_phase: int | None) -> tuple[list[Doc], StepStats | None]:
    """The documents a phase starts from: the input file, or the output of the last stage."""
    if base_phase is not None:
        return read_docs(ctx.stage_dir(base_phase) / f"shard-{shard.index:05d}.jsonl"), None
    stats, start = StepStats(READ_STEP), time.perf_counter()
    recipe, source = ctx.recipe, shard.source
    outcome = read_input_file(
        shard.path, source.format, source.text_field, source.id_field, recipe.on_bad_record
    )
    stats.docs_in = len(outcome.docs) + len(outcome.errors) + outcome.blank_text_count
    stats.docs_kept = len(outcome.docs)
    if outcome.errors:
        stats.drop("malformed", len({e.line for e in outcome.errors}))
    if outcome.blank_text_count:
        stats.drop("blank_text", outcome.blank_text_count)
    for error in outcome.errors:
        stats.add_error(str(error))
    if len(recipe.inputs) > 1:
        for doc in outcome.docs:
            doc.meta["dataset"] = source.name
    stats.seconds = time.perf_counter() - start
    return outcome.docs, stats


def _drops(ctx: RunContext, decisions: list[int], shard: Shard) -> set[int]:
    """Positions (in the current base) that earlier global steps dropped."""
    dropped: set[int] = set()
    for phase in decisions:
        data = json.loads((ctx.stage_dir(phase) / "decision.json").read_text(encoding="utf-8"))
        dropped.update(data["drops"][shard.index])
    return dropped


def run_stage_shard(
    ctx: RunContext, phase: Phase, shard: Shard, base: int | None, decisions: list[int]
) -> None:
    """One stage on one shard: read, skip globally dropped documents, apply the steps, write, mark."""
    docs, read_stats = _load_base(ctx, shard, base)
    dropped = _drops(ctx, decisions, shard)
    names = ctx.recipe.step_names()
    steps = _steps(ctx.recipe_json)
    for i in phase.step_indices:
        if isinstance(steps[i], FittedStep):
            steps[i].load(ctx.fit_dir(names[i]))  # type: ignore[union-attr]
    stats = [StepStats(names[i]) for i in phase.step_indices]
    kept = []
    for position, doc in enumerate(docs):
        if position in dropped:
            continue
        for i, st in zip(phase.step_indices, stats, strict=True):
            start = time.perf_counter()
            st.docs_in += 1
            reason = steps[i].apply(doc, st)  # type: ignore[union-attr]
            st.seconds += time.perf_counter() - start
            if reason is not None:
                st.drop(reason)
                break
            st.docs_kept += 1
        else:
            kept.append(doc)
    is_last = phase.index == len(plan_phases(ctx.recipe)) - 1
    out = _stage_output(ctx, phase, shard, is_last)
    if is_last and (writer := _writer(ctx.recipe_json)) is not None:
        name, step = writer
        written = StepStats(name, docs_in=len(kept), docs_kept=len(kept))
        start = time.perf_counter()
        (ctx.output_dir / name).mkdir(exist_ok=True)
        step.write_shard(kept, ctx.output_dir / name / f"shard-{shard.index:05d}", written)
        written.seconds = time.perf_counter() - start
        stats.append(written)
    if is_last:
        start = time.perf_counter()
        _write_rendered(out, kept)
        write = StepStats(WRITE_STEP, docs_in=len(kept), docs_kept=len(kept))
        write.seconds = time.perf_counter() - start
        stats.append(write)
    else:
        write_docs(out, kept)
    read = [read_stats] if read_stats and phase.index == 0 else []  # else a signature pass counted it
    save_stats(out.with_name(out.name + ".stats.json"), read + stats)
    _mark(out)


def _stage_output(ctx: RunContext, phase: Phase, shard: Shard, is_last: bool) -> Path:
    folder = ctx.output_dir / "data" if is_last else ctx.stage_dir(phase.index)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"shard-{shard.index:05d}.jsonl"


def _write_rendered(path: Path, docs: list[Doc]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(render_output(doc), ensure_ascii=False) + "\n")
    tmp.replace(path)


def run_signature_shard(
    ctx: RunContext, phase: Phase, shard: Shard, base: int | None, decisions: list[int]
) -> None:
    """A global step's per-shard pass: one signature row per surviving document, with its position."""
    docs, read_stats = _load_base(ctx, shard, base)
    dropped = _drops(ctx, decisions, shard)
    positions = np.array([p for p in range(len(docs)) if p not in dropped], dtype=np.int64)
    step = _steps(ctx.recipe_json)[phase.step_indices[0]]
    start = time.perf_counter()
    sig = step.signatures([docs[p] for p in positions])  # type: ignore[union-attr]
    seconds = time.perf_counter() - start
    out = ctx.stage_dir(phase.index) / f"sig-{shard.index:05d}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, signatures=sig, positions=positions, seconds=np.array(seconds))
    tmp.replace(out)
    if read_stats is not None:  # the first phase reads the input: its read statistics are kept here
        save_stats(out.with_name(out.name + ".stats.json"), [read_stats])
    _mark(out)


def run_decision(ctx: RunContext, phase: Phase, shards: list[Shard]) -> None:
    """A global step's decision over every shard's signatures."""
    folder = ctx.stage_dir(phase.index)
    loaded = [np.load(folder / f"sig-{s.index:05d}.npz") for s in shards]
    name = ctx.recipe.step_names()[phase.step_indices[0]]
    stats = StepStats(name, docs_in=sum(len(d["positions"]) for d in loaded))
    start = time.perf_counter()
    step = _steps(ctx.recipe_json)[phase.step_indices[0]]
    rows = step.decide([d["signatures"] for d in loaded], stats)  # type: ignore[union-attr]
    drops = []
    for data, shard_rows in zip(loaded, rows, strict=True):
        positions = data["positions"]
        drops.append(sorted(int(positions[r]) for r in shard_rows))
        for reason in shard_rows.values():
            stats.drop(reason)
    stats.docs_kept = stats.docs_in - stats.docs_dropped
    stats.seconds = time.perf_counter() - start + sum(float(d["seconds"]) for d in loaded)
    out = folder / "decision.json"
    tmp = out.with_name("decision.json.tmp")
    tmp.write_text(json.dumps({"drops": drops}), encoding="utf-8")
    tmp.replace(out)
    save_stats(folder / "decision.stats.json", [stats])
    _mark(out)


def _run_pass(
    ctx: RunContext,
    pool: ProcessPoolExecutor | None,
    shards: list[Shard],
    out_of: Callable[[Shard], Path],
    job: Callable[..., None],
    args: tuple[Any, ...],
) -> None:
    """Run ``job(ctx, phase, shard, *rest)`` for this rank's shards not yet marked done, then wait."""
    phase, *rest = args
    pending = [s for s in shards if not _marker(out_of(s)).exists() and s.index % ctx.world_size == ctx.rank]
    if pool is not None and len(pending) > 1:
        for future in [pool.submit(job, ctx, phase, s, *rest) for s in pending]:
            future.result()
    else:
        for shard in pending:
            job(ctx, phase, shard, *rest)
    _wait_for(ctx, [_marker(out_of(s)) for s in shards])


def _wait_for(ctx: RunContext, markers: list[Path]) -> None:
    """Block until every marker exists (other ranks' shards); poll the shared file system."""
    deadline = time.monotonic() + ctx.wait_timeout_s
    while missing := [m for m in markers if not m.exists()]:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"waited {ctx.wait_timeout_s:.0f}s for {len(missing)} shard(s), e.g. {missing[0]}"
            )
        time.sleep(1.0)


def _fit_steps(ctx: RunContext) -> None:
    """Rank 0 fits every fitted step once (a marker says it is done); the other ranks wait for it."""
    for name, step in zip(ctx.recipe.step_names(), _steps(ctx.recipe_json), strict=True):
        if not isinstance(step, FittedStep):
            continue
        folder = ctx.fit_dir(name)
        if ctx.rank == 0 and not _marker(folder).exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a killed fit left behind
            folder.mkdir(parents=True)
            stats = StepStats(name)
            step.fit(folder, stats)
            save_stats(ctx.work / f"fit-{name}.stats.json", [stats])
            _mark(folder)
        _wait_for(ctx, [_marker(folder)])


def _finish_writer(ctx: RunContext, shards: list[Shard]) -> None:
    """Rank 0 combines the shard writer's per-shard files once every shard is written."""
    writer = _writer(ctx.recipe_json)
    if writer is None or ctx.rank != 0 or _marker(ctx.work / f"finish-{writer[0]}").exists():
        return
    name, step = writer
    stats, start = StepStats(name), time.perf_counter()
    folder = ctx.output_dir / name
    step.finish([folder / f"shard-{s.index:05d}" for s in shards], folder, stats)
    stats.seconds = time.perf_counter() - start
    save_stats(ctx.work / f"finish-{name}.stats.json", [stats])
    _mark(ctx.work / f"finish-{name}")


def _prepare_work_dir(ctx: RunContext, restart: bool) -> None:
    if restart and ctx.rank == 0:
        writer = _writer(ctx.recipe_json)
        for path in (ctx.work, ctx.output_dir / "data", *([ctx.output_dir / writer[0]] if writer else [])):
            shutil.rmtree(path, ignore_errors=True)
    ctx.work.mkdir(parents=True, exist_ok=True)
    stamp = ctx.work / "recipe.json"
    if stamp.exists() and stamp.read_text(encoding="utf-8") != ctx.recipe_json:
        raise RecipeMismatchError(
            f"{ctx.output_dir} holds a run of a different recipe ({stamp}); "
            "use another output_dir, or pass --restart to start this one over"
        )
    if ctx.rank == 0:
        tmp = stamp.with_name("recipe.json.tmp")
        tmp.write_text(ctx.recipe_json, encoding="utf-8")
        tmp.replace(stamp)


def run_recipe(
    recipe: DataRecipe, *, rank: int = 0, world_size: int = 1, restart: bool = False
) -> list[StepStats]:
    """Run (or resume) a recipe; returns the per-step statistics also written to the report."""
    recipe_json = _recipe_key(recipe)
    work = recipe.output_dir / ".work"
    ctx = RunContext(recipe_json, work, recipe.output_dir, recipe.num_workers, rank, world_size)
    _prepare_work_dir(ctx, restart)
    _fit_steps(ctx)
    shards = expand_shards(recipe)
    phases = plan_phases(recipe)
    workers = min(recipe.num_workers, len(shards))
    pool = (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
    )
    try:
        _run_phases(ctx, pool, shards, phases)
        _finish_writer(ctx, shards)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return _collect_report(ctx, recipe, shards, phases) if rank == 0 else []


def _run_phases(
    ctx: RunContext, pool: ProcessPoolExecutor | None, shards: list[Shard], phases: list[Phase]
) -> None:
    base: int | None = None
    decisions: list[int] = []
    for phase in phases:
        folder = ctx.stage_dir(phase.index)
        if phase.kind == "global":
            sig_path = lambda s, f=folder: f / f"sig-{s.index:05d}.npz"  # noqa: E731
            _run_pass(ctx, pool, shards, sig_path, run_signature_shard, (phase, base, decisions))
            if ctx.rank == 0 and not _marker(folder / "decision.json").exists():
                run_decision(ctx, phase, shards)
            _wait_for(ctx, [_marker(folder / "decision.json")])
            decisions.append(phase.index)
            continue
        is_last = phase is phases[-1]
        out_of = lambda s, p=phase, last=is_last: _stage_output(ctx, p, s, last)  # noqa: E731
        _run_pass(ctx, pool, shards, out_of, run_stage_shard, (phase, base, decisions))
        base, decisions = phase.index, []


def _collect_report(
    ctx: RunContext, recipe: DataRecipe, shards: list[Shard], phases: list[Phase]
) -> list[StepStats]:
    """Sum every shard's and decision's statistics per step and write report.json / report.txt."""
    names = recipe.step_names()
    extra = [ctx.work / f"{what}-{n}.stats.json" for n in names for what in ("fit", "finish")]
    parts = [load_stats(f) for f in extra if f.exists()]
    for phase in phases:
        folder = ctx.stage_dir(phase.index)
        if phase.kind == "global":
            parts.append(load_stats(folder / "decision.stats.json"))
            files = [folder / f"sig-{s.index:05d}.npz.stats.json" for s in shards]
        else:
            is_last = phase is phases[-1]
            files = [_stage_output(ctx, phase, s, is_last).with_suffix(".jsonl.stats.json") for s in shards]
        parts.extend(load_stats(f) for f in files if f.exists())
    stats = merge_by_name(parts, [READ_STEP, *names, WRITE_STEP])
    report = {
        "shards": len(shards),
        "docs_written": stats[-1].docs_kept,
        "steps": [s.to_json() for s in stats],
    }
    (ctx.output_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), "utf-8")
    (ctx.output_dir / "report.txt").write_text(format_report(stats) + "\n", encoding="utf-8")
    return stats
