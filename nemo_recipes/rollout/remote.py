"""The trainer's side of `grpo.placement: separate`: the rollout process, its link, the steps ahead.

The rollout process (nemo_recipes.rollout.server) generates step m's rollouts with the policy of
version max(0, m - max_off_policy_steps): the weights after that many trainer steps. The trainer
publishes each version the moment it exists and takes step n's rollouts when it trains step n, so
generation of the next steps overlaps training. Versions are a function of the step alone, never of
timing: a run's data order and policy versions are the same however fast each side is.

A checkpoint after step n also holds the rollouts already generated for the steps it has not trained
(n .. n + max_off_policy_steps - 1, generated with versions older than its weights, which it no longer
has): a resumed run trains on those, and the rollout process starts after them with version n, so it
continues exactly as the uninterrupted run would. No step is generated with a version older than the
one a run (re)started from: resumed with a larger max_off_policy_steps than it was saved with (or from
a colocated run's checkpoint), the first steps are simply less stale than the bound allows.

Every trainer rank holds a `RemoteRollouts`; global rank 0 alone talks to the rollout process, and
the others receive each step's groups from it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from conversion.lora import iter_peft_tensors
from conversion.weights import iter_hf_weights
from nemo_recipes import preemption
from nemo_recipes.config import RunConfig
from nemo_recipes.config.loader import ConfigError, config_hash, dump_config
from nemo_recipes.launcher import free_port
from nemo_recipes.rollout import orphan_guard
from nemo_recipes.rollout.channel import (
    ROLLOUT,
    TRAINER,
    Channel,
    connect,
    recv_object,
    send_object,
    send_tensors,
)
from nemo_recipes.rollout.groups import StepGroups

PENDING_FILE = "pending_rollouts.pkl"
"""In a checkpoint of a separate-placement run: the rollouts generated for steps it has not trained."""
STOP_SECONDS = 60
"""How long the trainer waits for a rollout process it started to exit after the stop message."""


@dataclass(frozen=True)
class RemoteStep:
    """One step's rollouts as the rollout process sends them."""

    step: int
    groups: StepGroups
    timings: dict[str, float] = field(default_factory=dict)
    """engine_wait_seconds (idle until the step's policy version arrived), engine_pause_seconds
    (loading it), engine_generate_seconds."""


def version_for_step(step: int, max_off_policy_steps: int, start_version: int = 0) -> int:
    """The policy version that generates step `step`'s rollouts: `max_off_policy_steps` behind the step,
    never older than the version the run (re)started from, `start_version`."""
    return max(start_version, step - max_off_policy_steps)


def version_needed(
    version: int,
    max_off_policy_steps: int,
    train_steps: int,
    start_version: int = 0,
    first_step: int | None = None,
) -> bool:
    """Whether some step the rollout process generates, from `first_step` (default: `start_version`, no
    rollouts in hand), uses `version`: the version a (re)started run has when any step is left to
    generate; a later one when a step k after it exists (the last versions never are used)."""
    if version == start_version:
        return (start_version if first_step is None else first_step) < train_steps
    return version + max_off_policy_steps < train_steps


def read_pending(checkpoint: Path | None) -> list[RemoteStep]:
    """The rollouts a checkpoint holds for steps it has not trained (none for a colocated run's)."""
    if checkpoint is None or not (checkpoint / PENDING_FILE).is_file():
        return []
    return pickle.loads((checkpoint / PENDING_FILE).read_bytes())


