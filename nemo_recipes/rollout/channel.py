"""The link between a trainer and its rollout process (`grpo.placement: separate`).

Two gloo process groups of two members over one TCP store that the trainer's first rank hosts: the
trainer is member 0 and the rollout process member 1. `weights` carries policy versions from the
trainer to the engines, `rollouts` carries each step's groups back; each side uses each group from
one thread only, so the two directions never wait on each other. A send completes when the peer has
posted the matching receive: that is the back-pressure the rollout process uses to hold one staged
version at a time.

Messages are pickled Python objects (the peer is our own process) and raw tensors sent as bytes, so
any dtype (bfloat16 included) travels unchanged.
"""

from __future__ import annotations

import datetime
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

TRAINER, ROLLOUT = 0, 1
TIMEOUT = datetime.timedelta(hours=6)
"""How long a member waits for the other: longer than any step (a dead peer fails at once anyway)."""


@dataclass(frozen=True)
class Channel:
    """Both directions of the link, from one member's side."""

    weights: dist.ProcessGroup
    rollouts: dist.ProcessGroup
    role: int

    @property
    def peer(self) -> int:
        return 1 - self.role


def connect(host: str, port: int, role: int, timeout: datetime.timedelta = TIMEOUT) -> Channel:
    """Join the link at host:port as `role` (TRAINER hosts the store there); waits for the other member."""
    store = dist.TCPStore(host, port, world_size=2, is_master=role == TRAINER, timeout=timeout)
    groups = [dist.ProcessGroupGloo(dist.PrefixStore(n, store), role, 2, timeout) for n in ("w", "r")]
    return Channel(*groups, role=role)


def send_object(group: dist.ProcessGroup, obj: Any, peer: int) -> None:
    """Send a picklable object to `peer` (blocks until it is received)."""
    payload = torch.frombuffer(
        bytearray(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)), dtype=torch.uint8
    )
    group.send([torch.tensor([payload.numel()], dtype=torch.int64)], peer, 0).wait()
    group.send([payload], peer, 0).wait()


def recv_object(group: dist.ProcessGroup, peer: int) -> Any:
    """The next object `send_object` sent from `peer`."""
    size = torch.empty(1, dtype=torch.int64)
    group.recv([size], peer, 0).wait()
    payload = torch.empty(int(size.item()), dtype=torch.uint8)
    group.recv([payload], peer, 0).wait()
    return pickle.loads(payload.numpy().tobytes())


def send_tensors(group: dist.ProcessGroup, tensors: Iterable[tuple[str, torch.Tensor]], peer: int) -> int:
    """Stream named tensors to `peer` (each as it comes), then an end mark; returns the bytes sent."""
    sent = 0
    for name, tensor in tensors:
        flat = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        send_object(group, (name, str(tensor.dtype).removeprefix("torch."), tuple(tensor.shape)), peer)
        group.send([flat], peer, 0).wait()
        sent += flat.numel()
    send_object(group, None, peer)
    return sent


def recv_tensors(group: dist.ProcessGroup, peer: int) -> Iterator[tuple[str, torch.Tensor]]:
    """The named tensors `send_tensors` streams from `peer`, in order (consume the whole iterator)."""
    while (meta := recv_object(group, peer)) is not None:
        name, dtype, shape = meta
        tensor = torch.empty(shape, dtype=getattr(torch, dtype))
        group.recv([tensor.reshape(-1).view(torch.uint8)], peer, 0).wait()
        yield name, tensor
