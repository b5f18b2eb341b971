"""Top-k dataset images of every unit of every layer, over all 70,000 bundled MNIST images (shipped weights).

    python benchmarks/topk.py [--k 9] [--batch-size 256] [--repeats 3] [--no-capture]

Times, each the median of ``--repeats`` runs (2 when one run takes over a minute), the measurements taking turns
so that other work on the machine slows them alike (the load average is printed before and after):

- the forward pass alone over every layer, as the top-k pass runs it (the floor);
- ``compute_topk``: that pass plus the running top-k merge of all 218 units (16 + 32 + 32 + 64 + 64 + 10);
- unless ``--no-capture``: ``capture_dataset`` alone and with a ``TopKCollector`` fed from its pass, which is how a
  new Run gets its top-k images without a second pass, and the seconds spent inside the collector (the merge's own
  cost, whatever the forward pass costs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from common import Table, load_average
from layerscope.capture import capture_dataset, describe_layers, iter_layer_batches
from layerscope.data import load_mnist
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.topk import BATCH, TopKCollector, compute_topk


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def interleaved(works: list[Callable[[], object]], repeats: int) -> list[list[float]]:
    """Seconds of each work, ``repeats`` times, taking turns (A B A B ...) so a busy machine slows all alike;
    two rounds when one run takes over a minute."""
    times: list[list[float]] = [[] for _ in works]
    for round_ in range(repeats):
        for work, seconds in zip(works, times, strict=True):
            seconds.append(timed(work))
        if round_ == 1 and max(t[0] for t in times) > 60:
            break
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-capture", action="store_true", help="skip timing capture with and without top-k")
    args = parser.parse_args()

    table = Table("topk")
    print(f"torch threads {torch.get_num_threads()}; k = {args.k}, batch {args.batch_size}; {load_average()}")
    model, _, _ = pretrained_seed_cnn()
    dataset = load_mnist()
    layers = describe_layers(model, dataset.image_shape)
    names = [info.name for info in layers if info.kind != "image"]
    units = sum(info.shape[0] for info in layers if info.kind != "image")
    n = len(dataset)

    def row(name: str, times: list[float], images: bool = True) -> float:
        seconds = statistics.median(times)
        runs = f"median of {len(times)} ({', '.join(f'{t:.1f}' for t in times)} s)"
        table.add(name, seconds, "s", (f"{n / seconds:,.0f} images/s; " if images else "") + runs)
        return seconds

    def forward() -> None:
        for _ in iter_layer_batches(model, dataset, names, batch_size=args.batch_size):
            pass

    def topk() -> None:
        compute_topk(model, dataset, layers, k=args.k, batch_size=args.batch_size)

    forward_times, topk_times = interleaved([forward, topk], args.repeats)
    floor = row(f"forward pass, {len(names)} layers, {n:,} images", forward_times)
    table.ratio(
        f"compute_topk, all {units} units, {n:,} images / the forward pass",
        row(f"compute_topk, all {units} units, {n:,} images", topk_times),
        floor,
        "what the running top-k merge adds to the pass",
    )
    if not args.no_capture:
        collectors: list[TopKCollector] = []

        def capture_with_topk() -> None:
            collectors.append(TopKCollector(names, args.k))
            capture_dataset(model, dataset, layers, tmp, on_batch=collectors[-1])

        with tempfile.TemporaryDirectory() as tmp:
            alone, with_topk = interleaved(
                [lambda: capture_dataset(model, dataset, layers, tmp), capture_with_topk], args.repeats
            )
        capture = row("capture_dataset alone", alone)
        table.ratio(
            "capture_dataset + top-k on the way / capture_dataset alone",
            row("capture_dataset + top-k on the way (new Runs)", with_topk),
            capture,
            "what top-k costs a new Run",
        )
        row("  of which the top-k merge itself", [c.seconds for c in collectors], images=False)
    print(load_average())


if __name__ == "__main__":
    main()
