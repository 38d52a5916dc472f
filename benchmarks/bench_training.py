"""How fast is helpers' ``fit``? Side by side with a plain loop, Lightning and the compute-only ceiling.

Every contender does the same work on the same model, data, batch size, optimizer, seed and number
of epochs: per epoch, one training pass over the digits training set (the six steps) and one
evaluation pass over the test set (``fit`` always evaluates, so every contender does).

    python benchmarks/bench_training.py                 # what `make bench` runs
    python benchmarks/bench_training.py --device cuda   # on a GPU
    python benchmarks/bench_training.py --tiny          # one epoch, one repeat, a subset: seconds

benchmarks/README.md explains the contenders, the targets and how to read the table.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.util
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.data import InMemoryLoader, TensorPairDataset, load_digits, make_loaders, split_tensors
from helpers.device import get_device, make_generator, set_seed
from helpers.engine import fit
from helpers.models import MLP, TinyVGG, count_parameters
from helpers.params import ParameterError

PLAIN, FIT_LOADER, FIT_MEMORY, LIGHTNING, CEILING = (
    "plain loop (DataLoader)", "fit (DataLoader)", "fit (in-memory)", "Lightning Trainer", "ceiling (compute only)"
)


class Target(NamedTuple):
    """``contender`` must reach ``minimum`` times the speed of ``reference`` (beat it, if ``strict``)."""

    contender: str
    reference: str
    minimum: float
    strict: bool = False

    def claim(self) -> str:
        if self.strict:
            return f"{self.contender} faster than {self.reference}"
        return f"{self.contender} >= {self.minimum:.2f}x {self.reference}"


TARGETS = [Target(FIT_LOADER, PLAIN, 0.95), Target(FIT_MEMORY, CEILING, 0.90),
           Target(FIT_LOADER, LIGHTNING, 1.0, strict=True)]
MODELS: dict[str, Callable[[], nn.Module]] = {  # the course's settings: 02_model's MLP, 03_train's TinyVGG
    "TinyVGG": lambda: TinyVGG(in_channels=1, hidden_units=16, num_classes=10),
    "MLP": lambda: MLP(in_features=64, hidden_units=32, num_classes=10),
}
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
LIGHTNING_MISSING = 'skipped: lightning is not importable (pip install "lightning>=2.4")'


@dataclasses.dataclass(frozen=True)
class Work:
    """What every contender does: start from ``initial``'s weights, train and evaluate on the same data."""

    initial: nn.Module  # on the device; each run trains a deep copy
    X_train: torch.Tensor  # data on the CPU: each contender moves it the way it normally would
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    batch_size: int
    learning_rate: float
    epochs: int
    seed: int  # seeds the shuffling of the training data
    device: torch.device
    clock: Callable[[], float] = time.perf_counter  # seconds; time.process_time on a loaded CPU machine


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it includes that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def plain_loop(work: Work) -> tuple[float, nn.Module]:
    """1. The six steps written out, a DataLoader as the data source, a test pass per epoch, nothing else."""
    model, device = copy.deepcopy(work.initial), work.device
    synchronize(device)
    started = work.clock()
    train_loader = DataLoader(TensorDataset(work.X_train, work.y_train), batch_size=work.batch_size,
                              shuffle=True, generator=make_generator(work.seed))
    test_loader = DataLoader(TensorDataset(work.X_test, work.y_test), batch_size=work.batch_size)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=work.learning_rate)
    for _ in range(work.epochs):
        model.train()
        for X, y in train_loader:
            X, y = X.to(device), y.to(device)
            loss = loss_fn(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        test_loss = torch.zeros((), device=device)
        with torch.inference_mode():
            for X, y in test_loader:
                X, y = X.to(device), y.to(device)
                test_loss += nn.functional.cross_entropy(model(X), y, reduction="sum")
        test_loss = test_loss.item() / len(work.X_test)  # read once per epoch, as fit does
    synchronize(device)
    return work.clock() - started, model


def fit_with_dataloader(work: Work) -> tuple[float, nn.Module]:
    """2. helpers' fit on make_loaders(TensorPairDataset, ...): the course's standard data path."""
    model = copy.deepcopy(work.initial)
    synchronize(work.device)
    started = work.clock()
    train_loader, test_loader = make_loaders(TensorPairDataset(work.X_train, work.y_train),
                                             TensorPairDataset(work.X_test, work.y_test),
                                             batch_size=work.batch_size, seed=work.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=work.learning_rate)
    fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, work.epochs, work.device,
        progress="none")
    synchronize(work.device)
    return work.clock() - started, model


