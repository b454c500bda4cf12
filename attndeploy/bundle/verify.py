"""`verify_bundle`: a bundle's graph or engine judged on the device against the truth the export carried.

    folder, manifest = load_manifest(Path("models/cbam"))
    target = resolve_target(folder, manifest, engine=Path("models/cbam/cbam.engine"))
    result = verify_bundle(folder, manifest, target)
    result.passed, result.verdict.failure_message(), result.localisation

The graph runs in onnxruntime, or its engine in TensorRT (Polygraphy's `TrtRunner`, through
`attndeploy.tensorrt.runner`), on the bundle's inputs; `attndeploy.verdict.judge` decides with
the budget the export judged the graph by (one judge: the same function, the same numbers).
An engine's probes outside its optimization profile are skipped and listed (none inside is
bad input). The precision the engine runs at is read from the engine (TensorRT's engine
inspector) and, for a reduced-precision graph, counts as the verdict's `reduced_fraction`: an
"fp16" engine with no fp16 layer fails. When an output fails, the graph runs once more with
the module-boundary tensors exposed, and the first diverging module is named (`device_localise`).
Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from attndeploy.bundle.device_localise import localise_on_device
from attndeploy.bundle.manifest import Manifest
from attndeploy.bundle.target import Target
from attndeploy.defaults import ORT_PROVIDERS, TENSORRT_BACKEND
from attndeploy.errors import require
from attndeploy.localise.report import Localisation
from attndeploy.precision.census import census
from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner, check_backend_installed
from attndeploy.shapes import format_shape
from attndeploy.tensorrt.inspect import EnginePrecision, engine_precision, is_reduced
from attndeploy.tensorrt.runner import TensorRTRunner
from attndeploy.verdict import TruthData, Verdict, judge
from attndeploy.verdict.judge import RowCheck

Log = Callable[[str], None]


@dataclass
class VerifyResult:
    """The verdict on the target, what was skipped, the engine's precision, the module blamed, and notes."""

    folder: Path
    manifest: Manifest
    target: Target
    verdict: Verdict
    skipped_shapes: list[str] = field(default_factory=list)
    engine_precision: EnginePrecision | None = None
    localisation: Localisation | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.verdict.shapes) and self.verdict.passed

    def to_dict(self) -> dict[str, Any]:
        target = self.target
        return {"bundle": str(self.folder), "name": self.manifest.name, "graph": str(target.graph),
                "engine": str(target.engine) if target.engine else None, "precision": target.precision,
                "backend": target.backend, "passed": self.passed, "parity": self.verdict.to_dict(),
                "skipped_shapes": self.skipped_shapes,
                "engine_precision": self.engine_precision.to_dict() if self.engine_precision else None,
                "localisation": self.localisation.to_dict() if self.localisation is not None else None,
                "notes": self.notes, "attndeploy_version": self.manifest.version}


def load_truth(folder: Path, manifest: Manifest) -> TruthData:
    """The bundle's truth, checked against its manifest (`UsageError` when they do not belong together)."""
    truth = TruthData.load(folder / manifest.truth_file)
    require(truth.input_name == manifest.input_name and truth.output_names == manifest.output_names,
            "the truth file must be the bundle's", f"input {manifest.input_name!r}, outputs {manifest.output_names}",
            f"input {truth.input_name!r}, outputs {truth.output_names}")
    require(bool(truth.probes), "the truth file must hold a probe", "one or more inputs", "none")
    return truth


def rows_unjudged(eager: np.ndarray, got: np.ndarray, reference: np.ndarray) -> tuple[str, str]:
    """Detection rows (NMS in the graph): a score at the top-k cut or an NMS decision within noise moves whole rows,
    so no element-wise rule applies; the export compared them row by row with the family's check (ultralytics'),
    which the device has no torch for."""
    return "undecidable", "detection rows: compared row by row at export; not judged element by element here"


def _row_checks(target: Target) -> dict[str, RowCheck]:
    return {name: rows_unjudged for name in target.row_outputs}


def _onnxruntime(target: Target, truth: TruthData, input_name: str) -> tuple[Verdict, list[str], None]:
    check_backend_installed(target.backend)
    with OnnxRuntimeRunner(target.graph, ORT_PROVIDERS[target.backend]) as runner:
        verdict = judge(truth.probes, lambda x: list(runner.infer({input_name: x}).values()), runner.output_names,
                        target.budget, target.key, truth.reference, _row_checks(target))
    if is_reduced(target.precision):
        at, total = census(onnx.load(str(target.graph), load_external_data=False), target.precision)
        verdict.reduced_fraction = at / total if total else None
        verdict.notes.append(f"{at} of {total} weighted ops at {target.precision} in the graph")
    return verdict, [], None


def _tensorrt(target: Target, truth: TruthData, input_name: str) -> tuple[Verdict, list[str], EnginePrecision]:
    assert target.engine is not None
    with TensorRTRunner(target.engine, require_metadata=False) as runner:
        inputs = [s for s in runner.specs if s.is_input]
        require(len(inputs) == 1 and inputs[0].name == input_name, "the engine must take the bundle's input",
                f"one input {input_name!r}", [s.name for s in inputs])
        bounds = inputs[0].profile
        inside = [p for p in truth.probes if bounds is None or bounds.contains(p.shape)]
        skipped = [p.label for p in truth.probes if p not in inside]
        require(bool(inside), "the engine's optimization profile must take one of the bundle's inputs",
                ", ".join(p.label for p in truth.probes),
                f"min {format_shape(bounds.min)}, max {format_shape(bounds.max)}" if bounds else "no profile")
        verdict = judge(inside, lambda x: list(runner.infer({input_name: x}).values()), runner.output_names,
                        target.budget, target.key, truth.reference, _row_checks(target))
        found = engine_precision(runner.engine)
    verdict.notes.append(f"engine: {found.describe()} (TensorRT's engine inspector)")
    if is_reduced(target.precision):
        verdict.reduced_fraction = found.fraction(target.precision)
    elif any(is_reduced(p) for p in found.by_precision):
        reduced = {p: n for p, n in found.by_precision.items() if is_reduced(p)}
        verdict.notes.append(f"the fp32 graph's engine computes {reduced} layers at reduced precision (built with "
                             "--fp16 / --int8? build_engine.sh builds fp32 graphs without them)")
    return verdict, skipped, found


def verify_bundle(folder: Path, manifest: Manifest, target: Target, log: Log | None = None) -> VerifyResult:
    """Judge `target` on the bundle's truth; on failure, name the first diverging module (see the module docstring)."""
    say = log or (lambda _msg: None)
    truth = load_truth(folder, manifest)
    what = target.engine.name if target.engine is not None else target.graph.name
    say(f"verify: {what} ({target.precision}) on {target.backend} at {', '.join(p.label for p in truth.probes)}")
    run = _tensorrt if target.backend == TENSORRT_BACKEND else _onnxruntime
    verdict, skipped, found = run(target, truth, manifest.input_name)
    result = VerifyResult(folder, manifest, target, verdict, skipped, found, notes=list(target.notes))
    if skipped:
        result.notes.append(f"outside the engine's profile, not judged: {', '.join(skipped)}")
    if any(not o.passed for o in verdict.outputs):  # an output is wrong (not only the precision): find where
        say("verify: failed; exposing the module-boundary tensors to find the first diverging module")
        result.localisation, notes = localise_on_device(folder, manifest, target, target.budget)
        result.notes += notes
        if result.localisation is not None:
            verdict.blame = result.localisation.message()
    return result


__all__ = ["VerifyResult", "load_truth", "verify_bundle"]
