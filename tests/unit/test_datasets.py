import numpy as np
import pytest

from layerscope.data import load_dataset, load_idx_dir, write_idx
from layerscope.errors import LayerscopeError


def test_idx_dir_with_class_names(idx_dir):
    d = load_idx_dir(idx_dir, class_names="low,mid,high")
    assert d.images.shape == (80, 1, 8, 8)
    assert d.class_names == ("low", "mid", "high")
    assert len(d.indices(0)) == 60 and len(d.indices(1)) == 20
    assert d.name == "toy"


def test_class_names_from_file(idx_dir, tmp_path):
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    assert load_dataset(idx_dir, str(tmp_path / "names.txt")).class_names == ("a", "b", "c")


def test_too_few_class_names(idx_dir):
    with pytest.raises(LayerscopeError, match="labels go up to 2 but only 2 class names"):
        load_idx_dir(idx_dir, class_names="a,b")


def test_missing_file(idx_dir):
    (idx_dir / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(LayerscopeError, match="no test labels file"):
        load_idx_dir(idx_dir)


def test_label_count_mismatch(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", np.zeros(7, np.uint8))
    with pytest.raises(LayerscopeError, match="test has 20 images but labels of shape"):
        load_idx_dir(idx_dir)


def test_subset_keeps_canonical_order(idx_dir):
    d = load_idx_dir(idx_dir).subset(10, 5)
    assert len(d) == 15
    assert list(d.split) == [0] * 10 + [1] * 5
    assert d.info == {"train_limit": 10, "test_limit": 5}
