"""A private copy of a user's model, so that exporting never changes it.

`copy.deepcopy` refuses tensors that are not graph leaves ("Only Tensors created explicitly
by the user (graph leaves) support the deepcopy protocol"): a blog SAGAN keeps
`gamma = torch.zeros(1, requires_grad=True) + 0.5` as a plain attribute. Such tensors are
copied detached (their value, without the autograd history nobody exports).
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def _non_leaf_tensors(value: Any, found: dict[int, torch.Tensor], depth: int = 0) -> None:
    if isinstance(value, torch.Tensor):
        if value.grad_fn is not None:
            found[id(value)] = value
    elif depth < 3 and isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _non_leaf_tensors(item, found, depth + 1)
    elif depth < 3 and isinstance(value, dict):
        for item in value.values():
            _non_leaf_tensors(item, found, depth + 1)


def private_copy(model: M) -> M:
    """A deep copy of `model`; plain-attribute tensors with autograd history are copied detached."""
    found: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for value in vars(module).values():
            _non_leaf_tensors(value, found)
    memo: dict[int, Any] = {key: tensor.detach().clone() for key, tensor in found.items()}
    return copy.deepcopy(model, memo)
