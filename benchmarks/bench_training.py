"""How fast is helpers' ``fit``? Side by side with a plain loop, Lightning and the compute-only ceiling.

Every contender does the same work on the same model, data, batch size, optimizer, seed and number
of epochs: per epoch, one training pass over the digits training set (the six steps) and one
evaluation pass over the test set (``fit`` always evaluates, so every contender does). The three
``DataLoader`` contenders read the same data set class through the same ``make_loaders``.

Each run is split into a cost per epoch (from the end of epoch 1 to the end of the last, divided by
the epochs in between) and a fixed cost (the rest: building loaders, optimizer or ``Trainer``, set-up,
what the first epoch costs beyond the others, teardown). The verdicts compare the per-epoch speeds.

    python benchmarks/bench_training.py                 # what `make bench` runs
    python benchmarks/bench_training.py --device cuda   # on a GPU
    python benchmarks/bench_training.py --tiny          # two epochs, one repeat, a subset: seconds

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

from helpers.data import InMemoryLoader, TensorPairDataset, load_data, make_loaders
from helpers.device import get_device, make_generator, set_seed, synchronize
from helpers.engine import fit
from helpers.models import MLP, TinyVGG, count_parameters
from helpers.params import ParameterError
from helpers.tables import format_table

PLAIN, FIT_LOADER, FIT_MEMORY, LIGHTNING, CEILING = (
    "plain loop (DataLoader)", "fit (DataLoader)", "fit (in-memory)", "Lightning Trainer", "ceiling (compute only)"
)
OTHER_DATA_PATH = (FIT_MEMORY, CEILING)  # batches sliced from tensors on the device, no DataLoader


class Target(NamedTuple):
    """``contender``'s per-epoch speed must reach ``minimum`` times ``reference``'s (beat it, if ``strict``)."""

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
TRAINING_API = "import fit, loaders, models from helpers"
IMPORTS = {  # label: statement, timed in a fresh interpreter
    "import torch": "import torch",
    "import helpers": "import helpers",  # loads nothing else: the modules are imported by name
    TRAINING_API: "from helpers.engine import fit; from helpers.data import InMemoryLoader; "
                  "from helpers.models import MLP",
}
LIGHTNING_MISSING = f'{LIGHTNING} skipped: lightning is not importable (pip install "lightning>=2.4", or make bench)'


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

    def loaders(self) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
        """The DataLoaders of contenders 1, 2 and 4: one data set class, one construction, one shuffling."""
        return make_loaders(TensorPairDataset(self.X_train, self.y_train),
                            TensorPairDataset(self.X_test, self.y_test), batch_size=self.batch_size, seed=self.seed)


class Stopwatch:
    """The clock at the start of a run, at the end of each epoch and at the end; the device synchronised first."""

    def __init__(self, work: Work) -> None:
        self.device, self.clock = work.device, work.clock
        synchronize(self.device)
        self.started, self.epoch_ends, self.finished = self.clock(), [], float("nan")

    def epoch_done(self) -> None:
        synchronize(self.device)
        self.epoch_ends.append(self.clock())

    def stop(self) -> Stopwatch:
        synchronize(self.device)
        self.finished = self.clock()
        return self


def split_seconds(watch: Stopwatch) -> tuple[float, float]:
    """(seconds per epoch, fixed seconds) of one run.

    Per epoch: the mean of epochs 2 to N, timed from the end of epoch 1 to the end of epoch N.
    Fixed: what the whole run took beyond N such epochs; noise can make it slightly negative.
    """
    ends = watch.epoch_ends
    if len(ends) < 2:
        raise ValueError(f"the per-epoch time needs at least 2 epoch ends, got {len(ends)}")
    per_epoch = (ends[-1] - ends[0]) / (len(ends) - 1)
    return per_epoch, watch.finished - watch.started - len(ends) * per_epoch


def plain_loop(work: Work) -> tuple[Stopwatch, nn.Module]:
    """1. The six steps written out, the shared DataLoaders, a test pass per epoch, nothing else."""
    model, device = copy.deepcopy(work.initial), work.device
    watch = Stopwatch(work)
    train_loader, test_loader = work.loaders()
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
        test_loss = test_loss.item() / len(work.X_test)  # summed on the device, read once per epoch, as fit does
        watch.epoch_done()
    return watch.stop(), model


def fit_with_dataloader(work: Work) -> tuple[Stopwatch, nn.Module]:
    """2. helpers' fit on the shared DataLoaders (make_loaders over TensorPairDataset): the course's standard path."""
    model = copy.deepcopy(work.initial)
    watch = Stopwatch(work)
    train_loader, test_loader = work.loaders()
    optimizer = torch.optim.Adam(model.parameters(), lr=work.learning_rate)
    fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, work.epochs, work.device,
        on_epoch_end=lambda epoch, metrics: watch.epoch_done(), progress="none")
    return watch.stop(), model


def fit_in_memory(work: Work) -> tuple[Stopwatch, nn.Module]:
    """3. helpers' fit on InMemoryLoader: the whole set on the device, shuffled and sliced per batch."""
    model = copy.deepcopy(work.initial)
    watch = Stopwatch(work)
    train_loader = InMemoryLoader(work.X_train, work.y_train, work.batch_size, shuffle=True, seed=work.seed,
                                  device=work.device)
    test_loader = InMemoryLoader(work.X_test, work.y_test, work.batch_size, device=work.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=work.learning_rate)
    fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, work.epochs, work.device,
        on_epoch_end=lambda epoch, metrics: watch.epoch_done(), progress="none")
    return watch.stop(), model


