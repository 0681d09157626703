"""The docs hold: every relative link resolves, and every `redone ...` command in a fenced block parses
(its subcommand exists and accepts each flag the line gives)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from nemo_recipes.cli import build_parser
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MENTION = re.compile(
    r"(?<![\w/.])((?:docs|benchmarks|nemo_recipes|tests|slurm|containers)/[\w./-]*\w\.(?:md|py|yaml|sh))"
)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
COMMAND = re.compile(r"^(?:\S+=\S+\s+)*(?:\S*/)?redone\s+(.*)$")


def relative_links(doc: Path) -> list[str]:
    links = [target for target in LINK.findall(doc.read_text(encoding="utf-8"))]
    return [t for t in links if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = [t for t in relative_links(doc) if not (doc.parent / t.split("#")[0]).exists()]
    assert not broken, f"{doc.name}: links to missing files {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_files_the_text_names_exist(doc: Path) -> None:
    """`docs/sft.md`, `nemo_recipes/config.py` ...: a path written in the text is a link too."""
    named = set(MENTION.findall(doc.read_text(encoding="utf-8")))
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


def documented_commands() -> list[tuple[str, str]]:
    """(doc name, the words after `redone`) of each `redone` line in a fenced block."""
    found = []
    for doc in DOCS:
        for block in FENCE.findall(doc.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if (match := COMMAND.match(line)) and "&&" not in line:
                    found.append((doc.name, match.group(1)))
    return found


def subparser(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser of the deepest subcommand named by `words`, and the words after it."""
    while words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or words[0] not in subs[0].choices:
            break
        parser, words = subs[0].choices[words[0]], words[1:]
    return parser, words


def flags(words: list[str]) -> list[str]:
    """The option names a usage line gives (`[--nproc 4]`, `--set k=v`, `--from=UNIT`)."""
    return [w.strip("[]").split("=")[0] for w in words if w.strip("[").startswith("--") and w != "--"]


def test_every_documented_command_parses() -> None:
    commands = documented_commands()
    assert len(commands) > 20  # the README's command list alone has more
    problems = []
    for doc, rest in commands:
        words = shlex.split(rest.replace("|", " "))
        parser, tail = subparser(build_parser(), words)
        if parser.prog == "redone":
            problems.append(f"{doc}: `redone {rest}`: no such command")
            continue
        known = parser._option_string_actions
        unknown = [f for f in flags(tail) if f not in known and f != "--help"]
        if unknown:
            problems.append(f"{doc}: `redone {rest}`: {parser.prog} has no {unknown}")
    assert not problems, "\n".join(problems)
