"""Map an ONNX node back to the PyTorch module that produced it.

Two exporters, two conventions (torch 2.13):

- TorchScript (`dynamo=False`) names nodes by module scope:
  `/backbone/layer3/layer3.1/layer3.1.0/conv/Conv`. Each component is the child's
  name, prefixed by its parent's when the parent is a container (`layer3.1` under
  `layer3`); the last component is the op. -> `backbone.layer3.1.0.conv`.
- dynamo writes `metadata_props`: `pkg.torch.onnx.name_scopes` (a Python list literal,
  `['', 'ChannelGate.mlp', 'ChannelGate.mlp.1', 'linear']`: module paths, then the op)
  and `namespace` (`': Cls/ChannelGate.mlp: Sequential/ChannelGate.mlp.1: Linear/linear: aten...'`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterable

import onnx

ROOT = ""  # the exported module itself


def _recorded_paths(node: onnx.NodeProto) -> list[str] | None:
    """dynamo's module paths for `node`, outermost first (`name_scopes`, else `namespace`); None if neither."""
    props = {p.key: p.value for p in node.metadata_props}
    if "pkg.torch.onnx.name_scopes" in props:
        try:
            scopes = ast.literal_eval(props["pkg.torch.onnx.name_scopes"])
        except (ValueError, SyntaxError):
            scopes = None
        if isinstance(scopes, (list, tuple)) and scopes:
            return [str(s) for s in scopes[:-1] if str(s)]
    if "namespace" in props:
        names = [segment.split(":")[0].strip() for segment in props["namespace"].split("/")]
        return [n for n in names[:-1] if n]
    return None


def _name_components(name: str) -> list[str] | None:
    """TorchScript's scope components of node name `name` (``/mlp/mlp.0/Gemm`` -> mlp, mlp.0); None if unscoped."""
    return [p for p in name.strip("/").split("/")[:-1] if p] if name.startswith("/") else None


def scope_from_node_name(name: str) -> str | None:
    """`'/backbone/layer3/1/attn/Conv'` -> `'backbone.layer3.1.attn'`; `None` if `name` has no scope."""
    parts = _name_components(name)
    if parts is None:
        return None
    path: list[str] = []
    previous = ""
    for part in parts:
        local = part[len(previous) + 1:] if previous and part.startswith(previous + ".") else part
        path.append(local)
        previous = part
    return ".".join(path)


def module_scope(node: onnx.NodeProto) -> str:
    """The dotted module path of the PyTorch module that emitted `node` ('' for the root module or unknown)."""
    paths = _recorded_paths(node)
    if paths is not None:
        return paths[-1] if paths else ROOT
    scope = scope_from_node_name(node.name)
    return scope if scope is not None else ROOT


# --- resolving a node against the model's own module paths (localisation) --------------------------

_CALL_SUFFIX = re.compile(r"_\d+$")  # TorchScript's name for the second, third ... call of a module


def short_name(path: str) -> str:
    """TorchScript's scope component for module `path`: its name from the last non-numeric part.

    ``'ChannelGate.mlp'`` -> ``'mlp'``, ``'ChannelGate.mlp.0'`` -> ``'mlp.0'``, ``'layer3.1.0'`` ->
    ``'layer3.1.0'``. A TorchScript node name lists these along the *call* stack
    (``/mlp/mlp.0/Gemm`` when the root calls ``self.ChannelGate.mlp`` itself).
    """
    parts = path.split(".") if path else []
    start = max((i for i, p in enumerate(parts) if not p.isdigit()), default=0)
    return ".".join(parts[start:])


def scope_chain(node: onnx.NodeProto) -> tuple[str, list[str]]:
    """What the exporter recorded about `node`'s module scope, outermost first.

    ``("paths", [...])``: dynamo's full module paths (``['ChannelGate.mlp', 'ChannelGate.mlp.1']``);
    ``("names", [...])``: TorchScript's scope components (``['mlp', 'mlp.0_1']``);
    ``("", [])``: nothing (a node the exporter or an optimizer added without a scope).
    """
    paths = _recorded_paths(node)
    if paths is not None:
        return "paths", paths
    names = _name_components(node.name)
    if names is not None:
        return "names", names
    return "", []


def _known(name: str, table: dict[str, list[str]] | set[str]) -> str | None:
    if name in table:
        return name
    bare = _CALL_SUFFIX.sub("", name)
    return bare if bare in table else None


def module_paths(nodes: Iterable[onnx.NodeProto], paths: Collection[str],
                 calls: Collection[tuple[str, str]] = ()) -> list[str]:
    """For each of `nodes`, the module path among `paths` (the model's `named_modules()` names) that emitted it.

    dynamo: the innermost recorded path that is a module (a ``_N`` call suffix dropped).
    TorchScript: each scope component is matched to the modules with that `short_name`,
    preferring one that `calls` (pairs (caller path, callee path) seen in eager) says the
    previous one called, then a descendant of it, then the shallowest. Falls back to the
    deepest component resolved; ``""`` (the root) when nothing is.
    """
    known = set(paths)
    by_short: dict[str, list[str]] = {}
    for path in known:
        if path:
            by_short.setdefault(short_name(path), []).append(path)
    return [_module_path(node, known, by_short, calls) for node in nodes]


def _module_path(node: onnx.NodeProto, known: set[str], by_short: dict[str, list[str]],
                 calls: Collection[tuple[str, str]]) -> str:
    kind, chain = scope_chain(node)
    if kind == "paths":
        for path in reversed(chain):
            found = _known(path, known)
            if found is not None:
                return found
        return ROOT
    current = ROOT
    for component in chain:
        name = _known(component, by_short)
        if name is None:
            break
        candidates = by_short[name]
        called = [p for p in candidates if (current, p) in calls]
        below = [p for p in candidates if not current or p.startswith(current + ".")]
        current = min(called or below or candidates, key=lambda p: (p.count("."), p))
    return current
