"""The ``layerscope`` command: parse, call the core, report. Progress bars and printing live here only."""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(signum: int, frame: object) -> None:
    # Ctrl-C before main() runs (the imports below take a moment): one line, not a traceback from inside an import
    sys.stderr.write("interrupted.\n")
    os._exit(130)


if __name__ == "__main__" or os.path.basename(sys.argv[0]) in ("layerscope", "__main__.py"):
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import contextlib  # noqa: E402
import errno  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import fields  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table  # noqa: E402

from layerscope import __version__  # noqa: E402
from layerscope.errors import LayerscopeError  # noqa: E402
from layerscope.layers import LayerInfo  # noqa: E402

app = typer.Typer(
    name="layerscope",
    help="Open up a neural network that reads images: train it, capture its activations, project its layers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: "--force / --no-force", "--out PATH"
)
out = Console()
err = Console(stderr=True)

RunArg = Annotated[
    Path, typer.Argument(metavar="RUN", help="A Run directory (made by 'layerscope train'), or 'demo': the demo's Run.")
]
DeviceOpt = Annotated[
    str, typer.Option(metavar="DEVICE", help="Where the model runs: cpu, cuda, cuda:N or auto (cuda when available).")
]


class Bars:
    """A ``ProgressFn`` drawing one rich progress bar per task."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, task: str, done: int, total: int) -> None:
        if task not in self.tasks:
            self.tasks[task] = self.progress.add_task(task, total=total)
        self.progress.update(self.tasks[task], completed=done, total=total)


@contextlib.contextmanager
def _bars() -> Iterator[Progress]:
    """Progress bars on stderr that stay when the work succeeds and go when it fails, so an error is one line."""
    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    with progress:
        try:
            yield progress
        except BaseException:
            progress.live.transient = True
            raise


TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-model-code",
        help="Import and run the Run's model class even though it is not layerscope's own (only for Runs you trust).",
    ),
]


def _run_path(path: Path) -> Path:
    """The Run a command was given: ``demo`` is the demo's Run (prepared now if it is not yet), unless a file or
    directory of that name is there."""
    from layerscope.cache import DEMO, demo_run_dir

    if str(path) != DEMO or path.exists():
        return path
    directory = demo_run_dir()
    if not (directory / "manifest.json").is_file():
        err.print(f"preparing the demo's Run at {directory} (once, about 30 seconds)", highlight=False)
        _prepare_demo("auto")
    return directory


def _prepare_demo(device: str, retrain: bool = False) -> Any:
    from layerscope.pipeline import demo_run

    with _bars() as progress:
        return demo_run(retrain=retrain, device=device, progress=Bars(progress))


def _open(path: Path, trust_model_code: bool = False) -> Any:
    from layerscope.run import Run

    return Run(_run_path(path), trust_model_code=trust_model_code)


def _device(device: str) -> str:
    """``--device`` checked and resolved ("auto": cuda or cpu); a device that is not there is a one-line error."""
    from layerscope.training import resolve_device

    return str(resolve_device(device))


def _check_range(option: str, value: float | None, low: float, high: float) -> None:
    """A number from the command line, within what makes sense: finite and in ``low .. high``."""
    if value is None:
        return
    if not math.isfinite(value) or not low <= value <= high:
        raise LayerscopeError(f"{option} {value} is out of range; give a number from {low:g} to {high:g}.")


SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's random_state


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Model class 'pkg.module:Class' (a module in the current directory works); default: the report's CNN.",
    ),
]
ModelArgOpt = Annotated[
    list[str] | None,
    typer.Option("--model-arg", help="Constructor argument name=value (value read as JSON if it parses); repeat."),
]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option("--include", help="Record only layers matching this glob over dotted names (e.g. 'features.*')."),
]
ExcludeOpt = Annotated[
    list[str] | None, typer.Option("--exclude", help="Leave out layers matching this glob (e.g. '*.bn*'); repeat.")
]
DatasetOpt = Annotated[
    str,
    typer.Option(
        help="'mnist' (bundled), a directory holding the four IDX files, an image folder DIR/<class>/*.png "
        "(optionally DIR/train/<class>, DIR/test/<class>), a list of image files: a CSV file with the columns "
        "path,label[,split], or a Parquet file with them; or WebDataset shards: a .tar file or a directory of them "
        "(<key>.png + <key>.cls [+ <key>.split])."
    ),
]
ClassNamesOpt = Annotated[str | None, typer.Option(help="Comma-separated class names, or a file with one per line.")]
MemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--memory",
        metavar="SIZE",
        help="At most this much memory for the batches of capture and PCA, e.g. 4GB or 512MB (default: half the "
        "available memory, at most 4 GiB); less memory means smaller batches and more passes, the same result.",
    ),
]
ImagesOpt = Annotated[
    str,
    typer.Option(
        "--images",
        metavar="auto|copy|reference",
        help="copy: the Run keeps a copy of every image; reference: it reads them where they are (uncompressed IDX "
        "files, image files or uncompressed tar files, each file's SHA-256 checked) and keeps 32-pixel thumbnails; "
        "auto: reference past 1 GiB of pixels (images larger than their thumbnails), else copy.",
    ),
]
ImageSizeOpt = Annotated[
    int | None, typer.Option(help="Resize an image folder's images to N x N (they must otherwise share one size).")
]


def _model_spec(model: str | None, model_arg: list[str] | None, data: Any) -> dict[str, Any]:
    """The spec of ``--model`` with ``--model-arg``; the report's CNN is sized to the dataset unless told otherwise."""
    from layerscope.models.loading import SEED_CNN, parse_model_args
    from layerscope.pipeline import seed_cnn_spec

    spec: dict[str, Any] = seed_cnn_spec(data) if model in (None, SEED_CNN) else {"class": model, "args": {}}
    return {**spec, "args": {**spec["args"], **parse_model_args(model_arg)}}


def _load_dataset(dataset: str, class_names: str | None, image_size: int | None, images: str = "auto") -> Any:
    """The dataset, with a progress bar that goes away once loaded (so an error after it stays one line)."""
    from layerscope.data.datasets import load_dataset

    _check_range("--image-size", image_size, 1, 4096)
    with _bars() as progress:
        progress.live.transient = True
        return load_dataset(dataset, class_names, image_size=image_size, progress=Bars(progress), images=images)


