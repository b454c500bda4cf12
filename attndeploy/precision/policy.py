"""A precision policy in PyTorch module terms, turned into ONNX nodes: `--keep-fp32 "model.9.*,*.softmax"`.

Every node is labelled with the module that emitted it (`attndeploy.lint.scopes.module_scope`:
TorchScript scope names or dynamo's metadata, both exporters). A pattern (fnmatch: `*`,
`?`, `[...]`) keeps a node when it matches

- the node's module path or any of its ancestors (`model.9` keeps everything in `model.9`),
  `<root>` naming the exported module itself, or
- `<module path>.<op type, lower case>` (`*.softmax` keeps every Softmax node, functional
  `F.softmax` calls included; `model.9.*` keeps every node of `model.9`'s own code too).

`keep_nodes(model, patterns)` -> {node name: the pattern that kept it}; a pattern that keeps
nothing is a usage error listing the module paths the graph has (a typo keeps nothing,
silently, otherwise).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

import onnx

from attndeploy.errors import UsageError
from attndeploy.lint.scopes import module_scope

ROOT_LABEL = "<root>"


def node_labels(node: onnx.NodeProto) -> list[str]:
    """The strings a policy pattern is matched against for `node` (its module, ancestors, `module.op`)."""
    scope = module_scope(node)
    parts = scope.split(".") if scope else []
    labels = [".".join(parts[:i]) for i in range(len(parts), 0, -1)] or [ROOT_LABEL]
    op = node.op_type.lower()
    labels.append(f"{scope}.{op}" if scope else op)
    return labels


def scope_label(node: onnx.NodeProto) -> str:
    """The node's module path as reports write it (`<root>` for the exported module itself)."""
    return module_scope(node) or ROOT_LABEL


def keep_nodes(model: onnx.ModelProto, patterns: Sequence[str]) -> dict[str, str]:
    """{node name: pattern} for every node of `model` a pattern keeps in fp32 (see the module docstring).

    Raises `UsageError` for a pattern that matches no node. Nodes must be named
    (`attndeploy.precision.fp16.name_nodes`).
    """
    kept: dict[str, str] = {}
    matched = dict.fromkeys(patterns, False)
    for node in model.graph.node:
        if node.op_type in ("Constant", "Shape"):
            continue
        labels = node_labels(node)
        for pattern in patterns:
            if any(fnmatch.fnmatchcase(label, pattern) for label in labels):
                kept.setdefault(node.name, pattern)
                matched[pattern] = True
    missing = [p for p, hit in matched.items() if not hit]
    if missing:
        scopes = sorted({scope_label(n) for n in model.graph.node})
        shown = ", ".join(scopes[:12]) + (f" and {len(scopes) - 12} more" if len(scopes) > 12 else "")
        raise UsageError(f"keep_fp32 pattern {missing[0]!r} matches no module of the graph",
                         f"a module path pattern such as {scopes[-1]!r}.* or '*.softmax' (modules: {shown})",
                         repr(missing[0]))
    return kept


def group_by_module(model: onnx.ModelProto, names: Iterable[str]) -> dict[str, list[str]]:
    """{module path: ['<op> <node name>', ...]} of the nodes `names`, in graph order."""
    wanted = set(names)
    grouped: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.name in wanted:
            grouped.setdefault(scope_label(node), []).append(f"{node.op_type} {node.name}")
    return grouped


__all__ = ["ROOT_LABEL", "group_by_module", "keep_nodes", "node_labels", "scope_label"]
