"""Every benchmark command in README.md and docs/*.md runs as written, from the repository root.

A command is found in a fenced code block of the docs and run the way it is written there (the same
environment variables, Python options and script path, with this interpreter), with a few arguments
appended that make it the benchmark's smallest form; where even that is slow, the default run only
checks that the script imports and parses its arguments (`--help`).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
BENCHMARK = re.compile(r"^benchmarks/(\w+)\.py$")


@dataclass(frozen=True)
class Smallest:
    """Arguments appended to a documented command that make the run small, and a line it must print."""

    args: tuple[str, ...]
    prints: str
    slow: bool = False


# Scripts with a natural size knob; the others (convert_roundtrip.py: a fixed 0.6B shape) run `--help`.
SMALLEST = {
    "sft_step": Smallest(("--steps", "1", "--warmup", "0"), "ratio ours/bare:"),
    "data_curation": Smallest(("--base-docs", "400", "--repeats", "1"), "DSIR:"),
    # One vLLM engine start (~35 s on 2 cores): the default run checks `--help` only.
    "grpo_step": Smallest(("--steps", "1", "--warmup", "0"), "ratio collect/bare generate:", slow=True),
    # Two models and one vLLM engine start: 47-118 s on 2 shared cores, so `--help` in the default run.
    "lora_step": Smallest(("--steps", "1", "--warmup", "0", "--refits", "1"), "lora vs full:", slow=True),
    # The packed-vs-padded forms (`--length-mix`): trainer phases only, no engine.
    "sft_step --length-mix": Smallest(
        ("--steps", "1", "--warmup", "0", "--conversations", "16"), "packed vs padded:"
    ),
    "grpo_step --length-mix": Smallest(("--steps", "1", "--warmup", "0"), "packed vs padded:"),
    # Two runs of the whole stage (two engine starts, a rollout process): slow.
    "grpo_step --placement": Smallest(
        ("--steps", "1", "--warmup", "0"), "vs colocated synchronous:", slow=True
    ),
}
FORMS = ("--length-mix", "--placement")
"""Arguments that select another form of a script, with a smallest run of its own."""


@dataclass(frozen=True)
class Command:
    """A documented `[VAR=value ...] python [options] benchmarks/NAME.py [args]` command."""

    line: str
    env: dict[str, str]
    python_options: tuple[str, ...]
    script: str  # as written, relative to the repository root
    args: tuple[str, ...]

    @property
    def name(self) -> str:
        return Path(self.script).stem

    @property
    def form(self) -> str:
        """The script, with the form argument (FORMS) the command gives, if any (its own smallest run)."""
        form = next((f for f in FORMS if f in self.args), None)
        return f"{self.name} {form}" if form else self.name


def parse(line: str) -> Command | None:
    """The benchmark command on `line`, or None if the line runs no script under benchmarks/."""
    words = shlex.split(line, comments=True)
    python = next((i for i, w in enumerate(words) if re.fullmatch(r"python[\d.]*", Path(w).name)), None)
    if python is None:
        return None
    env = dict(w.split("=", 1) for w in words[:python] if "=" in w)
    rest = words[python + 1 :]
    options: list[str] = []
    while rest and rest[0].startswith("-") and rest[0] != "-m":  # `-m`: a module, not a script
        n = 2 if rest[0] in ("-W", "-X") else 1  # options followed by a separate value
        options += rest[:n]
        rest = rest[n:]
    if not rest or not BENCHMARK.match(rest[0]):
        return None
    return Command(line, env, tuple(options), rest[0], tuple(rest[1:]))


def documented_lines() -> list[str]:
    """Lines of the docs' fenced code blocks that mention a script or module under benchmarks/."""
    return [
        line.strip()
        for doc in DOC_FILES
        for block in FENCE.findall(doc.read_text())
        for line in block.splitlines()
        if re.search(r"python\S*\s.*benchmarks[/.]\w", line)
    ]


def documented_commands() -> list[Command]:
    """One command per script and argument list (the same command under other thread counts runs once)."""
    seen: dict[tuple[str, tuple[str, ...]], Command] = {}
    for line in documented_lines():
        cmd = parse(line)
        if cmd is not None:
            seen.setdefault((cmd.script, cmd.args), cmd)
    return list(seen.values())


def cases() -> list:
    """(command, appended arguments, expected output) per documented command; slow forms marked."""
    out, helped = [], set()
    for cmd in documented_commands():
        small = SMALLEST.get(cmd.form)
        if (small is None or small.slow) and cmd.name not in helped:  # `--help` once per script
            helped.add(cmd.name)
            out.append(pytest.param(cmd, ("--help",), "usage:", id=f"{cmd.name}-help"))
        if small is not None:
            marks = [pytest.mark.slow] if small.slow else []
            name = cmd.form.replace(" --", "-")
            out.append(pytest.param(cmd, small.args, small.prints, id=f"{name}-smallest", marks=marks))
    return out


def test_commands_are_found() -> None:
    """The parser sees the docs' commands (a change in how the docs write them must not empty the list)."""
    names = {cmd.name for cmd in documented_commands()}
    assert {"sft_step", "grpo_step", "convert_roundtrip", "data_curation", "lora_step"} <= names


def test_every_benchmark_is_documented_as_a_file() -> None:
    """Each script under benchmarks/ has a documented `python benchmarks/NAME.py` command.

    Run as a file, a script's folder comes first on sys.path, so this is the form in which a script
    named like one of our packages would shadow it; `python -m benchmarks.NAME` would hide that.
    """
    documented = {cmd.script for cmd in documented_commands()}
    scripts = {
        f"benchmarks/{p.name}" for p in (REPO / "benchmarks").glob("*.py") if "__main__" in p.read_text()
    }  # the others are modules the scripts share
    missing = sorted(scripts - documented)
    assert not missing, f"no `python benchmarks/NAME.py` command in README.md or docs/*.md for {missing}"
    as_module = [line for line in documented_lines() if re.search(r"-m\s+benchmarks\.", line)]
    assert not as_module, f"document benchmarks as `python benchmarks/NAME.py`, not as modules: {as_module}"


@pytest.mark.parametrize(("cmd", "extra", "prints"), cases())
def test_documented_command_runs(cmd: Command, extra: tuple[str, ...], prints: str, tmp_path: Path) -> None:
    argv = [sys.executable, *cmd.python_options, cmd.script, *cmd.args, *extra]
    env = {**os.environ, **cmd.env, "TMPDIR": str(tmp_path)}
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = f"{cmd.line}\n+ {shlex.join(extra)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert proc.returncode == 0, output
    assert prints in proc.stdout, output
