"""The code sandbox: passing and failing programs, and containment of loops, memory and network."""

from __future__ import annotations

import socket
import time

import pytest

from nemo_recipes.tasks.sandbox import SandboxConfig, network_namespace_command, run_python
from tests.tasks.reward_calls import reward

# Generous wall time: the 2-core CI machine may be busy; CPU and memory limits do the real work.
CONFIG = SandboxConfig(wall_time_s=60, cpu_time_s=3, memory_mb=256)
CODE = {"kind": "code_tests", "sandbox": CONFIG.model_dump()}
pytestmark = pytest.mark.skipif(network_namespace_command() is None, reason="no network namespaces here")


def test_passing_and_failing_programs() -> None:
    tests = {"reference": {"tests": "assert f(2) == 7\nassert f(0) == 1"}}
    good = "Here you go:\n```python\ndef f(x):\n    return x * 3 + 1\n```"
    wrong = "```python\ndef f(x):\n    return x * 3\n```"
    assert reward(CODE, good, "see tests", **tests).score == 1.0
    failed = reward(CODE, wrong, "see tests", **tests)
    assert failed.score == 0.0 and "AssertionError" in failed.details["stderr_tail"]
    assert reward(CODE, "def f(x): return 1", "see tests", **tests).details["reason"] == "no code extracted"
    assert reward(CODE, "```python\ndef f(x)\n```", "see tests", **tests).score == 0.0  # syntax error


def test_infinite_loop_is_stopped_by_the_cpu_limit() -> None:
    start = time.monotonic()
    result = run_python("while True:\n    pass\n", CONFIG)
    assert not result.passed and result.returncode != 0
    assert time.monotonic() - start < 45


def test_sleeping_program_hits_the_wall_limit() -> None:
    result = run_python("import time\ntime.sleep(60)\n", SandboxConfig(wall_time_s=3))
    assert result.timed_out and not result.passed


def test_memory_bomb_is_contained() -> None:
    result = run_python("blocks = []\nwhile True:\n    blocks.append(bytearray(50 << 20))\n", CONFIG)
    assert not result.passed
    assert "MemoryError" in result.stderr


def test_network_is_unreachable_even_on_loopback() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        program = (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\nprint('connected')\n"
        )
        result = run_python(program, CONFIG)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing reached this machine's listener
            listener.accept()
    assert not result.passed and "connected" not in result.stdout
    assert "Error" in result.stderr  # ConnectionRefusedError / OSError: network unreachable
    assert result.network_isolated


def test_output_flood_is_capped() -> None:
    result = run_python(
        "while True:\n    print('x' * 1000)\n", SandboxConfig(wall_time_s=60, max_output_bytes=4096)
    )
    assert not result.passed
    assert len(result.stdout) <= 4096


def test_program_cannot_write_outside_its_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "owned.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')\n", CONFIG)
    assert not result.passed and not target.exists()
