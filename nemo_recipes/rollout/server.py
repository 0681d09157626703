"""The rollout process of `grpo.placement: separate` (`redone rollout-server`): engines that generate
ahead of the trainer.

It holds `grpo.rollout_engines` vLLM engines, connects to the trainer's first rank
(nemo_recipes.rollout.channel) and, from the step and sampler position the trainer names, generates
every remaining step in order: step m with the policy version max(0, m - max_off_policy_steps)
(nemo_recipes.rollout.remote), with the stage's own collection (dynamic sampling included), and sends
its groups back. Two threads: the main one loads versions and generates; a receiver takes each version
the trainer publishes while generation goes on (`StagedVersions`: the trainer never waits for room).
Loading a staged version between two steps is the only time the engines pause
(`engine_pause_seconds`, sent with each step, beside `engine_wait_seconds`: how long the engines
idled waiting for the version). No partial rollouts: a step's rollouts all come from
one version.

Stop signals are ignored: the trainer decides when to stop (after checkpointing the rollouts it has
in hand) and sends a stop message; a trainer that dies takes this process with it (its link breaks;
on one machine its orphan guard kills it too).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from conversion.lora import PEFT_PREFIX, write_peft_adapter
from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import ConfigError, config_hash
from nemo_recipes.data.rl_prompts import rl_prompt_stream
from nemo_recipes.rollout.channel import (
    ROLLOUT,
    TRAINER,
    Channel,
    connect,
    recv_object,
    recv_tensors,
    send_object,
)
from nemo_recipes.rollout.groups import collect_step_groups, engines_round
from nemo_recipes.rollout.remote import RemoteStep, version_for_step
from nemo_recipes.rollout.vllm_engine import VLLMEngine
from nemo_recipes.tasks import load_task_table
from nemo_recipes.tokenizer.load import load_tokenizer


class StagedVersions:
    """Policy versions received and not yet loaded (the receiver adds them, the generator takes them).

    Never full: the trainer publishes a version after each step and the generator, at most
    max_off_policy_steps (k) steps ahead, has taken every version older than k + 1 behind the newest,
    so at most k + 1 versions sit here (host memory: that many copies of the weights)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[int, list[tuple[str, torch.Tensor]]] = {}
        self._stopped = False

    def put(self, version: int, tensors: list[tuple[str, torch.Tensor]]) -> None:
        with self._cond:
            self._versions[version] = tensors
            self._cond.notify_all()

    def take(self, version: int) -> list[tuple[str, torch.Tensor]]:
        """Wait for `version`, the oldest staged (the trainer publishes only versions a step needs)."""
        with self._cond:
            self._cond.wait_for(lambda: version in self._versions)
            if min(self._versions) != version:
                raise RuntimeError(
                    f"the trainer published policy versions {sorted(self._versions)}; the next step needs "
                    f"{version}"
                )
            return self._versions.pop(version)

    def stop(self) -> None:
        """The trainer said stop."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def wait_stopped(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._stopped)


def serve(cfg: RunConfig, address: str, cpus: str | None = None) -> None:
    """Connect to the trainer at `address` (host:port) and generate until it says stop. `cpus` (CPU
    only): each engine's cores, engines separated by '|' ("1|2", "4-7|8-11"), else vLLM binds them."""
    engine_cpus = cpus.split("|") if cpus else None
    if engine_cpus and len(engine_cpus) != cfg.grpo.rollout_engines:
        raise ConfigError(
            f"--cpus {cpus!r} names {len(engine_cpus)} engines' cores; grpo.rollout_engines is "
            f"{cfg.grpo.rollout_engines}"
        )
    for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)
    host, port = address.rsplit(":", 1)
    channel = connect(host, int(port), ROLLOUT)
    hello = recv_object(channel.weights, TRAINER)
    if hello["config"] != config_hash(cfg):
        raise ConfigError(
            "the rollout process's config differs from the trainer's: start both from the same recipe and "
            "overrides (`redone rollout-server` takes the trainer's)"
        )
    grpo = cfg.grpo
    tokenizer = load_tokenizer(cfg.model)
    table = load_task_table(*cfg.task_tables)
    prompt_set, sampler = rl_prompt_stream(grpo, table, tokenizer, cfg.seed)
    engines = [
        _start_engine(cfg, i, engine_cpus[i] if engine_cpus else None) for i in range(grpo.rollout_engines)
    ]
    staged = StagedVersions()
    generating = threading.Event()
    generating.set()
    threading.Thread(target=_receive_versions, args=(channel, staged, generating), daemon=True).start()
    generate_round = engines_round(engines, grpo, table, tokenizer, cfg.seed)
    position, loaded = hello["position"], None
    for step in range(hello["step"], grpo.train_steps):
        version = version_for_step(step, grpo.max_off_policy_steps, hello["version"])
        timings = {"engine_wait_seconds": 0.0, "engine_pause_seconds": 0.0}
        if version != loaded:
            start = time.perf_counter()
            tensors = staged.take(version)
            loading = time.perf_counter()
            _load(cfg, engines, tensors)
            timings["engine_wait_seconds"] = loading - start
            timings["engine_pause_seconds"] = time.perf_counter() - loading
            loaded = version
        start = time.perf_counter()
        collected = collect_step_groups(generate_round, prompt_set.prompts, sampler, position, grpo, version)
        timings["engine_generate_seconds"] = time.perf_counter() - start
        position = collected.next_position
        send_object(channel.rollouts, RemoteStep(step, collected, timings), TRAINER)
    generating.clear()
    staged.wait_stopped()
    for engine in engines:
        engine.shutdown()


