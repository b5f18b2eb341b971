"""Tracing a model into its graph (``layerscope.graph``) with torch.fx, and the *graph model* that runs it.

See ``layerscope.graph`` for how nodes are named. ``trace_model`` returns the graph and a graph model: the traced
model in which every kept node is a module of its own name, so every layerscope tool that works on a module
(capture, ablation, top images, feature visualisation, Grad-CAM) works on any node, a residual block's ``add``
included. The graph model shares the model's parameters and computes what the model computes (checked on one
random batch); it is for inference (it was traced in eval mode).

A model that symbolic tracing cannot follow (Python control flow on tensor values) falls back to the order its
modules run in (forward hooks): the model is used as it is, and the graph says why.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from layerscope.graph import GraphNode, ModelGraph
from layerscope.layers import INPUT

__all__ = ["NORMS", "keeps_units", "model_graph", "op_name", "source_model", "trace_model"]

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)


# fx patches ``nn.Module.__call__`` and ``__getattr__`` process-wide while it traces: two traces at once would restore
# each other's patches, so one traces at a time
_TRACING = threading.Lock()


class _NodePathTracer(fx.Tracer):
    """An fx tracer that remembers, for each node, the module whose ``forward`` created it. Leaf modules: those with
    no children, torch.nn's own (as fx has them), and the modules a user named as layers.

    Modules called from other threads while it traces (the dashboard's forward passes, a model loaded in the
    background) run as usual: fx's patches see every thread, this tracer only its own."""

    def __init__(self, leaves: Sequence[str]) -> None:
        super().__init__()
        self.leaves = set(leaves)
        self.current = ""
        self.owner: dict[fx.Node, str] = {}
        self.thread = threading.get_ident()

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self.leaves:
            return True
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):  # an empty nn.Sequential() shortcut too
            return False
        if not list(m.children()):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        if threading.get_ident() != self.thread:
            return forward(*args, **kwargs)
        previous = self.current
        self.current = self.path_of_module(m)
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.current = previous

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if threading.get_ident() != self.thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, *rest: Any, **more: Any) -> fx.Proxy:
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **more)
        self.owner[proxy.node] = self.current
        return proxy


class _Function(nn.Module):
    """A function call of the traced graph as a module of its own, so hooks see it (``layer1.0.add``)."""

    def __init__(self, fn: Callable[..., Any], op: str) -> None:
        super().__init__()
        self.fn = fn
        self.op = op

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def extra_repr(self) -> str:
        return self.op


