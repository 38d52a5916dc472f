"""Experiment tracking: run names, TensorBoard logging, results tables (introduced in 05_experiment).

One experiment = one configuration trained with one seed = one TensorBoard
run folder ``<run_dir>/tensorboard/<config name>-seed<seed>``. Training
curves reach TensorBoard through ``fit``'s ``on_epoch_end`` hook
(:class:`TensorBoardHook`); the loop itself is not changed.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from helpers.staging import replace_folder
from helpers.tables import format_table

__all__ = [
    "ExperimentConfig",
    "TensorBoardHook",
    "format_results_table",
    "log_hparams",
    "mean_std",
    "summarize_runs",
    "tensorboard_dir",
]

HParam = bool | int | float | str
_MARKER = ".tensorboard_dir.json"


def _exact(number: float) -> str:
    """``number`` as short as ``:g`` writes it when that reads back as the same float, else every digit."""
    short = f"{number:g}"
    return short if float(short) == number else repr(float(number))


def _percent(fraction: float) -> str:
    """``fraction`` times 100, exactly, in decimal: 0.5 -> ``50``, 0.504 -> ``50.4``, 1.0 -> ``100``."""
    return f"{(Decimal(repr(float(fraction))) * 100).normalize():f}"


@dataclass(frozen=True)
class ExperimentConfig:
    """The settings one experiment varies; ``name`` tells runs apart (05_experiment).

    >>> ExperimentConfig("tinyvgg", 16, 0.003, 10, False, 1.0).run_name(0)
    'tinyvgg-h16-lr0.003-e10-aug0-data100-seed0'
    """

    model: str             # which architecture the notebook builds, e.g. "tinyvgg"
    hidden_units: int      # model size
    learning_rate: float
    epochs: int
    augment: bool          # random shifts/rotations of the training images
    data_fraction: float   # share of the training split used, in (0, 1]

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(self.model)):
            raise ValueError(f"model must be a short name of letters and digits, got {self.model!r}")
        if not (isinstance(self.hidden_units, int) and self.hidden_units > 0):
            raise ValueError(f"hidden_units must be a whole number above 0, got {self.hidden_units!r}")
        if not (isinstance(self.epochs, int) and self.epochs > 0):
            raise ValueError(f"epochs must be a whole number above 0, got {self.epochs!r}")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < math.inf):
            raise ValueError(f"learning_rate must be a number above 0, got {self.learning_rate!r}")
        if not (isinstance(self.data_fraction, (int, float)) and 0 < self.data_fraction <= 1):
            raise ValueError(f"data_fraction must be above 0 and at most 1, got {self.data_fraction!r}")

    @property
    def name(self) -> str:
        """Every setting in a short, readable form: ``tinyvgg-h16-lr0.003-e10-aug0-data100``.

        Two configurations with different settings always get different names: the learning rate
        and the data percentage keep every digit that tells two floats apart (``lr0.0030000001``,
        ``data50.4``).
        """
        return (f"{self.model}-h{self.hidden_units}-lr{_exact(self.learning_rate)}-e{self.epochs}"
                f"-aug{int(self.augment)}-data{_percent(self.data_fraction)}")

    def run_name(self, seed: int) -> str:
        """The name of one run of this configuration: ``name`` plus ``-seed<seed>``."""
        return f"{self.name}-seed{seed}"

    def hparams(self) -> dict[str, HParam]:
        """The settings as a plain dict, the form ``SummaryWriter.add_hparams`` takes."""
        return asdict(self)


def tensorboard_dir(run_dir: Path, name: str) -> Path:
    """A new folder ``run_dir/tensorboard/<name>`` for one run's event files (05_experiment).

    An earlier run of the same name is replaced, so a re-run replaces its curves instead of
    drawing them twice. Only event files and the folder's marker (``.tensorboard_dir.json``) are
    ever deleted: a folder holding anything else (your notes, a checkpoint) is refused with a
    ``FileExistsError`` that names a file in it, and nothing is deleted.
    """
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"run name must be a single folder name, got {name!r}")
    return replace_folder(Path(run_dir) / "tensorboard" / name, _MARKER, {"run": name}, lambda folder: None,
                          "tensorboard_dir", reuse=False, also_ours=("events.out.tfevents.*",))


def _scalar_tag(key: str) -> str:
    """``train_loss`` -> ``loss/train``: TensorBoard groups tags by the part before the slash."""
    if key == "seconds":
        return "time/seconds_per_epoch"
    split, _, kind = key.rpartition("_")
    if split and kind in ("loss", "acc"):
        return f"{'accuracy' if kind == 'acc' else 'loss'}/{split}"
    return f"other/{key}"


class TensorBoardHook:
    """An ``on_epoch_end`` hook for ``fit`` that writes every epoch metric as a scalar (05_experiment).

    ``train_loss`` becomes the tag ``loss/train``, ``val_acc`` becomes
    ``accuracy/val``, ``seconds`` becomes ``time/seconds_per_epoch``; the step is
    the epoch number. It never stops training (returns ``None``).

    >>> with SummaryWriter(log_dir) as writer:  # doctest: +SKIP
    ...     fit(..., on_epoch_end=TensorBoardHook(writer))
    """

    def __init__(self, writer: SummaryWriter) -> None:
        self.writer = writer

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            if key != "epoch":
                self.writer.add_scalar(_scalar_tag(key), value, global_step=epoch)


def log_hparams(
    writer: SummaryWriter, hparams: Mapping[str, HParam], metrics: Mapping[str, float],
    step: int | None = None,
) -> None:
    """Record a run's settings with its final metrics for TensorBoard's HPARAMS tab (05_experiment).

    Metric names get the prefix ``hparam/`` so they do not clash with the
    per-epoch scalars. Unlike a bare ``add_hparams`` call, nothing goes to a new
    timestamped sub-folder: the values stay in this run's own folder.
    """
    for name, value in hparams.items():
        if not isinstance(value, (bool, int, float, str)):
            raise TypeError(f"hyperparameter {name!r} must be a number, text or bool, "
                            f"got {type(value).__name__}")
    tagged = {(k if k.startswith("hparam/") else f"hparam/{k}"): float(v) for k, v in metrics.items()}
    writer.add_hparams(dict(hparams), tagged, run_name=".", global_step=step)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the divisor); the spread of one value is 0."""
    if len(values) == 0:
        raise ValueError("mean_std needs at least one value")
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), spread