def fit_in_memory(work: Work) -> tuple[float, nn.Module]:
    """3. helpers' fit on InMemoryLoader: the whole set on the device, shuffled and sliced per batch."""
    model = copy.deepcopy(work.initial)
    synchronize(work.device)
    started = work.clock()
    train_loader = InMemoryLoader(work.X_train, work.y_train, work.batch_size, shuffle=True, seed=work.seed,
                                  device=work.device)
    test_loader = InMemoryLoader(work.X_test, work.y_test, work.batch_size, device=work.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=work.learning_rate)
    fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, work.epochs, work.device,
        progress="none")
    synchronize(work.device)
    return work.clock() - started, model


def import_lightning() -> ModuleType:
    """Import lightning, then undo the one environment variable it sets for the whole process.

    ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` makes ``torch.cuda.is_available()`` ask the NVIDIA driver
    library every time while CUDA is not in use: on a machine without a GPU, that adds some 40 us
    to every ``optimizer.step()`` of every contender run after the import. Undone, all contenders
    (Lightning included, its best case) run as they would in a process without lightning.
    """
    before = os.environ.get(NVML_CHECK)
    import lightning

    if before is None:
        os.environ.pop(NVML_CHECK, None)
    else:
        os.environ[NVML_CHECK] = before
    return lightning


def lightning_trainer(work: Work) -> tuple[float, nn.Module]:
    """4. Lightning's Trainer with progress bar, logger, checkpointing and model summary off."""
    lightning = import_lightning()
    for logger_name in ("lightning.pytorch", "lightning.fabric"):  # Lightning sets INFO on import
        logging.getLogger(logger_name).setLevel(logging.WARNING)

    class Classifier(lightning.LightningModule):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model, self.loss_fn = model, nn.CrossEntropyLoss()

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            X, y = batch
            return self.loss_fn(self.model(X), y)

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            X, y = batch
            return nn.functional.cross_entropy(self.model(X), y, reduction="sum")

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.model.parameters(), lr=work.learning_rate)

    module = Classifier(copy.deepcopy(work.initial))
    accelerator = {"cuda": "cuda", "mps": "mps"}.get(work.device.type, "cpu")
    devices = [work.device.index or 0] if work.device.type == "cuda" else 1
    synchronize(work.device)
    started = work.clock()
    train_loader = DataLoader(TensorDataset(work.X_train, work.y_train), batch_size=work.batch_size,
                              shuffle=True, generator=make_generator(work.seed))
    test_loader = DataLoader(TensorDataset(work.X_test, work.y_test), batch_size=work.batch_size)
    with warnings.catch_warnings():  # advice about workers and logging intervals, deprecations
        warnings.simplefilter("ignore")
        trainer = lightning.Trainer(
            accelerator=accelerator, devices=devices, max_epochs=work.epochs, num_sanity_val_steps=0,
            enable_progress_bar=False, logger=False, enable_checkpointing=False, enable_model_summary=False,
        )
        trainer.fit(module, train_loader, test_loader)
    synchronize(work.device)
    return work.clock() - started, module.model.to(work.device)  # Lightning's teardown moves it to the CPU


