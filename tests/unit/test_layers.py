"""Which layer a view opens on: the last hidden layer before the model's output, from a Run's list of layers."""

from layerscope.capture import describe_layers
from layerscope.layers import LayerInfo, last_hidden_layer, output_layer
from layerscope.models.seed_cnn import SeedCNN


def _layers(*specs: tuple[str, str, tuple[int, ...]]) -> list[LayerInfo]:
    return [LayerInfo("input", "image", (1, 28, 28)), *(LayerInfo(*spec) for spec in specs)]


def test_the_report_cnn_opens_on_fc2():
    layers = describe_layers(SeedCNN(), (1, 28, 28))
    assert [info.name for info in layers] == ["input", "conv1", "conv2", "pool", "fc1", "fc2", "out"]
    assert output_layer(layers, 10) == "out"
    assert last_hidden_layer(layers, 10) == "fc2"
    assert last_hidden_layer(layers, 10, kinds=("dense",)) == "fc2"


def test_other_layer_names_open_on_the_last_hidden_layer():
    # a torchvision-style model: features.0 and .3 convolutions, classifier.1 hidden, classifier.4 the logits
    layers = _layers(
        ("features.0", "conv", (8, 26, 26)),
        ("features.3", "conv", (16, 11, 11)),
        ("classifier.1", "dense", (128,)),
        ("classifier.4", "dense", (10,)),
    )
    assert output_layer(layers, 10) == "classifier.4"
    assert last_hidden_layer(layers, 10) == "classifier.1"
    assert last_hidden_layer(layers, 10, kinds=("dense",)) == "classifier.1"
    assert last_hidden_layer(layers, 10, kinds=("conv",)) == "features.3"


def test_without_a_hidden_dense_layer():
    # convolutions straight into the logits: a unit to switch off is the last conv layer's; a dense view gets the
    # output, the only dense layer
    layers = _layers(("block1", "conv", (8, 26, 26)), ("block2", "conv", (16, 12, 12)), ("head", "dense", (10,)))
    assert last_hidden_layer(layers, 10) == "block2"
    assert last_hidden_layer(layers, 10, kinds=("dense",)) == "head"
    assert last_hidden_layer(_layers(), 10) == "input"  # nothing but the image


def test_a_run_that_leaves_the_output_out_opens_on_its_last_layer():
    # captured without ``out``: fc2 (64 units, not one per class) is the last layer and a hidden one
    layers = _layers(("conv1", "conv", (16, 26, 26)), ("fc1", "dense", (64,)), ("fc2", "dense", (64,)))
    assert output_layer(layers, 10) is None
    assert last_hidden_layer(layers, 10) == "fc2"
    # a last dense layer with as many units as classes is taken for the output
    assert output_layer(layers, 64) == "fc2" and last_hidden_layer(layers, 64) == "fc1"
    assert output_layer(_layers(("maps", "conv", (10, 4, 4))), 10) is None  # the logits are dense
