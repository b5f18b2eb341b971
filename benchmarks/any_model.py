"""Any model at scale: capture of a residual net beside its plain forward pass, and the peak memory of a whole Run.

    PYTHONPATH=. .venv/bin/python benchmarks/any_model.py [--n 10000] [--batch 256] [--chunks 5] [--memory SIZE]
                                                          [--no-capture] [--no-rss] [--keep DIR]

The model is ``tests.models:ResNet18`` (torchvision's resnet18 with a 3x3 stem) on ``--n`` generated RGB 32x32
images of ten shapes (``shapes_data.py``); ``tests`` must be importable (run from the repository root with
``PYTHONPATH=.``; the script adds the root to its path itself when it can).

- **capture vs plain forward**: ``capture_dataset`` of every default node (stem, each block's output after its add,
  pooled features, logits: per-channel mean and max of the conv maps, logits whole, written to ``.npy``) beside the
  model's own forward pass over the same images with the same batch size, channels-last as capture runs it, in the
  same process. They take turns chunk by chunk (``--chunks``, the order swapped every chunk) so that other work on
  the machine slows both alike; images/s of each and their ratio, goal >= 0.8.
- **peak RSS** of ``layerscope train --epochs 1`` and of ``layerscope import-model`` (the weights that train wrote)
  on those images, each a process of its own measured by the kernel (``wait4``'s ``ru_maxrss``: the largest resident
  set the process had), with its wall time and whether a staging directory was left behind. Goal < 6 GB each.
  ``--memory`` is passed to both commands.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import Table, load_average, machine
from shapes_data import CLASS_NAMES, write_shapes_idx

ROOT = Path(__file__).resolve().parent.parent
MODEL = "tests.models:ResNet18"
RSS_GOAL_GB = 6.0
RATIO_GOAL = 0.8


def capture_vs_forward(table: Table, data_dir: Path, batch: int, chunks: int) -> None:
    from tests.models import ResNet18

    from layerscope.capture import capture_dataset
    from layerscope.data.datasets import Dataset, load_dataset
    from layerscope.pipeline import graph_model, select_layers
    from layerscope.training import preferred_memory_format

    dataset = load_dataset(str(data_dir))
    torch.manual_seed(0)
    model = ResNet18(in_channels=3, num_classes=len(CLASS_NAMES)).eval()
    net, graph = graph_model(model, dataset.image_shape)
    layers = select_layers(net, dataset)
    names = [info.name for info in layers if info.kind != "image"]
    memory_format = preferred_memory_format(model, dataset.image_shape)
    bounds = np.linspace(0, len(dataset), chunks + 1).astype(int)
    parts = [
        Dataset(
            dataset.name,
            dataset.images[a:b],
            dataset.labels[a:b],
            dataset.split[a:b],
            dataset.class_names,
            dataset.source,
        )
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]

    def forward(part: Dataset) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(part), batch):
                x = part.pixels(np.arange(i, min(i + batch, len(part)))).to(memory_format=memory_format)
                model(x)
        return time.perf_counter() - start

    def capture(part: Dataset, out: Path) -> float:
        start = time.perf_counter()
        capture_dataset(net, part, layers, out, batch_size=batch)
        return time.perf_counter() - start

    seconds = {"forward": 0.0, "capture": 0.0}
    with tempfile.TemporaryDirectory(prefix="layerscope-bench-capture-") as tmp:
        head = (a[: 2 * batch] for a in (dataset.images, dataset.labels, dataset.split))
        warm = Dataset(dataset.name, *head, dataset.class_names)
        forward(warm)  # oneDNN picks its kernels on the first batches
        capture(warm, Path(tmp) / "warm")
        for k, part in enumerate(parts):
            order = ("forward", "capture") if k % 2 == 0 else ("capture", "forward")
            for what in order:
                seconds[what] += forward(part) if what == "forward" else capture(part, Path(tmp) / f"c{k}")
    n = len(dataset)
    where = f"{n:,} images, batch {batch}, {chunks} chunks taking turns"
    table.add("plain forward pass (model(x), channels-last)", n / seconds["forward"], "images/s", where)
    table.add(f"capture of {len(names)} default nodes (graph model, .npy)", n / seconds["capture"], "images/s", where)
    ratio = seconds["forward"] / seconds["capture"]
    verdict = "met" if ratio >= RATIO_GOAL else "MISSED"
    table.ratio(
        "capture / plain forward (images/s)",
        seconds["forward"],
        seconds["capture"],
        f"goal >= {RATIO_GOAL}: {verdict}; nodes: {names[0]} ... {names[-1]}",
    )
    del graph


def _peak(command: list[str], env: dict[str, str]) -> tuple[int, float, int, str]:
    """(exit status, wall seconds, peak RSS in bytes, stderr tail) of one process, measured by the kernel."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        err.seek(0)
        tail = err.read()[-600:]
    return proc.returncode, seconds, usage.ru_maxrss * 1024, tail  # ru_maxrss is in KiB on Linux


