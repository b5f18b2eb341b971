"""From a dataset and a model spec to a complete Run: train, save, capture (with top-k images), PCA of every layer."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from layerscope import __version__
from layerscope.cache import default_cache_dir, demo_run_dir
from layerscope.capture import LayerInfo, capture_batch_size, capture_dataset, describe_layers, list_layers
from layerscope.data.datasets import TEST, TRAIN, Dataset, load_mnist
from layerscope.data.sources import REFERENCE_FILES
from layerscope.graph import ModelGraph, chain_graph
from layerscope.layers import INPUT
from layerscope.memory import MemoryBudget, memory_budget
from layerscope.models.loading import SEED_CNN, build_model
from layerscope.models.pretrained import pretrained_seed_cnn
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
from layerscope.stats import SumsCollector, stage_sums
from layerscope.topk import DEFAULT_K, TopKCollector, write_topk
from layerscope.tracing import source_model, trace_model
from layerscope.training import EpochRecord, TrainConfig, fit, resolve_device

__all__ = ["create_run", "default_cache_dir", "demo_run", "seed_cnn_spec", "select_layers", "train_run"]


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
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    memory: int | str | MemoryBudget | None = None,
    snapshots: int | str | None = None,
) -> Run:
    """Train a model and write a complete Run to ``out``: weights, predictions and activations for every image,
    and the PCA projection of every layer. Nothing appears at ``out`` unless all of it succeeded.

    ``snapshots`` (a count of at least 2, or "epoch": ``training.snapshot_steps``) keeps the network as it was at
    those steps of training, from the untrained one to the trained one. Each but the last is a Run of its own under
    ``snapshots/NN/`` (weights, probabilities, activations and top images as the final capture has them, the PCA of
    its dense layers; the images and the input's PCA are hard links to the Run's own, a conv layer's PCA is computed
    when first asked for); the last is the Run itself. The manifest lists them (``snapshots``:
    step, epoch, test loss and accuracy, where).

    ``spec`` defaults to the report's CNN sized for the dataset. ``include``/``exclude`` choose the layers (glob
    patterns over dotted names, see ``list_layers``); a model that does not fit the dataset, or patterns that match
    nothing, fail before any training. ``memory`` bounds the batches of capture and PCA (bytes or ``"4GB"``;
    default: from the machine, see ``layerscope.memory``).
    """
    config = config or TrainConfig()
    budget = memory if isinstance(memory, MemoryBudget) else memory_budget(memory)
    dataset = dataset.subset(config.train_limit, config.test_limit)
    spec = spec or seed_cnn_spec(dataset)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(spec, trusted=True)  # the caller named this class: its code is theirs to run
    net, graph = graph_model(model, dataset.image_shape, include)
    layers = select_layers(net, dataset, include, exclude)
    spec = _with_patterns(spec, include, exclude)
    kept: list[tuple[int, float, dict[str, torch.Tensor]]] = []

    def keep(step: int, epoch: float, trained: torch.nn.Module) -> None:
        kept.append((step, epoch, {k: v.detach().to("cpu", copy=True) for k, v in trained.state_dict().items()}))

    with staging_dir(out, force=force) as tmp:
        start = time.perf_counter()
        history = fit(
            model,
            dataset,
            replace(config, device=str(device)),
            progress=progress,
            on_epoch=on_epoch,
            snapshots=snapshots,
            on_snapshot=keep,
        )
        training = {
            **config.to_dict(),
            "device": str(device),
            "seconds": round(time.perf_counter() - start, 2),
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
        }
        _write_run(
            tmp,
            dataset,
            net,
            spec,
            device,
            progress,
            {"history": [vars(r) for r in history], "training": training, "graph": _graph_record(graph, layers)},
            layers,
            budget,
            config.seed,
        )
        if kept:
            _write_snapshots(tmp, kept, dataset, model, net, spec, device, progress, graph, layers, budget, config.seed)
    return Run(out, trust_model_code=True)  # its model is the one the caller gave


def _share_input_pca(run_dir: Path, snapshot_dir: Path) -> None:
    """Give a snapshot the Run's PCA of the input (the same images): its files hard-linked, its manifest entry."""
    run = Run(run_dir, staged=True)
    meta = run.projection_meta(INPUT, "pca")
    if meta is None:
        return
    (snapshot_dir / "features").mkdir(exist_ok=True)
    for relpath in (f"features/{INPUT}.{part}.npy" for part in ("pca", "pca_components", "pca_mean")):
        if run.has_array(relpath):
            os.link(run.file(relpath), snapshot_dir / relpath)
    (snapshot_dir / "projections" / INPUT).mkdir(parents=True, exist_ok=True)
    os.link(run.file(f"projections/{INPUT}/pca.npy"), snapshot_dir / "projections" / INPUT / "pca.npy")
    Run(snapshot_dir, staged=True).update_manifest(
        lambda m: m.setdefault("projections", {}).setdefault(INPUT, {}).__setitem__("pca", meta)
    )


