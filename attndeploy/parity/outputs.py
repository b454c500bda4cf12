"""Model outputs of any structure as a flat, named list of tensors (the order the ONNX exporters use).

    flatten_outputs(t), flatten_outputs((t,)) -> {"output": t}
    flatten_outputs((a, b))                   -> {"output0": a, "output1": b}
    flatten_outputs((a, {"boxes": b, "s": c})) -> {"output0": a, "output1_boxes": b, "output1_s": c}
    flatten_outputs({"logits": t, "aux": None}) -> {"logits": t}   (None dropped, see `dropped_outputs`)

Tuples and lists are walked in order and dicts in insertion order, as `torch.onnx.export`
flattens them; `None` and other non-tensor leaves do not become graph outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _leaves(value: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, (tuple, list)):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, str(i)))]
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, str(k)))]
    return [(path, value)]


def _name(path: tuple[str, ...], top_is_dict: bool) -> str:
    if not path:
        return "output"
    head, rest = (path[0], path[1:]) if top_is_dict else (f"output{path[0]}", path[1:])
    return "_".join((head, *rest))


def flatten_outputs(out: Any) -> dict[str, torch.Tensor]:
    """Every tensor leaf of `out`, named by its position (see the module docstring)."""
    top_is_dict = isinstance(out, dict)
    tensors = [(path, leaf) for path, leaf in _leaves(out, ()) if isinstance(leaf, torch.Tensor)]
    if len(tensors) == 1 and not top_is_dict:
        return {"output": tensors[0][1]}
    return {_name(path, top_is_dict): leaf for path, leaf in tensors}


def dropped_outputs(out: Any) -> list[str]:
    """Notes for the leaves that are not tensors (``output1: None``): they are not graph outputs."""
    top_is_dict = isinstance(out, dict)
    return [f"{_name(path, top_is_dict)}: {type(leaf).__name__} dropped (not a tensor, so not a graph output)"
            for path, leaf in _leaves(out, ()) if not isinstance(leaf, torch.Tensor)]


def to_numpy(outputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Detached float32 (or the integer/bool dtype as it is) numpy copies."""
    return {k: (v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()).numpy().copy()
            for k, v in outputs.items()}


def output_names(count: int) -> list[str]:
    """Names for `count` plain outputs: `output`, or `output0`, `output1`, ..."""
    return ["output"] if count == 1 else [f"output{i}" for i in range(count)]
