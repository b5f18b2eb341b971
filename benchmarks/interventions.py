"""Interventions on the server side: ablations re-evaluated over the test set, attributions of one image.

    python benchmarks/interventions.py [--run DIR] [--repeats 3]

Without --run, a Run is made from the shipped weights in a temporary directory over all 70,000 MNIST images, as
`layerscope demo` prepares it. Figures (medians of --repeats, after one warm-up call each):
- evaluate_ablation of the 10,000 test images with conv2 channels 0-15 off (every image from the pixels) and with
  all 64 fc2 neurons off (the pass starts from the stored fc2 activations), with the accuracies before and after;
- attribute() of one test image by each method (saliency, integrated gradients, Grad-CAM on conv2, occlusion);
- randomisation_check() of that image by each method (the trained model and one step per re-initialised layer).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import Table  # noqa: E402
from dashboard import bench_run  # noqa: E402


def main() -> None:
    import torch

    from layerscope.ablation import Ablation, evaluate_ablation
    from layerscope.attribution import attribute, randomisation_check
    from layerscope.data.datasets import TEST

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    def median(fn: Callable[[], Any], repeats: int = args.repeats) -> tuple[float, Any]:
        result = fn()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), result

    table = Table("interventions")
    run = bench_run(args.run, table)
    torch.set_grad_enabled(True)
    model = run.load_model("cpu")
    print(f"torch threads: {torch.get_num_threads()}; median of {args.repeats}", flush=True)

    print("ablation: evaluate_ablation over the test set", flush=True)
    ablation_seconds = []
    for ablation in (Ablation("conv2", tuple(range(16))), Ablation("fc2", tuple(range(64)))):
        seconds, result = median(partial(evaluate_ablation, run, [ablation], model=model))
        ablation_seconds.append(seconds)
        note = (
            f"{result.n_images:,} images, accuracy {result.accuracy_before:.2%} -> {result.accuracy_after:.2%}, "
            f"from {result.resumed_from or 'pixels'}"
        )
        table.add(f"evaluate_ablation, {ablation.label}", seconds, "s", f"median of {args.repeats}; {note}")
    table.ratio(
        "evaluate_ablation, from the pixels / from the stored fc2 activations",
        ablation_seconds[0],
        ablation_seconds[1],
        "what starting the pass from stored activations saves",
    )

    index = int(run.dataset().indices(TEST)[0])
    image = torch.from_numpy(run.images[index].astype("float32") / 255.0)
    methods = [("saliency", None), ("integrated_gradients", None), ("gradcam", "conv2"), ("occlusion", None)]
    print(f"attribution of test image {index}", flush=True)
    for method, layer in methods:
        repeats = max(args.repeats, 5)
        seconds, a = median(partial(attribute, model, image, method, layer=layer), repeats)
        delta = f"; completeness delta {a.delta:+.4f}" if a.delta is not None else ""
        table.add(
            f"attribute {method}" + (f" ({layer})" if layer else ""),
            seconds * 1000,
            "ms",
            f"median of {repeats}; test image {index}{delta}",
        )
    print("randomisation check (cascading, output layer first)", flush=True)
    for method, layer in methods:
        seconds, steps = median(partial(randomisation_check, model, image, method, layer=layer))
        last = steps[-1]
        table.add(
            f"randomisation_check {method}",
            seconds,
            "s",
            f"median of {args.repeats}; {len(steps)} steps; all layers random: Spearman {last.spearman:.2f}, "
            f"SSIM {last.ssim:.2f}",
        )


if __name__ == "__main__":
    main()
