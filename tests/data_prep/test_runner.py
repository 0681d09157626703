"""Sharded, parallel, resumable runs: same result however it is split, resumed or spread over ranks."""

from __future__ import annotations

import json
import threading

import pytest

from data_prep.runner import RecipeMismatchError, run_recipe
from data_prep.steps.normalize import Normalize
from tests.conftest import run_cli
from tests.data_prep.recipe_files import make_recipe, read_output, write_jsonl, write_recipe

UNIQUE = [
    "刚下班，地铁上人挤人，回家第一件事就是躺平。",
    "Anyone else think the new season is way better than the last one?",
    "宝宝第一次叫妈妈，激动得我眼泪都下来了。",
    "Rainy sunday, hot coffee, an old book and zero plans for the day",
]
STEPS = [{"kind": "normalize"}, {"kind": "exact_dedup"}, {"kind": "near_dedup"}]


def _inputs(tmp_path):
    posts = [
        "今天的奶茶也太好喝了吧，强烈推荐给大家！",
        "周末去爬山，风景超级美，就是人有点多。",
        "Just finished my first marathon and I can not feel my legs at all",
        "这家火锅店排队两个小时，味道一般般，不会再来了。",
        "New phone who dis, the camera on this thing is absolutely wild",
    ]
    files = []
    for k in range(4):
        rows = [{"id": f"f{k}-{i}", "text": posts[(i + k) % 5]} for i in range(3)]
        text = posts[k]
        rows.append({"id": f"f{k}-dup", "text": text[:8] + "真的" + text[8:]})  # a near copy
        rows.append({"id": f"f{k}-u", "text": UNIQUE[k]})
        if k == 2:
            rows.append("{broken")
        files.append(write_jsonl(tmp_path / f"in-{k}.jsonl", rows))
    return [str(tmp_path / "in-*.jsonl")]


def _summary(stats):
    return [(s.name, s.docs_in, s.docs_kept, dict(s.dropped)) for s in stats]


def test_parallel_equals_serial_and_report_counts(tmp_path):
    paths = _inputs(tmp_path)
    serial = make_recipe(tmp_path / "a", paths, STEPS)
    parallel = make_recipe(tmp_path / "b", paths, STEPS, num_workers=2)
    stats = run_recipe(serial)
    assert _summary(run_recipe(parallel)) == _summary(stats)
    assert read_output(serial.output_dir) == read_output(parallel.output_dir)
    by_name = {s.name: s for s in stats}
    assert by_name["read"].dropped == {"malformed": 1}
    assert by_name["read"].errors == [
        f"{tmp_path}/in-2.jsonl:6: <line>: invalid JSON: Expecting property "
        "name enclosed in double quotes (column 2)"
    ]
    assert by_name["exact_dedup"].dropped["exact_duplicate"] == 12 - 5  # 12 posts, 5 distinct
    assert by_name["near_dedup"].dropped["near_duplicate"] == 4  # the copies with 真的 inserted
    texts = [r["text"] for r in read_output(serial.output_dir)]
    assert len(texts) == 5 + 4 and len(set(texts)) == len(texts)
    assert by_name["write"].docs_kept == 9
    report = json.loads((serial.output_dir / "report.json").read_text())
    assert report["docs_written"] == 9 and report["shards"] == 4


def test_a_crashed_run_resumes_without_redoing_finished_shards(tmp_path, monkeypatch):
    paths = _inputs(tmp_path)
    recipe = make_recipe(tmp_path, paths, STEPS)
    original = Normalize.apply

    def crash_on_third_file(self, doc, stats):
        if doc.id.startswith("f2-"):
            raise RuntimeError("killed")
        return original(self, doc, stats)

    monkeypatch.setattr(Normalize, "apply", crash_on_third_file)
    with pytest.raises(RuntimeError, match="killed"):
        run_recipe(recipe)
    done = sorted(p.name for p in (recipe.output_dir / ".work").rglob("*.done"))
    assert done == ["shard-00000.jsonl.done", "shard-00001.jsonl.done"]
    first = recipe.output_dir / ".work" / "phase-00" / "shard-00000.jsonl"
    mtime = first.stat().st_mtime_ns
    monkeypatch.setattr(Normalize, "apply", original)
    resumed = run_recipe(recipe)
    assert first.stat().st_mtime_ns == mtime  # not recomputed
    fresh = make_recipe(tmp_path / "fresh", paths, STEPS)
    assert _summary(resumed) == _summary(run_recipe(fresh))
    assert read_output(recipe.output_dir) == read_output(fresh.output_dir)


def test_ranks_share_the_shards_through_markers(tmp_path):
    paths = _inputs(tmp_path)
    recipe = make_recipe(tmp_path, paths, STEPS)
    results = {}

    def rank(r):
        results[r] = run_recipe(recipe, rank=r, world_size=2)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results[1] == []  # only rank 0 reports
    fresh = make_recipe(tmp_path / "fresh", paths, STEPS)
    assert _summary(results[0]) == _summary(run_recipe(fresh))
    assert read_output(recipe.output_dir) == read_output(fresh.output_dir)


def test_another_recipe_in_the_same_output_dir_is_refused(tmp_path):
    paths = _inputs(tmp_path)
    run_recipe(make_recipe(tmp_path, paths, STEPS))
    with pytest.raises(RecipeMismatchError, match="different recipe"):
        run_recipe(make_recipe(tmp_path, paths, STEPS[:1]))


def test_cli_runs_a_recipe_and_refuses_unknown_steps(tmp_path):
    paths = _inputs(tmp_path)
    good = write_recipe(
        tmp_path / "good.yaml",
        {"inputs": [{"paths": paths}], "output_dir": str(tmp_path / "o"), "steps": STEPS},
    )
    proc = run_cli(["data", str(good), "--set", "num_workers=2"])
    assert "near_dedup" in proc.stdout and len(read_output(tmp_path / "o")) == 9
    # Another recipe in the same output_dir is refused, pointing at --restart, which starts it over.
    other = ["data", str(good), "--set", "steps=[{kind: normalize}]"]
    proc = run_cli(other, check=False)
    assert proc.returncode == 2 and "--restart" in proc.stderr
    proc = run_cli([*other, "--restart"])
    assert "near_dedup" not in proc.stdout and len(read_output(tmp_path / "o")) > 9  # no dedup now
    bad = write_recipe(
        tmp_path / "bad.yaml",
        {
            "inputs": [{"paths": paths}],
            "output_dir": str(tmp_path / "o2"),
            "steps": [{"kind": "normalize"}, {"kind": "toxicity_filter"}],
        },
    )
    proc = run_cli(["data", str(bad)], check=False)
    assert proc.returncode == 2
    assert f"{bad}:5" in proc.stderr and "'toxicity_filter'" in proc.stderr
    assert "allowed: normalize, exact_dedup, near_dedup" in proc.stderr  # the kinds that exist are listed
