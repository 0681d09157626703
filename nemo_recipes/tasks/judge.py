"""An LLM judge behind any OpenAI-compatible chat endpoint (a vLLM server, a hosted API).

The judge fills a rubric with the question, the reference answer and the candidate response, asks
``/chat/completions``, and parses ``Score: N`` (or ``评分：N``) from the reply, last occurrence first.
N must lie in [min_score, max_score]; the reward is (N - min_score) / (max_score - min_score).

Fault tolerance: transport errors, timeouts, HTTP 429 and 5xx are retried ``max_retries`` times with
exponential back-off, then :class:`JudgeError` is raised (a judge that is down stops the run). A reply
without a parseable score is re-sampled ``parse_retries`` times at ``retry_temperature``; if it still
has none, the verdict is ``unparseable_score`` (or :class:`JudgeError` when that is null) and says so.
Verdicts are cached by request (in memory, and in SQLite at ``cache_path`` if given); at most
``max_concurrency`` requests are in flight per client. ``constrain_with_regex`` sends vLLM's
``structured_outputs`` regex so that even a weak judge model answers in the score format.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from nemo_recipes.config.loader import StrictModel

DEFAULT_RUBRIC = (
    "You are grading an answer to a social-media task.\n"
    "Question:\n{question}\n\nReference answer:\n{reference}\n\nCandidate answer:\n{response}\n\n"
    "Rate how well the candidate answers the question, using the reference as a guide, on a scale "
    "from {min_score} to {max_score}. Reply with one line: Score: <integer>"
)
_SCORE = re.compile(r"(?:score|评分|分数)\s*[:：=]\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class JudgeError(RuntimeError):
    """The judge could not give a verdict (endpoint down after retries, bad request, no score)."""


class JudgeConfig(StrictModel):
    model: str
    base_url: str | None = None
    """e.g. ``http://127.0.0.1:8000/v1``; if null, read from the ``base_url_env`` variable."""
    base_url_env: str = "REDONE_JUDGE_BASE_URL"
    api_key_env: str | None = None
    """Name of the variable holding the API key (sent as a Bearer token); null: no key."""
    rubric: str = DEFAULT_RUBRIC
    system_prompt: str | None = None
    min_score: int = 1
    max_score: int = 5
    temperature: float = Field(0.0, ge=0)
    retry_temperature: float = Field(1.0, ge=0)
    max_tokens: PositiveInt = 256
    timeout_s: float = Field(60.0, gt=0)
    max_retries: NonNegativeInt = 3
    retry_backoff_s: float = Field(1.0, ge=0)
    parse_retries: NonNegativeInt = 1
    unparseable_score: float | None = Field(0.0, ge=0, le=1)
    max_concurrency: PositiveInt = 8
    cache_path: str | None = None
    constrain_with_regex: bool = False

    @model_validator(mode="after")
    def _checks(self) -> JudgeConfig:
        if self.max_score <= self.min_score:
            raise ValueError(f"max_score ({self.max_score}) must exceed min_score ({self.min_score})")
        missing = [key for key in ("{question}", "{response}") if key not in self.rubric]
        if missing:
            raise ValueError(f"rubric lacks the placeholders {missing}")
        return self


@dataclass(frozen=True)
class JudgeVerdict:
    score: float  # normalised to [0, 1]
    raw_score: float | None  # as parsed, on the rubric's scale; None if unparseable
    reply: str
    cached: bool
    requests: int  # HTTP requests this verdict took (0 when cached)


def parse_score(reply: str, min_score: int, max_score: int) -> float | None:
    """The last ``Score: N`` in ``reply`` if N is within the scale, else None."""
    matches = _SCORE.findall(reply)
    if not matches:
        return None
    value = float(matches[-1])
    return value if min_score <= value <= max_score else None


def fill_rubric(config: JudgeConfig, question: str, reference: str, response: str) -> str:
    values = {
        "{question}": question,
        "{reference}": reference,
        "{response}": response,
        "{min_score}": str(config.min_score),
        "{max_score}": str(config.max_score),
    }
    return re.sub("|".join(re.escape(key) for key in values), lambda m: values[m.group(0)], config.rubric)