def _write_snapshots(
    tmp: Path,
    kept: list[tuple[int, float, dict[str, torch.Tensor]]],
    dataset: Dataset,
    model: torch.nn.Module,
    net: torch.nn.Module,
    spec: dict[str, Any],
    device: torch.device,
    progress: ProgressFn,
    graph: ModelGraph,
    layers: list[LayerInfo],
    budget: MemoryBudget,
    seed: int,
) -> None:
    """Each kept snapshot but the last (the Run itself) as a Run under ``snapshots/NN/``, and the manifest's list."""
    final = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    entries = []
    try:
        for index, (step, epoch, weights) in enumerate(kept):
            last = index == len(kept) - 1
            where = "." if last else f"snapshots/{index:02d}"
            if not last:
                model.load_state_dict(weights)  # the graph model ``net`` shares these parameters
                folder = tmp / where
                folder.mkdir(parents=True)
                for name in ("images.npy", *REFERENCE_FILES, "labels.npy", "split.npy"):
                    if (tmp / name).is_file():
                        os.link(tmp / name, folder / name)  # the same images: no second copy on disk
                extra = {"history": [], "graph": _graph_record(graph, layers), "snapshot": {"step": step}}
                # the PCA of dense layers now; the input's is the Run's own (the same pixels), a conv layer's is
                # computed when first asked for (its passes over every image would cost a snapshot the most)
                _write_run(
                    folder,
                    dataset,
                    net,
                    spec,
                    device,
                    progress,
                    extra,
                    layers,
                    budget,
                    seed,
                    pca_kinds=("dense",),
                    dataset_arrays=False,
                    snapshot=True,
                )
                _share_input_pca(tmp, folder)
            metrics = Run(tmp / where, staged=True).manifest["metrics"]
            entries.append(
                {
                    "index": index,
                    "step": step,
                    "epoch": round(epoch, 4),
                    "test_accuracy": metrics.get("test_accuracy"),
                    "test_loss": metrics.get("test_loss"),
                    "path": where,
                }
            )
    finally:
        model.load_state_dict(final)
    Run(tmp, staged=True).update_manifest(lambda m: m.__setitem__("snapshots", entries))


def create_run(
    out: str | os.PathLike[str],
    dataset: Dataset,
    model: torch.nn.Module,
    spec: dict[str, Any],
    device: str = "auto",
    force: bool = False,
    progress: ProgressFn = no_progress,
    provenance: dict[str, Any] | None = None,
    pca_kinds: tuple[str, ...] = ("image", "conv", "dense"),
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    memory: int | str | MemoryBudget | None = None,
) -> Run:
    """Write a complete Run for an already-trained ``model`` (built from ``spec``): capture and PCA, no training.

    ``pca_kinds`` limits the PCA done now to some kinds of layer; the others are computed when first asked for.
    ``include``/``exclude`` choose the layers and ``memory`` bounds the batches as in ``train_run``.
    """
    budget = memory if isinstance(memory, MemoryBudget) else memory_budget(memory)
    dev = resolve_device(device)
    net, graph = graph_model(model, dataset.image_shape, include)
    layers = select_layers(net, dataset, include, exclude)
    spec = _with_patterns(spec, include, exclude)
    with staging_dir(out, force=force) as tmp:
        extra = {
            "history": [],
            "graph": _graph_record(graph, layers),
            **({"provenance": provenance} if provenance else {}),
        }
        _write_run(tmp, dataset, net, spec, dev, progress, extra, layers, budget, pca_kinds=pca_kinds)
    return Run(out, trust_model_code=True)  # its model is the one the caller gave


def graph_model(
    model: torch.nn.Module, image_shape: Sequence[int], include: Sequence[str] | None = None
) -> tuple[torch.nn.Module, ModelGraph]:
    """The model as the graph it computes (``layerscope.graph.trace_model``), with the containers that ``include``
    names exactly kept whole as one node; the model itself (and a graph saying why) when it cannot be traced."""
    modules = {name for name, _ in model.named_modules() if name}
    return trace_model(model, image_shape, [p for p in include or () if p in modules])


def _graph_record(graph: ModelGraph, layers: list[LayerInfo]) -> dict[str, Any]:
    """The manifest's ``graph``: the traced nodes and edges, or the captured layers as a chain and why."""
    return (graph if graph.method == "fx" else chain_graph(layers, graph.method, graph.reason)).to_dict()