def peak_rss(table: Table, data_dir: Path, work: Path, memory: str | None) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cli = [sys.executable, "-m", "layerscope.cli"]
    common = ["--model", MODEL, "--model-arg", "in_channels=3", "--dataset", str(data_dir), "--device", "cpu"]
    common += ["--class-names", str(data_dir / "class_names.txt")]
    extra = ["--memory", memory] if memory else []
    trained, imported = work / "train", work / "import"
    commands = {
        "train --epochs 1": [*cli, "train", *common, "--epochs", "1", "--out", str(trained), *extra],
        "import-model": [
            *cli,
            "import-model",
            *common,
            "--weights",
            str(trained / "weights.safetensors"),
            "--out",
            str(imported),
            *extra,
        ],
    }
    for name, command in commands.items():
        code, seconds, peak, tail = _peak(command, env)
        left = [p.name for p in work.glob(".*.tmp")]
        if code != 0:
            table.skip(f"peak RSS: layerscope {name}", f"exit status {code}: {tail.strip().splitlines()[-1:]}")
            if name.startswith("train"):
                table.skip("peak RSS: layerscope import-model", "train failed")
                return
            continue
        gb = peak / 1e9
        verdict = "met" if gb < RSS_GOAL_GB else "MISSED"
        run = trained if name.startswith("train") else imported
        from layerscope.run import Run

        manifest = Run(run, trust_model_code=True).manifest
        capture = manifest.get("capture", {})
        budget = capture.get("memory_budget")
        table.add(
            f"peak RSS: layerscope {name}",
            peak / 1e6,
            "MB",
            f"goal < {RSS_GOAL_GB:g} GB: {verdict}; {seconds:,.0f} s wall; memory budget "
            f"{budget / 1e9:.2f} GB, capture batch {capture.get('batch_size')}; "
            f"staging left: {', '.join(left) or 'none'}",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="generated images (default 10,000)")
    parser.add_argument("--batch", type=int, default=256, help="batch size of capture and the forward pass")
    parser.add_argument("--chunks", type=int, default=5, help="turns of forward and capture (default 5)")
    parser.add_argument("--memory", help="--memory for train and import-model (default: theirs)")
    parser.add_argument("--no-capture", action="store_true", help="leave out capture vs forward")
    parser.add_argument("--no-rss", action="store_true", help="leave out the peak RSS of train and import-model")
    parser.add_argument("--keep", type=Path, help="write the dataset and Runs here and keep them")
    args = parser.parse_args()
    if str(ROOT) not in sys.path:  # the test models live in the repository's tests package (PYTHONPATH=. does this)
        sys.path.insert(0, str(ROOT))
    try:
        import tests.models  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"tests.models is not importable ({e}): run from the repository root, PYTHONPATH=.") from None

    print(f"machine: {machine()}\n{load_average()}", flush=True)
    table = Table("any_model")
    with tempfile.TemporaryDirectory(prefix="layerscope-bench-any-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data_dir = write_shapes_idx(work / "shapes", n=args.n, size=32)
        if not args.no_capture:
            capture_vs_forward(table, data_dir, args.batch, args.chunks)
        if not args.no_rss:
            runs = work / "runs"
            runs.mkdir(exist_ok=True)
            peak_rss(table, data_dir, runs, args.memory)
    print(load_average(), flush=True)


if __name__ == "__main__":
    main()
