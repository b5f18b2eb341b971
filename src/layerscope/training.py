"""Train and evaluate a classifier on a Dataset: Adam, seeded, deterministic on the CPU."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from layerscope.data.datasets import TEST, TRAIN, Dataset
from layerscope.progress import ProgressFn, no_progress

__all__ = [
    "TrainConfig",
    "EpochRecord",
    "PRESETS",
    "fit",
    "snapshot_steps",
    "evaluate",
    "predict_proba",
    "preferred_memory_format",
    "resolve_device",
]


@dataclass(frozen=True)
class TrainConfig:
    # 3 epochs at a one-cycle peak of 4e-3 reach 99% test accuracy on MNIST in half the time 6 epochs at 2e-3 with
    # 2 px shifts took (benchmarks/training.py), ending at the same accuracy
    epochs: int = 3
    batch_size: int = 128
    lr: float = 4e-3
    seed: int = 0
    device: str = "auto"
    augment: int = 0  # random shifts of up to this many pixels per training image; 0 turns augmentation off
    train_limit: int | None = None  # use only the first n training images
    test_limit: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# Named starting points for `layerscope train --preset`; explicit options override them.
PRESETS: dict[str, dict[str, object]] = {
    "default": {},
    "tiny": {"epochs": 3, "lr": 5e-3, "augment": 0, "train_limit": 3000, "test_limit": 1000},
}


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float


def resolve_device(device: str) -> torch.device:
    """``--device`` as a torch device: "auto" is cuda when torch sees a GPU, else cpu. A device that is not there
    (cuda without a GPU, cuda:N past the last one, a misspelt name) is a one-line ``LayerscopeError``."""
    from layerscope.errors import LayerscopeError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise LayerscopeError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LayerscopeError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise LayerscopeError(
            f"--device {device}: torch sees {count} CUDA GPU{'s' if count != 1 else ''} "
            f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}); choose one of them or cuda."
        )
    return dev


def set_memory_format(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """``model.to(memory_format=...)``, which torch's type stubs do not declare."""
    return cast(Any, model).to(memory_format=memory_format)


