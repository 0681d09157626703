"""The task suite must load in trainers' reward workers and eval tools without torch or megatron."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_tasks_package_is_torch_free() -> None:
    code = (
        "import sys, nemo_recipes.tasks, nemo_recipes.tasks.judge, nemo_recipes.tasks.sandbox; "
        "bad = [m for m in ('torch', 'megatron', 'transformers', 'vllm') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
