"""The training timeline: one layer's projection through the snapshots training kept (``train --snapshots``), each
aligned to the one before so that points move only as much as the network changed.

PCA of each snapshot is computed on its own (each snapshot is a Run, and ``train`` fits its PCA), so its axes may
come out rotated or mirrored against the previous snapshot's for reasons that have nothing to do with learning (a
principal component's sign is arbitrary). ``aligned_pca`` turns each snapshot's embedding onto the next one's aligned
embedding by orthogonal Procrustes (``scipy.linalg.orthogonal_procrustes``: the rotation or reflection R minimising
``||E_k R - E_{k+1}||_F`` over every image), from the trained network back to the untrained one: the last frame is
the Run's own PCA, as the dashboard's projections show it, so a timeline starts where the page is. Each snapshot is
first scaled to the trained network's spread (root mean square distance from the centre): an untrained layer's
activations are small, and its map would otherwise be a dot in the trained one's frame. A scaling and an orthogonal
map keep every neighbourhood, so each snapshot's quality figures are its own PCA's.

t-SNE has no map to align, so ``chained_tsne`` starts each snapshot's t-SNE from the previous snapshot's embedding
instead (openTSNE's ``initialization``): a point moves only where its neighbourhood changed.
``aligned_umap`` fits all snapshots at once with umap-learn's ``AlignedUMAP`` (each image related to itself in the
next snapshot), whose embeddings are pulled toward their neighbours in time.

The result is stored in the Run as ``timelines/<layer>/<method>.npy`` (S, N, 2) float32, the manifest's ``timelines``
recording per snapshot its step, quality and the mean displacement of the images from the snapshot before, aligned
and as the snapshots' own PCA placed them. ``render`` draws it as an animation for a report (GIF, or MP4 with PyAV).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layerscope.errors import LayerscopeError
from layerscope.memory import MemoryBudget
from layerscope.progress import ProgressFn, no_progress
from layerscope.run import Run, now

__all__ = [
    "Timeline",
    "aligned_pca",
    "aligned_umap",
    "chained_tsne",
    "render",
    "render_gif",
    "render_video",
    "spread",
    "timeline",
]

METHODS = ("pca", "tsne", "umap")


@dataclass(frozen=True)
class Timeline:
    """``embeddings`` (S, N, 2): the layer's projection at each of the S snapshots, untrained first; ``meta`` what
    the Run records of it (per snapshot: step, epoch, test accuracy, quality, displacement)."""

    layer: str
    method: str
    embeddings: np.ndarray
    meta: dict[str, Any]


def _check(run: Run, layer: str, method: str) -> None:
    if method not in METHODS:
        raise LayerscopeError(f"a timeline of {method!r} is not available; the methods are {', '.join(METHODS)}.")
    run.layer(layer)
    if len(run.snapshots) < 2:
        raise LayerscopeError(
            f"{run.path} has no training snapshots to make a timeline of; they are kept only while training: "
            "train again with --snapshots K."
        )


def timeline(
    run: Run, layer: str, method: str = "pca", recompute: bool = False, progress: ProgressFn = no_progress
) -> Timeline:
    """The stored timeline of ``layer`` (``aligned_pca`` computes and stores it where the Run lacks it)."""
    _check(run, layer, method)
    meta = (run.manifest.get("timelines") or {}).get(layer, {}).get(method)
    if meta is not None and not recompute:
        embeddings = run.array(f"timelines/{layer}/{method}.npy", (len(run.snapshots), run.n_images, 2))
        return Timeline(layer, method, np.asarray(embeddings), dict(meta))
    if method == "tsne":
        return chained_tsne(run, layer, progress=progress)
    if method == "umap":
        return aligned_umap(run, layer, progress=progress)
    return aligned_pca(run, layer, progress=progress)


def _procrustes(moving: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The (2, 2) orthogonal R minimising ||moving R - target||_F."""
    from scipy.linalg import orthogonal_procrustes

    rotation, _ = orthogonal_procrustes(moving.astype(np.float64), target.astype(np.float64))
    return rotation


def _radius(embedding: np.ndarray) -> float:
    """The root mean square distance of the points from their centre."""
    centred = embedding - embedding.mean(axis=0)
    return float(np.sqrt((centred**2).sum(axis=1).mean()))


