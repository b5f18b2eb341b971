"""The report's stack, measured: the same CNN in Keras 3 on TensorFlow-cpu, trained and predicting on MNIST.

Run by ``training.py`` with the Python of its own virtual environment (``.venv-keras``, made on first use), so
TensorFlow never enters layerscope's environment. It reads the images from an ``.npz`` file that ``training.py``
writes, and prints one JSON object on its last line. Alone:

    .venv-keras/bin/python benchmarks/keras_stack.py DATA.npz [--max-epochs 12] [--target 0.99] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def report_cnn() -> keras.Model:
    """Section 5.1 of the report: conv 16@3x3, conv 32@3x3, max-pool 2x2, dense 64, dense 64, dense 10 softmax."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--predict-batch", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = np.load(args.data)
    images = (data["images"].astype(np.float32) / 255.0)[..., None]  # (N, 28, 28, 1), channels last as Keras wants
    labels, train = data["labels"].astype(np.int64), data["train"].astype(bool)
    x_train, y_train, x_test, y_test = images[train], labels[train], images[~train], labels[~train]

    keras.utils.set_random_seed(args.seed)
    model = report_cnn()
    # the report's recipe: Adam at Keras's default learning rate 1e-3, batch 128, no augmentation
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = []
    elapsed = 0.0
    reached = None
    for epoch in range(1, args.max_epochs + 1):
        start = time.perf_counter()
        model.fit(x_train, y_train, batch_size=args.batch_size, epochs=1, shuffle=True, verbose=0)
        _, accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
        seconds = time.perf_counter() - start
        elapsed += seconds
        history.append({"epoch": epoch, "test_accuracy": float(accuracy), "seconds": seconds})
        print(f"keras epoch {epoch}: test accuracy {accuracy:.4f}, {seconds:.1f} s", flush=True)
        if accuracy >= args.target:
            reached = {"epoch": epoch, "seconds": elapsed}
            break

    predict = {}
    for batch in args.predict_batch:
        for name, x in (("test", x_test), ("all", images)):
            model.predict(x[: batch * 4], batch_size=batch, verbose=0)  # warm-up: tracing and thread pools
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model.predict(x, batch_size=batch, verbose=0)
                times.append(time.perf_counter() - start)
            predict[f"{name}@{batch}"] = {"images": len(x), "seconds": statistics.median(times)}
    print(
        json.dumps(
            {
                "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
                "history": history,
                "reached": reached,
                "predict": predict,
            }
        )
    )


if __name__ == "__main__":
    main()
