"""Feature visualisation of the shipped MNIST CNN: seconds per unit, whole layers in one batch, and how the optimised
images compare with the best of the 70,000 bundled MNIST images.

    python benchmarks/featurevis.py [--repeats 3] [--seeds 0] [--png-dir DIR]

A unit's activation is ``unit_activation``: a dense neuron, or a conv channel's spatial max. "Beats MNIST" is the share
of a layer's units whose optimised image reaches at least the highest activation of that unit over all 70,000 images
(a unit that no MNIST image activates, max 0, counts as beaten: its share among live units is given beside it).
With ``--png-dir``, naive beside regularised images are drawn there (conv2 channels, class logits 0-9).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from common import Table
from layerscope.capture import iter_layer_batches
from layerscope.data import load_mnist
from layerscope.featurevis import save_png, unit_activation, visualize
from layerscope.models.pretrained import pretrained_seed_cnn

SHAPE = (1, 28, 28)


def dataset_maxima(layers: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """Each unit's highest activation over all 70,000 images, and the seconds the pass took."""
    model, _, _ = pretrained_seed_cnn()  # its own copy: the pass converts the model to channels-last
    best: dict[str, torch.Tensor] = {}
    start = time.perf_counter()
    for _, outputs in iter_layer_batches(model, load_mnist(), layers, batch_size=1024, stop_early=False):
        for layer in layers:
            key = "__logits__" if layer == "out" else layer
            top = unit_activation(outputs[key]).amax(0)
            best[layer] = torch.maximum(best[layer], top) if layer in best else top
    return {k: v.numpy() for k, v in best.items()}, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timings of one unit: the median of this many")
    parser.add_argument("--seeds", default="0", help="seeds for the shares, comma separated (each: 2 layer batches)")
    parser.add_argument("--png-dir", type=Path, default=None, help="draw naive beside regularised images here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    table = Table("featurevis")
    print(f"torch threads {torch.get_num_threads()} (visualize uses 1 by default)")
    model, _, _ = pretrained_seed_cnn()

    def timed(layer: str, regularised: bool = True, threads: int | None = 1) -> float:
        """Seconds for unit 7 of ``layer``, 256 steps."""
        start = time.perf_counter()
        visualize(model, layer, 7, image_shape=SHAPE, regularised=regularised, threads=threads)
        return time.perf_counter() - start

    table.add("first call in a process (conv2 7, regularised)", timed("conv2"), "s", "once; warm-up")
    for label, layer in (("conv2 channel 7", "conv2"), ("fc1 neuron 7", "fc1"), ("class logit 7 (out)", "out")):
        for regularised in (True, False):
            times = [timed(layer, regularised) for _ in range(args.repeats)]
            kind = "regularised" if regularised else "naive"
            table.add(
                f"one unit, {label}, {kind}", statistics.median(times), "s", f"median of {args.repeats}; 256 steps"
            )
    ones, alls = [], []
    for _ in range(args.repeats):  # taking turns, so that other work slows both alike
        ones.append(timed("conv2"))
        alls.append(timed("conv2", threads=None))
    threads = torch.get_num_threads()
    table.add(
        f"one unit, conv2 7, torch's {threads} threads",
        statistics.median(alls),
        "s",
        f"median of {args.repeats}; depends on what else runs",
    )
    table.ratio(
        f"one unit, conv2 7, {threads} threads / 1 thread",
        statistics.median(alls),
        statistics.median(ones),
        f"1 thread: {statistics.median(ones):.2f} s",
    )

    best, seconds = dataset_maxima(["conv2", "fc1", "out"])
    table.add("max over 70k images (conv2, fc1, logits)", seconds, "s", "once; one pass, batches of 1024")
    png = args.png_dir
    for seed in seeds:
        for layer in ("conv2", "fc1", "out"):
            m = best[layer]
            live = m > 0
            results = {}
            for regularised in (True, False):
                start = time.perf_counter()
                vis = visualize(model, layer, image_shape=SHAPE, regularised=regularised, seed=seed)
                elapsed = time.perf_counter() - start
                a = vis.activation[:, 0]
                results[regularised] = vis
                kind = "regularised" if regularised else "naive"
                if seed == seeds[0]:
                    table.add(f"all {len(m)} {layer} units in one batch, {kind}", elapsed, "s", "once; 256 steps")
                table.add(
                    f"beats MNIST, {layer}, {kind}, seed {seed}",
                    float(np.mean(a >= m)),
                    "",
                    f"share: {int(np.sum(a >= m))}/{len(m)}; live units {np.mean(a[live] >= m[live]):.3f} "
                    f"({int(live.sum())}); median ratio {np.median(a[live] / m[live]):.2f}",
                )
            if png is not None and seed == seeds[0] and layer != "fc1":
                n = 16 if layer == "conv2" else 10
                grid = np.stack([results[False].images[:n, 0], results[True].images[:n, 0]])  # naive row, regularised
                save_png(grid, png / f"fv_{layer}.png", scale=6)
        start = time.perf_counter()
        vis = visualize(model, "conv2", image_shape=SHAPE, restarts=2, seed=seed)
        elapsed = time.perf_counter() - start
        a = vis.activation[:, 0]
        table.add(
            f"beats MNIST, conv2, regularised, 2 restarts, seed {seed}",
            float(np.mean(a >= best["conv2"])),
            "",
            f"share: {int(np.sum(a >= best['conv2']))}/32, {elapsed:.1f} s",
        )
    if png is not None:
        vis = visualize(model, "out", [0, 3, 6, 8], image_shape=SHAPE, n_diverse=4, seed=seeds[0])
        save_png(vis.images, png / "fv_logits_diverse.png", scale=6)  # a row per class, its 4 images side by side
        print(f"  images: {png / 'fv_conv2.png'}, {png / 'fv_out.png'}, {png / 'fv_logits_diverse.png'}")


if __name__ == "__main__":
    main()
