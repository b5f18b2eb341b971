"""A hand-made NN_data.json as the report's notebook would write it: Keras layer names, partial layers, a projection of
some instances only, and per-digit average instances."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

DIGITS = 10
PER_DIGIT = 4  # instances x_0 .. x_39; x_i is digit i % 10
N = DIGITS * PER_DIGIT
SUBSET = [f"x_{i}" for i in range(0, N, 2)]  # conv2d_1 is projected for these 20 instances only
WRONG = {7: 1, 13: 8}  # x_7 (a 7) was taken for a 1, x_13 (a 3) for an 8


def _image(rng: np.random.Generator, digit: int) -> list[list[float]]:
    """28x28 floats in [0, 1] at 8-bit steps: noise with the digit's row band lit."""
    pixels = rng.integers(0, 60, size=(28, 28))
    pixels[2 + 2 * digit : 4 + 2 * digit] = 255
    return np.round(pixels / 255.0, 4).tolist()


def hand_made() -> dict[str, Any]:
    """Values are multiples of 1/64, so float32 holds them exactly and a round trip can be compared with ==."""
    rng = np.random.default_rng(7)
    names = [f"x_{i}" for i in range(N)]
    digit = {name: i % DIGITS for i, name in enumerate(names)}
    averages = [f"avg_{d}" for d in range(DIGITS)]
    data: dict[str, Any] = {
        "digit_to_instances": {
            str(d): [f"avg_{d}"] + [n for n in names if digit[n] == d] for d in range(DIGITS)
        },  # the average first, as the report's gallery shows it
        "prediction_results": {n: [digit[n], WRONG.get(int(n[2:]), digit[n])] for n in names},
        "activations": {
            "dense_1": {n: (rng.integers(0, 256, 8) / 64).tolist() for n in names + averages},
            "dense_2": {n: (rng.integers(0, 64, 10) / 64).tolist() for n in names},
        },
        "projections": {
            "conv2d_1": {n: (rng.integers(-256, 256, 2) / 64).tolist() for n in SUBSET},
            "dense_1": {n: (rng.integers(-256, 256, 2) / 64).tolist() for n in names + averages},
        },
        "images": {n: _image(rng, digit[n]) for n in names},
    }
    for d in range(DIGITS):
        data["images"][f"avg_{d}"] = _image(rng, d)
    return data


def write(path: Path, data: dict[str, Any] | None = None) -> Path:
    path.write_text(json.dumps(hand_made() if data is None else data))
    return path
