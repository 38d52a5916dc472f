"""Data-parallel training with DistributedDataParallel, started by torchrun (introduced in 10_going_further).

Two processes on the CPU (gloo backend), talking only over 127.0.0.1::

    python -m torch.distributed.run --nnodes=1 --nproc_per_node=2 --master_addr=127.0.0.1 \\
        --master_port=29500 -m helpers.distributed --epochs 5 --batch-size 64 --out runs/ddp

torchrun starts the processes and gives each one ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``. Started without torchrun (``python -m helpers.distributed`` or
:func:`train` from Python) the same code trains in one process: the reference
that the data-parallel run must match. ``--batch-size`` is the *global* batch:
each of the N processes takes 1/N of every batch, and DDP averages the
gradients, so the N processes make exactly the updates of one process.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from helpers.atomic import save_json
from helpers.checkpoint import save_weights
from helpers.data import DATASETS, TensorPairDataset, load_data
from helpers.device import get_device, set_seed
from helpers.engine import evaluate, format_epoch, train_one_epoch
from helpers.models import MODELS, build_model
from helpers.params import ParameterError, build_parser, check_options
from helpers.paths import prepare_dir, runs_dir

__all__ = ["check_batch_size", "main", "make_train_loader", "process_device", "train"]


def check_batch_size(batch_size: int, world_size: int) -> int:
    """The per-process batch size; the global ``batch_size`` must split evenly over the processes."""
    if batch_size % world_size:
        raise ParameterError(
            f"BATCH_SIZE = {batch_size} is not allowed: with {world_size} processes it must be a multiple "
            f"of {world_size}, so that every process gets the same share of each batch."
        )
    return batch_size // world_size


def make_train_loader(data: TensorPairDataset, batch_size: int, rank: int, world_size: int,
                      seed: int) -> tuple[DataLoader, DistributedSampler]:
    """This process's share of every global batch of ``batch_size``, and the sampler (call ``set_epoch``).

    Every process shuffles the same way (same seed and epoch); process ``rank``
    takes positions ``rank, rank + world_size, ...`` of that order, in local
    batches of ``batch_size // world_size``. Local batch k of all processes
    together is global batch k of a single process. The last, short global
    batch is dropped (``drop_last``), so every process makes the same number of
    steps with the same number of examples.
    """
    local_batch = check_batch_size(batch_size, world_size)
    sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=True)
    return DataLoader(data, batch_size=local_batch, sampler=sampler, drop_last=True), sampler


def train(
    dataset: str, model_name: str, hidden_units: int, epochs: int, batch_size: int, lr: float, seed: int,
    device: torch.device, rank: int = 0, world_size: int = 1, verbose: bool = True,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train on this process's share of the data; return the (unwrapped) model and, on rank 0, the history.

    With a process group initialised (under torchrun) the model is wrapped in
    ``DistributedDataParallel``; otherwise this is ordinary single-process
    training. The history is only filled on rank 0, which evaluates on the test set.
    """
    X_train, X_test, y_train, y_test = load_data(dataset, seed)
    train_loader, sampler = make_train_loader(TensorPairDataset(X_train, y_train), batch_size, rank,
                                              world_size, seed)
    test_loader = DataLoader(TensorPairDataset(X_test, y_test), batch_size=batch_size)
    set_seed(seed)  # the same initial weights in every process (DDP also copies rank 0's to the others)
    model = build_model(model_name, hidden_units).to(device)
    ddp = dist.is_initialized()
    train_model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if ddp else model
    optimizer = torch.optim.Adam(train_model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()  # mean over the local batch; DDP averages these means over processes
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same in every process
        # under DDP, train_one_epoch adds up the sums of all processes: the average over every example
        metrics = {"epoch": epoch, **train_one_epoch(train_model, train_loader, loss_fn, optimizer, device)}
        if rank == 0:
            metrics.update(evaluate(model, test_loader, loss_fn, device))
            history.append(metrics)
            if verbose:
                print(format_epoch(metrics), flush=True)
    return model, history


def process_device(device: torch.device, local_rank: int) -> torch.device:
    """The device of the process with ``local_rank`` on this machine: one GPU per process, or the CPU.

    On CUDA, process ``local_rank`` uses GPU ``local_rank`` and makes it the current device
    (``torch.cuda.set_device``) *before* the process group starts, so NCCL's communicator and
    every allocation without an explicit index land on that GPU, not all on GPU 0.
    """
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ParameterError(
            f"LOCAL_RANK = {local_rank} has no GPU: this machine has {count} CUDA device(s), so start at most "
            f"{count} process(es) per machine (torchrun --nproc_per_node={count}), or use --device cpu."
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _parser() -> argparse.ArgumentParser:
    return build_parser(
        prog="python -m helpers.distributed",
        description="Data-parallel training of a digits classifier; start it with torchrun.",
        defaults={"model": "mlp", "hidden_units": 64, "device": "cpu"},
        helps={"model": "'mlp' or 'tinyvgg'", "epochs": "passes over the data",
               "batch_size": "global batch: the examples of one step, over all processes together",
               "seed": "seed for split and weights",
               "device": "'cpu' (gloo backend) or 'cuda' (nccl, one GPU per process: cuda:LOCAL_RANK)",
               "out": "rank 0 writes here ('' means runs/ddp)"},
    )


def main(argv: list[str] | None = None) -> int:
    """Run one process of a torchrun job (or a single process without torchrun); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    try:
        check_options(args, {"DATASET": DATASETS, "MODEL": MODELS})
        check_batch_size(args.batch_size, world_size)
        device = process_device(get_device(args.device), local_rank)
        out = runs_dir(args.out, "ddp", base=Path.cwd())
        if rank == 0:
            prepare_dir(out, parameter="--out")
    except (ParameterError, PermissionError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    if "RANK" in os.environ:  # started by torchrun: join the other processes
        if device.type == "cuda":  # device_id binds NCCL to this process's GPU from the start
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    local_batch = args.batch_size // world_size
    print(f"rank {rank} of {world_size}: batches of {local_batch} on {device}", flush=True)
    try:
        model, history = train(args.dataset, args.model, args.hidden_units, args.epochs, args.batch_size,
                               args.lr, args.seed, device, rank, world_size)
        if dist.is_initialized():
            dist.barrier()  # rank 0 evaluates last; a rank that tore the group down early could abort at exit
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:  # only one process writes, or they would overwrite each other's files
        config = {**vars(args), "device": str(device), "world_size": world_size}
        save_json({"config": config, "history": history}, Path(out, "history.json"))
        save_weights(model, Path(out, "model.pt"))  # the plain module inside DDP; both writes atomic
        print(f"rank 0 wrote history.json and model.pt to {args.out or out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
