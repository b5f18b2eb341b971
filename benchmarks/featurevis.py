"""Feature visualisation of the shipped MNIST CNN: seconds per unit, and a comparison of the recipes (how the image
is parameterised and regularised) that shows why ``visualize`` defaults to what it does.

    python benchmarks/featurevis.py [--repeats 3] [--seeds 0] [--png-dir DIR]

The recipes: naive gradient ascent on the pixels ("naive"), and regularised (transforms, then settling untransformed)
on pixels with total variation ("pixel"), on a 1/f Fourier spectrum ("fourier"), on the data's Fourier magnitude with
the phase optimised (MACO, "spectrum"), and on the data's whitened pixel covariance ("data"); "auto", the default,
is "data" for dense layers and the class logits (given the data's prior, as here) and "pixel" for conv channels.
Accentuation starts from a real test image instead: the first of class k, or the first of class k + 1, changed as
little as it takes toward logit k.

- On the ten class logits: the share of the ten images that a judge, an MLP trained here (2 epochs) that the images
  were never optimised against, classifies as their class; their median ink share (pixels above 0.5) and
  high-frequency share (spectral energy above 0.25 cycles/pixel) as ratios to real digits', which should be within
  1.5x (0.67-1.5); seconds per unit (the whole batch's / 10).
- On conv2 (32 channels) and fc1 (64 neurons): "beats MNIST", the share of a layer's units whose optimised image
  reaches at least the highest activation of that unit over all 70,000 images (a unit that no MNIST image activates,
  max 0, counts as beaten: its share among live units is given beside it). A unit's activation is
  ``unit_activation``: a dense neuron, or a conv channel's spatial max.

The goals of the default: the judge recognises >= 9 of the 10 logit images, their ink and high-frequency ratios are
within 1.5x, and >= 0.9 of conv2's and fc1's units beat MNIST from one start.
With ``--png-dir``: one PNG of the ten logit images per recipe (fv_logits_<recipe>.png; the accentuations with their
real start above), all recipes as rows of one PNG (fv_logits_recipes.png), conv2's naive beside regularised images
(fv_conv2.png) and four images each of four classes (fv_logits_diverse.png). ``--threads`` adds one unit's time on
all of torch's threads against one (off by default: with other work on the machine it took 60 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import Table
from layerscope.capture import iter_layer_batches
from layerscope.data import load_mnist
from layerscope.data.datasets import TEST, TRAIN, Dataset
from layerscope.featurevis import save_png, unit_activation
from layerscope.featurevis.prior import FAR, ImagePrior, distance_to_data, image_prior
from layerscope.featurevis.render import accentuate, visualize
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.training import TrainConfig, evaluate, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests.models has the judge's MLP
from tests.models import MLP  # noqa: E402

SHAPE = (1, 28, 28)
CLASSES = 10
RECIPES = ("pixel", "fourier", "spectrum", "data")  # regularised; "naive" and "auto" beside them
JUDGE_GOAL = 9  # of 10
BEATS_GOAL = 0.9


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


def train_judge(ds: Dataset) -> tuple[nn.Module, float, float]:
    """An MNIST classifier of another architecture than the CNN (a plain MLP): (judge, test accuracy, seconds)."""
    start = time.perf_counter()
    torch.manual_seed(1)
    judge = MLP(hidden=512)  # the tests' MLP: 784-512-256-10
    fit(judge, ds, TrainConfig(epochs=2, seed=1))
    _, accuracy = evaluate(judge, ds, TEST)
    return judge.eval(), accuracy, time.perf_counter() - start


def classify(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """(N,) predicted classes of (N, C, H, W) images in [0, 1]."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))).argmax(1).numpy()


def resolved(model: nn.Module, layer: str, prior: ImagePrior) -> str:
    """The parameterisation "auto" picks for ``layer`` (a 1-step render, only to read its settings)."""
    return str(visualize(model, layer, 0, image_shape=SHAPE, steps=1, prior=prior).settings["parameterisation"])


