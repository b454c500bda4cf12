"""The rules between export options that no single declaration says (`ExportSettings` runs them once, last).

The declared relations (`needs`, `excludes` in `attndeploy.options`) are checked before these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attndeploy import settings_checks as check
from attndeploy.defaults import DEFAULT_IMGSZ
from attndeploy.errors import require
from attndeploy.fileio import check_output_file
from attndeploy.limits import check_tensor_bytes
from attndeploy.options import declared, given_names
from attndeploy.shapes import format_shape
from attndeploy.source_kind import SourceKind, classify_source

if TYPE_CHECKING:
    from attndeploy.settings import ExportSettings

IMAGE_CHANNELS = 3  # what a detector's example is sized with before its model says otherwise
MODEL_FAMILY_GROUPS = ("family", "nms")  # options for model families (detectors ...), never for registry modules


def _family_options_on_a_registry_module(settings: ExportSettings) -> None:
    if not isinstance(settings.source, str) or classify_source(settings.source).kind is not SourceKind.REGISTRY:
        return
    asked = given_names(settings)
    given = [f"{o.name} ({o.flag or o.off_flag})" for o in declared(type(settings))
             if o.group in MODEL_FAMILY_GROUPS and o.name in asked]
    require(not given, "options for model families (a YOLO YAML, checkpoint or factory) do not apply to a registry "
            "module", "the module's own example: example=(N, C, H, W) (CLI: --input NxCxHxW)",
            f"{', '.join(given)} with {settings.source!r}")


def require_calibration(settings: ExportSettings, why: str) -> None:
    """`UsageError` for precision='int8' without calibration data where nothing else can calibrate (`why`)."""
    require(settings.precision != "int8" or settings.calibration is not None,
            "precision='int8' needs calibration data", "calibration=<(K, C, H, W) array, .npy/.npz file or image "
            "folder> (CLI: --calib PATH)", f"none, and {why}", "int8 scales come from real inputs")


def check_export_rules(settings: ExportSettings) -> None:
    """`UsageError` for a combination of options no export can honour, before any work."""
    _family_options_on_a_registry_module(settings)
    check.exporter_opset(settings.exporter, settings.opset)
    if settings.deform_conv != "auto":  # an explicit lowering the opset cannot express is bad input, before any run
        from attndeploy.lowering.deformconv import resolve_deform_lowering

        resolve_deform_lowering(settings.deform_conv, settings.opset)
    check.parity_shapes_fit(settings.parity_shapes, settings.example)
    registry = isinstance(settings.source, str) and classify_source(settings.source).kind is SourceKind.REGISTRY
    if registry:  # other sources may belong to a family that ships images: the prepare stage decides
        require_calibration(settings, "a registry module ships no images")
    if settings.batch is not None or settings.imgsz is not None:
        h, w = settings.imgsz or (DEFAULT_IMGSZ, DEFAULT_IMGSZ)
        shape = (settings.batch or 1, IMAGE_CHANNELS, h, w)
        check_tensor_bytes(shape, f"a detector's example of batch x {IMAGE_CHANNELS} x imgsz = {format_shape(shape)} "
                                  "(float32)")
    if settings.report and (settings.out_path is not None or settings.out_dir is not None):
        folder = settings.out_path.parent if settings.out_path is not None else settings.out_dir
        assert folder is not None
        check_output_file(folder / "report.json")
