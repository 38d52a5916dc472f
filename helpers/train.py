"""The digits training of 03_train as a command-line script (introduced in 10_going_further).

    python -m helpers.train --dataset digits --model tinyvgg --epochs 5 --batch-size 64 \\
        --lr 0.003 --seed 42 --device auto --out runs/cli

Every value is checked with the notebooks' rules (:func:`helpers.params.check_options`), so a
bad one gives the notebooks' message: one line on stderr and exit code 2, before anything is
written. The script prints one line per epoch and writes ``history.json`` and ``model.pt`` (the
model's ``state_dict``) to ``--out``; a relative ``--out`` is taken from the current folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from helpers.atomic import save_json
from helpers.checkpoint import save_weights
from helpers.data import DATASETS, TensorPairDataset, load_data, make_loaders
from helpers.device import get_device, set_seed
from helpers.engine import fit
from helpers.models import MODELS, build_model
from helpers.params import ParameterError, build_parser, check_options
from helpers.paths import prepare_dir, runs_dir

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The script's options: the shared table of :func:`helpers.params.build_parser` with this script's defaults."""
    return build_parser("python -m helpers.train", "Train a digits classifier (the loop of 03_train).")


def main(argv: list[str] | None = None) -> int:
    """Parse, validate, train and save; return the exit code (0 done, 2 bad value)."""
    options = parser()
    args = options.parse_args(argv)
    try:
        check_options(args, {"DATASET": DATASETS, "MODEL": MODELS})
        device = get_device(args.device)
        out = prepare_dir(runs_dir(args.out, "train", base=Path.cwd()), parameter="--out")
    except (ParameterError, PermissionError) as error:
        print(f"{options.prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"training {args.model} on {args.dataset} for {args.epochs} epochs on {device}", flush=True)
    X_train, X_test, y_train, y_test = load_data(args.dataset, args.seed)
    train_loader, test_loader = make_loaders(
        TensorPairDataset(X_train, y_train), TensorPairDataset(X_test, y_test), args.batch_size, seed=args.seed
    )
    set_seed(args.seed)  # the same initial weights on every run
    model = build_model(args.model, args.hidden_units).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    history = fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, args.epochs, device,
                  progress="lines")
    save_json({"config": {**vars(args), "device": str(device)}, "history": history}, out / "history.json")
    save_weights(model, out / "model.pt")  # both writes are atomic: a crash never leaves half a file
    print(f"test accuracy {history[-1]['test_acc']:.2%}; wrote history.json and model.pt to {args.out or out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
