"""The digits training of 03_train as a command-line script, in one process or many (10_going_further).

One process::

    python -m helpers.train --dataset digits --model tinyvgg --epochs 5 --batch-size 64 \\
        --lr 0.003 --seed 42 --device auto --out runs/cli

Several processes with ``DistributedDataParallel``, started by torchrun (here two on the CPU, gloo
backend; on Linux ``GLOO_SOCKET_IFNAME=lo`` keeps their traffic on this machine's loopback network)::

    GLOO_SOCKET_IFNAME=lo python -m torch.distributed.run --nnodes=1 --nproc_per_node=2 \\
        --master_addr=127.0.0.1 --master_port=29500 -m helpers.train --model mlp --device cpu --out runs/ddp

The same code trains either way (:func:`train`, on ``helpers.engine.fit``). ``--batch-size`` is the
*global* batch: each of the N processes takes 1/N of every batch (``helpers.distributed``), and DDP
averages the gradients, so N processes make the updates of one. Each process evaluates its share of the
test set and the sums are added over the processes, so all of them get the exact test averages.

Every value is checked with the notebooks' rules (:func:`helpers.params.check_options`), so a
bad one gives the notebooks' message: one line on stderr and exit code 2, before anything is
written. Process 0 prints one line per epoch and writes ``history.json`` and ``model.pt`` (the
model's ``state_dict``) to ``--out``; a relative ``--out`` is taken from the current folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from helpers.atomic import save_json
from helpers.checkpoint import save_weights
from helpers.data import DATASETS, TensorPairDataset, load_data
from helpers.device import get_device, set_seed
from helpers.distributed import ShardedLoader, check_batch_size, eval_share, process_device, process_group, process_rank
from helpers.engine import fit
from helpers.models import MODELS, build_model
from helpers.params import ParameterError, build_parser, check_options
from helpers.paths import prepare_dir, runs_dir

__all__ = ["main", "parser", "train"]


def parser() -> argparse.ArgumentParser:
    """The script's options: the shared table of :func:`helpers.params.build_parser`."""
    return build_parser("python -m helpers.train",
                        "Train a digits classifier (the loop of 03_train), in one process or, under torchrun, many.")


def train(
    dataset: str, model_name: str, hidden_units: int, epochs: int, batch_size: int, lr: float, seed: int,
    device: torch.device, rank: int = 0, world_size: int = 1, progress: str = "lines",
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train on this process's share of the data with ``fit``; return the (unwrapped) model and the history.

    In a process group (under torchrun) the model is wrapped in ``DistributedDataParallel``;
    otherwise this is ordinary training in one process, on the same batches. Every process
    returns the same metrics in its history (all but ``seconds``, its own time): the exact
    averages over all the training and test examples.
    """
    X_train, X_test, y_train, y_test = load_data(dataset, seed)
    train_loader = ShardedLoader(TensorPairDataset(X_train, y_train), batch_size, rank, world_size, seed)
    test_loader = DataLoader(eval_share(X_test, y_test, rank, world_size), batch_size=batch_size)
    set_seed(seed)  # the same initial weights in every process (DDP also copies rank 0's to the others)
    model = build_model(model_name, hidden_units).to(device)
    ddp = torch.distributed.is_initialized()
    trained = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) if ddp else model
    optimizer = torch.optim.Adam(trained.parameters(), lr=lr)
    # the loss is the mean over this process's share of a batch; DDP averages these means over the processes
    history = fit(trained, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, epochs, device,
                  progress=progress)
    return model, history


def _say(line: str) -> None:
    """Print ``line`` in one write: the lines of processes sharing one output stay whole."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Parse, validate, train and save (process 0); return the exit code (0 done, 2 bad value)."""
    options = parser()
    args = options.parse_args(argv)
    rank, world_size, local_rank = process_rank()
    try:
        check_options(args, {"DATASET": DATASETS, "MODEL": MODELS})
        check_batch_size(args.batch_size, world_size)
        device = process_device(get_device(args.device), local_rank, world_size)
        out = runs_dir(args.out, "train", base=Path.cwd())
        if rank == 0:  # only one process writes, or they would overwrite each other's files
            prepare_dir(out, parameter="--out")
    except (ParameterError, PermissionError) as error:
        print(f"{options.prog}: error: {error}", file=sys.stderr)
        return 2
    if world_size == 1:
        _say(f"training {args.model} on {args.dataset} for {args.epochs} epochs on {device}")
    else:
        _say(f"rank {rank} of {world_size}: batches of {args.batch_size // world_size} on {device}")
    with process_group(device, world_size):
        model, history = train(args.dataset, args.model, args.hidden_units, args.epochs, args.batch_size, args.lr,
                               args.seed, device, rank, world_size, progress="lines" if rank == 0 else "none")
    if rank == 0:
        config = {**vars(args), "device": str(device), "world_size": world_size}
        save_json({"config": config, "history": history}, out / "history.json")
        save_weights(model, out / "model.pt")  # the plain module inside DDP; both writes are atomic
        _say(f"test accuracy {history[-1]['test_acc']:.2%}; wrote history.json and model.pt to {args.out or out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