class RemoteRollouts:
    """Rollouts from a separate rollout process (collective methods: every trainer rank calls them)."""

    def __init__(self, cfg: RunConfig, start_step: int, position: int, pending: list[RemoteStep]) -> None:
        """Start (or join) the rollout process and tell it where the stage stands: trained up to
        `start_step`, the sampler at `position`, the `pending` rollouts of the steps after it in hand.
        Global rank 0 connects; with `grpo.rollout_port` null it first starts the process itself."""
        grpo = cfg.grpo
        self._k, self._steps, self._start = grpo.max_off_policy_steps, grpo.train_steps, start_step
        self._lora = cfg.model.lora is not None
        self._base_sent = False  # with model.lora: the frozen base goes with the first version only
        self._first_step = start_step + len(pending)  # the rollout process's first (the ones before: in hand)
        self._inbox = {p.step: p for p in pending}
        self._arrived = threading.Condition()
        self._link_error: Exception | None = None
        self._receiver: threading.Thread | None = None
        self._channel: Channel | None = None
        self._process: subprocess.Popen | None = None
        self._guard: subprocess.Popen | None = None
        if [p.step for p in pending] != list(range(start_step, start_step + len(pending))) or len(
            pending
        ) > self._k:
            raise ConfigError(
                f"the checkpoint holds rollouts generated ahead for steps {[p.step for p in pending]}: "
                f"resuming step {start_step} with grpo.max_off_policy_steps {self._k} would train on them "
                f"beyond that bound; resume with max_off_policy_steps {len(pending)} or more"
            )
        local = grpo.rollout_port is None  # the rollout process runs on this machine, started here
        engine_cores = split_cpus(cfg) if local and not torch.cuda.is_available() else None
        if dist.get_rank() != 0:
            return
        port = grpo.rollout_port or free_port()
        if local:
            self._process, self._guard = _start_rollout_process(cfg, port, engine_cores)
        self._channel = connect(socket.gethostname() if grpo.rollout_port else "127.0.0.1", port, TRAINER)
        first_step = self._first_step
        first_position = pending[-1].groups.next_position if pending else position
        hello = {
            "kind": "hello",
            "config": config_hash(cfg),
            "step": first_step,
            "position": first_position,
            "version": start_step,
        }
        send_object(self._channel.weights, hello, ROLLOUT)
        self._receiver = threading.Thread(target=self._receive_rollouts, daemon=True)
        self._receiver.start()

    def take(self, step: int) -> tuple[RemoteStep, float]:
        """Step `step`'s rollouts on every rank, and the seconds the trainer waited for them."""
        start = time.perf_counter()
        item = None
        if self._channel is not None:
            item = self._receive_through(step)
            with self._arrived:
                del self._inbox[step]
        box = [item]
        if dist.get_world_size() > 1:
            dist.broadcast_object_list(box, src=0)
        return box[0], time.perf_counter() - start

    def publish(self, model_chunks: list, model_type: str, version: int) -> float:
        """Send the policy's weights as `version` when a later step needs it; returns seconds (the
        gathers are collective over the model, as a refit's; rank 0 streams each tensor as it comes to
        the rollout process's receiver, which takes it while generation goes on). With model.lora a
        version is the adapters' PEFT tensors, after the frozen base's HF tensors in the first one."""
        if not version_needed(version, self._k, self._steps, self._start, self._first_step):
            return 0.0
        start = time.perf_counter()
        weights = iter(())
        if not (self._lora and self._base_sent):
            weights = iter_hf_weights(model_chunks, model_type, with_tied_lm_head=True)
            self._base_sent = True
        if self._lora:
            weights = itertools.chain(weights, iter_peft_tensors(model_chunks))
        if self._channel is not None:
            send_object(self._channel.weights, {"kind": "weights", "version": version}, ROLLOUT)
            send_tensors(self._channel.weights, weights, ROLLOUT)
        for _ in weights:  # the other ranks run their part of the gathers
            pass
        return time.perf_counter() - start

    def pending(self, next_step: int) -> bytes:
        """The rollouts of the steps from `next_step` that versions before it generate (waits for them),
        pickled for a checkpoint; rank 0 only (others: empty)."""
        if self._channel is None:
            return b""
        last = min(next_step + self._k, self._steps) - 1
        if last >= next_step:
            self._receive_through(last)
        with self._arrived:
            return pickle.dumps([self._inbox[s] for s in range(next_step, last + 1)])

    def close(self) -> None:
        """Stop the rollout process (its engines with it)."""
        if self._channel is None:
            return
        with contextlib.suppress(RuntimeError):  # already gone: its own error was printed
            send_object(self._channel.weights, {"kind": "stop"}, ROLLOUT)
        if self._process is not None:
            try:
                self._process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                orphan_guard.kill_tree(self._process.pid)
                self._process.wait()
            self._guard.kill()
            self._guard.wait()
        if self._receiver is not None:
            self._receiver.join(STOP_SECONDS)  # its link breaks when the rollout process exits

    def _receive_rollouts(self) -> None:
        """Rank 0's receiver thread: every step's rollouts into the inbox as soon as they are sent, so the
        rollout process runs ahead as far as the versions allow (max_off_policy_steps), not one send at a
        time; ends when the link breaks (the rollout process stopped)."""
        while True:
            try:
                item: RemoteStep = recv_object(self._channel.rollouts, ROLLOUT)
            except Exception as e:  # the link is gone: a waiting take() reports it
                with self._arrived:
                    self._link_error = e
                    self._arrived.notify_all()
                return
            with self._arrived:
                self._inbox[item.step] = item
                self._arrived.notify_all()

    def _receive_through(self, step: int) -> RemoteStep:
        """Wait until `step`'s rollouts are in the inbox; returns them."""
        with self._arrived:
            self._arrived.wait_for(lambda: step in self._inbox or self._link_error is not None)
            if step not in self._inbox:
                code = self._process.poll() if self._process is not None else None
                raise RuntimeError(
                    f"the rollout process stopped answering (exit code {code}; its output is above): "
                    f"{self._link_error}"
                )
            return self._inbox[step]