class _Method(nn.Module):
    """A tensor method call of the traced graph (``x.flatten(1)``, ``x.mean(1)``) as a module of its own."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.op = method

    def forward(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(obj, self.op)(*args, **kwargs)

    def extra_repr(self) -> str:
        return self.op


class _Call(nn.Module):
    """A second call of a module (torchvision's ``relu`` after a block's add): its own node, ``layer1.0.relu_1``.
    It runs the module's ``forward`` without the module's hooks, so a hook on ``layer1.0.relu`` sees only the
    first call; the module is not registered twice (its parameters stay where they are)."""

    def __init__(self, module: nn.Module, name: str) -> None:
        super().__init__()
        object.__setattr__(self, "_target", module)
        self.op = type(module).__name__
        self.first = name

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        target: nn.Module = self.__dict__["_target"]
        return target.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"another call of {self.first}"


def op_name(module: nn.Module) -> str:
    """What a graph model's module does: its class name (``Conv2d``), or the function or method of a function or
    method node (``add``, ``flatten``)."""
    return str(module.op) if isinstance(module, (_Function, _Method, _Call)) else type(module).__name__


def source_model(model: nn.Module) -> nn.Module:
    """The model a graph model was traced from (whose ``state_dict`` is the weights file's); else ``model``."""
    return getattr(model, "_layerscope_source", model)


def model_graph(model: nn.Module) -> ModelGraph | None:
    """The graph of a graph model (``trace_model``); None for a model that was not traced."""
    graph = getattr(model, "layerscope_graph", None)
    return graph if isinstance(graph, ModelGraph) else None


def _base(fx_name: str) -> str:
    return re.sub(r"_\d+$", "", fx_name)


def _tensor(node: fx.Node) -> bool:
    return node.meta.get("tensor_meta") is not None


def _data_node(node: fx.Node, batch: int, from_input: set[fx.Node]) -> bool:
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return node in from_input and shape is not None and len(shape) >= 1 and int(shape[0]) == batch


class _Shapes(fx.Interpreter):
    """Runs the traced graph once, keeping each node's output shape (``tensor_meta`` with ``shape``) when it is a
    tensor."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            n.meta["tensor_meta"] = _Meta(tuple(int(s) for s in result.shape))
        return result


@dataclass(frozen=True)
class _Meta:
    shape: tuple[int, ...]


def trace_model(
    model: nn.Module, image_shape: Sequence[int], leaves: Sequence[str] = ()
) -> tuple[nn.Module, ModelGraph]:
    """(graph model, graph) of ``model`` for images of ``image_shape`` (C, H, W); see the module docstring.
    ``leaves``: module names kept whole as one node (``SeedCNN``'s ``conv1`` block, a container the user named)."""
    named = list(getattr(model, "layerscope_layers", None) or ()) + list(leaves)
    was_training = model.training
    model.eval()
    try:
        return _traced(model, tuple(int(s) for s in image_shape), named)
    except Exception as e:  # noqa: BLE001 - any failure of fx means: use the hooks, and say why
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        return model, ModelGraph("hooks", (), f"torch.fx could not trace the model ({type(e).__name__}: {reason})")
    finally:
        model.train(was_training)


def _traced(model: nn.Module, image_shape: tuple[int, ...], named: list[str]) -> tuple[nn.Module, ModelGraph]:
    tracer = _NodePathTracer(named)
    with _TRACING:
        graph = tracer.trace(model)
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = 2
    x = torch.rand((batch, *image_shape), device=device)
    with torch.no_grad():
        expected = model(x)
        _Shapes(gm).run(x)
    # the nodes whose value depends on the input image
    # (through tensors only: the class token expanded to ``x.shape[0]`` rows reads the batch's size, not its pixels)
    from_input: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder" or any(a in from_input and _tensor(a) for a in node.all_input_nodes):
            from_input.add(node)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ValueError(f"forward takes {len(placeholders)} inputs; layerscope gives one image batch")
    modules = dict(model.named_modules())
    taken = set(modules)
    names: dict[fx.Node, str] = {placeholders[0]: INPUT}
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method") or not _data_node(node, batch, from_input):
            continue
        if node.op == "call_module" and not calls.get(str(node.target)):
            calls[str(node.target)] = 1
            names[node] = str(node.target)
            continue
        owner = tracer.owner.get(node, "")
        if node.op == "call_module":
            base = str(node.target)
        else:
            base = f"{owner}.{_base(node.name)}" if owner else _base(node.name)
        names[node] = _fresh(base, taken, calls)
    # every kept node that is not yet a module of its own name becomes one
    for node, name in list(names.items()):
        if node.op == "placeholder":
            continue
        if node.op == "call_module" and name == node.target:
            continue
        if node.op == "call_module":
            wrapper: nn.Module = _Call(modules[str(node.target)], str(node.target))
        elif node.op == "call_function":
            wrapper = _Function(node.target, _function_name(node.target))  # type: ignore[arg-type]
        else:
            wrapper = _Method(str(node.target))
        if not gm.add_submodule(name, wrapper):
            raise ValueError(f"cannot name node {name!r}")
        with graph.inserting_before(node):
            call = graph.call_module(name, node.args, node.kwargs)
        call.meta = dict(node.meta)
        node.replace_all_uses_with(call)
        graph.erase_node(node)
        names[call] = names.pop(node)
    gm.recompile()
    # the graph model computes what the model does
    with torch.no_grad():
        got = gm(x)
    if not (isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor)) or got.shape != expected.shape:
        raise ValueError("the traced model returns something else than the model")
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise ValueError("the traced model computes other values than the model (random ops or state in forward?)")
    result = ModelGraph("fx", tuple(_nodes(gm, graph, names, from_input)))
    object.__setattr__(gm, "layerscope_graph", result)
    if hasattr(model, "layerscope_layers"):
        object.__setattr__(gm, "layerscope_layers", model.layerscope_layers)
    object.__setattr__(gm, "_layerscope_source", model)  # not a submodule: its parameters are gm's already
    return gm, result


def _function_name(fn: Any) -> str:
    return str(getattr(fn, "__name__", type(fn).__name__))


_RESERVED = frozenset(dir(fx.GraphModule))


def _fresh(base: str, taken: set[str], calls: dict[str, int]) -> str:
    """``base``, else ``base_1``, ``base_2``...: the first name no module or node has, and that a module attribute
    may have (a tensor method ``to`` or ``float`` must not hide the module's own)."""
    k = calls.get(base, 0)
    while True:
        name = base if k == 0 else f"{base}_{k}"
        k += 1
        if name not in taken and name.rpartition(".")[2] not in _RESERVED:
            calls[base] = k
            taken.add(name)
            return name


def _nodes(gm: fx.GraphModule, graph: fx.Graph, names: dict[fx.Node, str], from_input: set[fx.Node]) -> list[GraphNode]:
    """The kept nodes as GraphNodes, each reading the nearest kept nodes before it (looking through the others)."""
    modules = dict(gm.named_modules())
    sources: dict[fx.Node, tuple[str, ...]] = {}
    result = []
    for node in graph.nodes:
        reads: list[str] = []
        for arg in (a for a in node.all_input_nodes if _tensor(a)):
            found = (names[arg],) if arg in names else sources.get(arg, ())
            reads += [name for name in found if name not in reads]
        sources[node] = tuple(reads)
        if node not in names:
            continue
        name = names[node]
        meta = node.meta.get("tensor_meta")
        shape = tuple(int(s) for s in meta.shape[1:]) if meta is not None else ()
        if node.op == "placeholder":
            result.append(GraphNode(INPUT, "input", "input", "", (), shape))
            continue
        module = modules[name]
        kind = {_Function: "function", _Method: "method"}.get(type(module), "module")
        block = name.rpartition(".")[0]
        result.append(GraphNode(name, op_name(module), kind, block, tuple(reads), shape))
    return result


# functions and tensor methods after which unit i is still unit i: element-wise activations, pooling, flattening
_KEEPS_UNITS = frozenset(
    {
        *("relu", "relu_", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardtanh", "leaky_relu", "elu"),
        *("softplus", "dropout", "dropout2d", "contiguous", "clone"),
        *("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"),
        *("flatten", "view", "reshape"),
    }
)


def keeps_units(module: nn.Module) -> bool:
    """Whether a function or method node of a graph model maps each unit onto itself (``F.relu``, ``F.max_pool2d``,
    ``torch.flatten``): what these did before tracing made them nodes, when they ran unseen between modules."""
    return isinstance(module, (_Function, _Method)) and module.op in _KEEPS_UNITS