def import_lightning() -> ModuleType:
    """Import lightning, then undo the one environment variable it sets for the whole process.

    ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` makes ``torch.cuda.is_available()`` ask the NVIDIA driver
    library every time while CUDA is not in use: on a machine without a GPU, that slows every
    ``optimizer.step()`` of every contender run after the import. Undone, all contenders
    (Lightning included, its best case) run as they would in a process without lightning.
    """
    before = os.environ.get(NVML_CHECK)
    import lightning

    if before is None:
        os.environ.pop(NVML_CHECK, None)
    else:
        os.environ[NVML_CHECK] = before
    return lightning


def lightning_trainer(work: Work) -> tuple[Stopwatch, nn.Module]:
    """4. Lightning's Trainer on the shared DataLoaders; progress bar, logger, checkpoints, summary off."""
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

    class EpochClock(lightning.Callback):
        def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
            watch.epoch_done()  # Lightning calls this after the epoch's validation pass

    module = Classifier(copy.deepcopy(work.initial))
    accelerator = {"cuda": "cuda", "mps": "mps"}.get(work.device.type, "cpu")
    devices = [work.device.index or 0] if work.device.type == "cuda" else 1
    watch = Stopwatch(work)
    train_loader, test_loader = work.loaders()
    with warnings.catch_warnings():  # advice about workers and logging intervals, deprecations
        warnings.simplefilter("ignore")
        trainer = lightning.Trainer(
            accelerator=accelerator, devices=devices, max_epochs=work.epochs, num_sanity_val_steps=0,
            enable_progress_bar=False, logger=False, enable_checkpointing=False, enable_model_summary=False,
            callbacks=[EpochClock()],
        )
        trainer.fit(module, train_loader, test_loader)
    return watch.stop(), module.model.to(work.device)  # Lightning's teardown moves it to the CPU


def compute_ceiling(work: Work) -> tuple[Stopwatch, nn.Module]:
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
    watch = Stopwatch(work)
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
        watch.epoch_done()
    return watch.stop(), model