@app.command()
def train(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the Run directory.")] = Path("runs/mnist"),
    dataset: DatasetOpt = "mnist",
    class_names: ClassNamesOpt = None,
    image_size: ImageSizeOpt = None,
    images: ImagesOpt = "auto",
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    preset: Annotated[
        str, typer.Option(help="default, or tiny (4,000 images, 3 epochs, seconds: for tests).")
    ] = "default",
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per training step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of Adam's one-cycle schedule.")] = None,
    augment: Annotated[
        int | None, typer.Option(help="Shift each training image by up to this many pixels at random; 0: none.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed: the same seed gives the same weights on a CPU.")
    ] = None,
    device: DeviceOpt = "auto",
    force: Annotated[
        bool, typer.Option(help="Replace an existing Run at --out (only once the new one is complete).")
    ] = False,
    memory: MemoryOpt = None,
    snapshots: Annotated[
        str | None,
        typer.Option(
            metavar="K|epoch",
            help="Keep K snapshots of the network during training, evenly spaced from the untrained to the trained "
            "one ('epoch': one per epoch), each with its predictions, activations and PCA over every image, for the "
            "training timeline. Only training keeps snapshots: a Run gains them by training again.",
        ),
    ] = None,
) -> None:
    """Train a model (the report's CNN, or --model) and write a complete Run: weights, predictions, activations, PCA
    of every layer."""
    from layerscope.memory import parse_memory
    from layerscope.pipeline import train_run
    from layerscope.training import PRESETS, TrainConfig, snapshot_steps

    limit = parse_memory(memory) if memory is not None else None

    if preset not in PRESETS:
        raise LayerscopeError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    values: dict[str, Any] = dict(PRESETS[preset])
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "augment": augment, "seed": seed}
    values.update({k: v for k, v in given.items() if v is not None})
    values["device"] = device
    config = TrainConfig(**{f.name: values[f.name] for f in fields(TrainConfig) if f.name in values})
    _check_range("--epochs", config.epochs, 1, 10_000)
    _check_range("--batch-size", config.batch_size, 1, 65_536)
    _check_range("--augment", config.augment, 0, 64)
    _check_range("--seed", config.seed, 0, SEED_MAX)
    if not math.isfinite(config.lr) or not 0 < config.lr <= 10:
        raise LayerscopeError(f"--lr {config.lr} is out of range; give a learning rate above 0 and at most 10.")

    def on_epoch(record: Any) -> None:
        err.print(
            f"epoch {record.epoch}: train loss {record.train_loss:.4f} acc {record.train_accuracy:.4f} | "
            f"test loss {record.test_loss:.4f} acc {record.test_accuracy:.4f} | {record.seconds:.1f} s"
        )

    kept: int | str | None = None
    if snapshots is not None:
        kept = "epoch" if snapshots == "epoch" else int(snapshots) if snapshots.isdigit() else snapshots
        snapshot_steps(kept, config.epochs, 1)  # a bad value is a one-line error before any work
        _check_range("--snapshots", kept if isinstance(kept, int) else 2, 2, 1_000)
    data = _load_dataset(dataset, class_names, image_size, images)
    spec = _model_spec(model, model_arg, data)
    with _bars() as progress:
        run = train_run(
            out_dir,
            data,
            config,
            spec=spec,
            force=force,
            progress=Bars(progress),
            on_epoch=on_epoch,
            include=include,
            exclude=exclude,
            memory=limit,
            snapshots=kept,
        )
    _written(run, f"training {run.manifest['training']['seconds']:.1f} s")
    if run.snapshots:
        _print_snapshots(run)


def _print_snapshots(run: Any) -> None:
    from layerscope.memory import format_bytes

    sizes = run.disk_usage()["snapshots"]
    table = Table("snapshot", "step", "epoch", "test accuracy", "test loss", "on disk", title="snapshots")
    for entry in run.snapshots:
        where = entry["path"]
        size = "(the Run)" if where == "." else format_bytes(sizes.get(where, 0))
        accuracy, loss = entry.get("test_accuracy"), entry.get("test_loss")
        table.add_row(
            str(entry["index"]),
            f"{entry['step']:,}",
            f"{entry['epoch']:.2f}",
            "-" if accuracy is None else f"{accuracy:.4f}",
            "-" if loss is None else f"{loss:.4f}",
            size,
        )
    out.print(table)


def _written(run: Any, detail: str) -> None:
    m = run.manifest
    if run.references_images:
        detail += f", images read where they are ({run.images.describe()})"
    out.print(
        f"Run written to [bold]{run.path}[/]: test accuracy {m['metrics']['test_accuracy']:.4f}, {detail}, "
        f"capture {m['capture']['images_per_second']:,} images/s"
    )


