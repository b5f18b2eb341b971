"""Datasets (bundled MNIST, IDX directories, image folders) and the IDX file format."""

from layerscope.data.datasets import (
    TEST,
    TRAIN,
    Dataset,
    load_dataset,
    load_idx_dir,
    load_image_folder,
    load_mnist,
)
from layerscope.data.idx import read_idx, write_idx

__all__ = [
    "Dataset",
    "TEST",
    "TRAIN",
    "load_dataset",
    "load_idx_dir",
    "load_image_folder",
    "load_mnist",
    "read_idx",
    "write_idx",
]
