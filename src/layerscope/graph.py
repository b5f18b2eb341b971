"""The model as the graph it computes: nodes for modules, functions and tensor methods, edges where tensors flow.
This module describes a graph without importing torch (a Run's manifest keeps one); ``layerscope.tracing`` traces
a model into one.

A model is traced with torch.fx symbolic tracing, as torchvision's ``feature_extraction`` does, and each node is
named as there: a module call by its dotted name (``layer1.0.conv1``; a second call of the same module
``layer1.0.relu_1``), a function or tensor method by the module whose ``forward`` runs it and the op
(``layer1.0.add``, ``flatten``, ``blocks.0.add_1``). Only nodes whose output is a tensor indexed by image (batch
first) are kept; the others (``x.size(0)``, a parameter read) are looked through, so a ``view(x.size(0), -1)``
reads the node before it.

``trace_model`` returns the graph and a *graph model*: the traced model in which every kept node is a module of
its own name, so every layerscope tool that works on a module (capture, ablation, top images, feature
visualisation, Grad-CAM) works on any node, a residual block's ``add`` included. The graph model shares the
model's parameters and computes what the model computes (checked on one random batch); it is for inference (it
was traced in eval mode).

A model that symbolic tracing cannot follow (Python control flow on tensor values) falls back to the order its
modules run in (forward hooks): its layers are then its leaf modules as a chain, and the graph says why.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GraphNode", "ModelGraph", "MERGES", "chain_graph"]

# ops that bring two or more tensors together: where a skip connection or a branch rejoins
MERGES = frozenset({"add", "iadd", "sub", "mul", "imul", "cat", "concat", "stack", "matmul", "bmm", "einsum"})


@dataclass(frozen=True)
class GraphNode:
    """One node of a model's graph.

    ``op`` is the module's class name (``Conv2d``), the function's or method's name (``add``, ``cat``,
    ``flatten``) or ``input``; ``kind`` is "input", "module", "function" or "method"; ``block`` the dotted name of
    the module whose ``forward`` runs it ("" for the model's own); ``inputs`` the nodes it reads."""

    name: str
    op: str
    kind: str
    block: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]  # the output's shape for one image

    @property
    def merge(self) -> bool:
        """Whether it brings two or more nodes together (an add of a skip connection, a concatenation)."""
        return self.kind in ("function", "method") and self.op in MERGES and len(self.inputs) >= 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "kind": self.kind,
            "block": self.block,
            "inputs": list(self.inputs),
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphNode:
        return cls(
            str(d["name"]),
            str(d["op"]),
            str(d["kind"]),
            str(d["block"]),
            tuple(str(s) for s in d["inputs"]),
            tuple(int(s) for s in d["shape"]),
        )