def rollout_devices(visible: list[str], trainer_ranks: int, engines: int) -> list[str]:
    """The GPUs of this machine the rollout process gets: the `engines` after the trainer's ranks' own
    (rank i drives GPU i); an error when the machine has too few."""
    if trainer_ranks + engines > len(visible):
        raise ConfigError(
            f"grpo.placement: separate on one machine needs a GPU per trainer rank ({trainer_ranks}) and per "
            f"engine (grpo.rollout_engines {engines}); this machine has {len(visible)}"
        )
    return visible[trainer_ranks : trainer_ranks + engines]


def rollout_cpus(cores: list[int], trainer_ranks: int, engines: int) -> tuple[int, list[list[int]]] | None:
    """On a CPU machine: (torch threads per trainer rank, each engine's cores). Every trainer rank and
    every engine gets an equal share of `cores`, the engines the last ones, so no engine shares a core
    with the trainer or another engine; None when there are fewer cores than processes."""
    share = len(cores) // (trainer_ranks + engines)
    if share == 0:
        return None
    engine_cores = [cores[len(cores) - (i + 1) * share : len(cores) - i * share] for i in range(engines)]
    return (len(cores) - engines * share) // trainer_ranks, engine_cores[::-1]


def split_cpus(cfg: RunConfig) -> list[list[int]] | None:
    """A trainer rank's side of `rollout_cpus` on this machine: it lowers its own torch threads to its
    share and returns the engines' cores (None, said on stdout, when the processes must share cores)."""
    cores = sorted(os.sched_getaffinity(0))
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
    split = rollout_cpus(cores, ranks, cfg.grpo.rollout_engines)
    if split is None:
        if dist.get_rank() == 0:
            print(
                f"[grpo] grpo.placement: separate on {len(cores)} CPU cores for {ranks} trainer rank(s) and "
                f"{cfg.grpo.rollout_engines} engine(s): fewer cores than processes, so they share them "
                "(slower than colocated)",
                flush=True,
            )
        return None
    threads, engine_cores = split
    torch.set_num_threads(min(torch.get_num_threads(), threads))
    return engine_cores


def _start_rollout_process(
    cfg: RunConfig, port: int, engine_cores: list[list[int]] | None
) -> tuple[subprocess.Popen, subprocess.Popen]:
    """`redone rollout-server` on this machine for this run, and its orphan guard (it dies with us). On
    GPUs it sees only its own (`rollout_devices`); on the CPU each engine is bound to `engine_cores`.

    Started with the stop signals held: a signal to the whole job must not kill it before the trainer
    has checkpointed the rollouts it has in hand (the trainer stops it then)."""
    config_file = cfg.run_dir / "engine" / "rollout-config.yaml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, config_file)
    env = dict(os.environ)
    if torch.cuda.is_available():
        previous = env.get("CUDA_VISIBLE_DEVICES")
        visible = previous.split(",") if previous else [str(i) for i in range(torch.cuda.device_count())]
        local_ranks = int(env.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
        env["CUDA_VISIBLE_DEVICES"] = ",".join(
            rollout_devices(visible, local_ranks, cfg.grpo.rollout_engines)
        )
    command = [sys.executable, "-m", "nemo_recipes.cli", "rollout-server", str(config_file)]
    if engine_cores:
        command += ["--cpus", "|".join(",".join(map(str, cores)) for cores in engine_cores)]
    with preemption.signals_held():
        process = subprocess.Popen(
            [*command, "--address", f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL, env=env
        )
        guard = orphan_guard.guard([process.pid])
    return process, guard


def check_versions(groups: StepGroups, trained_step: int, max_off_policy_steps: int) -> list[int]:
    """How many steps behind the trainer each group's policy is; an error past the bound."""
    behind = [trained_step - g.policy_version for g in groups.groups]
    if any(b < 0 or b > max_off_policy_steps for b in behind):
        versions = sorted({g.policy_version for g in groups.groups})
        raise RuntimeError(
            f"step {trained_step} got rollouts of policy versions {versions}: outside "
            f"grpo.max_off_policy_steps {max_off_policy_steps}"
        )
    return behind