def _displacement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean())


def aligned_pca(run: Run, layer: str, progress: ProgressFn = no_progress) -> Timeline:
    """Each snapshot's PCA of ``layer``, turned onto the next one (orthogonal Procrustes) from the trained network
    back, stored in the Run."""
    from layerscope.memory import memory_budget
    from layerscope.projections.compute import _quality, compute_projection

    _check(run, layer, "pca")
    start = time.perf_counter()
    entries = run.snapshots
    budget = memory_budget()
    task = f"aligned pca of {layer}"
    progress(task, 0, len(entries))
    own: list[np.ndarray] = []
    quality: list[dict[str, Any]] = []
    for k in range(len(entries)):
        snapshot = run.snapshot(k)
        projection = compute_projection(snapshot, layer, "pca")  # stored by train; computed where missing
        own.append(np.asarray(projection.embedding, np.float64))
        figures = projection.meta
        if "knn_accuracy" not in figures:  # a snapshot's PCA is stored without them (they cost a third of it)
            figures = _quality(snapshot, layer, own[-1], None, 0, budget)
        quality.append({key: figures.get(key) for key in ("knn_accuracy", "trustworthiness")})
        progress(task, k + 1, len(entries))
    # each snapshot scaled to the trained network's spread (an untrained layer's activations are small: its map would
    # be a dot in the trained one's frame), then, from the trained network back, turned onto the next: the trained
    # network's PCA stays as the Run shows it
    size = _radius(own[-1])
    own = [embedding * (size / max(_radius(embedding), 1e-12)) for embedding in own]
    aligned = [own[-1]]
    for embedding in own[-2::-1]:
        aligned.append(embedding @ _procrustes(embedding, aligned[-1]))
    aligned.reverse()
    per_snapshot = []
    for k, entry in enumerate(entries):
        moved = (
            {}
            if k == 0
            else {
                "displacement": _displacement(aligned[k], aligned[k - 1]),
                "unaligned_displacement": _displacement(own[k], own[k - 1]),
            }
        )
        per_snapshot.append(
            {key: entry.get(key) for key in ("index", "step", "epoch", "test_accuracy")} | quality[k] | moved
        )
    alignment = "scaled to the trained network's spread, orthogonal procrustes onto the next snapshot"
    return _store(run, layer, "pca", np.stack(aligned), per_snapshot, alignment, start)


def _store(
    run: Run,
    layer: str,
    method: str,
    embeddings: np.ndarray,
    per_snapshot: list[dict[str, Any]],
    alignment: str,
    start: float,
) -> Timeline:
    meta = {
        "method": method,
        "alignment": alignment,
        "computed": now(),
        "seconds": round(time.perf_counter() - start, 3),
        "snapshots": per_snapshot,
    }
    embeddings = embeddings.astype(np.float32)
    with run.update() as up:
        up.write_array(f"timelines/{layer}/{method}.npy", embeddings)
        up.change(lambda m: m.setdefault("timelines", {}).setdefault(layer, {}).__setitem__(method, meta))
    return Timeline(layer, method, embeddings, meta)


def spread(embedding: np.ndarray) -> np.ndarray:
    """``embedding`` centred and scaled to unit standard deviation: t-SNE's scale is arbitrary, so how far points
    moved between two t-SNE embeddings is measured on this."""
    centred = np.asarray(embedding, np.float64) - np.mean(embedding, axis=0)
    return centred / max(float(centred.std()), 1e-12)


