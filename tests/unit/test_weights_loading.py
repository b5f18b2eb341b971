"""Weights saved from a wrapped model load into the plain one; weights of another model are one line that says which
names differ and what to do."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from layerscope.errors import LayerscopeError
from layerscope.models.loading import load_weights
from tests.models import MLP, LeNetBN


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod."])  # DataParallel / DDP, torch.compile
def test_a_wrapped_models_weights_load_into_the_model(tmp_path, prefix):
    saved = LeNetBN(3, 4, 16)
    torch.save({prefix + k: v for k, v in saved.state_dict().items()}, tmp_path / "w.pt")
    model = load_weights(LeNetBN(3, 4, 16), tmp_path / "w.pt")
    for name, tensor in saved.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_names_under_another_prefix_say_so(tmp_path):
    save_file({"net." + k: v for k, v in LeNetBN(3, 4, 16).state_dict().items()}, str(tmp_path / "w.safetensors"))
    with pytest.raises(LayerscopeError) as e:
        load_weights(LeNetBN(3, 4, 16), tmp_path / "w.safetensors")
    line = str(e.value)
    assert "\n" not in line and "starts with 'net.'" in line and "not in the file (bn1.bias, " in line


def test_another_models_weights_name_what_differs(tmp_path):
    torch.save(LeNetBN(3, 4, 16).state_dict(), tmp_path / "w.pt")
    with pytest.raises(LayerscopeError) as e:
        load_weights(MLP(3, 4, 16), tmp_path / "w.pt")
    line = str(e.value)
    assert "\n" not in line and "6 of the model's tensors are not in the file" in line and "--model-arg" in line
