"""Eager PyTorch behind the runner interface (the truth every backend is compared with)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import numpy as np
import torch

from attndeploy.errors import require
from attndeploy.parity import output_names


class TorchRunner:
    """`infer({"input": array}) -> {"output": array}` (or output0, output1, ... for several outputs)."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 input_name: str = "input") -> None:
        self.model, self.device, self.dtype, self.input_name = model, torch.device(device), dtype, input_name
        self.active = False

    def activate(self) -> TorchRunner:
        self.model = self.model.eval().to(self.device, self.dtype)
        self.active = True
        return self

    @torch.no_grad()
    def infer(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        require(list(feeds) == [self.input_name], "feeds must name exactly the model's input",
                self.input_name, ", ".join(map(str, feeds)))
        value = feeds[self.input_name]
        x = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
        out = self.model(x.to(self.device, self.dtype))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.float().cpu().numpy() for n, o in zip(output_names(len(outs)), outs)}

    def close(self) -> None:
        self.active = False

    def __enter__(self) -> TorchRunner:
        return self.activate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
