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
    """numpy's rule |got - ref| <= atol + rtol·|ref| (stricter than Polygraphy's) at every shape."""
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
            np.testing.assert_allclose(got, ref.numpy(), atol=atol, rtol=rtol,
                                       err_msg=f"output {i} at shape {shape}")


def op_types(onnx_path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(onnx_path)).graph.node]