def preferred_memory_format(model: nn.Module, image_shape: tuple[int, int, int]) -> torch.memory_format:
    """Put ``model`` in channels-last memory format when it can run so, and return the format to give its inputs.

    Channels-last convolutions are ~20% (training) to ~1.7x (inference) faster on the CPU with oneDNN, but a model
    whose ``forward`` calls ``x.view(len(x), -1)`` on a feature map fails on channels-last tensors: one blank image
    finds out, and such a model stays contiguous.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    set_memory_format(model, torch.channels_last)
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros((1, *image_shape), device=device).contiguous(memory_format=torch.channels_last))
        return torch.channels_last
    except RuntimeError:
        set_memory_format(model, torch.contiguous_format)
        return torch.contiguous_format
    finally:
        model.train(was_training)


def random_shift(
    x: torch.Tensor,
    max_shift: int,
    generator: torch.Generator,
    memory_format: torch.memory_format = torch.channels_last,
) -> torch.Tensor:
    """Shift each image by its own random whole-pixel offset in [-max_shift, max_shift], filling with zeros."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (max_shift,) * 4)  # (N, C, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n, 1), generator=generator).to(x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
    cols = (dx + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indexing over (N, C, H', W') -> (N, H, W, C); back to (N, C, H, W)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous(memory_format=memory_format)


@torch.inference_mode()
def _batched_logits(
    model: nn.Module, dataset: Dataset, indices: np.ndarray, batch_size: int, device: torch.device
) -> torch.Tensor:
    # channels-last inputs run the model's convolutions ~2x faster on the CPU when it can take them
    memory_format = preferred_memory_format(model, dataset.image_shape)
    out = []
    for start in range(0, len(indices), batch_size):
        x = dataset.pixels(indices[start : start + batch_size]).to(device, memory_format=memory_format)
        out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def evaluate(
    model: nn.Module, dataset: Dataset, split: int = TEST, batch_size: int = 1024, device: str = "auto"
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on one split. Leaves ``model.training`` as it was."""
    dev = resolve_device(device)
    indices = dataset.indices(split)
    was_training = model.training
    model.eval()
    try:
        logits = _batched_logits(model.to(dev), dataset, indices, batch_size, dev)
    finally:
        model.train(was_training)
    labels = torch.from_numpy(dataset.labels[indices])
    loss = F.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return loss, accuracy


def predict_proba(model: nn.Module, dataset: Dataset, batch_size: int = 1024, device: str = "auto") -> np.ndarray:
    """Softmax probabilities for every image, (N, num_classes) float32."""
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    try:
        logits = _batched_logits(model.to(dev), dataset, dataset.indices(), batch_size, dev)
    finally:
        model.train(was_training)
    return torch.softmax(logits, dim=1).numpy().astype(np.float32)


def _adam(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam, fused into one kernel per step where torch has one for the parameters' device (5x faster on the CPU
    than the default multi-tensor step for the report's CNN)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if params and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        return torch.optim.Adam(params, lr=lr, fused=True)
    return torch.optim.Adam(params, lr=lr)


def snapshot_steps(snapshots: int | str, epochs: int, steps_per_epoch: int) -> list[int]:
    """The optimiser steps after which training keeps a snapshot: ``snapshots`` of them evenly spaced from 0 (the
    untrained network) to the last step (the trained one), or "epoch": 0 and the end of every epoch."""
    total = epochs * steps_per_epoch
    if snapshots == "epoch":
        return [epoch * steps_per_epoch for epoch in range(epochs + 1)]
    if isinstance(snapshots, str) or snapshots < 2:
        from layerscope.errors import LayerscopeError

        raise LayerscopeError(
            f"--snapshots is a count of at least 2 (the untrained and the trained network) or 'epoch', "
            f"not {snapshots!r}."
        )
    return sorted({round(k * total / (snapshots - 1)) for k in range(snapshots)})


def fit(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig | None = None,
    progress: ProgressFn = no_progress,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    snapshots: int | str | None = None,
    on_snapshot: Callable[[int, float, nn.Module], None] | None = None,
) -> list[EpochRecord]:
    """Train ``model`` on the training split with Adam and a one-cycle learning rate; return the per-epoch history.

    Runs with the same seed, data and thread count give the same weights on the CPU. With ``snapshots``
    (``snapshot_steps``), ``on_snapshot(step, epoch, model)`` sees the model after each of those steps (step 0:
    before the first), ``epoch`` the epochs done so far (1.5: half way through the second); what it keeps of the
    model it copies.
    """
    config = config or TrainConfig()
    dev = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    # channels-last convolutions run ~20% faster on the CPU (oneDNN) for this kind of small CNN.
    memory_format = preferred_memory_format(model.to(dev), dataset.image_shape)
    train_idx = dataset.indices(TRAIN)
    # The whole training split as one float tensor: 60k MNIST images are 188 MB, cheaper than a DataLoader.
    x_all = dataset.pixels(train_idx).to(dev, memory_format=memory_format)
    y_all = torch.from_numpy(dataset.labels[train_idx]).to(dev)
    # a last batch of one image breaks batch norm in training mode ("expected more than 1 value per channel"):
    # leave that one image out of the epoch (a different one each epoch, the order being shuffled)
    n_used = len(train_idx) - 1 if len(train_idx) % config.batch_size == 1 and len(train_idx) > 1 else len(train_idx)
    steps = (n_used + config.batch_size - 1) // config.batch_size
    optimizer = _adam(model, config.lr)
    total = config.epochs * steps
    # OneCycleLR divides by (pct_start * total_steps - 1): a warm-up of exactly one step (5 steps in all) divides by 0
    pct_start = 0.2 if total != 5 else 0.4
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=pct_start)
    history: list[EpochRecord] = []
    keep = set(snapshot_steps(snapshots, config.epochs, steps)) if snapshots is not None else set()

    def snapshot(done: int) -> None:
        if done in keep and on_snapshot is not None:
            was_training = model.training
            model.eval()
            on_snapshot(done, done / steps, model)
            model.train(was_training)

    snapshot(0)
    for epoch in range(1, config.epochs + 1):
        task = f"train epoch {epoch}/{config.epochs}"
        progress(task, 0, steps)
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_idx), generator=generator).to(dev)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        for step in range(steps):
            batch = order[step * config.batch_size : min((step + 1) * config.batch_size, n_used)]
            x, y = random_shift(x_all[batch], config.augment, generator, memory_format), y_all[batch]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(batch)
            correct += (logits.argmax(1) == y).sum()
            if step % 20 == 0 or step == steps - 1:
                progress(task, step + 1, steps)
            snapshot((epoch - 1) * steps + step + 1)
        model.eval()
        test_loss, test_acc = evaluate(model, dataset, TEST, device=str(dev))
        record = EpochRecord(
            epoch=epoch,
            train_loss=loss_sum.item() / n_used,
            train_accuracy=correct.item() / n_used,
            test_loss=test_loss,
            test_accuracy=test_acc,
            seconds=time.perf_counter() - start,
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    model.eval()
    return history