CONTENDERS: dict[str, Callable[[Work], tuple[Stopwatch, nn.Module]]] = {
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

    samples_per_s: list[float]  # training examples per second of an epoch (epochs 2 to N)
    fixed_seconds: list[float]
    final_losses: list[float]


def lightning_available() -> bool:
    return importlib.util.find_spec("lightning") is not None


def measure(work: Work, names: list[str], repeats: int, warmup: bool) -> dict[str, Result]:
    """Run every contender ``repeats`` times, round-robin, after one untimed one-epoch warm-up each."""
    if warmup:  # first calls pay for lazy imports, memory pools and kernel choices
        for name in names:
            CONTENDERS[name](dataclasses.replace(work, epochs=1))
    results = {name: Result([], [], []) for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)  # rotate the order, so no contender always runs first
        for name in names[shift:] + names[:shift]:
            watch, model = CONTENDERS[name](work)
            per_epoch, fixed = split_seconds(watch)
            results[name].samples_per_s.append(len(work.X_train) / per_epoch)
            results[name].fixed_seconds.append(fixed)
            results[name].final_losses.append(final_test_loss(model, work))
    return results


def paired_ratio(results: dict[str, Result], name: str, reference: str) -> float | None:
    """Median over repeats of ``name``'s per-epoch speed over ``reference``'s in the same repeat (None: not measured).

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


def same_to_5_decimals(*values: float) -> bool:
    return len({f"{value:.5f}" for value in values}) == 1


def print_table(model_name: str, parameters: int, epochs: int, results: dict[str, Result]) -> None:
    print(f"\n{model_name} ({parameters:,} parameters): per-epoch samples/s = training examples per second of one "
          f"epoch (a training pass and a test pass), timed over epochs 2 to {epochs};\n"
          "fixed s = the rest of a run: building loaders, optimizer or Trainer, set-up, first-epoch extras, teardown")
    header = ["#", "contender", "per-epoch samples/s", "min", "max", "x plain", "x ceiling", "fixed s",
              "final test loss"]
    rows = []
    for number, name in enumerate(CONTENDERS, start=1):
        if name not in results:
            rows.append([number, name, *["-"] * (len(header) - 2)])
            continue
        speeds, result = results[name].samples_per_s, results[name]
        versus_plain, versus_ceiling = (paired_ratio(results, name, reference) for reference in (PLAIN, CEILING))
        marker = "*" if name in OTHER_DATA_PATH else " "  # a different data path: see the footnote
        rows.append([number, name, f"{statistics.median(speeds):,.0f}", f"{min(speeds):,.0f}", f"{max(speeds):,.0f}",
                     f"{versus_plain:.2f}x{marker}", f"{versus_ceiling:.2f}x",
                     f"{statistics.median(result.fixed_seconds):.3f}",
                     f"{statistics.median(result.final_losses):.5f}"])
    print(format_table(header, rows, align="rl"))
    data_path_alone = paired_ratio(results, FIT_MEMORY, FIT_LOADER)
    print(f"* not the loop: 3 and 5 read batches sliced from tensors on the device, no DataLoader, so their x plain "
          f"is mostly the data path.\n  3 runs the same fit as 2: the data path alone is 3 / 2 = "
          f"{data_path_alone:.2f}x")


def print_checks(model_name: str, results: dict[str, Result], device: torch.device) -> None:
    """The same-work line (the DataLoader contenders end at the same loss), then one verdict line per target."""
    names = [name for name in (PLAIN, FIT_LOADER, LIGHTNING) if name in results]
    losses = [results[name].final_losses[0] for name in names]
    answer = "yes" if same_to_5_decimals(*losses) else "NO"
    note = "" if device.type == "cpu" else " (on a GPU the last digits may differ)"
    print(f"same work {model_name}: {', '.join(names)} end at the same test loss to 5 decimals: "
          f"{answer} ({', '.join(f'{loss:.5f}' for loss in losses)}){note}")
    for target in TARGETS:
        ratio = paired_ratio(results, target.contender, target.reference)
        shown = "-" if ratio is None else f"{ratio:.3f}x"  # three decimals: 0.899 must not read as 0.90
        print(f"verdict {model_name}, per epoch: {target.claim():<50}{shown:>8}  {verdict(ratio, target)}")


def import_seconds(repeats: int) -> dict[str, float]:
    """Median wall time of each of ``IMPORTS`` in a fresh interpreter; the interpreters alternate."""
    times: dict[str, list[float]] = {label: [] for label in IMPORTS}
    for _ in range(repeats):
        for label, statement in IMPORTS.items():
            code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
            output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            times[label].append(float(output.stdout))
    return {label: statistics.median(values) for label, values in times.items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="epochs per measured run, at least 2: epoch 1 counts as fixed cost (default: 10)")
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
                        help="two epochs, one repeat, no warm-up, no import timing, a subset of the data: "
                        "checks that everything runs, in seconds")
    args = parser.parse_args(argv)
    for name, least in (("epochs", 2), ("repeats", 1), ("batch_size", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(args, name)}")
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
        args.epochs, args.repeats, args.import_repeats = 2, 1, 0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    X_train, X_test, y_train, y_test = load_data("digits", args.seed)
    if args.tiny:  # a short last batch, as in the full set: with an exact multiple of the batch size,
        # Lightning (2.6.6) shuffles epoch 2 onwards differently from a plain loop over the same DataLoader
        X_train, y_train, X_test, y_test = X_train[:250], y_train[:250], X_test[:120], y_test[:120]
    names = [name for name in CONTENDERS if name != LIGHTNING or lightning_available()]
    print(f"device {args.device}, {torch.get_num_threads()} torch threads, {args.clock} clock, torch "
          f"{torch.__version__}; digits {len(X_train):,} train / {len(X_test):,} test images, batch "
          f"{args.batch_size}, Adam lr {args.learning_rate}, {args.epochs} epochs per run, {args.repeats} "
          "repeats round-robin" + (" (--tiny: checks that it runs, measures nothing)" if args.tiny else
                                   ", after a warm-up"))
    if hasattr(os, "getloadavg"):  # other work on the machine makes every number slower and noisier
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    if LIGHTNING not in names:
        print(LIGHTNING_MISSING)
    for model_name, build in MODELS.items():
        set_seed(args.seed)
        initial = build().to(args.device)
        work = Work(initial, X_train, y_train, X_test, y_test, args.batch_size, args.learning_rate,
                    args.epochs, args.seed, args.device,
                    time.process_time if args.clock == "cpu" else time.perf_counter)
        results = measure(work, names, args.repeats, warmup=not args.tiny)
        print_table(model_name, count_parameters(initial), args.epochs, results)
        print_checks(model_name, results, args.device)
    if args.import_repeats:
        seconds = import_seconds(args.import_repeats)
        extra = seconds[TRAINING_API] - seconds["import torch"]
        print(f"\nimport time, median of {args.import_repeats} fresh interpreters: "
              + ", ".join(f"{label} {value:.2f} s" for label, value in seconds.items())
              + f" (helpers' training API costs {extra:+.2f} s over torch alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