def compute_ceiling(work: Work) -> tuple[float, nn.Module]:
    """5. Forward, loss, backward and step on batches already on the device; forward and loss per test batch."""
    model, device, size = copy.deepcopy(work.initial), work.device, work.batch_size
    generator, epochs = make_generator(work.seed), []
    for _ in range(work.epochs):  # every epoch's shuffled batches, sliced before the clock starts
        order = torch.randperm(len(work.X_train), generator=generator)
        X, y = work.X_train[order].to(device), work.y_train[order].to(device)
        epochs.append(list(zip(X.split(size), y.split(size), strict=True)))
    test_batches = list(zip(work.X_test.to(device).split(size), work.y_test.to(device).split(size), strict=True))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=work.learning_rate)
    synchronize(device)
    started = work.clock()
    for batches in epochs:
        model.train()
        for X, y in batches:
            loss = loss_fn(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            for X, y in test_batches:
                loss_fn(model(X), y)  # computed, never read: the work without the bookkeeping
    synchronize(device)
    return work.clock() - started, model


CONTENDERS: dict[str, Callable[[Work], tuple[float, nn.Module]]] = {
    PLAIN: plain_loop, FIT_LOADER: fit_with_dataloader, FIT_MEMORY: fit_in_memory,
    LIGHTNING: lightning_trainer, CEILING: compute_ceiling,
}


def final_test_loss(model: nn.Module, work: Work) -> float:
    """Mean cross-entropy of the trained model over the whole test set (the same function for all)."""
    model.eval()
    with torch.inference_mode():
        logits = model(work.X_test.to(work.device))
        return nn.functional.cross_entropy(logits, work.y_test.to(work.device)).item()


@dataclasses.dataclass
class Result:
    """The measurements of one contender on one model, one entry per repeat."""

    samples_per_s: list[float]
    final_losses: list[float]


def lightning_available() -> bool:
    return importlib.util.find_spec("lightning") is not None


def measure(work: Work, names: list[str], repeats: int, warmup: bool) -> dict[str, Result]:
    """Run every contender ``repeats`` times, round-robin, after one untimed one-epoch warm-up each."""
    if warmup:  # first calls pay for lazy imports, memory pools and kernel choices
        for name in names:
            CONTENDERS[name](dataclasses.replace(work, epochs=1))
    results = {name: Result([], []) for name in names}
    samples = len(work.X_train) * work.epochs
    for repeat in range(repeats):
        shift = repeat % len(names)  # rotate the order, so no contender always runs first
        for name in names[shift:] + names[:shift]:
            seconds, model = CONTENDERS[name](work)
            results[name].samples_per_s.append(samples / seconds)
            results[name].final_losses.append(final_test_loss(model, work))
    return results


def paired_ratio(results: dict[str, Result], name: str, reference: str) -> float | None:
    """Median over repeats of ``name``'s speed over ``reference``'s in the same repeat (None: not measured).

    A busy moment on the machine slows both runs of one repeat, so their ratio is steadier than
    the ratio of two medians.
    """
    if name not in results or reference not in results:
        return None
    pairs = zip(results[name].samples_per_s, results[reference].samples_per_s, strict=True)
    return statistics.median(ours / theirs for ours, theirs in pairs)


def verdict(ratio: float | None, target: Target) -> str:
    """``PASS`` or ``MISS`` for a measured ratio, ``SKIP`` when a contender was not measured."""
    if ratio is None:
        return "SKIP"
    passed = ratio > target.minimum if target.strict else ratio >= target.minimum
    return "PASS" if passed else "MISS"


def same_to_5_decimals(a: float, b: float) -> bool:
    return f"{a:.5f}" == f"{b:.5f}"


def print_table(model_name: str, parameters: int, results: dict[str, Result]) -> None:
    print(f"\n{model_name} ({parameters:,} parameters): samples/s = training examples per second, each epoch "
          "also evaluating the test set")
    print(f"  {'contender':<27}{'median':>11}{'min':>11}{'max':>11}{'x plain':>10}{'x ceiling':>10}"
          f"{'final test loss':>17}")
    for number, name in enumerate(CONTENDERS, start=1):
        if name not in results:
            print(f"  {number} {name:<25}{LIGHTNING_MISSING if name == LIGHTNING else 'skipped'}")
            continue
        speeds = results[name].samples_per_s
        ratios = [paired_ratio(results, name, reference) for reference in (PLAIN, CEILING)]
        print(f"  {number} {name:<25}{statistics.median(speeds):>11,.0f}{min(speeds):>11,.0f}{max(speeds):>11,.0f}"
              + "".join(f"{ratio:>9.2f}x" for ratio in ratios)
              + f"{statistics.median(results[name].final_losses):>17.5f}")


def print_checks(model_name: str, results: dict[str, Result], device: torch.device) -> None:
    """The same-work line (contenders 1 and 2 end at the same loss), then one verdict line per target."""
    plain, ours = results[PLAIN].final_losses[0], results[FIT_LOADER].final_losses[0]
    answer = "yes" if same_to_5_decimals(plain, ours) else "NO"
    note = "" if device.type == "cpu" else " (on a GPU the last digits may differ)"
    print(f"same work {model_name}: {PLAIN} and {FIT_LOADER} end at the same test loss to 5 decimals: "
          f"{answer} ({plain:.5f} vs {ours:.5f}){note}")
    for target in TARGETS:
        ratio = paired_ratio(results, target.contender, target.reference)
        shown = "-" if ratio is None else f"{ratio:.3f}x"  # three decimals: 0.899 must not read as 0.90
        print(f"verdict {model_name}: {target.claim():<50}{shown:>8}  {verdict(ratio, target)}")


def import_seconds(repeats: int) -> dict[str, float]:
    """Median wall time of each import in a fresh interpreter; the interpreters alternate."""
    statements = {
        "import torch": "import torch",
        "import helpers": "import helpers",
        "import helpers + fit, loaders, models": "import helpers; helpers.fit, helpers.InMemoryLoader, helpers.MLP",
    }
    times: dict[str, list[float]] = {label: [] for label in statements}
    for _ in range(repeats):
        for label, statement in statements.items():
            code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
            output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            times[label].append(float(output.stdout))
    return {label: statistics.median(values) for label, values in times.items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per measured run (default: 10)")
    parser.add_argument("--repeats", type=int, default=7, help="measured runs per contender (default: 7)")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per training step (default: 64)")
    parser.add_argument("--learning-rate", type=float, default=0.003, help="Adam's step size (default: 0.003)")
    parser.add_argument("--seed", type=int, default=42, help="initial weights, split and shuffling (default: 42)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default 0: torch's choice)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time (default), or this process's CPU time: steadier on a busy machine, "
                        "meaningful with --device cpu --threads 1 only")
    parser.add_argument("--import-repeats", type=int, default=5,
                        help="fresh interpreters per import timing (default: 5; 0 skips it)")
    parser.add_argument("--tiny", action="store_true",
                        help="one epoch, one repeat, no warm-up, no import timing, a subset of the data: "
                        "checks that everything runs, in seconds")
    args = parser.parse_args(argv)
    for name in ("epochs", "repeats", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("threads", "import_repeats"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name)}")
    try:
        args.device = get_device(args.device)
    except ParameterError as error:
        parser.error(f"--device: {error}")
    if args.clock == "cpu" and args.device.type != "cpu":
        parser.error(f"--clock cpu counts CPU time, which misses the work queued on {args.device}: use --clock wall")
    if args.tiny:
        args.epochs, args.repeats, args.import_repeats = 1, 1, 0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    images, labels = load_digits()
    X_train, X_test, y_train, y_test = split_tensors(images, labels, test_fraction=0.2, seed=args.seed)
    if args.tiny:
        X_train, y_train, X_test, y_test = X_train[:256], y_train[:256], X_test[:128], y_test[:128]
    names = [name for name in CONTENDERS if name != LIGHTNING or lightning_available()]
    print(f"device {args.device}, {torch.get_num_threads()} torch threads, {args.clock} clock, torch "
          f"{torch.__version__}; digits {len(X_train):,} train / {len(X_test):,} test images, batch "
          f"{args.batch_size}, Adam lr {args.learning_rate}, {args.epochs} epochs per run, {args.repeats} "
          "repeats round-robin" + (" (--tiny: checks that it runs, measures nothing)" if args.tiny else
                                   ", after a warm-up"))
    if hasattr(os, "getloadavg"):  # other work on the machine makes every number slower and noisier
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    for model_name, build in MODELS.items():
        set_seed(args.seed)
        initial = build().to(args.device)
        work = Work(initial, X_train, y_train, X_test, y_test, args.batch_size, args.learning_rate,
                    args.epochs, args.seed, args.device,
                    time.process_time if args.clock == "cpu" else time.perf_counter)
        results = measure(work, names, args.repeats, warmup=not args.tiny)
        print_table(model_name, count_parameters(initial), results)
        print_checks(model_name, results, args.device)
    if args.import_repeats:
        seconds = import_seconds(args.import_repeats)
        extra = seconds["import helpers + fit, loaders, models"] - seconds["import torch"]
        print(f"\nimport time, median of {args.import_repeats} fresh interpreters: "
              + ", ".join(f"{label} {value:.2f} s" for label, value in seconds.items())
              + f" (helpers' training API costs {extra:+.2f} s over torch alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
