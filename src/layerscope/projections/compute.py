"""Compute and store the 2-D projections of a Run's layers, with their quality figures.

PCA runs over every layer's full activations, streamed (conv layers are recomputed from the model, batch by batch,
never stored); a dense layer's X^T X and column sums come from the capture when the Run has them for the activations
it stores (`layerscope.stats`), so its PCA is one pass. Its leading 50 scores are kept as the input of t-SNE, UMAP,
LDA and Isomap for layers wider than 100 units, as is standard practice for t-SNE; narrower layers (the dense ones)
feed those methods directly.

t-SNE and UMAP share one nearest-neighbour graph per layer (`layer_neighbors`), computed once and stored in the Run.
Past ``FIT_MAX`` images they are fitted on a stratified sample of ``FIT_SAMPLE`` and place the others with their own
``transform``; the meta then records the sample's size and the quality of the placed points on their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from layerscope.capture import INPUT, iter_layer_batches
from layerscope.data.datasets import TRAIN
from layerscope.errors import LayerscopeError
from layerscope.layers import LayerInfo
from layerscope.memory import MemoryBudget, activation_row_bytes, memory_budget
from layerscope.progress import ProgressFn, no_progress
from layerscope.projections import METHODS
from layerscope.projections.isomap import Isomap
from layerscope.projections.lda import LDA
from layerscope.projections.neighbors import K, NeighborGraph, knn_graph, stratified_sample
from layerscope.projections.pca import PCA, fit_together
from layerscope.projections.quality import knn_accuracy, trustworthiness
from layerscope.projections.tsne import TSNE
from layerscope.projections.umap import UMAP
from layerscope.run import Run, Update, now
from layerscope.stats import stored_sums

__all__ = [
    "METHODS",
    "Projection",
    "check_method",
    "compute_pca",
    "pca_plan",
    "compute_projection",
    "layer_features",
    "layer_neighbors",
    "pca_transform",
]

FEATURE_DIMS = 50  # PCA scores kept as the input of the non-linear methods
RAW_MAX_DIMS = 100  # layers up to this width feed the non-linear methods directly
TRUST_SAMPLE = 2000  # trustworthiness is O(n^2): measured on a random sample
BATCH = 1024  # images per streamed batch at most; fewer where the memory budget says so (`pca_plan`)
# Up to this share of the memory budget holds rows of conv layers (recomputed from the model) kept in memory between
# PCA passes, all layers together: with 4 GB, the seed CNN's pool (70k x 4,608 float32, 1.3 GB) fits, so its PCA costs
# one forward pass; conv1 (3.0 GB) and conv2 (5.2 GB) are streamed again. The rest holds the streamed batches.
KEEP_SHARE = 0.5
FIT_MAX = 100_000  # t-SNE and UMAP are fitted on every image up to this many ...
FIT_SAMPLE = 50_000  # ... and past it on a stratified sample this large, the others placed by ``transform``
PLACE_CHUNK = 50_000  # images placed per ``transform`` call (a progress report between calls)


@dataclass(frozen=True)
class Projection:
    layer: str
    method: str
    embedding: np.ndarray  # (N, 2) float32
    meta: dict[str, Any]


def check_method(method: str) -> None:
    if method not in METHODS:
        raise LayerscopeError(f"unknown projection method {method!r}; choose one of {', '.join(METHODS)}.")


@dataclass(frozen=True)
class PCAPlan:
    """How PCA of a Run's layers uses its memory budget: the conv layers whose (n, D) rows stay in memory after the
    first pass (bytes each), and the images per streamed batch."""

    keep: dict[str, int]
    batch: int


def pca_plan(infos: Sequence[LayerInfo], n: int, budget: MemoryBudget) -> PCAPlan:
    """Keep the rows of conv layers, in layer order, while they fit in ``KEEP_SHARE`` of the budget; size the batch
    so that the first pass (every layer streamed, the kept rows filling up) fits in what is left of it."""
    keep: dict[str, int] = {}
    room = int(budget.bytes * KEEP_SHARE)
    for info in infos:
        size = n * info.dims * 4
        if info.recomputed and size <= room:
            keep[info.name] = size
            room -= size
    rest = MemoryBudget(max(budget.bytes - sum(keep.values()), 1))
    batch = rest.rows(activation_row_bytes([info.dims for info in infos]), at_most=BATCH)
    return PCAPlan(keep, batch)


def _stream(
    run: Run, layers: Sequence[str], model: torch.nn.Module | None, batch: int = BATCH
) -> Iterator[dict[str, Any]]:
    """One pass over all images, yielding ``{layer: (b, D) float32}`` for the requested layers, ``batch`` images at
    a time."""
    infos = {name: run.layer(name) for name in layers}
    kinds = {name: info.kind for name, info in infos.items()}
    conv = [name for name, info in infos.items() if info.recomputed]
    images = run.images
    dense = {name: run.activations(name) for name, kind in kinds.items() if kind == "dense"}
    dense |= {name: run.token_features(name) for name, info in infos.items() if info.tokens is not None}
    conv_batches = (
        iter_layer_batches(model, run.dataset(), conv, batch_size=batch) if conv and model is not None else None
    )
    for start in range(0, len(images), batch):
        stop = min(start + batch, len(images))
        out: dict[str, Any] = {}
        if INPUT in kinds:  # (b, C, H, W) uint8 -> (b, C*H*W) float32 in [0, 1]
            out[INPUT] = images[start:stop].reshape(stop - start, -1).astype(np.float32) / 255.0
        for name, array in dense.items():
            out[name] = np.asarray(array[start:stop], dtype=np.float32)
        if conv_batches is not None:
            _, outputs = next(conv_batches)
            for name in conv:  # (b, C, H, W) -> (b, C*H*W)
                out[name] = outputs[name].reshape(stop - start, -1).numpy()
        yield out


def layer_features(run: Run, layer: str, indices: np.ndarray, model: torch.nn.Module | None = None) -> np.ndarray:
    """Full activations (n, D) of ``layer`` for a few images, recomputing conv layers from the model; a token
    layer's (n, D) class token or token mean (`LayerInfo.token_features`)."""
    info = run.layer(layer)
    if info.kind == "image":
        return run.images[indices].reshape(len(indices), -1).astype(np.float32) / 255.0
    if info.kind == "dense":
        return np.asarray(run.activations(layer)[indices], dtype=np.float32)
    if info.tokens is not None:
        return np.asarray(run.token_features(layer)[indices], dtype=np.float32)
    model = model if model is not None else run.load_model()
    rows = [out[layer].flatten(1).numpy() for _, out in iter_layer_batches(model, run.dataset(), [layer], indices)]
    return np.concatenate(rows)