class JudgeClient:
    """A pooled, cached, concurrency-limited client for one judge config (thread-safe)."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.base_url = _resolve_base_url(config)
        headers = {"Content-Type": "application/json"}
        if config.api_key_env is not None:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise JudgeError(f"judge API key variable {config.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=config.timeout_s)
        self._slots = threading.Semaphore(config.max_concurrency)
        self._cache = _VerdictCache(config.cache_path)

    def judge(self, question: str, reference: str, response: str) -> JudgeVerdict:
        messages = [{"role": "user", "content": fill_rubric(self.config, question, reference, response)}]
        if self.config.system_prompt:
            messages.insert(0, {"role": "system", "content": self.config.system_prompt})
        key = self._cache_key(messages)
        cached = self._cache.get(key)
        if cached is not None:
            return JudgeVerdict(cached[0], cached[1], cached[2], cached=True, requests=0)
        verdict = self._ask_until_parsed(messages)
        if verdict.raw_score is not None:
            self._cache.put(key, verdict.score, verdict.raw_score, verdict.reply)
        return verdict

    def close(self) -> None:
        self._http.close()

    def _ask_until_parsed(self, messages: list[dict[str, str]]) -> JudgeVerdict:
        config, requests, reply = self.config, 0, ""
        for attempt in range(config.parse_retries + 1):
            temperature = config.temperature if attempt == 0 else config.retry_temperature
            reply, sent = self._complete(messages, temperature)
            requests += sent
            raw = parse_score(reply, config.min_score, config.max_score)
            if raw is not None:
                normalised = (raw - config.min_score) / (config.max_score - config.min_score)
                return JudgeVerdict(normalised, raw, reply, cached=False, requests=requests)
        if config.unparseable_score is None:
            raise JudgeError(f"no score in the judge's reply after {requests} requests: {reply[:200]!r}")
        return JudgeVerdict(config.unparseable_score, None, reply, cached=False, requests=requests)

    def _complete(self, messages: list[dict[str, str]], temperature: float) -> tuple[str, int]:
        """The reply text and the number of HTTP requests it took (retries included)."""
        body: dict[str, object] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": self.config.max_tokens,
        }
        if self.config.constrain_with_regex:
            scale = "|".join(str(n) for n in range(self.config.min_score, self.config.max_score + 1))
            body["structured_outputs"] = {"regex": f"Score: ({scale})"}
        last_error = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                time.sleep(self.config.retry_backoff_s * 2 ** (attempt - 1))
            try:
                with self._slots:
                    response = self._http.post("/chat/completions", json=body)
            except httpx.HTTPError as exc:  # connection refused, timeout, reset: retry
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in _RETRY_STATUS:
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code != 200:
                raise JudgeError(
                    f"judge at {self.base_url} refused the request: HTTP {response.status_code}: "
                    f"{response.text[:300]}"
                )
            return _reply_text(response), attempt + 1
        raise JudgeError(
            f"judge at {self.base_url} failed after {self.config.max_retries + 1} tries: {last_error}"
        )

    def _cache_key(self, messages: list[dict[str, str]]) -> str:
        config = self.config
        material = [
            config.model,
            messages,
            config.temperature,
            config.max_tokens,
            config.constrain_with_regex,
            config.min_score,
            config.max_score,
        ]
        return hashlib.sha256(json.dumps(material, ensure_ascii=False).encode()).hexdigest()


def _resolve_base_url(config: JudgeConfig) -> str:
    base_url = config.base_url or os.environ.get(config.base_url_env)
    if not base_url:
        raise JudgeError(
            f"no judge endpoint: set base_url in the judge config or the {config.base_url_env} variable"
        )
    return base_url.rstrip("/")


def _reply_text(response: httpx.Response) -> str:
    try:
        return response.json()["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise JudgeError(f"not a chat completion: {response.text[:300]}") from exc


class _VerdictCache:
    """Verdicts by request hash: a dict, mirrored into SQLite when a path is given."""

    def __init__(self, path: str | None) -> None:
        self._memory: dict[str, tuple[float, float, str]] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, score REAL, raw REAL, reply TEXT)"
            )
            self._db.commit()

    def get(self, key: str) -> tuple[float, float, str] | None:
        with self._lock:
            if key in self._memory:
                return self._memory[key]
            if self._db is None:
                return None
            row = self._db.execute("SELECT score, raw, reply FROM verdicts WHERE key = ?", (key,)).fetchone()
            if row is not None:
                self._memory[key] = (row[0], row[1], row[2])
            return self._memory.get(key)

    def put(self, key: str, score: float, raw: float, reply: str) -> None:
        with self._lock:
            self._memory[key] = (score, raw, reply)
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)", (key, score, raw, reply)
                )
                self._db.commit()


_CLIENTS: dict[str, JudgeClient] = {}
_CLIENTS_LOCK = threading.Lock()


def get_judge_client(config: JudgeConfig) -> JudgeClient:
    """One shared client per distinct config (and endpoint), so limits and the cache are shared."""
    key = config.model_dump_json() + "|" + _resolve_base_url(config)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = JudgeClient(config)
        return _CLIENTS[key]