@dataclass(frozen=True)
class ModelGraph:
    """A model's nodes in the order a forward pass computes them, input first. ``method`` is "fx" (symbolic
    tracing) or "hooks" (the order the modules ran in, as a chain: ``reason`` says why tracing was not used)."""

    method: str
    nodes: tuple[GraphNode, ...]
    reason: str = ""
    _index: dict[str, GraphNode] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({node.name: node for node in self.nodes})

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def node(self, name: str) -> GraphNode:
        return self._index[name]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    @property
    def edges(self) -> list[tuple[str, str]]:
        """(source, target) for every tensor that flows from one node into another."""
        return [(src, node.name) for node in self.nodes for src in node.inputs]

    def consumers(self, name: str) -> list[str]:
        return [node.name for node in self.nodes if name in node.inputs]

    @property
    def blocks(self) -> list[str]:
        """The modules that hold a merge of their own (a residual block's add, an Inception block's cat), outermost
        only: ``layer1.0`` of a ResNet, ``blocks.3`` of a ViT (not its attention inside)."""
        owners = sorted({node.block for node in self.nodes if node.merge and node.block})
        return [b for b in owners if not any(b.startswith(f"{o}.") for o in owners if o != b)]

    def block_output(self, block: str) -> str | None:
        """The last node of ``block`` that something outside the block reads (or that ends the graph)."""
        inside = [node.name for node in self.nodes if _within(node.name, block) and node.kind != "input"]
        leaving = [
            name
            for name in inside
            if name == self.nodes[-1].name or any(not _within(c, block) for c in self.consumers(name))
        ]
        return leaving[-1] if leaving else (inside[-1] if inside else None)

    def default_layers(self, modules: dict[str, Any], skipped: tuple[type, ...], norms: tuple[type, ...]) -> list[str]:
        """The layers a user wants first. In a chain, every computing module (not ``skipped``). With blocks: the
        stem's and the head's computing modules (normalisations left out), each block's output after its merge, and
        merges outside any block."""
        blocks = self.blocks
        chosen = []
        for node in self.nodes[1:]:
            if any(_within(node.name, b) for b in blocks):
                continue
            module = modules.get(node.name)
            if node.kind == "module" and module is not None and not isinstance(module, skipped):
                if not (blocks and isinstance(module, norms)):
                    chosen.append(node.name)
            elif node.merge:
                chosen.append(node.name)
        outputs = {self.block_output(b) for b in blocks} - {None}
        order = {name: i for i, name in enumerate(self.names)}
        return sorted({*chosen, *(str(o) for o in outputs)}, key=order.__getitem__)

    @property
    def groups(self) -> list[str]:
        """The modules that hold two or more nodes, each drawable as one node (``layer1``, ``layer1.0``,
        ``layer1.0.downsample``), outermost first."""
        counts: dict[str, int] = {}
        for node in self.nodes[1:]:
            parts = node.name.split(".")[:-1]
            for i in range(1, len(parts) + 1):
                path = ".".join(parts[:i])
                counts[path] = counts.get(path, 0) + 1
        return sorted((path for path, n in counts.items() if n >= 2), key=lambda p: (p.count("."), p))

    def shown(self, collapsed: Collection[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """(nodes, edges) with every group in ``collapsed`` drawn as one node named after the group (the outermost
        collapsed group wins); edges inside a collapsed group disappear, edges into and out of it meet its node."""
        folded = sorted(set(collapsed) & set(self.groups), key=lambda p: (p.count("."), p))

        def seen_as(name: str) -> str:
            return next((group for group in folded if _within(name, group)), name)

        nodes = list(dict.fromkeys(seen_as(node.name) for node in self.nodes))
        edges = list(dict.fromkeys((seen_as(src), seen_as(dst)) for src, dst in self.edges))
        return nodes, [(src, dst) for src, dst in edges if src != dst]

    def skip_edges(self) -> set[tuple[str, str]]:
        """The edges into a merge that bypass the path computed just before it: a residual block's shortcut (every
        input of the merge but the last one computed)."""
        order = {name: i for i, name in enumerate(self.names)}
        skips: set[tuple[str, str]] = set()
        for node in self.nodes:
            if node.merge:
                last = max(node.inputs, key=order.__getitem__)
                skips.update((src, node.name) for src in node.inputs if src != last)
        return skips

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "reason": self.reason, "nodes": [node.to_dict() for node in self.nodes]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelGraph:
        return cls(str(d["method"]), tuple(GraphNode.from_dict(n) for n in d["nodes"]), str(d.get("reason", "")))


def _within(name: str, block: str) -> bool:
    return name.startswith(f"{block}.")


def chain_graph(layers: Sequence[Any], method: str = "hooks", reason: str = "") -> ModelGraph:
    """A chain of ``layers`` (LayerInfo: input first), each reading the one before: the graph of a Run written
    before layerscope traced models, or of a model that tracing cannot follow."""
    nodes = []
    for i, info in enumerate(layers):
        kind = "input" if info.kind == "image" else "module"
        block = info.name.rpartition(".")[0] if kind == "module" else ""
        inputs = (layers[i - 1].name,) if i else ()
        nodes.append(GraphNode(info.name, "input" if i == 0 else info.kind, kind, block, inputs, tuple(info.shape)))
    return ModelGraph(method, tuple(nodes), reason)
