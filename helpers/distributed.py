"""The pieces of data-parallel training that ``helpers.train`` uses under torchrun (introduced in 10_going_further).

torchrun starts N copies of a script and gives each one ``RANK`` (0 to N - 1 over all machines),
``LOCAL_RANK`` (its number on its own machine) and ``WORLD_SIZE`` (N). Started without torchrun, a
script is the one process of a world of one: :func:`process_rank` gives ``(0, 1, 0)`` and
:func:`process_group` starts nothing. The same training code then runs either way:

- :class:`ShardedLoader` gives this process its share of every global batch, the same batches
  for one process or N;
- :func:`eval_share` gives it every N-th test example; ``helpers.engine`` adds the sums of all the
  processes, so each one gets the exact averages over the whole test set;
- :func:`process_device` gives each process its own GPU, or the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from helpers.data import TensorPairDataset
from helpers.params import ParameterError

__all__ = ["ShardedLoader", "check_batch_size", "eval_share", "process_device", "process_group", "process_rank"]


def process_rank() -> tuple[int, int, int]:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` as torchrun sets them; ``(0, 1, 0)`` for a process started alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def check_batch_size(batch_size: int, world_size: int) -> int:
    """The per-process batch size; the global ``batch_size`` must split evenly over the processes."""
    if batch_size % world_size:
        raise ParameterError(
            f"BATCH_SIZE = {batch_size} is not allowed: with {world_size} processes it must be a multiple "
            f"of {world_size}, so that every process gets the same share of each batch."
        )
    return batch_size // world_size


class ShardedLoader:
    """This process's share of every global batch of ``batch_size``; each pass (an epoch) shuffles anew.

    Every process shuffles the same way (same seed and epoch); process ``rank`` takes positions
    ``rank, rank + world_size, ...`` of that order, in local batches of ``batch_size // world_size``.
    Local batch k of all processes together is global batch k of a single process. The last, short
    global batch is dropped (``drop_last``), for one process as for many: every process makes the same
    number of steps with the same number of examples, and N processes make exactly the steps of one.

    It is a ``DataLoader`` over a ``DistributedSampler`` whose epoch (``set_epoch``) goes up by one at
    the start of every pass, from 1, so a loop over epochs (``fit``) needs no call of its own.
    """

    def __init__(self, data: TensorPairDataset, batch_size: int, rank: int, world_size: int, seed: int) -> None:
        local_batch = check_batch_size(batch_size, world_size)
        self.sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.loader = DataLoader(data, batch_size=local_batch, sampler=self.sampler, drop_last=True)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.epoch += 1
        self.sampler.set_epoch(self.epoch)  # a new shuffle each epoch, the same in every process
        return iter(self.loader)


def eval_share(X: torch.Tensor, y: torch.Tensor, rank: int, world_size: int) -> TensorPairDataset:
    """Examples ``rank, rank + world_size, ...``: the processes' shares are disjoint and cover every example once.

    Shares may differ in size by one; ``helpers.engine.evaluate`` adds up sums, not averages,
    so the result is the exact average over all the examples.
    """
    return TensorPairDataset(X[rank::world_size], y[rank::world_size])


def process_device(device: torch.device, local_rank: int, world_size: int) -> torch.device:
    """The device of the process with ``local_rank`` on this machine: one GPU per process, or the CPU.

    With several processes on CUDA, process ``local_rank`` uses GPU ``local_rank`` and makes it the
    current device (``torch.cuda.set_device``) *before* the process group starts, so NCCL's
    communicator and every allocation without an explicit index land on that GPU, not all on GPU 0.
    One process keeps ``device`` as given (``cuda:1`` is GPU 1).
    """
    if device.type != "cuda" or world_size == 1:
        return device
    if device.index is not None:
        raise ParameterError(
            f"DEVICE = '{device}' is not allowed with {world_size} processes: each process uses the GPU of its "
            "LOCAL_RANK (cuda:0, cuda:1, ...), so give --device cuda."
        )
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ParameterError(
            f"LOCAL_RANK = {local_rank} has no GPU: this machine has {count} CUDA device(s), so start at most "
            f"{count} process(es) per machine (torchrun --nproc_per_node={count}), or use --device cpu."
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@contextmanager
def process_group(device: torch.device, world_size: int) -> Iterator[bool]:
    """Join the other processes of a torchrun job for the ``with`` block (yields whether it did).

    ``nccl`` on CUDA (bound to this process's GPU), ``gloo`` on the CPU. A world of one process
    (started alone, or by torchrun with ``--nproc_per_node=1``) has no one to join: nothing is
    started. At the end every process waits for the others (a process that tore the group down
    early could make another abort) and leaves.
    """
    if world_size == 1:
        yield False
        return
    if device.type == "cuda":  # device_id binds NCCL to this process's GPU from the start
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        yield True
        dist.barrier()
    finally:
        dist.destroy_process_group()
