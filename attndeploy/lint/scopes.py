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

import onnx

ROOT = ""  # the exported module itself


def _from_name_scopes(value: str) -> str | None:
    try:
        scopes = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(scopes, (list, tuple)) or not scopes:
        return None
    paths = [str(s) for s in scopes[:-1] if str(s)]
    return paths[-1] if paths else ROOT


def _from_namespace(value: str) -> str | None:
    names = [segment.split(":")[0].strip() for segment in value.split("/")]
    paths = [n for n in names[:-1] if n]
    return paths[-1] if paths else (ROOT if names else None)


def scope_from_node_name(name: str) -> str | None:
    """`'/backbone/layer3/1/attn/Conv'` -> `'backbone.layer3.1.attn'`; `None` if `name` has no scope."""
    if not name.startswith("/"):
        return None
    parts = [p for p in name.strip("/").split("/")[:-1] if p]
    path: list[str] = []
    previous = ""
    for part in parts:
        local = part[len(previous) + 1:] if previous and part.startswith(previous + ".") else part
        path.append(local)
        previous = part
    return ".".join(path)


def module_scope(node: onnx.NodeProto) -> str:
    """The dotted module path of the PyTorch module that emitted `node` ('' for the root module or unknown)."""
    props = {p.key: p.value for p in node.metadata_props}
    for key, parse in (("pkg.torch.onnx.name_scopes", _from_name_scopes), ("namespace", _from_namespace)):
        if key in props:
            scope = parse(props[key])
            if scope is not None:
                return scope
    scope = scope_from_node_name(node.name)
    return scope if scope is not None else ROOT
