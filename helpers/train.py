"""The digits training of 03_train as a command-line script (introduced in 10_going_further).

    python -m helpers.train --dataset digits --model tinyvgg --epochs 5 --batch-size 64 \\
        --lr 0.003 --seed 42 --device auto --out runs/cli

Every value is checked with :func:`helpers.params.check_params`, so a bad one
gives the notebooks' message: one line on stderr and exit code 2, before
anything is written. The script prints one line per epoch and writes
``history.json`` and ``model.pt`` (the model's ``state_dict``) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from helpers.checkpoint import save_weights
from helpers.data import TensorPairDataset, load_digits, make_loaders, split_tensors
from helpers.device import get_device, set_seed
from helpers.engine import fit
from helpers.models import MLP, TinyVGG
from helpers.params import ParameterError, check_params
from helpers.paths import prepare_dir, runs_dir

__all__ = ["DATASETS", "MODELS", "build_model", "build_parser", "load_data", "main", "parse_value",
           "validate"]

DATASETS = ("digits",)
MODELS = ("tinyvgg", "mlp")
TEST_FRACTION = 0.2


def parse_value(text: str) -> int | float | str:
    """``"5"`` -> 5, ``"0.003"`` -> 0.003, anything else stays text, so check_params can name the problem."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# option: (metavar, parse as a literal?, default, help) for the script; helpers.distributed overrides some
_ARGUMENTS: dict[str, tuple[str, bool, Any, str]] = {
    "dataset": ("NAME", False, "digits", "data set: 'digits' (offline)"),
    "model": ("NAME", False, "tinyvgg", "'tinyvgg' (small CNN) or 'mlp'"),
    "hidden_units": ("N", True, 16, "width of the model"),
    "epochs": ("N", True, 5, "passes over the training data"),
    "batch_size": ("N", True, 64, "examples per training step"),
    "lr": ("RATE", True, 0.003, "Adam's learning rate"),
    "seed": ("N", True, 42, "seed for split, weights, shuffling"),
    "device": ("NAME", False, "auto", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    "out": ("DIR", False, "", "output folder ('' means runs/train in the project)"),
}


def build_parser(
    prog: str = "python -m helpers.train", description: str = "Train a digits classifier (the loop of 03_train).",
    defaults: dict[str, Any] | None = None, helps: dict[str, str] | None = None,
) -> argparse.ArgumentParser:
    """The command-line options; numbers stay unchecked here and are validated by :func:`validate`.

    ``defaults`` and ``helps`` replace the default value or help text of options by name
    (``{"model": "mlp"}``), so another entry point shares the same options.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, (metavar, literal, default, help_text) in _ARGUMENTS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", metavar=metavar, type=parse_value if literal else str,
            default=(defaults or {}).get(name, default), help=(helps or {}).get(name, help_text),
        )
    return parser


# option -> the notebook parameter whose rule it follows
_OPTIONS = {"dataset": "DATASET", "model": "MODEL", "hidden_units": "HIDDEN_UNITS", "epochs": "EPOCHS",
            "batch_size": "BATCH_SIZE", "lr": "LEARNING_RATE", "seed": "SEED", "out": "RUNS_DIR"}


def validate(args: argparse.Namespace) -> None:
    """Check every option with the notebooks' rules; raise ParameterError naming the option."""
    choices = {"DATASET": DATASETS, "MODEL": MODELS}
    for option, name in _OPTIONS.items():
        try:
            check_params({name: getattr(args, option)}, choices={k: v for k, v in choices.items() if k == name})
        except ParameterError as error:
            raise ParameterError(f"--{option.replace('_', '-')}: {error}") from None


def load_data(dataset: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``X_train, X_test, y_train, y_test`` of ``dataset``, split 80/20 with ``seed`` as in 03_train."""
    if dataset != "digits":
        raise ValueError(f"unknown data set {dataset!r}: choose one of {', '.join(DATASETS)}")
    images, labels = load_digits()  # (N, 1, 8, 8), (N,)
    return split_tensors(images, labels, test_fraction=TEST_FRACTION, seed=seed)


def build_model(name: str, hidden_units: int, in_channels: int = 1, image_size: int = 8,
                num_classes: int = 10) -> nn.Module:
    """A fresh ``TinyVGG`` or ``MLP`` by name (initial weights come from the global seed)."""
    if name == "tinyvgg":
        return TinyVGG(in_channels, hidden_units, num_classes)
    if name == "mlp":
        return MLP(in_channels * image_size * image_size, hidden_units, num_classes)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")


def _train(args: argparse.Namespace, device: torch.device, out: Path) -> dict[str, Any]:
    X_train, X_test, y_train, y_test = load_data(args.dataset, args.seed)
    train_loader, test_loader = make_loaders(
        TensorPairDataset(X_train, y_train), TensorPairDataset(X_test, y_test), args.batch_size, seed=args.seed
    )
    set_seed(args.seed)  # the same initial weights on every run
    model = build_model(args.model, args.hidden_units).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    history = fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, args.epochs, device,
                  progress="lines")
    config = {**vars(args), "device": str(device)}
    (out / "history.json").write_text(json.dumps({"config": config, "history": history}, indent=1))
    save_weights(model, out / "model.pt")  # atomic: a crash never leaves half a file
    return history[-1]


def main(argv: list[str] | None = None) -> int:
    """Parse, validate, train and save; return the exit code (0 done, 2 bad value)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        validate(args)
        device = get_device(args.device)
        out = prepare_dir(runs_dir(args.out, "train"), parameter="--out")
    except (ParameterError, PermissionError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"training {args.model} on {args.dataset} for {args.epochs} epochs on {device}", flush=True)
    last = _train(args, device, out)
    print(f"test accuracy {last['test_acc']:.2%}; wrote history.json and model.pt to {args.out or out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
