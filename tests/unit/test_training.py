import numpy as np
import pytest
import torch

from layerscope.data import load_idx_dir
from layerscope.models import SeedCNN
from layerscope.training import TrainConfig, evaluate, fit, random_shift


def train_toy(idx_dir, seed):
    data = load_idx_dir(idx_dir)
    torch.manual_seed(seed)
    model = SeedCNN(image_size=8, num_classes=3)
    history = fit(model, data, TrainConfig(epochs=8, batch_size=16, lr=1e-2, seed=seed, device="cpu", augment=0))
    return model, history, data


def test_same_seed_same_weights(idx_dir):
    a, _, _ = train_toy(idx_dir, 3)
    b, _, _ = train_toy(idx_dir, 3)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def test_learns_and_keeps_history(idx_dir):
    model, history, data = train_toy(idx_dir, 0)
    assert [r.epoch for r in history] == list(range(1, 9))
    assert history[-1].train_loss < history[0].train_loss
    loss, accuracy = evaluate(model, data, device="cpu")
    assert accuracy == history[-1].test_accuracy and accuracy > 0.9


def test_evaluate_leaves_training_mode(idx_dir):
    data = load_idx_dir(idx_dir)
    model = SeedCNN(image_size=8, num_classes=3).train()
    evaluate(model, data, device="cpu")
    assert model.training


def test_random_shift_moves_pixels_and_keeps_mass():
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    positions = shifted[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 9, positions % 9
    assert shifted.sum() == 64  # the bright pixel stays inside the image
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(np.unique(positions.numpy())) > 5  # each image gets its own shift
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)


def test_a_device_that_is_not_there_is_a_one_line_error(monkeypatch):
    from layerscope.errors import LayerscopeError
    from layerscope.training import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(LayerscopeError, match=r"unknown device 'gpu'; use cpu, cuda, cuda:N or auto"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LayerscopeError, match="sees no CUDA GPU; use --device cpu"):
        resolve_device("cuda")
    # one GPU: cuda and cuda:0 are it, cuda:7 is not there
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(LayerscopeError, match=r"--device cuda:7: torch sees 1 CUDA GPU \(cuda:0\); choose one"):
        resolve_device("cuda:7")


@pytest.mark.parametrize("batch_size", [12, 16, 64])  # 60 images: 5, 4 and 1 steps
def test_a_few_steps_in_all_train(idx_dir, batch_size):
    # one epoch of 5 steps made torch's OneCycleLR divide by zero (a warm-up of exactly one step)
    data = load_idx_dir(idx_dir)
    n_train = int((data.split == 0).sum())
    model = SeedCNN(image_size=8, num_classes=3)
    history = fit(model, data, TrainConfig(epochs=1, batch_size=batch_size, device="cpu", augment=0))
    assert len(history) == 1 and np.isfinite(history[0].train_loss), n_train
