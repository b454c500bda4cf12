"""Eager PyTorch behind the runner interface (the truth every backend is compared with)."""

from __future__ import annotations

import numpy as np
import torch

from attndeploy.defaults import INPUT_NAME
from attndeploy.parity.outputs import flatten_outputs, to_numpy
from attndeploy.runtimes.base import Runner
from attndeploy.runtimes.feeds import IOSpec


class TorchRunner(Runner):
    """`infer({"input": array}) -> {name: array}` with the names of `attndeploy.parity.outputs.flatten_outputs`.

    The model is moved to `device` and `dtype` on activate; outputs come back as float32.
    """

    def __init__(self, model: torch.nn.Module, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 input_name: str = INPUT_NAME) -> None:
        super().__init__()
        self.model, self.device, self.dtype, self.input_name = model, torch.device(device), dtype, input_name
        self.name = f"eager-{self.device.type}-{str(dtype).replace('torch.', '')}"

    def _activate(self) -> None:
        self.model = self.model.eval().to(self.device, self.dtype)
        self.specs = [IOSpec(self.input_name, True, "float32", None)]

    @torch.no_grad()
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(feeds[self.input_name].copy()).to(self.device, self.dtype)
        return to_numpy(flatten_outputs(self.model(x)))
