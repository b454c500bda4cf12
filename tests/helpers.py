"""Test helpers that check artifacts independently of the library's own parity code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from attndeploy.lowering.deformconv import PLUGIN_DOMAIN, plugin_nodes_to_onnx


def ort_session(onnx_path: Path) -> ort.InferenceSession:
    """A fresh onnxruntime CPU session for `onnx_path`.

    TensorRT plugin nodes (which onnxruntime cannot run) are swapped for ONNX DeformConv.
    """
    model = onnx.load(str(onnx_path))
    if any(n.domain == PLUGIN_DOMAIN for n in model.graph.node):
        model = plugin_nodes_to_onnx(model)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def ort_run(onnx_path: Path, x: torch.Tensor) -> list[np.ndarray]:
    session = ort_session(onnx_path)
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})


@torch.no_grad()
def assert_onnx_matches_eager(onnx_path: Path, model: torch.nn.Module, shapes: Sequence[tuple[int, ...]],
                              atol: float = 1e-4, rtol: float = 1e-3, seed: int = 1234) -> None:
    """The library's (Polygraphy's) rule at every shape: an element fails past both `atol` and `rtol`·|ref|."""
    model = model.eval()
    gen = torch.Generator().manual_seed(seed)
    session = ort_session(onnx_path)
    for shape in shapes:
        x = torch.randn(shape, generator=gen)
        refs = model(x)
        refs = refs if isinstance(refs, tuple) else (refs,)
        gots = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        assert len(gots) == len(refs), f"{len(gots)} outputs in ONNX, {len(refs)} in eager"
        for i, (ref, got) in enumerate(zip(refs, gots)):
            diff = np.abs(got.astype(np.float64) - ref.numpy())
            failing = diff > np.maximum(atol, rtol * np.abs(ref.numpy()))
            assert got.shape == tuple(ref.shape) and not failing.any(), \
                f"output {i} at shape {shape}: {int(failing.sum())} element(s) past atol {atol:g} and rtol {rtol:g}, " \
                f"max abs error {float(diff.max()):.3g}"


def op_types(onnx_path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(onnx_path)).graph.node]


@torch.no_grad()
def assert_twin_equals_reference(ref: torch.nn.Module, twin: torch.nn.Module, shapes: Sequence[tuple[int, ...]],
                                 atol: float, rtol: float = 0.0, seed: int = 3) -> None:
    """`twin` loads `ref`'s state_dict strictly (the same layout) and gives `ref`'s output, in eval mode, on fresh
    N(0, 1) inputs at every shape (N, C, H, W)."""
    ref.eval()
    twin.load_state_dict(ref.state_dict(), strict=True)
    twin.eval()
    gen = torch.Generator().manual_seed(seed)
    for shape in shapes:
        x = torch.randn(shape, generator=gen)
        torch.testing.assert_close(twin(x), ref(x), atol=atol, rtol=rtol)