def _start_engine(cfg: RunConfig, index: int, cpus: str | None) -> VLLMEngine:
    """Engine `index`, alone on GPU `index` of this node; on the CPU, on the cores `cpus` when given
    (vLLM's own binding otherwise)."""
    if cpus:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpus  # read when the engine starts its worker
    if torch.cuda.is_available():
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"grpo.rollout_engines {cfg.grpo.rollout_engines}: the rollout process's node has "
                f"{torch.cuda.device_count()} GPUs (one engine per GPU)"
            )
        torch.cuda.set_device(index)
    return VLLMEngine.start(cfg, cfg.run_dir / "engine" / f"rollout-{index}", beside_trainer=False)


def _load(cfg: RunConfig, engines: Sequence[VLLMEngine], tensors: list[tuple[str, torch.Tensor]]) -> None:
    """Refit every engine with a staged version (all at once): its HF tensors into the weights, its PEFT
    adapter tensors (model.lora) as the policy's adapter, written once as a PEFT directory."""
    adapter = [(name, t) for name, t in tensors if name.startswith(PEFT_PREFIX)]
    weights = [(name, t) for name, t in tensors if not name.startswith(PEFT_PREFIX)]
    adapter_dir = cfg.run_dir / "engine" / "rollout-adapter"
    if adapter:
        write_peft_adapter(
            adapter_dir, iter(adapter), cfg.model.lora, "policy-base", getattr(torch, cfg.model.dtype)
        )

    def load(engine: VLLMEngine) -> None:
        if weights:
            engine.refit(weights)
        if adapter:
            engine.refit_adapter(adapter_dir)

    with ThreadPoolExecutor(len(engines)) as pool:
        list(pool.map(load, engines))


def _receive_versions(channel: Channel, staged: StagedVersions, generating: threading.Event) -> None:
    """The receiver thread: each version as it comes, until the stop message. A stop while steps are
    still being generated ends the process at once (the trainer has checkpointed what it needs; the
    engines' orphan guard kills them); after the last step the main thread shuts down."""
    try:
        while (message := recv_object(channel.weights, TRAINER))["kind"] == "weights":
            staged.put(message["version"], list(recv_tensors(channel.weights, TRAINER)))
    except Exception:
        traceback.print_exc()
        os._exit(1)
    if generating.is_set():
        os._exit(0)
    staged.stop()