def quality_sample_size(n: int, dims: int, budget: MemoryBudget) -> int:
    """Images of a ``dims``-wide layer that trustworthiness compares: ``TRUST_SAMPLE``, fewer where their full
    activations (float32, and a copy while the batches are joined) would not fit in the budget; at least 100."""
    return min(n, max(budget.rows(2 * 4 * dims, at_most=TRUST_SAMPLE), min(100, TRUST_SAMPLE)))


def _quality(
    run: Run,
    layer: str,
    embedding: np.ndarray,
    model: torch.nn.Module | None,
    seed: int,
    budget: MemoryBudget | None = None,
) -> dict[str, Any]:
    labels = np.asarray(run.labels)
    rng = np.random.default_rng(seed)
    size = quality_sample_size(len(labels), run.layer(layer).projected_dims, budget or memory_budget())
    sample = np.sort(rng.choice(len(labels), size=size, replace=False))
    high = layer_features(run, layer, sample, model)
    return {
        "knn_accuracy": knn_accuracy(embedding, labels, k=10, random_state=seed),
        "trustworthiness": trustworthiness(high, embedding[sample], k=10),
        "quality_sample": len(sample),
    }


def _store(up: Update, projection: Projection, features: dict[str, np.ndarray] | None = None) -> None:
    """Stage a projection (and the features it was fitted with) in one Run update."""
    up.write_array(f"projections/{projection.layer}/{projection.method}.npy", projection.embedding)
    for part, array in (features or {}).items():
        up.write_array(f"features/{projection.layer}.{part}.npy", array)

    def change(manifest: dict[str, Any]) -> None:
        manifest.setdefault("projections", {}).setdefault(projection.layer, {})[projection.method] = projection.meta

    up.change(change)