def summarize_runs(results: Sequence[Mapping], metric: str = "val_acc") -> list[dict]:
    """One row per configuration (first-seen order): ``config``, ``runs``, ``mean``, ``std``, ``seconds``.

    ``results`` holds one mapping per run with at least ``config`` (its name),
    ``metric`` and ``seconds``; ``mean`` and ``std`` are over the seeds.
    """
    groups: dict[str, list[Mapping]] = {}
    for run in results:
        groups.setdefault(run["config"], []).append(run)
    rows = []
    for config, runs in groups.items():
        mean, std = mean_std([run[metric] for run in runs])
        rows.append({"config": config, "runs": len(runs), "mean": mean, "std": std,
                     "seconds": statistics.fmean(run["seconds"] for run in runs)})
    return rows


def format_results_table(
    rows: Sequence[Mapping], metric: str = "val_acc", best: str | None = None,
    reference: str | None = None,
) -> str:
    """A plain-text table of :func:`summarize_runs` rows, accuracies as percentages (05_experiment).

    ``best`` names the configuration marked with a star; with ``reference``, a
    last column gives each mean's difference from that configuration's mean in
    percentage points.
    """
    means = {row["config"]: row["mean"] for row in rows}
    if reference is not None and reference not in means:
        raise ValueError(f"reference {reference!r} is not one of the configurations in rows")
    header = ["", "configuration", "runs", f"{metric} mean ± std", "s/run"] + (["vs reference"] if reference else [])
    lines = []
    for row in rows:
        line = ["*" if row["config"] == best else "", row["config"], row["runs"],
                f"{row['mean']:.2%} ± {row['std']:.2%}", f"{row['seconds']:.1f}"]
        if reference is not None:
            line.append(f"{100 * (row['mean'] - means[reference]):+.1f} pts")
        lines.append(line)
    return format_table(header, lines, align="ll")