def chained_tsne(run: Run, layer: str, random_state: int = 0, progress: ProgressFn = no_progress) -> Timeline:
    """t-SNE of ``layer`` at each snapshot, each started from the previous snapshot's embedding (openTSNE; the first
    from PCA), so a point moves only where its neighbours changed; stored in the Run. Its input at each snapshot is
    what the layer's t-SNE takes there (``projections.compute``: up to 100 values whole, else 50 PCA scores). Per
    snapshot, besides its quality, ``displacement`` is how far the images moved from the snapshot before (on the
    embeddings scaled to unit spread, ``spread``)."""
    from layerscope.memory import memory_budget
    from layerscope.projections.compute import _method_input
    from layerscope.projections.tsne import TSNE

    _check(run, layer, "tsne")
    start = time.perf_counter()
    budget = memory_budget()
    embeddings: list[np.ndarray] = []
    for k in range(len(run.snapshots)):
        snapshot = run.snapshot(k)

        def report(task: str, done: int, total: int, k: int = k) -> None:
            progress(f"t-sne of {layer} at snapshot {k}", done, total)

        x, _ = _method_input(snapshot, layer, "cpu", no_progress, budget)
        init: str | np.ndarray = embeddings[-1] if embeddings else "pca"
        embeddings.append(TSNE(random_state=random_state, progress=report, initialization=init).fit_transform(x))
    per_snapshot = _figures(run, layer, embeddings, random_state, budget)
    alignment = "each snapshot's t-SNE started from the previous one's embedding"
    return _store(run, layer, "tsne", np.stack(embeddings), per_snapshot, alignment, start)


def _figures(
    run: Run, layer: str, embeddings: list[np.ndarray], random_state: int, budget: MemoryBudget
) -> list[dict[str, Any]]:
    """Per snapshot: its step and test accuracy, its embedding's quality, and how far the images moved from the
    snapshot before (on the embeddings scaled to unit spread)."""
    from layerscope.projections.compute import _quality

    figures = []
    for k, entry in enumerate(run.snapshots):
        quality = _quality(run.snapshot(k), layer, embeddings[k], None, random_state, budget)
        moved = {} if k == 0 else {"displacement": _displacement(spread(embeddings[k]), spread(embeddings[k - 1]))}
        figures.append(
            {key: entry.get(key) for key in ("index", "step", "epoch", "test_accuracy")}
            | {key: quality[key] for key in ("knn_accuracy", "trustworthiness")}
            | moved
        )
    return figures


