"""Shared code of the PyTorch workflow notebooks.

Each name is loaded from its module on first use, so ``import helpers`` stays
quick and has no side effects (no device is touched, nothing is read or written).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "device": ["available_devices", "get_device", "make_generator", "set_seed"],
    "params": ["ParameterError", "check_params"],
    "paths": ["PROJECT_ROOT", "data_dir", "prepare_dir", "runs_dir"],
    "data": ["DIGIT_CLASSES", "InMemoryLoader", "TensorPairDataset", "load_digits", "make_line",
             "make_loaders", "make_toy_2d", "split_tensors"],
    "models": ["MLP", "LinearRegression", "TinyVGG", "count_parameters"],
    "engine": ["evaluate", "fit", "format_epoch", "predict", "train_one_epoch"],
    "plots": ["plot_confusion_matrix", "plot_decision_boundary", "plot_image_grid",
              "plot_loss_curves", "plot_predictions"],
    "records": ["read_records", "record"],
    "metrics": ["accuracy", "make_classification_metrics", "most_confident_mistakes"],
    "tracking": ["ExperimentConfig", "TensorBoardHook", "format_results_table", "log_hparams",
                 "make_tensorboard_hook", "mean_std", "plot_results", "summarize_runs", "tensorboard_dir"],
    "checkpoint": ["CheckpointError", "atomic_save", "checkpoint_hook", "load_checkpoint", "load_weights",
                   "restore_checkpoint", "safe_load", "save_checkpoint", "save_weights"],
    "shapes": ["SHAPE_CLASSES", "draw_shape", "make_shapes"],
    "vision": ["DatasetUnavailableError", "load_image_dataset", "train_and_time"],
    "folders": ["ImageFolderDataset", "ImageFolderError", "predict_image"],
    "transfer": ["TransferModel", "load_pretrained_backbone"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"helpers.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