def select_layers(
    model: torch.nn.Module,
    dataset: Dataset,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> list[LayerInfo]:
    """The layers a Run of ``model`` on ``dataset`` records (input first, in the order a forward pass produces them),
    after checking that the model takes the dataset's images and returns one logit per class."""
    names = list_layers(model, include, exclude) if include or exclude else None
    return describe_layers(model, dataset.image_shape, names, num_classes=dataset.num_classes)


def _with_patterns(
    spec: dict[str, Any], include: Sequence[str] | None, exclude: Sequence[str] | None
) -> dict[str, Any]:
    """The model spec with the layer patterns it was captured with, so the Run records how its layers were chosen
    (the chosen layers themselves are the manifest's ``layers``)."""
    patterns = {k: list(v) for k, v in (("include", include), ("exclude", exclude)) if v}
    return {**spec, "layer_patterns": patterns} if patterns else dict(spec)


def _metrics(probs: np.ndarray, labels: np.ndarray, split: np.ndarray) -> dict[str, float]:
    """Accuracy and mean cross-entropy per split, from the captured probabilities."""
    metrics = {}
    for name, code in (("train", TRAIN), ("test", TEST)):
        keep = split == code
        if keep.any():
            p = probs[keep]
            y = labels[keep]
            metrics[f"{name}_accuracy"] = float((p.argmax(1) == y).mean())
            metrics[f"{name}_loss"] = float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean())
    return metrics


def _write_run(
    tmp: Path,
    dataset: Dataset,
    model: torch.nn.Module,
    spec: dict[str, Any],
    device: torch.device,
    progress: ProgressFn,
    extra: dict[str, Any],
    layers: list[LayerInfo],
    budget: MemoryBudget,
    random_state: int = 0,
    pca_kinds: tuple[str, ...] = ("image", "conv", "dense"),
    dataset_arrays: bool = True,
    snapshot: bool = False,
) -> None:
    """Everything after training: weights, dataset arrays (unless ``dataset_arrays`` is False: they are there),
    capture with top-k images, manifest, PCA of every layer; capture's and PCA's batches sized to ``budget``. A
    training ``snapshot`` leaves out what is computed when first asked for: its top images (the dashboard's unit card
    at the snapshot) and its PCA's quality figures (the timeline of the layer), a third of its cost."""
    model.to(device).eval()
    save_weights(source_model(model), tmp / "weights.safetensors")
    if dataset_arrays:
        write_dataset_arrays(tmp, dataset, progress)
    # the top-k images per unit ride along the capture pass, which already has every layer's full output
    topk = TopKCollector([info.name for info in layers if info.kind != "image"], DEFAULT_K) if not snapshot else None
    # and so do the dense layers' sums, which make their PCA below (and any later) one pass
    sums = SumsCollector(layers, np.asarray(dataset.labels), dataset.num_classes)

    def on_batch(indices: np.ndarray, outputs: dict[str, torch.Tensor]) -> None:
        if topk is not None:
            topk(indices, outputs)
        sums(indices, outputs)

    batch = capture_batch_size(layers, budget)
    captured = capture_dataset(
        model, dataset, layers, tmp, batch_size=batch, device=device, progress=progress, on_batch=on_batch
    )
    probs = np.load(tmp / "probs.npy", mmap_mode="r")
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "layerscope_version": __version__,
        "created": now(),
        "dataset": dataset_manifest(dataset),
        "model": {**spec, "num_parameters": sum(p.numel() for p in source_model(model).parameters())},
        "layers": [info.to_dict() for info in layers],
        "metrics": _metrics(np.asarray(probs), dataset.labels, dataset.split),
        **extra,
        "capture": {
            "seconds": round(captured.seconds, 3),
            "images_per_second": round(captured.images_per_second),
            "batch_size": batch,
            "memory_budget": budget.bytes,
        },
        "projections": {},
    }
    write_json(tmp / "manifest.json", manifest)
    run = Run(tmp, staged=True)
    if topk is not None:
        write_topk(run, topk.result(), DEFAULT_K, topk.seconds)
    with run.update() as up:
        stage_sums(up, sums.sums, {name: f"activations/{name}.npy" for name in sums.sums}, sums.seconds)
    pca_layers = [info.name for info in layers if info.kind in pca_kinds]
    compute_pca(
        run,
        pca_layers,
        device=str(device),
        random_state=random_state,
        progress=progress,
        model=model,
        memory=budget,
        quality=not snapshot,
    )


def demo_run(
    cache_dir: str | os.PathLike[str] | None = None,
    retrain: bool = False,
    device: str = "auto",
    progress: ProgressFn = no_progress,
) -> Run:
    """The MNIST Run of the demo: made once from the shipped weights and cached. Only capture and the PCA of the
    input and dense layers happen up front (seconds); conv-layer PCA is computed when first asked for.
    ``retrain`` trains a fresh model with the default settings instead and replaces the cached Run."""
    out = demo_run_dir(cache_dir)
    if retrain:
        return train_run(out, load_mnist(), TrainConfig(device=device), force=True, progress=progress)
    if (out / "manifest.json").is_file():
        return Run(out)
    model, spec, provenance = pretrained_seed_cnn()
    return create_run(
        out,
        load_mnist(),
        model,
        spec,
        device=device,
        progress=progress,
        provenance=provenance,
        pca_kinds=("image", "dense"),
    )