def compute_pca(
    run: Run,
    layers: Sequence[str] | None = None,
    device: str = "cpu",
    random_state: int = 0,
    progress: ProgressFn = no_progress,
    model: torch.nn.Module | None = None,
    memory: int | str | MemoryBudget | None = None,
    quality: bool = True,
) -> dict[str, Projection]:
    """PCA of each layer over every image, all layers sharing each streamed pass; stores projection and features,
    and the projection's quality figures unless ``quality`` is False (a training snapshot's: ``timeline.aligned_pca``
    computes them for the layer it aligns).

    Conv layers are recomputed from the model on every pass, except those whose rows are kept in memory on the
    first pass. ``memory`` (bytes, ``"4GB"``, or a ``MemoryBudget``; default: from the machine, see
    ``layerscope.memory``) bounds both the kept rows and the streamed batches (`pca_plan`); a smaller budget costs
    more forward passes and smaller batches, and gives the same projection up to float32 rounding.
    """
    layers = list(layers) if layers is not None else run.layer_names
    if not layers:
        return {}
    infos = {name: run.layer(name) for name in layers}
    if model is None and any(info.recomputed for info in infos.values()):
        model = run.load_model(device)
    n = len(run.labels)
    budget = memory if isinstance(memory, MemoryBudget) else memory_budget(memory)
    plan = pca_plan(list(infos.values()), n, budget)
    keep = plan.keep
    estimators = {
        name: PCA(
            n_components=min(FEATURE_DIMS, info.projected_dims),
            n_iter=2,
            random_state=random_state,
            keep_rows_bytes=keep.get(name, 0),
        )
        for name, info in infos.items()
    }
    for name in infos:  # a dense layer's sums taken on the capture pass spare PCA its first pass
        stored = stored_sums(run, name)
        if stored is not None and stored["count"] == n:
            estimators[name].use_sums(stored["count"], stored["sum"], stored["xtx"])
    shapes = {name: (n, info.projected_dims) for name, info in infos.items()}
    task = "pca " + ", ".join(layers)
    start = time.perf_counter()

    # reported batch by batch within each pass: a pass over 70,000 images recomputing conv layers takes many seconds,
    # and a progress report is where the work can be stopped (progress.stoppable) and its pace measured
    batches = max(-(-n // plan.batch), 1)
    at = {"pass": 0, "passes": 1}

    def on_pass(p: int, total: int) -> None:
        at.update({"pass": p, "passes": total})
        progress(task, p * batches, total * batches)

    def stream(names: Sequence[str]) -> Iterator[dict[str, Any]]:
        for b, out in enumerate(_stream(run, names, model, plan.batch)):
            yield out
            progress(task, at["pass"] * batches + b + 1, at["passes"] * batches)

    fit_together(estimators, shapes, stream, on_pass)
    progress(task, at["passes"] * batches, at["passes"] * batches)
    seconds = time.perf_counter() - start
    results = {}
    staged = []
    for name, est in estimators.items():
        embedding = np.ascontiguousarray(est.embedding_[:, :2])
        # the fitted map, so new inputs (a drawn digit) can be placed: (k, D) components and the (D,) mean
        features = {
            "pca_components": est.components_.astype(np.float32),
            "pca_mean": est.mean_.astype(np.float32),
        }
        if infos[name].projected_dims > RAW_MAX_DIMS:
            features["pca"] = np.ascontiguousarray(est.embedding_)
        meta = {
            "method": "pca",
            "computed": now(),
            "seconds": round(seconds, 3),  # shared by the layers fitted together
            "solver": est.solver_,
            "explained_variance_ratio": [float(v) for v in est.explained_variance_ratio_[:2]],
            "params": {"n_components": est.n_components, "n_iter": est.n_iter, "random_state": random_state},
            "rows_in_memory": name in keep,
            "passes": 1 if name in keep or est.from_sums_ else est._passes,
            "capture_sums": est.from_sums_,  # X^T X and the column sums from the capture (`layerscope.stats`)
            "batch_size": plan.batch,
            "input": _input_name(infos[name]),
            "n_points": n,
            **(_quality(run, name, embedding, model, random_state, budget) if quality else {}),
        }
        projection = Projection(name, "pca", embedding, meta)
        staged.append((projection, features))
        results[name] = projection
    with run.update() as up:  # every layer's projection and features together, or none
        for projection, features in staged:
            _store(up, projection, features)
    return results


def pca_transform(run: Run, layer: str, values: np.ndarray) -> np.ndarray:
    """(n, D) full activations of ``layer`` -> (n, k) scores in the Run's PCA of that layer (k = 50, or D if fewer);
    the first two are the PCA projection's coordinates. Needs the fitted map, which ``compute_pca`` stores."""
    if not run.has_features(layer, "pca_components"):
        raise LayerscopeError(
            f"{run.path} has no fitted PCA of {layer!r} (it predates storing it); compute it again with "
            f"'layerscope project {run.path} --layer {layer} --method pca --recompute'."
        )
    components = np.asarray(run.features(layer, "pca_components"))
    mean = np.asarray(run.features(layer, "pca_mean"))
    return ((np.asarray(values, np.float32) - mean) @ components.T).astype(np.float32)


def _input_name(info: LayerInfo) -> str:
    """What a projection's meta says it was computed from."""
    return {"cls": "class token", "mean": "token mean"}.get(info.token_features or "", "activations")


def _method_input(
    run: Run, layer: str, device: str, progress: ProgressFn, budget: MemoryBudget
) -> tuple[np.ndarray, str]:
    """What t-SNE, UMAP, LDA and Isomap take for ``layer``: a layer of up to 100 features whole (a conv layer that
    narrow, e.g. a global average pool's C x 1 x 1, recomputed from the model: N x C floats), a wider one by its
    leading PCA scores (computed first where the Run lacks them)."""
    info = run.layer(layer)
    if info.projected_dims <= RAW_MAX_DIMS:
        if info.kind == "dense":
            return np.asarray(run.activations(layer), dtype=np.float32), "activations"
        if info.tokens is not None:
            return np.asarray(run.token_features(layer), dtype=np.float32), _input_name(info)
        model = run.load_model(device) if info.kind == "conv" else None
        return layer_features(run, layer, np.arange(len(run.labels)), model), "activations"
    if not run.has_features(layer, "pca"):
        compute_pca(run, [layer], device=device, progress=progress, memory=budget)
    return np.asarray(run.features(layer, "pca")), f"pca{FEATURE_DIMS}"


def _input_version(run: Run, layer: str, source: str) -> str | None:
    """What identifies the input a graph was computed from, beyond its name: for PCA scores, the file the Run holds
    them in (a new name at each update, so a PCA computed again makes the graph stale)."""
    if source.startswith("pca"):
        return run.file(f"features/{layer}.pca.npy").name
    return None


def layer_neighbors(
    run: Run,
    layer: str,
    x: np.ndarray | None = None,
    source: str | None = None,
    recompute: bool = False,
    device: str = "cpu",
    progress: ProgressFn = no_progress,
    memory: int | str | MemoryBudget | None = None,
) -> NeighborGraph:
    """The nearest-neighbour graph of what t-SNE and UMAP take for ``layer`` (``x``, named ``source``; read from the
    Run when not given): the Run's stored one while it was computed from that input, else computed (exact search up
    to 200,000 images, NN-descent past it; `neighbors.knn_graph`) and stored."""
    if x is None or source is None:
        budget = memory if isinstance(memory, MemoryBudget) else memory_budget(memory)
        x, source = _method_input(run, layer, device, progress, budget)
    version = _input_version(run, layer, source)
    meta = run.neighbor_meta(layer)
    if (
        not recompute
        and meta is not None
        and meta.get("input") == source
        and meta.get("input_version") == version
        and int(meta.get("k", 0)) >= min(K, len(x) - 1)
    ):
        indices, distances = run.neighbors(layer)
        return NeighborGraph(np.asarray(indices), np.asarray(distances), meta)
    graph = knn_graph(x, K, device=device, progress=progress)
    meta = {**graph.meta, "input": source, "input_version": version, "computed": now()}
    with run.update() as up:
        up.write_array(f"neighbors/{layer}.indices.npy", graph.indices)
        up.write_array(f"neighbors/{layer}.distances.npy", graph.distances)

        def change(manifest: dict[str, Any]) -> None:
            manifest.setdefault("neighbors", {})[layer] = meta

        up.change(change)
    return NeighborGraph(graph.indices, graph.distances, meta)


def _fit_neighbor_method(
    run: Run,
    layer: str,
    method: str,
    x: np.ndarray,
    source: str,
    random_state: int,
    device: str,
    progress: ProgressFn,
    engine: str = "local",
    address: str | None = None,
) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """t-SNE or UMAP of ``x``: (N, 2) embedding, the params, and what the meta says of the neighbour graph and the
    sample. Up to ``FIT_MAX`` rows every row is fitted on the Run's stored graph; past it a stratified sample of
    ``FIT_SAMPLE`` is fitted on its own (exact) graph, and the other rows are placed by the method's ``transform``:
    here, or in Ray tasks with ``engine="ray"`` (on the cluster at ``address``)."""
    labels = np.asarray(run.labels)
    n = len(x)
    sample = stratified_sample(labels, FIT_SAMPLE, random_state) if n > FIT_MAX else np.arange(n)
    if len(sample) == n:
        graph = layer_neighbors(run, layer, x, source, device=device, progress=progress)
    else:
        graph = knn_graph(x[sample], K, device=device, progress=progress)
    estimator: TSNE | UMAP
    if method == "tsne":
        estimator = TSNE(random_state=random_state, progress=progress, neighbors=graph, device=device)
    else:
        estimator = UMAP(random_state=random_state, progress=progress, neighbors=graph, device=device)
    fitted = estimator.fit_transform(x[sample])
    if isinstance(estimator, TSNE):
        params: dict[str, Any] = {
            "perplexity": estimator.perplexity,
            "early_exaggeration_iter": estimator.early_exaggeration_iter,
            "n_iter": estimator.n_iter,
            "initialization": "pca",
            "gradient": estimator.gradient_,
        }
    else:
        params = {"n_neighbors": estimator.n_neighbors, "min_dist": estimator.min_dist}
    about: dict[str, Any] = {
        "neighbors": {key: graph.meta[key] for key in ("method", "k", "seconds") if key in graph.meta},
    }
    if len(sample) == n:
        return fitted, params, about
    embedding = np.empty((n, 2), np.float32)
    embedding[sample] = fitted
    rest = np.setdiff1d(np.arange(n), sample)
    label = f"placing the other images ({method} transform)"
    if engine == "ray":
        from layerscope.ray_engine import place_with_ray

        embedding[rest] = place_with_ray(estimator, x, rest, PLACE_CHUNK, address, progress, label)
    else:
        for start in range(0, len(rest), PLACE_CHUNK):
            progress(label, start, len(rest))
            part = rest[start : start + PLACE_CHUNK]
            embedding[part] = estimator.transform(x[part])
        progress(label, len(rest), len(rest))
    about["fit_sample"] = len(sample)
    about["placed"] = len(rest)
    about["placed_on"] = engine
    about["placed_knn_accuracy"] = knn_accuracy(embedding, labels, k=10, random_state=random_state, among=rest)
    about["fitted_knn_accuracy"] = knn_accuracy(embedding, labels, k=10, random_state=random_state, among=sample)
    return embedding, params, about


def compute_projection(
    run: Run,
    layer: str,
    method: str,
    recompute: bool = False,
    random_state: int = 0,
    device: str = "cpu",
    progress: ProgressFn = no_progress,
    memory: int | str | MemoryBudget | None = None,
    engine: str = "local",
    address: str | None = None,
) -> Projection:
    """The ``method`` projection of ``layer`` over every image: from the Run's cache unless ``recompute``. ``memory``
    bounds the batched work as in ``compute_pca`` (default: from the machine). A t-SNE or UMAP past ``FIT_MAX``
    images places the images its sample left out on Ray with ``engine="ray"`` (``address``: a cluster's, else one
    started on this machine for the call)."""
    check_method(method)
    if engine not in ("local", "ray"):
        raise LayerscopeError(f"unknown engine {engine!r}; choose local or ray.")
    run.layer(layer)
    if not recompute and run.projection_meta(layer, method) is not None:
        return Projection(
            layer, method, np.asarray(run.projection(layer, method)), run.projection_meta(layer, method) or {}
        )
    budget = memory if isinstance(memory, MemoryBudget) else memory_budget(memory)
    if method == "pca":
        return compute_pca(run, [layer], device=device, random_state=random_state, progress=progress, memory=budget)[
            layer
        ]
    x, source = _method_input(run, layer, device, progress, budget)
    labels = np.asarray(run.labels)
    start = time.perf_counter()
    note = ""
    params: dict[str, Any] = {"random_state": random_state}
    about: dict[str, Any] = {}
    if method in ("tsne", "umap"):
        embedding, fitted_params, about = _fit_neighbor_method(
            run, layer, method, x, source, random_state, device, progress, engine, address
        )
        params.update(fitted_params)
        if "fit_sample" in about:
            note = (
                f"fitted on a stratified sample of {about['fit_sample']:,} images; the other {about['placed']:,} "
                f"are placed with {'openTSNE' if method == 'tsne' else 'umap-learn'}'s transform"
                + (" on Ray" if engine == "ray" else "")
            )
    elif method == "lda":
        train = np.asarray(run.split) == TRAIN
        embedding = LDA().fit(x[train], labels[train]).transform(x)
        note = "fitted on the training split with its labels; test images are placed by the same linear map"
    else:
        isomap = Isomap(random_state=random_state, progress=progress)
        embedding = isomap.fit_transform(x)
        params.update(n_neighbors=isomap.n_neighbors, fit_sample=len(isomap.sample_))
        if len(isomap.sample_) < len(x):
            note = (
                f"fitted on a random sample of {len(isomap.sample_):,} images; "
                "the others are placed with Isomap.transform"
            )
    seconds = time.perf_counter() - start
    embedding = np.ascontiguousarray(embedding, dtype=np.float32)
    meta = {
        "method": method,
        "computed": now(),
        "seconds": round(seconds, 3),
        "params": params,
        "input": source,
        "n_points": len(embedding),
        **about,
        **({"note": note} if note else {}),
        **_quality(run, layer, embedding, None, random_state, budget),
    }
    projection = Projection(layer, method, embedding, meta)
    with run.update() as up:
        _store(up, projection)
    return projection