@app.command("import-model")
def import_model(
    model: Annotated[
        str, typer.Option("--model", help="Model class 'pkg.module:Class' (a module in the current directory works).")
    ],
    weights: Annotated[
        Path, typer.Option(help="Trained weights: .safetensors, or a .pt state dict (loaded with weights_only).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the Run directory.")],
    model_arg: ModelArgOpt = None,
    dataset: DatasetOpt = "mnist",
    class_names: ClassNamesOpt = None,
    image_size: ImageSizeOpt = None,
    images: ImagesOpt = "auto",
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    device: DeviceOpt = "auto",
    force: Annotated[
        bool, typer.Option(help="Replace an existing Run at --out (only once the new one is complete).")
    ] = False,
    memory: MemoryOpt = None,
) -> None:
    """Make a Run for an already-trained model: its weights on a dataset, captured and projected, no training."""
    import hashlib

    from layerscope.memory import parse_memory
    from layerscope.models.loading import SEED_CNN, build_model, load_weights
    from layerscope.pipeline import create_run

    limit = parse_memory(memory) if memory is not None else None

    # the user named this class on the command line: its code is theirs to run. A model of their own is built and its
    # weights checked before the dataset is read (seconds to minutes); the report's CNN is sized to the dataset.
    if model in (None, SEED_CNN):
        data = _load_dataset(dataset, class_names, image_size, images)
        spec = _model_spec(model, model_arg, data)
        net = load_weights(build_model(spec, trusted=True), weights)
    else:
        spec = _model_spec(model, model_arg, None)
        net = load_weights(build_model(spec, trusted=True), weights)
        data = _load_dataset(dataset, class_names, image_size, images)
    provenance = {"imported_from": str(weights.resolve()), "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    with _bars() as progress:
        run = create_run(
            out_dir,
            data,
            net,
            spec,
            device=device,
            force=force,
            progress=Bars(progress),
            provenance=provenance,
            include=include,
            exclude=exclude,
            memory=limit,
        )
    _written(run, f"{len(run.layers) - 1} layers")


def _info(run: Any) -> dict[str, Any]:
    m = run.manifest
    usage = run.disk_usage()
    layers = []
    for info in run.layers:
        files = usage["layers"].get(info.name, {})
        layers.append({**info.to_dict(), "files": files, "bytes": sum(files.values())})
    return {
        "path": str(run.path),
        "format_version": m["format_version"],
        "layerscope_version": m.get("layerscope_version"),
        "created": m.get("created"),
        "dataset": m["dataset"],
        "model": m["model"],
        "layers": layers,
        "test_accuracy": m["metrics"]["test_accuracy"],
        "metrics": m["metrics"],
        "history": m.get("history", []),
        "training": m.get("training", {}),
        "capture": m.get("capture", {}),
        "computed": run.computed(),
        "projections": m.get("projections", {}),
        "other_files": usage["other"],
        "snapshots": [
            entry | {"bytes": None if entry["path"] == "." else usage["snapshots"].get(entry["path"], 0)}
            for entry in run.snapshots
        ],
        "total_bytes": usage["total"],
    }


@app.command()
def info(
    run_dir: RunArg,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    files: Annotated[bool, typer.Option("--files", help="List every file of each layer with its size.")] = False,
) -> None:
    """Dataset, model, layers with output shapes, test accuracy, what the Run has computed and its size on disk."""
    from layerscope.memory import format_bytes

    run = _open(run_dir)
    data = _info(run)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    d, m = data["dataset"], data["model"]
    out.print(f"[bold]Run[/] {data['path']}  (format {data['format_version']}, created {data['created']})")
    out.print(
        f"[bold]Dataset[/] {d.get('name')} ({d.get('source')}): {d.get('n_train', 0):,} train + "
        f"{d.get('n_test', 0):,} test images "
        f"of {'x'.join(map(str, d['image_shape']))}, {len(d['class_names'])} classes"
    )
    if m is None:
        out.print(f"[bold]Model[/] none: imported from {run.manifest.get('source', {}).get('file')}")
    else:
        out.print(f"[bold]Model[/] {m['class']} {m.get('args', {})}, {m.get('num_parameters', 0):,} parameters")
    t = data["training"]
    if t:
        out.print(
            f"[bold]Training[/] {t.get('epochs')} epochs, batch {t.get('batch_size')}, lr {t.get('lr')}, "
            f"seed {t.get('seed')} on {t.get('device')}: {t.get('seconds')} s"
        )
    out.print(f"[bold]Test accuracy[/] {data['test_accuracy']:.4f}")
    table = Table("layer", "kind", "shape", "stored", "projections", "on disk")
    for layer in data["layers"]:
        methods = data["computed"]["projections"].get(layer["name"], [])
        table.add_row(
            layer["name"],
            "tokens" if layer.get("tokens") else layer["kind"],  # a conv layer of embedding channels
            "x".join(map(str, layer["shape"])),
            layer["stored"],
            ", ".join(methods) or "-",
            f"{format_bytes(layer['bytes'])} in {len(layer['files'])} files",
        )
    out.print(table)
    for layer in data["layers"] if files else ():
        out.print(f"[bold]{layer['name']}[/]", highlight=False)
        for relpath, size in layer["files"].items():
            out.print(f"  {relpath:<60} {format_bytes(size):>10}", highlight=False, soft_wrap=True)
    other = data["other_files"]
    layer_bytes = sum(layer["bytes"] for layer in data["layers"])
    out.print(
        f"[bold]On disk[/] {format_bytes(data['total_bytes'])}: layers {format_bytes(layer_bytes)}, "
        f"other files {format_bytes(sum(other.values()))} "
        f"({', '.join(sorted(other, key=other.__getitem__, reverse=True)[:4])}{', ...' if len(other) > 4 else ''})"
        + (f", snapshots {format_bytes(sum(e['bytes'] or 0 for e in data['snapshots']))}" if data["snapshots"] else "")
    )
    if data["snapshots"]:
        _print_snapshots(run)


@app.command()
def layers(
    run_dir: RunArg,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    every: Annotated[
        bool,
        typer.Option(
            "--all", help="Every node of the model's graph (adds, flattens, ...), the captured ones marked with *."
        ),
    ] = False,
) -> None:
    """The Run's layers: dotted names and output shapes; with --all, every node of the model's graph."""
    run = _open(run_dir)
    if every:
        _graph_nodes(run, as_json)
        return
    if as_json:
        print(json.dumps([info.to_dict() for info in run.layers], indent=2))
        return
    width = max(len(info.name) for info in run.layers)
    for info in run.layers:
        kind = "tokens" if info.tokens is not None else info.kind
        out.print(f"{info.name:<{width}}  {kind:<6} {'x'.join(map(str, info.shape))}")


def _graph_nodes(run: Any, as_json: bool) -> None:
    """``layers --all``: every node of ``run.graph`` with its op, kind, block, inputs and shape, and whether the Run
    captured it (those can be projected; any other can be chosen with ``--include NAME`` when the Run is made)."""
    graph = run.graph
    captured = set(run.layer_names)
    nodes = [{**node.to_dict(), "captured": node.name in captured} for node in graph.nodes]
    if as_json:
        print(json.dumps({"method": graph.method, "reason": graph.reason, "nodes": nodes}, indent=2))
        return
    width = max(len(node["name"]) for node in nodes)
    op_width = max(len(node["op"]) for node in nodes)
    for node in nodes:
        mark = "*" if node["captured"] else " "
        shape = "x".join(map(str, node["shape"]))
        inputs = ", ".join(node["inputs"])
        out.print(
            f"{mark} {node['name']:<{width}}  {node['op']:<{op_width}}  {node['kind']:<8} {shape:<12} {inputs}",
            highlight=False,
        )
    how = "traced with torch.fx" if graph.method == "fx" else f"the captured layers only: {graph.reason}"
    out.print(
        f"{len(nodes)} nodes ({how}); * marks the {len(captured & {n['name'] for n in nodes})} the Run captured. "
        "'layerscope train --include NAME' captures others.",
        highlight=False,
    )


@app.command()
def project(
    run_dir: RunArg,
    layer: Annotated[str, typer.Option(help="Layer name (see 'layerscope layers RUN').")],
    method: Annotated[str, typer.Option(help="pca, tsne, umap, lda or isomap.")] = "pca",
    recompute: Annotated[bool, typer.Option(help="Compute again even if the Run has it cached.")] = False,
    seed: Annotated[int, typer.Option(help="random_state of the method.")] = 0,
    device: DeviceOpt = "auto",
    trust_model_code: TrustOpt = False,
    memory: MemoryOpt = None,
    tokens: Annotated[
        str | None,
        typer.Option(
            help="A transformer's token layer: project it from its class token ('cls') or its patch tokens' mean "
            "('mean') from now on; the Run keeps the choice and drops the layer's projections of the other."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Where a t-SNE or UMAP past 100,000 images places the images its fitted sample left out: 'local' "
            "or 'ray' (Ray tasks; pip install 'layerscope[ray]')."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="With --engine ray: the Ray cluster's address ('auto': the one this machine joined)."),
    ] = None,
) -> None:
    """Project a layer's activations over every image to 2-D and store it in the Run, with quality figures."""
    from layerscope.memory import parse_memory
    from layerscope.projections.compute import check_method, compute_projection

    _check_range("--seed", seed, 0, SEED_MAX)
    limit = parse_memory(memory) if memory is not None else None
    run = _open(run_dir, trust_model_code)
    check_method(method)
    info = run.layer(layer)
    if tokens is not None:
        run.set_token_source(layer, tokens)
        info = run.layer(layer)
    device = _device(device)
    with _bars() as progress:
        result = compute_projection(
            run,
            layer,
            method,
            recompute=recompute,
            random_state=seed,
            device=device,
            progress=Bars(progress),
            memory=limit,
            engine=engine,
            address=address,
        )
    meta = result.meta
    cached = "" if recompute or "seconds" not in meta else f" (computed {meta.get('computed')})"
    out.print(
        f"{method} of {layer}{_projected_from(info)}: {meta['n_points']:,} points in {meta['seconds']:.1f} s{cached}; "
        f"2-D kNN accuracy {meta['knn_accuracy']:.3f}, trustworthiness {meta['trustworthiness']:.3f}"
    )
    if meta.get("note"):
        out.print(f"note: {meta['note']}")


@app.command()
def capture(
    run_dir: RunArg,
    engine: Annotated[
        str,
        typer.Option(
            help="local: this process (the default); ray: a pool of Ray actors (pip install 'layerscope[ray]')."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray: the cluster to join ('auto': the one 'ray start' began; default: this machine's cores)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Ray: actors holding the model (default: one per CPU, or per GPU with --gpus-per-worker)."),
    ] = None,
    gpus_per_worker: Annotated[float, typer.Option(help="Ray: GPUs each actor takes (0: CPUs only).")] = 0.0,
    staging: Annotated[
        Path | None,
        typer.Option(
            help="Ray: a directory the workers and this machine share, where the workers write their rows "
            "(compressed Zarr) before they are copied into the Run (default: inside the Run)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per forward pass (default: from the memory budget).")
    ] = None,
    device: DeviceOpt = "auto",
    trust_model_code: TrustOpt = False,
    memory: MemoryOpt = None,
) -> None:
    """Capture every layer over all the Run's images again (probabilities, activations, top images per unit), on
    this machine or on a Ray cluster; the Run changes all at once when the capture is complete, or not at all."""
    from layerscope.engine import capture_run
    from layerscope.memory import parse_memory

    _check_range("--gpus-per-worker", gpus_per_worker, 0, 1024)
    if batch_size is not None:
        _check_range("--batch-size", batch_size, 1, 1 << 20)
    limit = parse_memory(memory) if memory is not None else None
    run = _open(run_dir, trust_model_code)
    with _bars() as progress:
        meta = capture_run(
            run,
            engine,
            address=address,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
            staging=staging,
            device=device,
            batch_size=batch_size,
            memory=limit,
            progress=Bars(progress),
        )
    where = f" on {meta['workers']} Ray workers" if engine == "ray" else ""
    out.print(
        f"captured {run.n_images:,} images{where} in {meta['seconds']:.1f} s ({meta['images_per_second']:,} images/s); "
        f"{run.path} is up to date"
    )


def _projected_from(info: LayerInfo) -> str:
    source = info.token_features
    return "" if source is None else f" (from its {'class token' if source == 'cls' else 'token mean'})"


UnitOpt = Annotated[
    str,
    typer.Option(
        "--unit",
        metavar="UNIT",
        help="A conv layer's channel or a dense layer's neuron, from 0: 7 (of --layer), or LAYER:N, e.g. fc1:7.",
    ),
]
LayerOpt = Annotated[
    str | None,
    typer.Option(metavar="LAYER", help="The unit's layer (see 'layerscope layers RUN'), unless --unit names it."),
]


def _unit(run: Any, layer: str | None, unit: str) -> tuple[str, int, Any]:
    """(layer, unit, layer info) of ``--layer``/``--unit``, checked against the Run."""
    from layerscope.layers import parse_unit

    layer, number = parse_unit(unit, layer)
    return layer, number, _check_unit(run, layer, number)


def _check_unit(run: Any, layer: str, unit: int) -> Any:
    info = run.layer(layer)
    if info.kind == "image":
        raise LayerscopeError(f"{layer!r} is the input image, not a layer with units; choose a conv or dense layer.")
    if not 0 <= unit < info.shape[0]:
        raise LayerscopeError(f"unit {unit} is out of range: {layer!r} has units 0 to {info.shape[0] - 1}.")
    return info


@app.command()
def featurevis(
    run_dir: RunArg,
    unit_text: UnitOpt,
    image: Annotated[
        Path,
        typer.Option(
            "--out", metavar="PATH", help="PNG to write: naive gradient ascent, regularised, and the accentuated image."
        ),
    ],
    layer: LayerOpt = None,
    from_image: Annotated[
        int | None,
        typer.Option(
            "--from-image",
            metavar="N",
            help="Accentuate image N of the Run instead: change it as little as it takes toward the unit.",
        ),
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 256,
    diverse: Annotated[int, typer.Option(help="How many diverse regularised images.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed of the optimisation.")] = 0,
    recompute: Annotated[bool, typer.Option(help="Optimise again even if the Run has it stored.")] = False,
    store: Annotated[
        bool, typer.Option("--store", help="Keep the result in the Run (the dashboard's unit card shows it).")
    ] = False,
    device: DeviceOpt = "auto",
    trust_model_code: TrustOpt = False,
) -> None:
    """The input that maximises one unit, by gradient ascent: naive (plain pixels) beside regularised (drawn from
    the dataset's own image statistics for dense units and logits; pixels with jitter, scale, rotation and total
    variation for conv channels), with how far each is from the data; and the unit's top dataset image accentuated
    toward it. --from-image N accentuates image N instead. Read from the Run when stored there; --store keeps it."""
    import numpy as np

    from layerscope.featurevis import image_accentuation, unit_featurevis
    from layerscope.sheets import Tile, save_sheet
    from layerscope.training import resolve_device

    _check_range("--steps", steps, 1, 100_000)
    _check_range("--diverse", diverse, 1, 64)
    _check_range("--seed", seed, 0, SEED_MAX)
    if image.suffix.lower() != ".png":
        raise LayerscopeError(f"--out {image}: give a .png file name.")
    run = _open(run_dir, trust_model_code)
    layer, unit, _ = _unit(run, layer, unit_text)
    if from_image is not None and not 0 <= from_image < run.n_images:
        n = run.n_images
        raise LayerscopeError(f"--from-image {from_image} is out of range: the Run has {n:,} images, 0 to {n - 1}.")
    model = run.load_model(resolve_device(device))
    best = None
    if layer in (run.manifest.get("topk") or {}).get("layers", []):
        top = run.topk(layer)
        best = (float(top.values[unit, 0]), str(run.names[int(top.indices[unit, 0])]))
    best_note = f"the best of the {run.n_images:,} dataset images ({best[1]}) reaches {best[0]:.3f}" if best else ""
    if from_image is not None:
        with _bars() as progress:
            acc = image_accentuation(
                run, layer, unit, from_image, model=model, steps=steps, seed=seed, progress=Bars(progress)
            )
        name = str(run.names[from_image])
        out.print(
            f"{layer} unit {unit}: image {name} {acc.start_activation:.3f} -> accentuated {acc.activation:.3f} "
            f"(root-mean-square change {acc.change:.3f})"
        )
        if best:
            out.print(f"best of the {run.n_images:,} dataset images: {best[0]:.3f}")
        tiles = [
            Tile(acc.start, f"image {name}\nactivation {acc.start_activation:.3f}"),
            Tile(acc.image, f"accentuated\nactivation {acc.activation:.3f}\nchange {acc.change:.3f}"),
        ]
        title = f"{layer} unit {unit}: image {name} accentuated ({acc.settings['steps']} steps, seed {seed})"
        save_sheet(image, [tiles], title=title, note=best_note)
        out.print(f"saved {image} (the real image first)")
        return
    with _bars() as progress:
        fv = unit_featurevis(
            run,
            layer,
            unit,
            model=model,
            recompute=recompute,
            steps=steps,
            n_diverse=diverse,
            seed=seed,
            progress=Bars(progress),
            store=store,
        )
    trust = fv.trust
    regularised = ", ".join(f"{a:.3f}" for a in fv.activation)
    method = _method_text(fv.parameterisation)
    out.print(f"{layer} unit {unit}: naive {fv.naive_activation:.3f}, regularised ({method}) {regularised}")
    if best:
        out.print(f"best of the {run.n_images:,} dataset images: {best[0]:.3f}")
    out.print(_trust_text(trust))
    several = len(fv.images) > 1
    tiles = [Tile(fv.naive, f"naive\nactivation {fv.naive_activation:.3f}")] + [
        Tile(picture, f"regularised{f' {i + 1}' if several else ''}, {method}\nactivation {float(value):.3f}")
        for i, (picture, value) in enumerate(zip(fv.images, fv.activation, strict=True))
    ]
    if fv.accent is not None:
        index = int(trust["accent_from"])
        tiles += [
            Tile(
                run.images[index].astype(np.float32) / 255.0,
                f"top image {run.names[index]}\nactivation {trust['accent_start_activation']:.3f}",
            ),
            Tile(fv.accent, f"accentuated\nactivation {trust['accent_activation']:.3f}"),
        ]
    settings = fv.settings
    title = f"{layer} unit {unit}: feature visualisation ({settings.get('steps', steps)} steps, seed "
    note = "; ".join(t for t in (best_note, _trust_text(trust)) if t)
    save_sheet(image, [tiles], title=f"{title}{settings.get('seed', seed)})", note=note)
    out.print(f"saved {image} (naive first)")


def _method_text(parameterisation: str) -> str:
    return {"data": "data prior", "spectrum": "data spectrum", "fourier": "Fourier"}.get(parameterisation, "pixels")


def _trust_text(trust: dict[str, object]) -> str:
    """One line on how far the regularised image is from the data, for the terminal and the PNG's note."""
    if "ink_ratio" not in trust:
        return ""
    ink, high = float(trust["ink_ratio"]), float(trust["high_frequency_ratio"])  # type: ignore[arg-type]
    verdict = "far from the data" if trust.get("far") else "close to the data"
    text = f"{verdict}: ink {ink:.2f}x and high frequencies {high:.2f}x the dataset's"
    similarity = trust.get("start_similarity")
    if similarity is not None:
        text += f"; random starts agree {float(similarity):.2f}"  # type: ignore[arg-type]
    return text


@app.command()
def ablate(
    run_dir: RunArg,
    units: Annotated[
        list[str],
        typer.Option(
            "--unit",
            metavar="UNITS",
            help="Units to switch off: LAYER:UNITS, e.g. fc2:3, conv2:7,9 or fc2:0-63, or 3,7 of --layer (a conv "
            "layer's unit is a channel); repeat.",
        ),
    ],
    layer: Annotated[
        str | None, typer.Option(metavar="LAYER", help="The layer of --unit values that do not name one.")
    ] = None,
    scale: Annotated[float, typer.Option(help="Multiply the units by this: 0 switches them off.")] = 0.0,
    save: Annotated[str | None, typer.Option(help="Save the ablation in the Run under this name.")] = None,
    device: DeviceOpt = "auto",
    trust_model_code: TrustOpt = False,
) -> None:
    """Switch off (or scale) neurons or channels and re-evaluate the test set: accuracy overall and per class,
    before -> after, and the confusions that changed most."""
    from layerscope.ablation import evaluate_ablation, parse_ablation, save_ablation
    from layerscope.training import resolve_device

    _check_range("--scale", scale, -1e6, 1e6)
    run = _open(run_dir, trust_model_code)
    ablations = [parse_ablation(text, scale, layer) for text in units]
    model = run.load_model(resolve_device(device)) if run.has_model else None
    with _bars() as progress:
        result = evaluate_ablation(run, ablations, model=model, progress=Bars(progress))
    names = run.class_names
    label = "; ".join(a.label for a in ablations)
    out.print(f"ablation {label}: {result.n_images:,} test images in {result.seconds:.1f} s")
    before, after = result.accuracy_before, result.accuracy_after
    out.print(
        f"accuracy {before:.2%} → {after:.2%} ({(after - before) * 100:+.2f} points); "
        f"{result.n_changed:,} predictions changed"
    )
    table = Table(title="accuracy per class")
    for column in ("class", "images", "before", "after", "change"):
        table.add_column(column, justify="left" if column == "class" else "right")
    rows = zip(result.class_counts, result.class_accuracy_before, result.class_accuracy_after, strict=True)
    for name, (count, b, a) in zip(names, rows, strict=True):
        if count == 0:
            table.add_row(name, "0", "-", "-", "-")
            continue
        table.add_row(name, f"{count:,}", f"{b:.2%}", f"{a:.2%}", f"{(a - b) * 100:+.2f}")
    out.print(table)
    changes = result.biggest_changes(5)
    if changes:
        out.print("biggest confusion changes (true → predicted: images before → after):")
        for t, p, b, a in changes:
            out.print(f"  {names[t]} → {names[p]}: {b} → {a} ({a - b:+d})")
    else:
        out.print("no confusion changed.")
    if save is not None:
        save_ablation(run, save, ablations, result)
        out.print(f"saved as {save.strip()!r} in {run.path}")


@app.command()
def topk(
    run_dir: RunArg,
    unit_text: UnitOpt,
    layer: LayerOpt = None,
    k: Annotated[int, typer.Option(help="Images per unit, 1 to 1000.")] = 9,
    recompute: Annotated[bool, typer.Option(help="Compute again even if the Run has them stored.")] = False,
    image: Annotated[
        Path | None, typer.Option("--out", help="Also save the images as a PNG strip (receptive fields outlined).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    store: Annotated[
        bool, typer.Option("--store", help="Keep what was computed in the Run, for every layer (the dashboard's).")
    ] = False,
    device: DeviceOpt = "auto",
    trust_model_code: TrustOpt = False,
) -> None:
    """The images of the whole dataset that activate one unit most (a conv channel by its spatial maximum); read
    from the Run when it stores at least --k, else computed (and kept with --store)."""
    import numpy as np

    from layerscope.receptive import receptive_field
    from layerscope.topk import MAX_K, layer_topk

    _check_range("--k", k, 1, MAX_K)
    run = _open(run_dir, trust_model_code)
    layer, unit, info = _unit(run, layer, unit_text)
    device = _device(device)
    with _bars() as progress:
        result = layer_topk(run, layer, k=k, recompute=recompute, store=store, device=device, progress=Bars(progress))
    rf = receptive_field(run.load_model(), layer, tuple(run.images.shape[1:])) if info.kind == "conv" else None
    labels, split, names = run.labels, run.split, run.class_names
    predicted = np.asarray(run.probs[result.indices[unit]]).argmax(1)
    rows = []
    for rank, (index, value) in enumerate(zip(result.indices[unit], result.values[unit], strict=True)):
        row = {
            "rank": rank + 1,
            "index": int(index),
            "split": "train" if split[index] == 0 else "test",
            "label": names[labels[index]],
            "predicted": names[predicted[rank]],
            "activation": float(value),
        }
        if rf is not None and result.positions is not None and not rf.whole_image:
            y, x = (int(v) for v in result.positions[unit, rank])
            row["position"] = [y, x]
            row["receptive_field"] = list(rf.box(y, x, run.images.shape[2:]))
        rows.append(row)
    if image is not None:
        from layerscope.sheets import Tile, outlined, save_sheet

        pixels = np.asarray(run.images[result.indices[unit]], dtype=np.float32) / 255.0
        tiles = [
            Tile(
                outlined(picture, r.get("receptive_field")),
                f"#{r['rank']} {r['split']}-{r['index']}\n"
                f"label {r['label']}, pred {r['predicted']}: {r['activation']:.3f}",
            )
            for picture, r in zip(pixels, rows, strict=True)
        ]
        how = " (spatial maximum; its receptive field framed)" if rf is not None else ""
        save_sheet(
            image,
            [tiles],
            title=f"{layer} unit {unit}: the {len(rows)} of {len(labels):,} images that activate it most{how}",
            note="under each image: its rank and name; its label, the prediction and the unit's activation",
        )
    if as_json:
        out.print_json(data={"layer": layer, "unit": unit, "k": len(rows), "images": rows})
        return
    table = Table(title=f"top {len(rows)} images of {layer} unit {unit} (of {len(labels):,})")
    for column in ("rank", "image", "label", "predicted", "activation", *(["receptive field"] if rf else [])):
        table.add_column(column, justify="right" if column in ("rank", "activation") else "left")
    for r in rows:
        box = r.get("receptive_field")
        extra = [f"rows {box[0]}-{box[2] - 1}, cols {box[1]}-{box[3] - 1}"] if rf and box else []
        name = f"{r['split']}-{r['index']}"
        table.add_row(str(r["rank"]), name, r["label"], r["predicted"], f"{r['activation']:.4f}", *extra)
    out.print(table)
    if rows and rows[0]["activation"] <= 0:
        out.print(f"{layer} unit {unit} never activates on any of the {len(labels):,} images (a dead unit).")
    if image is not None:
        out.print(f"saved {image}")


def _two(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


@app.command()
def attribute(
    run_dir: RunArg,
    index: Annotated[int, typer.Option("--image", help="The image's index in the Run (training images first).")],
    method: Annotated[str, typer.Option(help="saliency, integrated-gradients, gradcam or occlusion.")] = "saliency",
    target: Annotated[int | None, typer.Option(help="Class index to explain; default: the predicted class.")] = None,
    layer: Annotated[str | None, typer.Option(help="Grad-CAM's conv layer; default: the last one.")] = None,
    image: Annotated[
        Path | None,
        typer.Option("--out", help="PNG to write: the image, then the map over it (and each --randomise step's)."),
    ] = None,
    randomise: Annotated[
        bool,
        typer.Option("--randomise", help="Sanity check: re-initialise the layers from the output down, compare maps."),
    ] = False,
    device: DeviceOpt = "auto",
    trust_model_code: TrustOpt = False,
) -> None:
    """Which pixels of one image drive a class score: saliency, integrated gradients, Grad-CAM or occlusion (captum)."""
    import numpy as np

    from layerscope.attribution import ATTRIBUTIONS, overlay, randomisation_check
    from layerscope.attribution import attribute as attribute_map
    from layerscope.sheets import Tile, save_sheet
    from layerscope.training import resolve_device

    if method.replace("-", "_") not in ATTRIBUTIONS:
        raise LayerscopeError(
            f"unknown method {method!r}; choose saliency, integrated-gradients, gradcam or occlusion."
        )
    if image is not None and image.suffix.lower() != ".png":
        raise LayerscopeError(f"--out {image}: give a .png file name.")
    run = _open(run_dir, trust_model_code)
    n = len(run.labels)
    if not 0 <= index < n:
        raise LayerscopeError(f"--image {index} is out of range: the Run has images 0 to {n - 1}.")
    if target is not None and not 0 <= target < len(run.class_names):
        raise LayerscopeError(
            f"--target {target} is out of range: the Run has classes 0 to {len(run.class_names) - 1}."
        )
    model = run.load_model(resolve_device(device))
    pixels = run.dataset().pixels(np.array([index]))[0]  # (C, H, W) float in [0, 1]
    result = attribute_map(model, pixels, method, target=target, layer=layer)
    names, label = run.class_names, int(run.labels[index])
    probability = float(run.probs[index, result.predicted])
    out.print(f"{run.names[index]}: label {names[label]}, predicted {names[result.predicted]} ({probability:.1%})")
    which = "the prediction" if result.target == result.predicted else "not the prediction"
    at = f" at {result.layer}" if result.layer else ""
    label_method = result.method.replace("_", "-")
    out.print(f"{label_method}{at} for class {names[result.target]} ({which}) in {result.seconds:.2f} s")
    if result.delta is not None:
        total = float(result.map.sum())
        difference = total - result.delta  # captum's delta: sum of the map - (f(x) - f(black))
        share = f" ({abs(result.delta) / abs(difference):.1%})" if difference else ""
        out.print(
            f"completeness: map sum {total:.4f}, f(x) - f(black) {difference:.4f}, delta {result.delta:+.4f}{share}"
        )
    steps = []
    if randomise:
        steps = randomisation_check(model, pixels, result.method, target=result.target, layer=result.layer)
        table = Table(title="similarity to the trained model's map")
        for column in ("step", "re-initialised", "Spearman |map|", "SSIM"):
            table.add_column(column, justify="left" if column == "re-initialised" else "right")
        for i, step in enumerate(steps):
            if not step.randomised:
                what = "nothing (trained)"
            else:
                what = step.randomised[0] if i == 1 else f"{step.randomised[0]} down to {step.randomised[-1]}"
            spearman = "n/a" if np.isnan(step.spearman) else f"{step.spearman:.3f}"
            table.add_row(str(i), what, spearman, f"{step.ssim:.3f}")
        out.print(table)
    if image is not None:
        what = f"{label_method}{at}, class {names[result.target]}"
        rows = [
            [
                Tile(pixels.numpy(), f"{run.names[index]}\nlabel {names[label]}"),
                Tile(overlay(pixels, result.map), f"{what}\npredicted {names[result.predicted]} ({probability:.1%})"),
            ]
        ]
        if steps:
            rows.append(
                [
                    Tile(
                        overlay(pixels, step.map),
                        f"step {i}: {step.randomised[-1]} re-init.\n"
                        f"Spearman {_two(step.spearman)}, SSIM {_two(step.ssim)}",
                    )
                    for i, step in enumerate(steps[1:], start=1)
                ]
            )
        save_sheet(
            image,
            rows,
            title=f"{what} for {run.names[index]} ({which})",
            row_labels=["trained", "layers re-initialised"] if steps else None,
            note="red: evidence for the class, blue: against" if result.method != "gradcam" else "",
        )
        out.print(f"saved {image} (the image, then the map{', then each randomisation step' if steps else ''})")


HostOpt = Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the page to the network.")]
PortOpt = Annotated[int, typer.Option(help="Port to serve on, 1 to 65535.")]
NoBrowserOpt = Annotated[bool, typer.Option("--no-browser", help="Do not open a browser window.")]
AllowHostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        help="Also answer requests for this host name (what a team types in the browser with --host 0.0.0.0); repeat.",
    ),
]


PORT_TRIES = 20  # a busy --port moves on to the next free one among this many


def _free_port(host: str, port: int) -> int:
    """``port`` if nothing listens there, else the next free one (said on stderr); an error when none is free."""
    import socket

    for candidate in range(port, min(port + PORT_TRIES, 65_536)):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is free
            try:
                s.bind((host, candidate))
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise LayerscopeError(
                        f"cannot serve on {host}:{candidate} ({e.strerror or e}); choose another --host or --port."
                    ) from None
                continue
        if candidate != port:
            err.print(f"port {port} is in use; serving on {candidate} instead.", highlight=False)
        return candidate
    raise LayerscopeError(
        f"ports {port} to {port + PORT_TRIES - 1} are all in use; choose another with --port (make demo PORT=N)."
    )


def _serve(
    run: Any,
    host: str,
    port: int,
    no_browser: bool,
    allow_hosts: list[str] | None,
    device: str = "auto",
    compare: Any = None,
) -> None:
    from layerscope.dashboard import serve as serve_app

    _check_range("--port", port, 1, 65_535)
    run.check_model_code()  # refuse before the server starts, not on the first page that needs the model
    if compare is not None:
        from layerscope.compare import same_images

        compare.check_model_code()
        same_images(run, compare)  # the same images, or a one-line error before the server starts
    # a device named is checked now; "auto" is resolved by the page's first work over the dataset (it takes torch,
    # which the first page does without: dashboard/state.py)
    device = "cpu" if not run.has_model else device if device in ("auto", "cpu") else _device(device)
    port = _free_port(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"[bold yellow]warning:[/] serving on {host}: the page has no authentication; anyone who can reach "
            f"port {port} can use it."
        )
    out.print(f"layerscope dashboard for {run.path}: http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/")
    try:
        # returns only when interrupted: werkzeug's serve_forever ends quietly on Ctrl-C
        serve_app(
            run,
            host=host,
            port=port,
            open_browser=not no_browser,
            allow_hosts=allow_hosts or [],
            device=device,
            compare=compare,
        )
    except KeyboardInterrupt:
        pass
    except OSError as e:  # the port is taken, or the address is not this machine's
        raise LayerscopeError(
            f"cannot serve on {host}:{port} ({e.strerror or e}); choose another --port or --host."
        ) from None
    err.print(f"stopped: the dashboard of {run.path} is no longer served.", highlight=False)
    raise SystemExit(130)


@app.command()
def serve(
    run_dir: Annotated[
        Path, typer.Argument(help="A Run directory, or an NN_data.json file (imported once, then cached).")
    ],
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8050,
    no_browser: NoBrowserOpt = False,
    allow_host: AllowHostOpt = None,
    device: DeviceOpt = "auto",
    trust_model_code: TrustOpt = False,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            metavar="RUN_B",
            help="A second Run of the same images (another training, or a snapshot: RUN/snapshots/03) shown in "
            "projection B beside this one, with their agreement and the CKA of every layer pair.",
        ),
    ] = None,
) -> None:
    """Open the dashboard on a Run, or on an NN_data.json file, in the browser. The page's work over the whole
    dataset (projections, top images, feature visualisation) runs on --device; one image at a time runs on the CPU."""
    from layerscope.run import open_run

    with _bars() as progress:
        run = open_run(_run_path(run_dir), progress=Bars(progress), trust_model_code=trust_model_code)
        other = (
            open_run(_run_path(compare), progress=Bars(progress), trust_model_code=trust_model_code)
            if compare is not None
            else None
        )
    _serve(run, host, port, no_browser, allow_host, device, compare=other)


@app.command("import-json")
def import_json(
    source: Annotated[Path, typer.Argument(help="An NN_data.json file (the report's exchange format).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the Run directory.")],
    force: Annotated[
        bool, typer.Option(help="Replace an existing Run at --out (only once the new one is complete).")
    ] = False,
) -> None:
    """Convert an NN_data.json file into a Run (no model: its activations, projections, images and predictions)."""
    from layerscope.interop import import_nn_data

    with _bars() as progress:
        run = import_nn_data(source, out_dir, force=force, progress=Bars(progress))
    m = run.manifest
    layers = [f"{info.name} ({info.kind})" for info in run.layers if info.kind != "image"]
    out.print(
        f"Run written to [bold]{run.path}[/]: {m['dataset']['n_images']:,} instances, "
        f"{len(m.get('aggregates', []))} aggregates, {len(run.class_names)} classes; layers {', '.join(layers)}"
    )


@app.command("export-json")
def export_json(
    run_dir: RunArg,
    target: Annotated[Path, typer.Argument(help="The NN_data.json file to write.")],
    per_class: Annotated[int, typer.Option(help="Random images per class (every misclassified one is added).")] = 200,
    method: Annotated[str, typer.Option(help="Projection of every layer: pca, tsne, umap, lda or isomap.")] = "pca",
    every_image: Annotated[
        bool, typer.Option("--all", help="Export every image (and project them all) instead of the sample.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random sample.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    trust_model_code: TrustOpt = False,
) -> None:
    """Write a Run as NN_data.json, as the report chose: 200 random images per digit plus every misclassified one,
    per-digit averages, dense-layer activations and a 2-D projection of every layer (computed if missing)."""
    from layerscope.interop import export_nn_data

    run = _open(run_dir, trust_model_code)
    if target.is_dir():
        raise LayerscopeError(f"{target} is a directory; give the path of the NN_data.json file to write.")
    if target.exists() and not force:
        raise LayerscopeError(f"{target} already exists; pass --force to replace it.")
    _check_range("--per-class", per_class, 1, 1_000_000)
    _check_range("--seed", seed, 0, SEED_MAX)
    with _bars() as progress:
        summary = export_nn_data(
            run, target, per_class=per_class, seed=seed, method=method, everything=every_image, progress=Bars(progress)
        )
    out.print(
        f"wrote [bold]{summary['path']}[/] ({summary['bytes'] / 1e6:.1f} MB): {summary['instances']:,} instances "
        f"({summary['misclassified']:,} misclassified) and {summary['aggregates']} averages; activations of "
        f"{', '.join(summary['activation_layers']) or 'no layer'}; projections of "
        f"{', '.join(summary['projection_layers']) or 'no layer'}"
    )


@app.command()
def timeline(
    run_dir: RunArg,
    layer: Annotated[str, typer.Option(help="Layer name (see 'layerscope layers RUN').")],
    method: Annotated[
        str,
        typer.Option(
            help="pca (each snapshot's, aligned to the one before by Procrustes), tsne (each snapshot's started "
            "from the one before) or umap (AlignedUMAP over all snapshots)."
        ),
    ] = "pca",
    gif: Annotated[
        Path | None,
        typer.Option("--out", help="Write the animation here: .gif, or .mp4 (needs: pip install 'layerscope[video]')."),
    ] = None,
    recompute: Annotated[bool, typer.Option(help="Align again even if the Run has the timeline.")] = False,
    trust_model_code: TrustOpt = False,
) -> None:
    """A layer's projection through the snapshots training kept ('train --snapshots K'), each aligned to the one
    before: how its clusters formed. Prints each snapshot's test accuracy, quality and how far the images moved."""
    from layerscope.timeline import render
    from layerscope.timeline import timeline as layer_timeline

    if gif is not None and gif.suffix.lower() not in (".gif", ".mp4"):
        raise LayerscopeError(
            f"--out {gif} is neither a .gif nor an .mp4 file; the animation is written as one of those."
        )
    run = _open(run_dir, trust_model_code)
    with _bars() as progress:
        line = layer_timeline(run, layer, method, recompute=recompute, progress=Bars(progress))
    table = Table(
        "snapshot", "step", "epoch", "test accuracy", "kNN accuracy", "trustworthiness", "moved", "moved unaligned",
        title=f"{method} of {layer} through training (moved: mean distance from the snapshot before)",
    )  # fmt: skip
    for entry in line.meta["snapshots"]:
        table.add_row(
            str(entry["index"]),
            f"{entry['step']:,}",
            f"{entry['epoch']:.2f}",
            *(_figure(entry.get(key)) for key in ("test_accuracy", "knn_accuracy", "trustworthiness")),
            *(_figure(entry.get(key), 2) for key in ("displacement", "unaligned_displacement")),
        )
    out.print(table)
    if gif is not None:
        out.print(f"saved {render(run, line, gif)} ({len(line.meta['snapshots'])} snapshots)")


def _figure(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command()
def compare(
    run_a: RunArg,
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="The Run to compare with (the same dataset).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    device: DeviceOpt = "auto",
    trust_model_code: TrustOpt = False,
) -> None:
    """Two Runs on the same images: how often they agree, the images only one of them classifies right (per class),
    and the linear CKA of every layer of A with every layer of B over every image (1: the same representation up to
    a rotation and a scale)."""
    import numpy as np

    from layerscope.compare import compare_runs

    a = _open(run_a, trust_model_code)
    b = _open(run_b, trust_model_code)
    with _bars() as progress:
        result = compare_runs(a, b, device=_device(device), progress=Bars(progress))
    labels = np.asarray(a.labels)
    if as_json:
        print(json.dumps(result.to_dict(labels), indent=2))
        return
    out.print(
        f"[bold]{result.n_images:,} images[/]: A and B predict the same class for {result.agreement:.2%}; "
        f"only A is right on {len(result.a_only):,}, only B on {len(result.b_only):,}",
        highlight=False,
    )
    table = Table("class", "only A right", "only B right", title="right in one Run only")
    only_a, only_b = result.per_class(result.a_only, labels), result.per_class(result.b_only, labels)
    for name in result.class_names:
        table.add_row(name, str(only_a[name]), str(only_b[name]))
    out.print(table)
    cka = Table("A \\ B", *result.layers_b, title="linear CKA (1 = the same representation)")
    for name, row in zip(result.layers_a, result.cka, strict=True):
        cka.add_row(name, *(f"{v:.2f}" for v in row))
    out.print(cka)
    reduced = sorted({f"{layer}" for part in result.features.values() for layer, how in part.items() if how == "pca50"})
    if reduced:
        out.print(
            f"compared by their 50 leading PCA scores (conv maps, layers of over 1,024 values): {', '.join(reduced)}",
            highlight=False,
        )


@app.command()
def demo(
    retrain: Annotated[
        bool, typer.Option("--train", help="Retrain the model instead of using the shipped weights.")
    ] = False,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8050,
    no_browser: NoBrowserOpt = False,
    allow_host: AllowHostOpt = None,
    device: DeviceOpt = "auto",
    prepare: Annotated[
        bool, typer.Option("--prepare", help="Only prepare the demo's Run and print where it is; do not serve.")
    ] = False,
) -> None:
    """The dashboard on the bundled MNIST: the first start prepares the Run (cached afterwards), then serves it.
    Every command that takes a Run takes 'demo' for this one: layerscope info demo."""
    run = _prepare_demo(_device(device), retrain)
    out.print(f"the demo's Run is {run.path} (other commands take it as 'demo': layerscope info demo)", highlight=False)
    if not prepare:
        _serve(run, host, port, no_browser, allow_host, device)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"layerscope {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """layerscope: see inside a neural network that reads images."""


class _OneLine(logging.Handler):
    """The core's notes (``logging.getLogger("layerscope")``: waiting for another writer, a Run moved back) as one
    line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"note: {record.getMessage()}", highlight=False, soft_wrap=True)


def _error(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


_METAVARS = {int: "N", float: "NUMBER", Path: "PATH", str: "TEXT"}


def click_command() -> Any:
    """The click command behind ``app``, each option's value named in capitals (``--out PATH``, ``--k N``) where
    typer would print ``<path>``."""
    import typing

    cli = typer.main.get_command(app)
    for sub in getattr(cli, "commands", {}).values():
        for param in sub.params:
            if param.param_type_name != "option" or param.is_flag or param.metavar is not None:
                continue
            annotation = param.type_descriptor.annotation
            inner = [a for a in typing.get_args(annotation) if a is not type(None)]
            if typing.get_origin(annotation) is list and inner:
                annotation = inner[0]
            param.metavar = _METAVARS.get(annotation, "VALUE")
    return cli


def main() -> None:
    """Console entry point: bad input is one line on stderr and exit code 2; Ctrl-C is one line and exit code 130."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, Ctrl-C unwinds and cleans up
    # `kill PID` too (SIGTERM's default ends the process at once, leaving a half-built Run's staging directory)
    terminate = signal.signal(signal.SIGTERM, signal.default_int_handler)
    log = logging.getLogger("layerscope")
    handler = _OneLine()
    log.addHandler(handler)
    try:
        code = click_command().main(prog_name="layerscope", standalone_mode=False)
    except LayerscopeError as e:
        _error(str(e))
        sys.exit(2)
    except typer.TyperException as e:  # an unknown option, a value of the wrong type: one line, not a usage panel
        if type(e).__name__ == "NoArgsIsHelpError":  # plain 'layerscope': the help, as usual
            e.show()  # type: ignore[attr-defined]
            sys.exit(0)
        ctx = getattr(e, "ctx", None)
        command = f" {ctx.command_path.partition(' ')[2]}" if ctx is not None and " " in ctx.command_path else ""
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        _error(f"{message} (see 'layerscope{command} --help').")
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    finally:
        log.removeHandler(handler)
        if terminate is not None:
            signal.signal(signal.SIGTERM, terminate)
    if code == 130:
        err.print("interrupted; nothing was left half-written.")
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
