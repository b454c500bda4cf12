"""One module's bench state: its two eager models and the graphs/engines made from them, each made once.

`reduced_onnx(variant)` is the same export at fp16 or int8 (`bench.precision`).
`deploy_onnx()` is `attndeploy.export` of the reference (twins swapped in, dynamic N, H,
W, onnxsim, parity-checked) at the module's first bench shape, reused for every batch.
`reference_onnx(shape)` is the reference exported as-is (TorchScript, opset 17, static
at `shape`, else with dynamic axes; no rewrites, no onnxsim) and checked against eager at
that shape: a module whose reference does not export, or exports to something wrong, is
`NotApplicable`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attndeploy.bench.precision import export_variant
from attndeploy.errors import CheckFailed, UsageError, first_line
from attndeploy.pipeline import run_pipeline
from attndeploy.quiet import quiet
from attndeploy.settings import ExportSettings
from attndeploy.shapes import Shape, format_shape
from attndeploy.spec import ModuleSpec

REFERENCE_OPSET = 17


class NotApplicable(Exception):
    """The backend cannot measure this module (the reason is the message); not an error of the bench."""


@dataclass
class ModuleContext:
    """`reference` / `deploy`: eval-mode modules with the same random weights; `workdir` holds the files."""

    name: str
    spec: ModuleSpec
    reference: torch.nn.Module
    deploy: torch.nn.Module
    example_shape: Shape
    workdir: Path
    threads: int
    opset: int = 17
    seed: int = 0
    ort_level: str = "all"
    _deploy: Path | BaseException | None = None
    _reference: dict[Shape, Path | BaseException] = field(default_factory=dict)
    _engines: dict[Shape, Path] = field(default_factory=dict)
    reduced: dict[str, Path | BaseException] = field(default_factory=dict)   # "fp16", "int8", "int8-ort-cpu"
    export_info: dict[str, Any] = field(default_factory=dict)

    def deploy_onnx(self) -> Path:
        """The exported deploy graph (raises the export's error again on every call if it failed)."""
        if self._deploy is None:
            self._deploy = self._export_deploy()
        if isinstance(self._deploy, BaseException):
            raise self._deploy
        return self._deploy

    def _export_deploy(self) -> Path | BaseException:
        settings = ExportSettings.create(self.reference, self.example_shape, self.workdir / f"{self.name}.onnx",
                                         opset=self.opset, dynamic=True, name=self.name, seed=self.seed, bundle=False)
        try:
            with quiet() as captured:
                res = run_pipeline(settings)
        except Exception as err:  # reported in the backend's cell, the bench goes on
            return RuntimeError(f"export failed: {first_line(err)}" + (f" [{captured.tail(2)}]"
                                                                      if captured.text.strip() else ""))
        self.export_info = {"onnx": str(res.onnx_path), "opset": res.opset, "exporter": res.exporter,
                            "parity_passed": res.parity.passed, "max_abs_err": res.parity.max_abs_err,
                            "nodes": sum(res.node_counts.values()), "seconds": res.seconds}
        if not res.parity.passed:
            return RuntimeError(f"the exported deploy graph failed parity: {res.parity.failure_message()[:200]}")
        return res.onnx_path

    def reduced_onnx(self, variant: str) -> Path:
        """The pipeline's `variant` graph of the module ("fp16", "int8", "int8-ort-cpu"; made once, see
        `bench.precision.export_variant`); raises with the reason where it failed."""
        found = self.reduced.get(variant)
        if found is None:
            try:
                with quiet():
                    res = export_variant(self.reference, self.example_shape, self.workdir / f"{self.name}.{variant}.onnx",
                                         variant, self.seed, opset=self.opset, name=self.name)
                found = (res.onnx_path if res.passed else
                         RuntimeError(f"the {variant} graph failed its checks: {res.parity.failure_message()[:200]}"))
            except Exception as err:  # reported in the backend's cell, the bench goes on
                found = RuntimeError(f"{variant} export failed: {first_line(err)}")
            self.reduced[variant] = found
        if isinstance(found, BaseException):
            raise found
        return found

    def reference_onnx(self, shape: Shape) -> Path:
        """The reference exported as-is at `shape`; `NotApplicable` with the reason where it cannot be."""
        if shape not in self._reference:
            self._reference[shape] = self._export_reference(shape)
        found = self._reference[shape]
        if isinstance(found, BaseException):
            raise found
        return found

    def _export_reference(self, shape: Shape) -> Path | BaseException:
        """Static first; where that fails or onnxruntime cannot load it, the same with dynamic axes.

        (ACmix's reference, static, has its linspace encoding folded into float64 constants,
        which onnxruntime's Conv cannot take; exported with dynamic axes it stays float32.)
        """
        reasons = []
        for dynamic in (False, True):
            found = self._export_reference_as(shape, dynamic)
            if isinstance(found, Path):
                return found
            reasons.append(f"{'dynamic' if dynamic else 'static'}: {found}")
        return NotApplicable("; ".join(reasons))

    def _export_reference_as(self, shape: Shape, dynamic: bool) -> Path | BaseException:
        """The pipeline with no twins, no rewrites, no onnxsim: the reference as its users would export it."""
        form = "dynamic" if dynamic else "static"
        path = self.workdir / f"{self.name}.reference.{form}.{format_shape(shape)}.onnx"
        settings = ExportSettings.create(self.reference, shape, path, opset=REFERENCE_OPSET, dynamic=dynamic,
                                         exporter="torchscript", deploy_twins=False, rewrites=False, simplify=False,
                                         parity_shapes=[shape], seed=self.seed + 7, atol=self.spec.onnx_tol.atol,
                                         rtol=self.spec.onnx_tol.rtol, bundle=False)
        try:
            with quiet():
                res = run_pipeline(settings)
        except (CheckFailed, UsageError) as err:
            return NotApplicable(f"the reference does not export (TorchScript, opset {REFERENCE_OPSET}): "
                                 f"{first_line(err, 160)}")
        if not res.parity.passed:
            return NotApplicable(f"the reference's export differs from eager: {res.parity.failure_message()[:160]}")
        return res.onnx_path

    def engine(self, shape: Shape) -> Path:
        """A TensorRT fp32 engine of the deploy graph with the profile min = opt = max = `shape`."""
        if shape not in self._engines:
            from attndeploy.tensorrt.builder import build_engine
            from attndeploy.tensorrt.profiles import derive_profile

            onnx_path = self.deploy_onnx()
            profile = derive_profile(onnx_path, shape, min=shape, opt=shape, max=shape)
            out = self.workdir / f"{self.name}.{format_shape(shape)}.fp32.engine"
            self._engines[shape] = build_engine(onnx_path, out, profile=profile).engine_path
        return self._engines[shape]

    @staticmethod
    def graph_info(path: Path) -> dict[str, Any]:
        """Node count and the five most frequent op types of the ONNX file at `path`."""
        import onnx

        ops = Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
        return {"nodes": sum(ops.values()), "top_op_types": dict(ops.most_common(5))}
