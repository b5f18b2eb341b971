import importlib

import layerscope


def test_public_api_is_explicit_and_importable():
    assert len(layerscope.__all__) == len(set(layerscope.__all__))
    for name in layerscope.__all__:
        assert hasattr(layerscope, name), name
    public = {
        n for n in vars(layerscope) if not n.startswith("_") and not isinstance(getattr(layerscope, n), type(importlib))
    }
    assert public <= set(layerscope.__all__), public - set(layerscope.__all__)


def test_subpackages_declare_all():
    for module in [
        "layerscope.data",
        "layerscope.models",
        "layerscope.projections",
        "layerscope.capture",
        "layerscope.run",
        "layerscope.featurevis",
        "layerscope.topk",
        "layerscope.network",
        "layerscope.receptive",
        "layerscope.attribution",
        "layerscope.ablation",
        "layerscope.drawing",
        "layerscope.interop",
        "layerscope.pipeline",
    ]:
        mod = importlib.import_module(module)
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.{name}"
