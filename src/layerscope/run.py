"""The Run directory: everything layerscope knows about one model on one dataset, and the single source of truth the
dashboard reads.

    manifest.json            format version, dataset, model spec, layers and shapes, metrics, history, what is computed
    weights.safetensors      the trained weights
    images.npy               (N, C, H, W) uint8, train split first; or, in a Run that references its images where
                             they are (``--images reference``, the default past 1 GiB of pixels; see
                             ``layerscope.data.sources``):
    images.json              where they are: IDX shards (file, offset, first image, count) or image files, with
                             each file's SHA-256, checked as they are read
    images.paths.npy  images.sha256.npy   (N,) bytes each image file's path, (N, 32) uint8 its SHA-256 (files)
    thumbnails.npy           (N, C, h, w) uint8, every image at most 32 pixels a side (the dashboard's gallery)
    class_means.npy          (K, C, H, W) uint8, each class's mean image
    labels.npy  split.npy    (N,) int64 class indices, (N,) uint8 0 = train / 1 = test
    probs.npy                (N, K) float32 softmax probabilities
    activations/<layer>.npy               (N, D) float32, dense layers whole
    activations/<layer>.mean.npy|max.npy  (N, C) float32, conv layers: per-channel spatial mean and max
    activations/<layer>.cls.npy           (N, D) float32, token layers with a class token: its features
    features/<layer>.pca.npy              (N, 50) float32, leading PCA scores (input to t-SNE, UMAP, LDA, Isomap)
    features/<layer>.pca_components.npy   (50, D) float32, and .pca_mean.npy (D,): the fitted map, for new inputs
    projections/<layer>/<method>.npy      (N, 2) float32
    neighbors/<layer>.indices.npy         (N, k) int32, each image's k nearest others in what the layer's t-SNE and
    neighbors/<layer>.distances.npy       UMAP take (projections/neighbors.py); (N, k) float32 their distances
    topk/<layer>.values.npy|indices.npy   (U, k) float32 descending / int64: the k images activating each unit most
    topk/<layer>.positions.npy            (U, k, 2) int32 (y, x) of each conv channel's maximum (see topk.py)
    stats/<layer>.sum.npy|xtx.npy         (D,) and (D, D) float64: a dense layer's column sums and X^T X over every
                                          image, taken on the capture pass, for its exact PCA in one pass (stats.py)
    stats/<layer>.class_sum.npy           (K, D) float64 each class's column sums (the class means: / class_counts)
    timelines/<layer>/pca.npy             (S, N, 2) float32, the layer's PCA at each snapshot, aligned (timeline.py)
    snapshots/NN/                         the network as it was at snapshot NN of training, a Run of its own (its
                                          images hard links to these); the manifest's ``snapshots`` lists them

A Run imported from an NN_data.json file (``layerscope.interop``) has no model ("model": null in the manifest) and
may also hold:

    names.npy                (N,) the file's instance names
    aggregates/images.npy    (M, C, H, W) uint8: instances that stand for a group, such as the per-digit averages
    aggregates/activations/<layer>.npy, aggregates/projections/<layer>.npy   their values, NaN where the file has none

Arrays are opened memory-mapped. Every file is written under a temporary name and renamed into place, and a new Run
is built in a temporary directory that is renamed only once complete, so an interrupted command never leaves a
broken Run and never damages an existing one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from layerscope.atomic import atomic_write, pid_alive, remove_leftovers, temp_prefix
from layerscope.cache import default_cache_dir
from layerscope.errors import LayerNotFoundError, RunError
from layerscope.graph import ModelGraph, chain_graph
from layerscope.layers import TOKEN_SOURCES, LayerInfo
from layerscope.manifest import check_manifest, check_relpath
from layerscope.progress import ProgressFn, no_progress

if TYPE_CHECKING:  # torch is imported when a model or a dataset is asked for, so reading a Run starts in a moment
    import torch
    from torch import nn

    from layerscope.data.datasets import Dataset
    from layerscope.data.sources import ImageArray
    from layerscope.topk import TopK

log = logging.getLogger("layerscope")

__all__ = [
    "FORMAT_VERSION",
    "Aggregates",
    "Run",
    "Update",
    "dataset_manifest",
    "now",
    "open_run",
    "recover",
    "save_weights",
    "staging_dir",
    "write_array",
    "write_dataset_arrays",
    "write_json",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
_VERSIONED = re.compile(r"(?P<stem>.+)\.g(?P<generation>[0-9]+)(?P<suffix>\.npy)")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def write_array(path: Path, array: np.ndarray) -> None:
    """Write a ``.npy`` file atomically."""
    with atomic_write(path) as f:
        np.save(f, array)


def save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def _old_runs(out: Path) -> list[Path]:
    """What an interrupted ``--force`` replacement left: ``.<name>.old-<pid>`` beside ``out``."""
    return sorted(out.parent.glob(f".{out.name}.old-*"))


def recover(out: str | os.PathLike[str]) -> Path | None:
    """Tidy what a killed command left around the Run at ``out``: temporary staging directories of dead processes
    go, and when a ``--force`` replacement was killed between its two renames (the old Run moved aside, the new one
    not yet in place), the old Run is moved back. Returns the path of a Run moved back, if any."""
    out = Path(out)
    remove_leftovers(out.parent, out.name)
    restored = None
    for old in _old_runs(out):
        pid = old.name.rpartition("-")[2]
        if pid.isdigit() and pid_alive(int(pid)) and int(pid) != os.getpid():
            continue  # a replacement in progress
        try:
            if not out.exists() and (old / MANIFEST).is_file():
                os.replace(old, out)
                restored = out
            else:
                shutil.rmtree(old)
        except OSError:
            pass
    return restored


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Build a new Run in a temporary sibling directory and move it to ``out`` only when the block succeeds.

    An existing ``out`` is refused unless ``force``; with ``force`` it is replaced only after the new Run is complete.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if recover(out) is not None:
        log.warning("%s: moved back the Run that an interrupted --force replacement had moved aside.", out)
    if out.exists() and not force:
        raise RunError(f"{out} already exists; pass --force to replace it, or choose another --out.")
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=temp_prefix(out.name), suffix=".tmp"))
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Aggregates:
    """Instances that stand for a group of images rather than one image (an NN_data.json file's per-digit averages),
    kept as the file gave them. ``labels[i]`` is the class an aggregate stands for, or -1 when the file does not say."""

    names: list[str]
    labels: np.ndarray  # (M,) int64
    images: np.ndarray  # (M, C, H, W) uint8
    activations: dict[str, np.ndarray]  # layer -> (M, D) float32, NaN rows where the file has none
    projections: dict[str, np.ndarray]  # layer -> (M, 2) float32, NaN rows where the file has none

    def of_class(self, k: int) -> int | None:
        """The position of the one aggregate that stands for class ``k``, if there is exactly one."""
        hits = np.flatnonzero(self.labels == k)
        return int(hits[0]) if len(hits) == 1 else None


class _WriterLock:
    """One writer at a time per Run: an advisory ``flock`` on ``<run>/.lock`` between processes, and a re-entrant
    lock between the threads of this process (``flock`` would not stop a second thread holding its own descriptor
    from waiting on the first forever once the same thread re-enters)."""

    _locks: dict[str, _WriterLock] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self.threads = threading.RLock()
        self.depth = 0
        self.issued = 0  # the last generation number handed to an update, so nested updates never share one
        self.file: IO[str] | None = None

    @classmethod
    def of(cls, run_path: Path) -> _WriterLock:
        key = os.path.realpath(run_path)
        with cls._guard:
            return cls._locks.setdefault(key, cls(Path(key) / LOCK))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self.threads:
            if self.depth == 0:
                self._acquire()
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if self.depth == 0 and self.file is not None:
                    fcntl.flock(self.file, fcntl.LOCK_UN)
                    self.file.close()
                    self.file = None

    def try_hold(self) -> bool:
        """Take the lock if nobody holds it (for tidying up); ``release()`` gives it back."""
        if not self.threads.acquire(blocking=False):
            return False
        if self.depth > 0:  # this thread is inside an update: its staged files are not garbage
            self.threads.release()
            return False
        if self.depth == 0:
            try:
                f = open(self.path, "a+")
            except OSError:
                self.threads.release()
                return False
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                self.threads.release()
                return False
            self.file = f
        self.depth += 1
        return True

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None
        self.threads.release()

    def _acquire(self) -> None:
        try:
            f = open(self.path, "a+")
        except OSError as e:
            raise RunError(
                f"{self.path.parent}: cannot write to this Run ({e.strerror}); copy it somewhere writable."
            ) from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            log.warning("%s: waiting for %s, which is writing to this Run.", self.path.parent, holder)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"layerscope process {os.getpid()}")
        f.flush()
        self.file = f


class Update:
    """What one ``Run.update()`` block adds: arrays, written under new generation-numbered names, and changes to
    the manifest. Nothing is visible to readers until the manifest, written last, names the new files."""

    def __init__(self, run: Run, generation: int) -> None:
        self.run = run
        self.generation = generation
        self.files: dict[str, str] = {}
        self.removed: list[str] = []
        self.changes: list[Callable[[dict[str, Any]], None]] = []

    def write_array(self, relpath: str, array: np.ndarray) -> None:
        """Stage ``array`` as the Run's ``relpath`` (``projections/fc1/tsne.npy``)."""
        if not check_relpath(relpath) or not relpath.endswith(".npy"):
            raise RunError(f"{relpath!r} is not a path a Run stores arrays under.")
        actual = relpath if self.run.staged else f"{relpath[: -len('.npy')]}.g{self.generation}.npy"
        write_array(self.run.path / actual, array)
        if actual != relpath:
            self.files[relpath] = actual

    def adopt(self, relpath: str, path: Path) -> None:
        """Stage the ``.npy`` file at ``path`` (written elsewhere in the Run's directory, e.g. by the workers of a
        capture) as the Run's ``relpath``: it is moved under the update's name for it, and its header checked."""
        if not check_relpath(relpath) or not relpath.endswith(".npy"):
            raise RunError(f"{relpath!r} is not a path a Run stores arrays under.")
        _check_npy(path, relpath, self.run.path)
        actual = relpath if self.run.staged else f"{relpath[: -len('.npy')]}.g{self.generation}.npy"
        (self.run.path / actual).parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.run.path / actual)
        if actual != relpath:
            self.files[relpath] = actual

    def remove(self, relpath: str) -> None:
        """Remove the Run's ``relpath`` (an array that no longer holds) once the update commits."""
        if not check_relpath(relpath):
            raise RunError(f"{relpath!r} is not a path a Run stores arrays under.")
        self.removed.append(relpath)

    def change(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Change the manifest (a function of the manifest, applied to the newest one when the update commits)."""
        self.changes.append(change)


class Run:
    """A Run directory, opened read-only; ``update()`` adds results, all at once or not at all.

    ``trust_model_code``: whether ``load_model`` may import the model's class when it is not layerscope's own (see
    ``layerscope.models.loading``: opening a Run from someone else must not run their code unless you say so)."""

    def __init__(self, path: str | os.PathLike[str], *, trust_model_code: bool = False, staged: bool = False) -> None:
        self.path = Path(path)
        self.trust_model_code = trust_model_code
        # a Run still being built in its staging directory (``staging_dir``), which nobody else can see yet:
        # updates write the arrays' own names, since a killed build leaves no Run at all
        self.staged = staged
        if not (self.path / MANIFEST).is_file() and recover(self.path) is not None:
            log.warning("%s: moved back the Run that an interrupted --force replacement had moved aside.", self.path)
        self.manifest = self._read_manifest()
        self.layers = [LayerInfo.from_dict(d) for d in self.manifest["layers"]]
        self._source: ImageArray | None = None
        self._tidy()

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def reopen(self) -> Run:
        """The same Run opened again (its newest manifest), with the same trust in its model code."""
        return Run(self.path, trust_model_code=self.trust_model_code)

    def _read_manifest(self) -> dict[str, Any]:
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            if self.path.is_dir():
                raise RunError(
                    f"{self.path} is not a layerscope Run (no {MANIFEST}); create one with 'layerscope train'."
                )
            raise RunError(f"{self.path}: no such Run; create one with 'layerscope train --out {self.path}'.")
        try:
            if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
                raise RunError(f"{manifest_path} is over {MAX_MANIFEST_BYTES >> 20} MiB; it is not a Run's manifest.")
            manifest = json.loads(manifest_path.read_bytes(), parse_constant=_no_constant)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RunError(
                f"{manifest_path} is not valid JSON ({reason[:100]}); re-create the Run with 'layerscope train'."
            ) from None
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            raise RunError(f"{manifest_path} has no format_version; it was not written by layerscope.")
        if version > FORMAT_VERSION:
            raise RunError(
                f"{self.path} was written by a newer layerscope (Run format {version}; this version reads up to "
                f"{FORMAT_VERSION}). Upgrade: pip install -U layerscope."
            )
        return check_manifest(manifest, str(manifest_path))

    @property
    def generation(self) -> int:
        """How many updates the Run has had: each ``update()`` commits the next one."""
        return int(self.manifest.get("generation", 0))

    def refresh(self) -> bool:
        """Read the manifest again if another process (or thread) committed an update; True if it changed."""
        manifest = self._read_manifest()
        if manifest.get("generation", 0) == self.generation and manifest == self.manifest:
            return False
        self.manifest = manifest
        self.layers = [LayerInfo.from_dict(d) for d in manifest["layers"]]
        return True

    # -- layers ---------------------------------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        return [info.name for info in self.layers]

    def layer(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise LayerNotFoundError(
            f"unknown layer {shown}; this Run has {', '.join(self.layer_names)}. "
            f"Hint: 'layerscope layers {self.path}' lists them."
        )

    # -- arrays ---------------------------------------------------------------------------------------------------
    def file(self, relpath: str) -> Path:
        """Where the array the Run calls ``relpath`` is: the file the manifest's last update wrote for it, else the
        name itself (what ``train`` wrote)."""
        return self.path / self.manifest.get("files", {}).get(relpath, relpath)

    def has_array(self, relpath: str) -> bool:
        return self.file(relpath).is_file()

    def array(
        self, relpath: str, shape: Sequence[int | None] | None = None, kinds: str = "f", mmap: bool = True
    ) -> np.ndarray:
        """The array the Run stores as ``relpath``, memory-mapped, once its header is checked: a dtype of one of
        ``kinds`` (numpy kind letters: "f" float, "iu" integer, "U" text; never objects), ``shape`` where given
        (None: any length on that axis), and a file as long as the header says."""
        path = self.file(relpath)
        if not path.is_file() and self.refresh():  # an update committed since we read the manifest
            path = self.file(relpath)
        if not path.is_file():
            raise RunError(f"{self.path}: {relpath} is missing; the Run is incomplete, re-create it.")
        found_shape, dtype = _check_npy(path, relpath, self.path)
        ok = dtype.kind in kinds and not dtype.hasobject
        if shape is not None:
            ok = ok and len(found_shape) == len(shape)
            ok = ok and all(want is None or want == got for want, got in zip(shape, found_shape, strict=False))
        if not ok:
            wanted = "x".join("?" if s is None else str(s) for s in shape) if shape is not None else "any shape"
            raise RunError(
                f"{self.path}: {relpath} holds {'x'.join(map(str, found_shape)) or 'a scalar'} {dtype} where the "
                f"manifest says {wanted} of kind {kinds!r}; the Run is damaged, re-create it."
            )
        if mmap and found_shape and all(found_shape):
            return np.load(path, mmap_mode="r", allow_pickle=False)
        return np.load(path, allow_pickle=False)

    @property
    def n_images(self) -> int:
        return int(self.manifest["dataset"]["n_images"])

    @property
    def images(self) -> ImageArray:
        """(N, C, H, W) uint8: ``images.npy`` memory-mapped, or the source a referencing Run reads its images from
        (indexed the same way; its files checked when first asked for). Read slices or batches of it: ``images[:]``
        of a referencing Run reads every image file."""
        if self._source is None:
            from layerscope.data.sources import IMAGES_JSON, load_source

            shape = self.manifest["dataset"]["image_shape"]
            if (self.path / IMAGES_JSON).is_file():
                self._source = load_source(self.path, shape, self.n_images, self.array)
            else:
                return self.array("images.npy", (self.n_images, *shape), "u")
        return self._source

    @property
    def references_images(self) -> bool:
        """Whether the Run reads its images where they are (``images.json``) rather than from a copy."""
        from layerscope.data.sources import IMAGES_JSON

        return (self.path / IMAGES_JSON).is_file()

    @property
    def thumbnails(self) -> np.ndarray | None:
        """(N, C, h, w) uint8 small copies of the images, at most 32 pixels a side, that a referencing Run keeps for
        the dashboard's gallery (reading an image file for each would be slow); None in a Run that copies them."""
        if not self.has_array("thumbnails.npy"):
            return None
        c = int(self.manifest["dataset"]["image_shape"][0])
        return self.array("thumbnails.npy", (self.n_images, c, None, None), "u")

    def class_means(self) -> np.ndarray:
        """(K, C, H, W) uint8 each class's mean image, zeros for a class without images: a referencing Run's stored
        ones (computing them would read every image file again), else computed from the images."""
        shape = (len(self.class_names), *self.manifest["dataset"]["image_shape"])
        if self.has_array("class_means.npy"):
            return np.array(self.array("class_means.npy", shape, "u"))
        from layerscope.analysis import class_mean_images

        return class_mean_images(self.images, np.asarray(self.labels), len(self.class_names))

    @property
    def labels(self) -> np.ndarray:
        labels = self.array("labels.npy", (self.n_images,), "iu")
        return labels

    @property
    def split(self) -> np.ndarray:
        return self.array("split.npy", (self.n_images,), "iu")

    @property
    def probs(self) -> np.ndarray:
        return self.array("probs.npy", (self.n_images, len(self.class_names)))

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["dataset"]["class_names"])

    def activations(self, layer: str) -> np.ndarray:
        """(N, D) activations of a dense layer."""
        info = self.layer(layer)
        if info.kind != "dense":
            raise RunError(
                f"layer {layer!r} is {info.kind}; only dense layers are stored whole (conv: channel_summary)."
            )
        return self.array(f"activations/{layer}.npy", (self.n_images, info.dims))

    def channel_summary(self, layer: str, stat: str = "mean") -> np.ndarray:
        """(N, C) per-channel spatial mean or max of a conv layer; of a token layer with a class token also "cls",
        the class token's features."""
        info = self.layer(layer)
        stats = ("mean", "max", "cls") if info.tokens else ("mean", "max")
        if info.kind != "conv" or stat not in stats:
            raise RunError(
                f"channel summaries exist for conv layers, stat {' or '.join(map(repr, stats))} "
                f"(got {layer!r}, {stat!r})."
            )
        return self.array(f"activations/{layer}.{stat}.npy", (self.n_images, info.shape[0]))

    def token_features(self, layer: str) -> np.ndarray:
        """(N, D) what a token layer's projections are computed from (`LayerInfo.token_features`): its class token's
        features, or its patch tokens' mean."""
        source = self.layer(layer).token_features
        if source is None:
            raise RunError(f"layer {layer!r} is not a transformer's token layer.")
        return self.channel_summary(layer, source)

    def features(self, layer: str, part: str = "pca") -> np.ndarray:
        """The fitted PCA of a layer: ``"pca"`` (N, k) leading scores, ``"pca_components"`` (k, D) and
        ``"pca_mean"`` (D,), the map that places new inputs."""
        dims = self.layer(layer).projected_dims
        shapes: dict[str, tuple[int | None, ...]] = {
            "pca": (self.n_images, None),
            "pca_components": (None, dims),
            "pca_mean": (dims,),
        }
        if part not in shapes:
            raise RunError(f"unknown feature array {part!r}; a Run keeps pca, pca_components and pca_mean.")
        return self.array(f"features/{layer}.{part}.npy", shapes[part])

    def has_features(self, layer: str, part: str = "pca") -> bool:
        return self.has_array(f"features/{layer}.{part}.npy")

    def neighbor_meta(self, layer: str) -> dict[str, Any] | None:
        """How the stored nearest-neighbour graph of ``layer`` was found (method, k, its input), if there is one."""
        meta: dict[str, Any] | None = (self.manifest.get("neighbors") or {}).get(layer)
        return meta

    def neighbors(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """The stored nearest-neighbour graph of ``layer``: (N, k) int32 indices and (N, k) float32 distances."""
        k = int((self.neighbor_meta(layer) or {}).get("k", 0)) or None
        indices = self.array(f"neighbors/{layer}.indices.npy", (self.n_images, k), kinds="i")
        distances = self.array(f"neighbors/{layer}.distances.npy", (self.n_images, k))
        return indices, distances

    def dataset(self) -> Dataset:
        """The Run's images and labels as a Dataset (memory-mapped)."""
        from layerscope.data.datasets import Dataset

        d = self.manifest["dataset"]
        labels = self.labels
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(self.class_names):
            raise RunError(
                f"{self.path}: labels.npy holds classes outside 0..{len(self.class_names) - 1}; the Run is damaged."
            )
        return Dataset(
            name=str(d.get("name", self.path.name)),  # optional in a manifest (manifest.py): the Run's folder then
            images=self.images,
            labels=labels,
            split=self.split,
            class_names=tuple(d["class_names"]),
            source=d.get("source", ""),
        )

    @property
    def names(self) -> np.ndarray:
        """(N,) the name of each image: the instance names of an imported file, else "train-12" / "test-3"."""
        if self.has_array("names.npy"):
            return self.array("names.npy", (self.n_images,), "U", mmap=False)
        split = np.asarray(self.split)
        return np.char.add(np.where(split == 0, "train-", "test-"), np.arange(len(split)).astype(str))

    @property
    def aggregates(self) -> Aggregates | None:
        """The file's aggregate instances (per-digit averages), for Runs imported from NN_data.json."""
        listed = self.manifest.get("aggregates")
        if not listed:
            return None
        m = len(listed)
        layers = self.manifest.get("aggregate_layers", {})
        return Aggregates(
            names=[str(a["name"]) for a in listed],
            labels=np.array([-1 if a.get("label") is None else int(a["label"]) for a in listed], np.int64),
            images=np.asarray(self.array("aggregates/images.npy", (m, *self.manifest["dataset"]["image_shape"]), "u")),
            activations={
                layer: np.asarray(
                    self.array(f"aggregates/activations/{layer}.npy", (m, self.layer(layer).dims), mmap=False)
                )
                for layer in layers.get("activations", [])
            },
            projections={
                layer: np.asarray(self.array(f"aggregates/projections/{layer}.npy", (m, 2), mmap=False))
                for layer in layers.get("projections", [])
            },
        )

    @property
    def has_model(self) -> bool:
        """False for a Run imported from an NN_data.json file: it has the file's values but no weights."""
        return self.manifest.get("model") is not None

    def check_model_code(self) -> None:
        """Raise the one-line refusal ``load_model`` would give if the model's code is not trusted; nothing runs."""
        if self.has_model:
            from layerscope.trust import check_trusted

            check_trusted(self.manifest["model"], self.trust_model_code)

    def load_model(self, device: str | torch.device = "cpu") -> nn.Module:
        if not self.has_model:
            source = self.manifest.get("source", {}).get("file", "a file")
            raise RunError(
                f"{self.path} has no model (it was imported from {source}); feature maps, top images and "
                "feature visualisation need one: "
                "build a Run with 'layerscope import-model' or 'layerscope train'."
            )
        from layerscope.models.loading import build_model, load_weights

        model = build_model(self.manifest["model"], trusted=self.trust_model_code)
        load_weights(model, self.path / "weights.safetensors")
        if self.graph.method == "fx":  # the nodes the Run was captured from, by name (layer1.0.add)
            from layerscope.pipeline import graph_model

            include = self.manifest["model"].get("layer_patterns", {}).get("include")
            traced, graph = graph_model(model, self.manifest["dataset"]["image_shape"], include)
            missing = [name for name in self.layer_names if name not in graph]
            if graph.method != "fx" or missing:
                why = graph.reason or f"it has no node {missing[0]!r}"
                raise RunError(
                    f"{self.path}: the model's code no longer computes the graph this Run was captured from ({why}); "
                    "re-create the Run."
                )
            model = traced
        return model.to(device).eval()

    def set_token_source(self, layer: str, source: str) -> None:
        """Project the token layer ``layer`` from ``source`` from now on: "cls" (its class token's features) or
        "mean" (its patch tokens' mean). Its projections and fitted PCA, computed from the other, are removed."""
        info = self.layer(layer)
        if info.tokens is None:
            raise RunError(
                f"layer {layer!r} is not a transformer's token layer; only those are projected from a class token "
                "or the token mean."
            )
        if source not in TOKEN_SOURCES or (source == "cls" and not info.tokens):
            allowed = "'mean'" if not info.tokens else "'cls' or 'mean'"
            raise RunError(f"{layer!r} can be projected from {allowed}, not {source!r}.")
        if info.token_features == source:
            return
        stale = [
            *(f"features/{layer}.{part}.npy" for part in ("pca", "pca_components", "pca_mean")),
            *(f"projections/{layer}/{method}.npy" for method in self.manifest.get("projections", {}).get(layer, {})),
            *(f"neighbors/{layer}.{part}.npy" for part in ("indices", "distances")),
        ]

        def change(manifest: dict[str, Any]) -> None:
            for entry in manifest["layers"]:
                if entry["name"] == layer:
                    entry["tokens"]["project_from"] = source
            manifest.get("projections", {}).pop(layer, None)

        with self.update() as up:
            for relpath in stale:
                up.remove(relpath)
            up.change(change)

    @property
    def graph(self) -> ModelGraph:
        """The model's graph as the Run recorded it; a chain of its layers for a Run written before graphs were
        traced, or imported from a file."""
        recorded = self.manifest.get("graph")
        if recorded:
            return ModelGraph.from_dict(recorded)
        return chain_graph(self.layers, "layers", "this Run records its layers only")

    # -- projections ----------------------------------------------------------------------------------------------
    def projection_meta(self, layer: str, method: str) -> dict[str, Any] | None:
        meta = self.manifest.get("projections", {}).get(layer, {}).get(method)
        return dict(meta) if meta is not None else None

    def projection(self, layer: str, method: str) -> np.ndarray:
        self.layer(layer)
        if self.projection_meta(layer, method) is None:
            raise RunError(
                f"no {method} projection of {layer!r} in {self.path}; compute it with "
                f"'layerscope project {self.path} --layer {layer} --method {method}'."
            )
        return self.array(f"projections/{layer}/{method}.npy", (self.n_images, 2))

    # -- top-k images ---------------------------------------------------------------------------------------------
    def topk(self, layer: str) -> TopK:
        """The k dataset images that activate each unit of ``layer`` most (see ``layerscope.topk``)."""
        from layerscope.topk import TopK

        info = self.layer(layer)
        if info.kind == "image":
            raise RunError("the input has no units to rank images by; choose a conv or dense layer.")
        if layer not in (self.manifest.get("topk") or {}).get("layers", []):
            raise RunError(
                f"no top-k images of {layer!r} in {self.path}; compute them with "
                f"'layerscope topk {self.path} --layer {layer} --unit 0'."
            )
        units = info.shape[0] if info.kind == "conv" else info.dims
        values = np.array(self.array(f"topk/{layer}.values.npy", (units, None)))
        indices = np.array(self.array(f"topk/{layer}.indices.npy", values.shape, "iu"))
        if indices.size and not 0 <= int(indices.min()) <= int(indices.max()) < self.n_images:
            raise RunError(f"{self.path}: topk/{layer}.indices.npy names images the Run does not have; re-create it.")
        positions = None
        if info.kind == "conv":
            positions = np.array(self.array(f"topk/{layer}.positions.npy", (*values.shape, 2), "iu"))
        return TopK(values=values, indices=indices, positions=positions)

    def layer_files(self, layer: str) -> list[str]:
        """The arrays the Run stores for ``layer``, by the names the Run calls them (``activations/conv1.mean.npy``,
        ``projections/conv1/pca.npy``, ...): its activations, fitted PCA, projections, top-k images, capture sums
        (`layerscope.stats`) and aggregates' values, those that are there (the input's values are ``images.npy``)."""
        info = self.layer(layer)
        names = {
            "image": ["images.npy"],  # the input's values are the images themselves
            "dense": [f"activations/{layer}.npy"],
            "conv": [f"activations/{layer}.{stat}.npy" for stat in ("mean", "max", "cls")],
        }
        candidates = [
            *names.get(info.kind, []),
            *(f"features/{layer}.{part}.npy" for part in ("pca", "pca_components", "pca_mean")),
            *(f"projections/{layer}/{method}.npy" for method in self.manifest.get("projections", {}).get(layer, {})),
            *(f"neighbors/{layer}.{part}.npy" for part in ("indices", "distances")),
            *(f"topk/{layer}.{part}.npy" for part in ("values", "indices", "positions")),
            *(f"stats/{layer}.{part}.npy" for part in ("sum", "xtx", "class_sum")),
            *(f"timelines/{layer}/{method}.npy" for method in (self.manifest.get("timelines") or {}).get(layer, {})),
            f"aggregates/activations/{layer}.npy",
            f"aggregates/projections/{layer}.npy",
        ]
        return [relpath for relpath in candidates if self.has_array(relpath)]

    def disk_usage(self) -> dict[str, Any]:
        """Bytes on disk: ``{"layers": {layer: {relpath: bytes}}, "other": {path: bytes}, "snapshots": {path:
        bytes}, "total": bytes}``, where "other" is every other file of the directory (images, labels, weights, the
        manifest) but the snapshots' (each snapshot's folder in all), and "total" all of them. Sizes are apparent
        sizes (``st_size``); a sparse file counts whole, a file linked twice (a snapshot's images) once."""
        files: dict[Path, int] = {}
        seen: set[tuple[int, int]] = set()
        snapshots: dict[str, int] = {}
        for path in sorted(self.path.rglob("*"), key=lambda p: (p.parts[len(self.path.parts)] == "snapshots", p)):
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink():
                    stat = path.stat()
                    if (stat.st_dev, stat.st_ino) in seen:
                        continue
                    seen.add((stat.st_dev, stat.st_ino))
                    parts = path.relative_to(self.path).parts
                    if parts[0] == "snapshots" and len(parts) > 2:
                        folder = "/".join(parts[:2])
                        snapshots[folder] = snapshots.get(folder, 0) + stat.st_size
                        continue
                    files[path] = stat.st_size
        layers: dict[str, dict[str, int]] = {}
        claimed: set[Path] = set()
        for info in self.layers:
            entry = layers.setdefault(info.name, {})
            for relpath in self.layer_files(info.name):
                path = self.file(relpath)
                if path in files:
                    entry[relpath] = files[path]
                    claimed.add(path)
        other = {str(path.relative_to(self.path)): size for path, size in files.items() if path not in claimed}
        total = sum(files.values()) + sum(snapshots.values())
        return {"layers": layers, "other": other, "snapshots": snapshots, "total": total}

    @property
    def snapshots(self) -> list[dict[str, Any]]:
        """The snapshots training kept (``train --snapshots``), untrained first: index, step, epoch, test loss and
        accuracy, and ``path``, where its Run is ("." for the last: the Run itself). Empty without."""
        return [dict(entry) for entry in self.manifest.get("snapshots", [])]

    def snapshot(self, index: int) -> Run:
        """Snapshot ``index`` (negative counts from the last) as a Run: the network as it was at that step."""
        listed = self.snapshots
        if not listed:
            raise RunError(f"{self.path} has no snapshots; train with --snapshots K to keep some.")
        if not -len(listed) <= index < len(listed):
            raise RunError(f"snapshot {index} is out of range: {self.path} has snapshots 0 to {len(listed) - 1}.")
        where = listed[index]["path"]
        return self if where == "." else Run(self.path / where, trust_model_code=self.trust_model_code)

    def computed(self) -> dict[str, Any]:
        """What the Run holds, for ``info``: stored activations and projections per layer, layers with top-k."""
        stored = {info.name: info.to_dict()["stored"] for info in self.layers}
        projections = {layer: sorted(methods) for layer, methods in self.manifest.get("projections", {}).items()}
        topk = (self.manifest.get("topk") or {}).get("layers", [])
        return {"activations": stored, "projections": projections, "topk": list(topk)}

    # -- updating -------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def update(self) -> Iterator[Update]:
        """Add results to the Run, all at once or not at all::

            with run.update() as up:
                up.write_array("projections/fc1/tsne.npy", embedding)
                up.change(lambda m: m["projections"]["fc1"].update(tsne=meta))

        One writer at a time (other processes and threads wait for the Run's lock). Arrays are written under names
        of the next generation (``tsne.g7.npy``); the manifest, rewritten atomically last, names them and takes the
        generation number, so a reader sees either all of the update or none of it, and a killed update leaves only
        unnamed files that the next writer removes. Files the update replaced are removed after it commits."""
        lock = _WriterLock.of(self.path)
        with lock.held():
            lock.issued = max(lock.issued, int(self._read_manifest().get("generation", 0))) + 1
            up = Update(self, lock.issued)
            try:
                yield up
            except BaseException:
                for actual in up.files.values():
                    (self.path / actual).unlink(missing_ok=True)
                raise
            manifest = self._read_manifest()  # the block may have committed nested updates
            generation = max(up.generation, int(manifest.get("generation", 0)) + 1)
            files = dict(manifest.get("files", {}))
            replaced = [files.get(relpath, relpath) for relpath in [*up.files, *up.removed]]
            for relpath in up.removed:
                files.pop(relpath, None)
            files.update(up.files)
            for change in up.changes:
                change(manifest)
            if files:
                manifest["files"] = files
            manifest["generation"] = generation
            manifest["updated"] = now()
            write_json(self.path / MANIFEST, check_manifest(manifest, f"{self.path / MANIFEST} (update)"))
            self.manifest = manifest
            self.layers = [LayerInfo.from_dict(d) for d in manifest["layers"]]
            for old in replaced:
                if old not in files.values():
                    (self.path / old).unlink(missing_ok=True)

    def update_manifest(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Re-read, change and atomically rewrite the manifest, one writer at a time (an ``update()`` of one change)."""
        with self.update() as up:
            up.change(change)

    def _tidy(self) -> None:
        """Remove what killed writers left in the Run: temporary files of dead processes, and arrays of updates
        that never committed (generation-numbered files the manifest does not name). Only when no writer is busy,
        and silently skipped for a Run that cannot be written (shared read-only)."""
        remove_leftovers(self.path, recursive=True)
        lock = _WriterLock.of(self.path)
        if not os.access(self.path, os.W_OK) or not lock.try_hold():
            return
        try:
            named = set(self._read_manifest().get("files", {}).values())
            for path in self.path.glob("*/**/*.g*.npy"):
                relpath = path.relative_to(self.path).as_posix()
                if relpath.startswith("snapshots/"):
                    continue  # a snapshot is a Run of its own, which tidies itself
                if _VERSIONED.fullmatch(path.name) and relpath not in named:
                    path.unlink(missing_ok=True)
        except (OSError, RunError):
            pass
        finally:
            lock.release()


MAX_MANIFEST_BYTES = 64 << 20


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_npy(path: Path, relpath: str, run_path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """The (shape, dtype) a ``.npy`` header declares, once the header parses, declares no Python objects and the
    file holds exactly as many bytes as it says; else a one-line ``RunError`` (numpy would suggest unpickling, or fail
    with 'mmap length is greater than file size')."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"npy format {version}")
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except (OSError, ValueError, SyntaxError) as e:
        raise RunError(f"{run_path}: {relpath} is not a readable .npy array ({e}); the Run is damaged.") from None
    if dtype.hasobject:
        raise RunError(
            f"{run_path}: {relpath} holds Python objects, which layerscope never unpickles; the Run is damaged."
        )
    needed = math.prod(shape) * dtype.itemsize
    if size - offset != needed:
        raise RunError(
            f"{run_path}: {relpath} is {'truncated' if size - offset < needed else 'longer than its header says'} "
            f"({size - offset:,} of {needed:,} bytes); the Run is damaged, re-create it."
        )
    return tuple(int(s) for s in shape), dtype


def dataset_manifest(dataset: Dataset) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "source": dataset.source,
        "n_images": len(dataset),
        "n_train": int((dataset.split == 0).sum()),
        "n_test": int((dataset.split == 1).sum()),
        "image_shape": list(dataset.image_shape),
        "class_names": list(dataset.class_names),
        **{k: v for k, v in dataset.info.items() if v is not None},
    }


def write_dataset_arrays(directory: Path, dataset: Dataset, progress: ProgressFn = no_progress) -> None:
    """A new Run's images, labels and split: ``images.npy``, or where the images are (a dataset loaded with
    ``images="reference"``: ``layerscope.data.sources.write_reference``, one pass over them)."""
    from layerscope.data.sources import ImageSource, write_reference

    if isinstance(dataset.images, ImageSource):
        write_reference(directory, dataset.images, np.asarray(dataset.labels), dataset.num_classes, progress)
    else:
        write_array(directory / "images.npy", np.ascontiguousarray(dataset.images, dtype=np.uint8))
    write_array(directory / "labels.npy", np.asarray(dataset.labels, dtype=np.int64))
    write_array(directory / "split.npy", np.asarray(dataset.split, dtype=np.uint8))


def open_run(
    path: str | os.PathLike[str] | Run,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn = no_progress,
    trust_model_code: bool = False,
) -> Run:
    """A Run from what the user has: a Run, a Run directory, or an NN_data.json file. A file is imported once into
    the cache (keyed by its SHA-256, so an edited file is imported again) and opened from there."""
    if isinstance(path, Run):
        return path
    path = Path(path)
    if not path.is_file():
        return Run(path, trust_model_code=trust_model_code)
    from layerscope.interop.seed_json import import_nn_data

    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    out = Path(cache_dir or default_cache_dir()) / f"{path.stem}-{digest[:12]}"
    if (out / "manifest.json").is_file():
        return Run(out)
    return import_nn_data(path, out, force=True, progress=progress)
