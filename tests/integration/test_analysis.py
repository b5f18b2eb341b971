import numpy as np
import pytest

from layerscope.analysis import (
    class_means,
    confusion,
    explain_misclassification,
    gallery,
    layer_values,
    neuron_order,
    predictions,
)
from layerscope.errors import LayerscopeError
from layerscope.run import Run


def test_confusion_matches_stored_accuracy(tiny_run):
    run = Run(tiny_run.path)
    matrix = confusion(run)
    assert matrix.shape == (10, 10) and matrix.sum() == 1000
    assert np.trace(matrix) / matrix.sum() == pytest.approx(run.manifest["metrics"]["test_accuracy"], abs=1e-6)
    test = np.asarray(run.split) == 1
    assert list(matrix.sum(1)) == list(np.bincount(np.asarray(run.labels)[test], minlength=10))


def test_gallery_splits_correct_and_wrong_sorted_by_confidence(tiny_run):
    run = Run(tiny_run.path)
    predicted, conf = predictions(run)
    correct, wrong = gallery(run, 7)
    labels = np.asarray(run.labels)
    assert (labels[correct] == 7).all() and (predicted[correct] == 7).all()
    assert (labels[wrong] == 7).all() and (predicted[wrong] != 7).all()
    assert len(correct) + len(wrong) == (labels == 7).sum()
    assert (np.diff(conf[correct]) <= 0).all()
    uncertain, _ = gallery(run, 7, sort="uncertain")
    assert (np.diff(conf[uncertain]) >= 0).all()
    with pytest.raises(LayerscopeError, match="unknown gallery order"):
        gallery(run, 7, sort="size")


def test_class_means_against_a_direct_mean(tiny_run):
    run = Run(tiny_run.path)
    labels = np.asarray(run.labels)
    means = class_means(run, "fc1")
    np.testing.assert_allclose(means[3], np.asarray(run.activations("fc1"))[labels == 3].mean(0), rtol=1e-5)
    assert class_means(run, "conv2").shape == (10, 32)
    assert layer_values(run, "pool").shape == (4000, 32)


def test_neuron_order():
    rows = np.array([[1.0, 5.0, 3.0], [1.0, -5.0, 3.0]])
    assert list(neuron_order(rows, "mean")) == [2, 0, 1]
    assert list(neuron_order(rows, "variance"))[0] == 1
    assert list(neuron_order(rows, "difference", 0, 1)) == [1, 0, 2]


def test_explain_a_misclassification(tiny_run):
    run = Run(tiny_run.path)
    predicted, _ = predictions(run)
    labels = np.asarray(run.labels)
    index = int(np.flatnonzero(predicted != labels)[0])
    e = explain_misclassification(run, "fc2", index)
    assert (e.true, e.predicted) == (labels[index], predicted[index])
    assert e.rows.shape == (3, 64)
    np.testing.assert_allclose(e.rows[0], run.activations("fc2")[index])
    means = class_means(run, "fc2")
    expected = (e.rows[0] - means[e.true]) * (means[e.predicted] - means[e.true])
    np.testing.assert_allclose(e.score, expected, rtol=1e-5, atol=1e-7)
    assert (np.diff(e.score[e.order]) <= 0).all()
    correct = int(np.flatnonzero(predicted == labels)[0])
    with pytest.raises(LayerscopeError, match="classified correctly"):
        explain_misclassification(run, "fc2", correct)