def distance_text(images: np.ndarray, prior: ImagePrior) -> tuple[str, bool]:
    d = distance_to_data(images, prior)
    near = not d["far"]
    where = f"within {FAR}x" if near else "far"
    return f"ink {d['ink_ratio']:.2f}x, HF {d['high_frequency_ratio']:.2f}x real digits' ({where})", near


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timings of one unit: the median of this many")
    parser.add_argument("--seeds", default="0", help="seeds of the recipe comparison, comma separated")
    parser.add_argument("--threads", action="store_true", help="also time one unit on all of torch's threads")
    parser.add_argument("--png-dir", type=Path, default=None, help="draw each recipe's class-logit images here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    began = time.perf_counter()

    table = Table("featurevis")
    print(f"torch threads {torch.get_num_threads()} (visualize uses 1 by default)")
    ds = load_mnist()
    prior = image_prior(ds.images[ds.split == TRAIN])
    model, _, _ = pretrained_seed_cnn()

    def timed(layer: str, regularised: bool = True, threads: int | None = 1) -> float:
        """Seconds for unit 7 of ``layer``, 256 steps, the default recipe (given the data's prior)."""
        start = time.perf_counter()
        visualize(model, layer, 7, image_shape=SHAPE, regularised=regularised, prior=prior, threads=threads)
        return time.perf_counter() - start

    table.add("first call in a process (conv2 7, regularised)", timed("conv2"), "s", "once; warm-up")
    for label, layer in (("conv2 channel 7", "conv2"), ("fc1 neuron 7", "fc1"), ("class logit 7 (out)", "out")):
        for regularised in (True, False):
            times = [timed(layer, regularised) for _ in range(args.repeats)]
            kind = f"default ({resolved(model, layer, prior)})" if regularised else "naive"
            table.add(
                f"one unit, {label}, {kind}", statistics.median(times), "s", f"median of {args.repeats}; 256 steps"
            )
    if args.threads:  # off by default: with other work on the machine one call on 2 threads took 4-20 s
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
    judge, accuracy, seconds = train_judge(ds)
    table.add("judge (MLP 784-512-256-10): test accuracy", accuracy, "", f"2 epochs, seed 1; {seconds:.0f} s to train")
    table.add("real MNIST digits: median ink share", prior.ink_share, "", f"pixels > 0.5; {prior.n_images:,} train")
    table.add(
        "real MNIST digits: median high-frequency share",
        prior.high_frequency_share,
        "",
        f"energy above 0.25 cycles/pixel; {prior.n_images:,} train images",
    )

    test = ds.indices(TEST)
    first = [int(test[np.flatnonzero(ds.labels[test] == k)[0]]) for k in range(CLASSES)]  # class k's first test image
    starts = ds.pixels(np.array(first)).numpy()  # (10, 1, 28, 28) in [0, 1]
    classes = np.arange(CLASSES)
    png = args.png_dir
    auto = {layer: resolved(model, layer, prior) for layer in ("conv2", "fc1", "out")}

    for seed in seeds:
        # the ten class logits
        drawn: dict[str, np.ndarray] = {}  # recipe -> (10, 1, 28, 28)
        for recipe in ("naive", *RECIPES):
            start = time.perf_counter()
            vis = visualize(
                model,
                "out",
                image_shape=SHAPE,
                regularised=recipe != "naive",
                parameterisation="pixel" if recipe == "naive" else recipe,
                prior=prior,
                seed=seed,
            )
            per_unit = (time.perf_counter() - start) / CLASSES
            images = drawn[recipe] = vis.images[:, 0]
            recognised = int(np.sum(classify(judge, images) == classes))
            distance, near = distance_text(images, prior)
            beats = int(np.sum(vis.activation[:, 0] >= best["out"]))
            label = f"{recipe} (default)" if recipe == auto["out"] else recipe
            note = f"{recognised}/10; {distance}; {per_unit:.2f} s/unit; logit beats MNIST {beats}/10"
            if recipe == auto["out"]:
                met = recognised >= JUDGE_GOAL and near
                note += f"; goal >= {JUDGE_GOAL}/10 and within {FAR}x: {'met' if met else 'MISSED'}"
            table.add(f"logits, {label}: judge recognises, seed {seed}", recognised / CLASSES, "", note)
        for name, offset in (("accentuate", 0), ("accentuate k+1", 1)):
            start = time.perf_counter()
            results = [
                accentuate(model, "out", k, starts[(k + offset) % CLASSES], prior=prior, seed=seed)
                for k in range(CLASSES)
            ]
            per_unit = (time.perf_counter() - start) / CLASSES
            images = drawn[name] = np.stack([r.image for r in results])
            called = classify(judge, images)
            recognised = int(np.sum(called == classes))
            kept = int(np.sum(called == (classes + offset) % CLASSES))  # still the start's class
            model_calls = int(np.sum(classify(model, images) == classes))
            distance, _ = distance_text(images, prior)
            change = np.median([r.change for r in results])
            what = "class k's first test image" if offset == 0 else "a class k+1 test image"
            table.add(
                f"logits, {name}: judge recognises, seed {seed}",
                recognised / CLASSES,
                "",
                f"{recognised}/10{f' (calls {kept}/10 class k+1)' if offset else ''}; from {what}; "
                f"CNN calls {model_calls}/10 class k; RMS change {change:.2f}; "
                f"{distance}; {per_unit:.2f} s/unit",
            )
        if png is not None and seed == seeds[0]:
            for recipe, images in drawn.items():
                rows = images[None]
                if recipe.startswith("accentuate"):  # the real image each began as above it
                    rows = np.stack([np.roll(starts, -1 if recipe.endswith("k+1") else 0, axis=0), images])
                save_png(rows, png / f"fv_logits_{recipe.replace(' ', '_').replace('+', 'p')}.png", scale=6)
            save_png(np.stack(list(drawn.values())), png / "fv_logits_recipes.png", scale=6)

        # conv2 and fc1: the share of units beating every MNIST image
        for layer in ("conv2", "fc1"):
            m = best[layer]
            live = m > 0
            shares: dict[str, tuple[float, str]] = {}
            conv2_images: dict[bool, np.ndarray] = {}
            for recipe in ("naive", *RECIPES):
                start = time.perf_counter()
                vis = visualize(
                    model,
                    layer,
                    image_shape=SHAPE,
                    regularised=recipe != "naive",
                    parameterisation="pixel" if recipe == "naive" else recipe,
                    prior=prior,
                    seed=seed,
                )
                elapsed = time.perf_counter() - start
                if layer == "conv2" and recipe in ("naive", "pixel"):
                    conv2_images[recipe == "pixel"] = vis.images[:16, 0]
                a = vis.activation[:, 0]
                share = float(np.mean(a >= m))
                note = (
                    f"{int(np.sum(a >= m))}/{len(m)}; live units {np.mean(a[live] >= m[live]):.3f} "
                    f"({int(live.sum())}); median ratio {np.median(a[live] / m[live]):.2f}; "
                    f"{elapsed / len(m):.2f} s/unit ({elapsed:.1f} s batch)"
                )
                shares[recipe] = share, note
                table.add(f"beats MNIST, {layer}, {recipe}, seed {seed}", share, "", note)
            share, note = shares[auto[layer]]  # "auto" renders exactly what its parameterisation does
            table.add(
                f"beats MNIST, {layer}, default (auto = {auto[layer]}), seed {seed}",
                share,
                "",
                f"as {auto[layer]}; goal >= {BEATS_GOAL}: {'met' if share >= BEATS_GOAL else 'MISSED'}",
            )
            if png is not None and seed == seeds[0] and layer == "conv2":
                save_png(np.stack([conv2_images[False], conv2_images[True]]), png / "fv_conv2.png", scale=6)
        start = time.perf_counter()
        vis = visualize(model, "conv2", image_shape=SHAPE, restarts=2, prior=prior, seed=seed)
        elapsed = time.perf_counter() - start
        a = vis.activation[:, 0]
        table.add(
            f"beats MNIST, conv2, default, 2 restarts, seed {seed}",
            float(np.mean(a >= best["conv2"])),
            "",
            f"share: {int(np.sum(a >= best['conv2']))}/32, {elapsed:.1f} s",
        )
    if png is not None:
        vis = visualize(model, "out", [0, 3, 6, 8], image_shape=SHAPE, n_diverse=4, prior=prior, seed=seeds[0])
        save_png(vis.images, png / "fv_logits_diverse.png", scale=6)  # a row per class, its 4 images side by side
        print(f"  images: {png}/fv_logits_*.png, fv_conv2.png, fv_logits_diverse.png")
    print(f"  {time.perf_counter() - began:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