def aligned_umap(run: Run, layer: str, random_state: int = 0, progress: ProgressFn = no_progress) -> Timeline:
    """umap-learn's ``AlignedUMAP`` of ``layer`` over all snapshots at once, every image related to itself from one
    snapshot to the next; stored in the Run. Inputs and figures as ``chained_tsne``'s."""
    import warnings

    from layerscope.memory import memory_budget
    from layerscope.projections.compute import _method_input

    _check(run, layer, "umap")
    start = time.perf_counter()
    entries = run.snapshots
    budget = memory_budget()
    task = f"aligned umap of {layer}"
    progress(task, 0, len(entries) + 1)
    inputs = []
    for k in range(len(entries)):
        inputs.append(_method_input(run.snapshot(k), layer, "cpu", no_progress, budget)[0])
        progress(task, k + 1, len(entries) + 1)
    n = run.n_images
    same = {i: i for i in range(n)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap-learn's notices about random_state and numba, as in projections.umap
        from umap import AlignedUMAP

        fitted = AlignedUMAP(n_neighbors=min(15, n - 1), random_state=random_state).fit(
            [np.asarray(x, np.float32) for x in inputs], relations=[same] * (len(entries) - 1)
        )
    embeddings = [np.asarray(e, np.float64) for e in fitted.embeddings_]
    progress(task, len(entries) + 1, len(entries) + 1)
    per_snapshot = _figures(run, layer, embeddings, random_state, budget)
    alignment = "AlignedUMAP over all snapshots, each image related to itself"
    return _store(run, layer, "umap", np.stack(embeddings), per_snapshot, alignment, start)


# -- an animation for a report --------------------------------------------------------------------------------------

# the dashboard's class colours (plotly's T10), as RGB
_COLOURS = np.array(
    [
        [76, 120, 168], [245, 133, 24], [228, 87, 86], [114, 183, 178], [84, 162, 75],
        [238, 202, 59], [178, 121, 162], [255, 157, 166], [157, 117, 93], [186, 176, 172],
    ],
    dtype=np.uint8,
)  # fmt: skip


def _frame(
    line: Timeline, k: int, points: np.ndarray, colours: np.ndarray, order: np.ndarray, size: int, frame: Any
) -> Any:
    """One picture: ``points`` (the images' positions, snapshot ``k`` or between two) coloured by true class on the
    frame of the whole timeline (``frame``: low, scale, margin), snapshot ``k``'s step and test accuracy above."""
    from PIL import Image, ImageDraw

    low, scale, margin = frame
    canvas = np.full((size, size, 3), 255, np.uint8)
    xy = (points[order] - low) * scale + margin
    cols = np.clip(xy[:, 0].astype(int), 0, size - 2)
    rows = np.clip((size - 1 - xy[:, 1]).astype(int), 0, size - 2)
    for dy in (0, 1):
        for dx in (0, 1):
            canvas[rows + dy, cols + dx] = colours[order]
    image = Image.fromarray(canvas)
    entry = line.meta["snapshots"][k]
    accuracy = entry.get("test_accuracy")
    text = f"{line.layer}  |  step {entry['step']:,} (epoch {entry['epoch']:.2f})"
    if accuracy is not None:
        text += f"  |  test accuracy {accuracy:.3f}"
    ImageDraw.Draw(image).text((margin, 2), text, fill=(20, 20, 20))
    return image


def _setting(run: Run, line: Timeline, size: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """(colours, drawing order, frame) shared by every picture of an animation."""
    labels = np.asarray(run.labels)
    colours = _COLOURS[labels % len(_COLOURS)]
    points = line.embeddings
    low, high = np.nanmin(points, axis=(0, 1)), np.nanmax(points, axis=(0, 1))
    margin = 12
    scale = (size - 2 * margin) / np.maximum(high - low, 1e-9)
    order = np.random.default_rng(0).permutation(len(labels))  # no class always drawn on top
    return colours, order, (low, scale, margin)


def render(run: Run, line: Timeline, out: str | Path, size: int = 480, frame_ms: int = 700) -> Path:
    """The timeline as an animation for a report: an animated GIF (``out`` ending in .gif) or an H.264 video (.mp4,
    which needs PyAV: ``pip install 'layerscope[video]'``). Written whole or not at all."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise LayerscopeError(f"{out} is neither a .gif nor an .mp4 file; the animation is written as one of those.")
    return render_gif(run, line, out, size, frame_ms) if suffix == ".gif" else render_video(run, line, out, size)


def render_gif(run: Run, line: Timeline, out: str | Path, size: int = 480, frame_ms: int = 700) -> Path:
    """The timeline as an animated GIF: a picture per snapshot, points coloured by true class on one fixed frame (the
    extent of all snapshots), its step and test accuracy in the corner."""
    from PIL import Image

    colours, order, frame = _setting(run, line, size)
    frames = [
        _frame(line, k, line.embeddings[k], colours, order, size, frame).convert("P", palette=Image.Palette.ADAPTIVE)
        for k in range(len(line.embeddings))
    ]
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * 3]  # the trained network stays a while
    return _written(
        Path(out),
        lambda partial: frames[0].save(
            partial, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
        ),
    )


def render_video(run: Run, line: Timeline, out: str | Path, size: int = 480, fps: int = 24) -> Path:
    """The timeline as an H.264 video (PyAV): the points move from each snapshot to the next in half a second (eased,
    as the dashboard moves them), each snapshot held half a second, the trained network two."""
    try:
        import av
    except ImportError:
        raise LayerscopeError(
            "writing an .mp4 needs PyAV: pip install 'layerscope[video]' (or write a .gif)."
        ) from None
    colours, order, frame = _setting(run, line, size)
    points = line.embeddings.astype(np.float64)
    moving, holding = fps // 2, fps // 2

    def pictures() -> Any:
        for k in range(len(points)):
            if k > 0:
                for step in range(1, moving):
                    t = step / moving
                    eased = 2 * t * t if t < 0.5 else 1 - (-2 * t + 2) ** 2 / 2
                    yield _frame(
                        line, k, points[k - 1] + (points[k] - points[k - 1]) * eased, colours, order, size, frame
                    )
            still = _frame(line, k, points[k], colours, order, size, frame)
            for _ in range(holding if k < len(points) - 1 else 4 * holding):
                yield still

    def write(partial: Path) -> None:
        with av.open(str(partial), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            for picture in pictures():
                for packet in stream.encode(av.VideoFrame.from_image(picture)):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    return _written(Path(out), write)


def _written(out: Path, write: Any) -> Path:
    """``write(partial)`` a file beside ``out``, then moved onto it: ``out`` is whole or not there."""
    partial = out.with_name(f".{out.name}.partial{out.suffix}")
    try:
        write(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out
