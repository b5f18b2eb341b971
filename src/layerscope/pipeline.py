"""From a dataset and a model spec to a complete Run: train, save, capture, PCA of every layer."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from layerscope import __version__
from layerscope.capture import capture_dataset, describe_layers
from layerscope.data.datasets import Dataset
from layerscope.models.loading import SEED_CNN, build_model
from layerscope.progress import ProgressFn, no_progress
from layerscope.projections.compute import compute_pca
from layerscope.run import (
    FORMAT_VERSION,
    Run,
    dataset_manifest,
    now,
    save_weights,
    staging_dir,
    write_dataset_arrays,
    write_json,
)
from layerscope.training import EpochRecord, TrainConfig, fit, resolve_device

__all__ = ["seed_cnn_spec", "train_run"]


def seed_cnn_spec(dataset: Dataset) -> dict[str, Any]:
    """The report's CNN, sized for the dataset's images and classes."""
    c, h, _ = dataset.image_shape
    return {"class": SEED_CNN, "args": {"in_channels": c, "num_classes": dataset.num_classes, "image_size": h}}


def train_run(
    out: str | os.PathLike[str],
    dataset: Dataset,
    config: TrainConfig | None = None,
    spec: dict[str, Any] | None = None,
    force: bool = False,
    progress: ProgressFn = no_progress,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> Run:
    """Train a model and write a complete Run to ``out``: weights, predictions and activations for every image,
    and the PCA projection of every layer. Nothing appears at ``out`` unless all of it succeeded."""
    config = config or TrainConfig()
    dataset = dataset.subset(config.train_limit, config.test_limit)
    spec = spec or seed_cnn_spec(dataset)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(spec)
    with staging_dir(out, force=force) as tmp:
        start = time.perf_counter()
        history = fit(model, dataset, replace(config, device=str(device)), progress=progress, on_epoch=on_epoch)
        train_seconds = time.perf_counter() - start
        model.eval()
        save_weights(model, tmp / "weights.safetensors")
        write_dataset_arrays(tmp, dataset)
        layers = describe_layers(model, dataset.image_shape)
        captured = capture_dataset(model, dataset, layers, tmp, device=device, progress=progress)
        last = history[-1]
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "layerscope_version": __version__,
            "created": now(),
            "dataset": dataset_manifest(dataset),
            "model": {**spec, "num_parameters": sum(p.numel() for p in model.parameters())},
            "layers": [info.to_dict() for info in layers],
            "metrics": {
                "test_accuracy": last.test_accuracy,
                "test_loss": last.test_loss,
                "train_accuracy": last.train_accuracy,
                "train_loss": last.train_loss,
            },
            "history": [vars(record) for record in history],
            "training": {
                **config.to_dict(),
                "device": str(device),
                "seconds": round(train_seconds, 2),
                "torch_version": torch.__version__,
                "threads": torch.get_num_threads(),
                "machine": platform.machine(),
            },
            "capture": {"seconds": round(captured.seconds, 3), "images_per_second": round(captured.images_per_second)},
            "projections": {},
        }
        write_json(tmp / "manifest.json", manifest)
        compute_pca(Run(tmp), device=str(device), random_state=config.seed, progress=progress, model=model)
    return Run(out)
