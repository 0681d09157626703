"""The trainer <-> rollout-process link (nemo_recipes.rollout.channel) between two real processes:
objects and tensors of every dtype arrive bit-identical, a send waits for the peer's receive (the
back-pressure the rollout process's staging slot relies on), and a dead peer is an error, not a hang."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
import torch

from nemo_recipes.launcher import free_port
from nemo_recipes.rollout.channel import (
    ROLLOUT,
    TRAINER,
    connect,
    recv_object,
    recv_tensors,
    send_object,
    send_tensors,
)

TENSORS = {
    "f32": torch.randn(3, 5, generator=torch.Generator().manual_seed(0)),
    "bf16": torch.randn(7, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16),
    "i64": torch.arange(-4, 4, dtype=torch.int64).reshape(2, 2, 2),
    "scalar": torch.tensor(2.5),
    "empty": torch.empty(0, 4),
    "view": torch.arange(12.0).reshape(3, 4).t(),  # not contiguous
}


def _rollout_side(port: int, delay: float, die: bool) -> None:
    channel = connect("127.0.0.1", port, ROLLOUT)
    hello = recv_object(channel.weights, TRAINER)
    if die:
        os._exit(7)
    time.sleep(delay)  # the trainer's next send waits for this receive
    tensors = list(recv_tensors(channel.weights, TRAINER))
    send_object(channel.rollouts, {"echo": hello, "tensors": tensors}, TRAINER)


def _start(delay: float = 0.0, die: bool = False):
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=_rollout_side, args=(port, delay, die))
    process.start()
    return process, connect("127.0.0.1", port, TRAINER)


def test_objects_and_tensors_arrive_bit_identical_and_a_send_waits_for_the_receive() -> None:
    process, channel = _start(delay=1.0)
    send_object(channel.weights, {"kind": "hello", "step": 3}, ROLLOUT)
    start = time.monotonic()
    sent = send_tensors(channel.weights, TENSORS.items(), ROLLOUT)
    assert time.monotonic() - start >= 0.9  # held until the peer posted its receive
    assert sent == sum(t.numel() * t.element_size() for t in TENSORS.values())
    back = recv_object(channel.rollouts, ROLLOUT)
    process.join(30)
    assert back["echo"] == {"kind": "hello", "step": 3}
    assert [name for name, _ in back["tensors"]] == list(TENSORS)
    for name, tensor in back["tensors"]:
        assert tensor.dtype == TENSORS[name].dtype and tensor.shape == TENSORS[name].shape, name
        assert torch.equal(tensor, TENSORS[name]), name


def test_a_dead_peer_is_an_error() -> None:
    process, channel = _start(die=True)
    send_object(channel.weights, {"kind": "hello"}, ROLLOUT)
    process.join(30)
    assert process.exitcode == 7
    with pytest.raises(RuntimeError):
        recv_object(channel.rollouts, ROLLOUT)
