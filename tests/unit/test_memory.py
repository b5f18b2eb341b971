"""The memory budget that sizes capture's and PCA's batches: parsing --memory, the machine's default, the arithmetic."""

import pytest

from layerscope.capture import CAPTURE_BATCH, capture_batch_size
from layerscope.errors import LayerscopeError
from layerscope.layers import LayerInfo
from layerscope.memory import (
    DEFAULT_CAP,
    MIN_BUDGET,
    MemoryBudget,
    activation_row_bytes,
    available_memory,
    format_bytes,
    memory_budget,
    parse_memory,
)
from layerscope.projections.compute import BATCH, KEEP_SHARE, TRUST_SAMPLE, pca_plan, quality_sample_size

GB = 1000**3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4GB", 4 * GB),
        ("4gb", 4 * GB),
        ("4 GB", 4 * GB),
        ("1.5G", 1_500_000_000),
        ("512MB", 512_000_000),
        ("2GiB", 2 * 1024**3),
        ("100MiB", 100 * 1024**2),
        ("200000000", 200_000_000),
        (3 * GB, 3 * GB),
    ],
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "4 XB", "-1GB", "four", "4GB of RAM", "1e9"])
def test_parse_memory_refuses_what_is_not_an_amount(text):
    with pytest.raises(LayerscopeError, match="--memory .* is not an amount of memory; give one such as 4GB"):
        parse_memory(text)


def test_parse_memory_refuses_a_budget_too_small_to_work_in():
    with pytest.raises(LayerscopeError, match="too small; give at least 67.1 MB"):
        parse_memory("10MB")
    assert parse_memory(MIN_BUDGET) == MIN_BUDGET


def test_the_default_budget_is_half_the_available_memory_at_most_the_cap():
    assert memory_budget(available=2 * GB).bytes == GB
    assert memory_budget(available=64 * GB).bytes == DEFAULT_CAP
    assert memory_budget(available=10**6).bytes == MIN_BUDGET  # a nearly full machine still gets a batch
    assert 0 < memory_budget().bytes <= DEFAULT_CAP
    assert available_memory() > MIN_BUDGET


def test_memory_caps_the_budget_but_never_beyond_what_is_available():
    assert memory_budget("1GB", available=10 * GB).bytes == GB
    assert memory_budget("6GB", available=16 * GB).bytes == 6 * GB  # above the default cap when asked for
    assert memory_budget("64GB", available=8 * GB).bytes == 8 * GB


def test_rows_of_a_budget():
    budget = MemoryBudget(1000)
    assert budget.rows(10) == 100
    assert budget.rows(10, share=0.5) == 50
    assert budget.rows(10, at_most=30) == 30
    assert budget.rows(3000) == 1  # a row larger than the budget still has to be computed
    assert budget.part(0.25) == MemoryBudget(250)


def test_activation_row_bytes():
    # every output and one copy (2 x sum), plus four maps of the widest layer, float32
    assert activation_row_bytes([100, 50]) == 4 * (2 * 150 + 4 * 100)
    assert activation_row_bytes([]) == 0


def test_format_bytes():
    assert format_bytes(1_536_000_000) == "1.5 GB"
    assert format_bytes(2_500) == "2.5 kB"
    assert format_bytes(12) == "12 B"


def _layers():
    # ResNet18 (3x3 stem) on 32x32 RGB images: the input, conv1 and the block outputs, pooled features, logits
    return [
        LayerInfo("input", "image", (3, 32, 32)),
        LayerInfo("conv1", "conv", (64, 32, 32)),
        LayerInfo("maxpool", "conv", (64, 16, 16)),
        LayerInfo("layer1.0.relu_1", "conv", (64, 16, 16)),
        LayerInfo("layer4.1.relu_1", "conv", (512, 2, 2)),
        LayerInfo("avgpool", "conv", (512, 1, 1)),
        LayerInfo("fc", "dense", (10,)),
    ]


def test_pca_plan_keeps_conv_rows_in_layer_order_within_its_share_and_sizes_the_batch_from_the_rest():
    layers, n = _layers(), 10_000
    budget = MemoryBudget(2 * 1024**3)
    plan = pca_plan(layers, n, budget)
    # conv1 (2.6 GB) does not fit in half of 2 GiB; maxpool (655 MB) does, then layer1.0's would not, the rest do
    assert list(plan.keep) == ["maxpool", "layer4.1.relu_1", "avgpool"]
    assert plan.keep["maxpool"] == n * 64 * 16 * 16 * 4
    assert sum(plan.keep.values()) <= budget.bytes * KEEP_SHARE
    row = activation_row_bytes([info.dims for info in layers])
    assert plan.batch == (budget.bytes - sum(plan.keep.values())) // row
    assert 1 <= plan.batch < BATCH


def test_pca_plan_with_room_to_spare_and_with_none():
    layers = _layers()
    roomy = pca_plan(layers, 1_000, MemoryBudget(64 * 1024**3))
    assert set(roomy.keep) == {info.name for info in layers if info.kind == "conv"}
    assert roomy.batch == BATCH
    tight = pca_plan(layers, 1_000, MemoryBudget(MIN_BUDGET))
    assert tight.keep == {"layer4.1.relu_1": 1_000 * 2048 * 4, "avgpool": 1_000 * 512 * 4}
    assert 1 <= tight.batch <= 64
    # inputs and dense layers are read from the Run, never kept
    assert "input" not in roomy.keep and "fc" not in roomy.keep


def test_capture_batch_size_shrinks_with_the_budget():
    layers = _layers()
    assert capture_batch_size(layers, MemoryBudget(4 * 1024**3)) == CAPTURE_BATCH
    small = capture_batch_size(layers, MemoryBudget(MIN_BUDGET))
    assert small == MIN_BUDGET // activation_row_bytes([info.dims for info in layers[1:]])
    assert 1 <= small < CAPTURE_BATCH
    assert capture_batch_size(layers, MemoryBudget(1)) == 1


def test_quality_sample_size():
    assert quality_sample_size(70_000, 784, MemoryBudget(4 * 1024**3)) == TRUST_SAMPLE
    assert quality_sample_size(500, 784, MemoryBudget(4 * 1024**3)) == 500
    # a 224 x 224 ResNet's stem (64 x 112 x 112) in 1 GB: as many as fit twice, float32
    assert quality_sample_size(70_000, 64 * 112 * 112, MemoryBudget(GB)) == GB // (8 * 64 * 112 * 112)
    assert quality_sample_size(70_000, 10**8, MemoryBudget(GB)) == 100
