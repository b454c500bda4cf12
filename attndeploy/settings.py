"""`ExportSettings`: every option of an export in one frozen object, validated once, here.

The CLI, a TOML recipe and the Python API all build it (`ExportSettings.create`); the
pipeline (`attndeploy.pipeline`) only reads it. A bad value raises `UsageError` naming the
option, the expected and the actual value; an unknown option suggests the closest.

    settings = ExportSettings.create("cbam", (1, 64, 56, 56), "out/cbam.onnx", opset=18, precision="fp16")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attndeploy import settings_checks as check
from attndeploy.defaults import DEFAULT_OPSET, EXPORTERS, ORT_PROVIDERS
from attndeploy.errors import unknown_name
from attndeploy.shapes import Shape

PRECISIONS = ("fp32", "fp16", "int8")
INT8_FLAVOURS = ("trt", "ort-cpu")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFORM_CONV_LOWERINGS = ("auto", "onnx", "plugin", "decompose")
PARITY_BACKENDS = tuple(ORT_PROVIDERS)


@dataclass(frozen=True)
class EngineSettings:
    """A TensorRT engine built after the ONNX checks (`--engine`); shapes bound its optimization profile."""

    fp16: bool = False
    min: Shape | None = None
    opt: Shape | None = None
    max: Shape | None = None
    workspace_mb: int = 2048
    timing_cache: Path | None = None
    plugins: tuple[Path, ...] = ()
    rebuild: bool = False

    def __post_init__(self) -> None:
        check.flag(self.fp16, "engine fp16")
        check.flag(self.rebuild, "engine rebuild")
        for bound in ("min", "opt", "max"):
            value = getattr(self, bound)
            if value is not None:
                object.__setattr__(self, bound, check.shape(value, f"engine {bound} shape"))
        object.__setattr__(self, "workspace_mb", check.integer(self.workspace_mb, "engine workspace_mb", 1, 1 << 20))
        object.__setattr__(self, "timing_cache", check.optional_path(self.timing_cache, "engine timing_cache"))
        object.__setattr__(self, "plugins", tuple(check.path(p, "engine plugin") for p in self.plugins))


@dataclass(frozen=True)
class ExportSettings:
    """Every option of one export. Build it with `create`; the fields are documented by group below."""

    # what: a module, or a registry name, pkg.module:factory, path/to/file.py[:factory]
    source: nn.Module | str
    example: torch.Tensor | Shape | None = None   # an input tensor or its shape (N, C, H, W)
    out_path: Path | None = None                  # the ONNX file; default <out_dir>/<name>.onnx
    name: str | None = None                       # names the result (default: registry name or class name)
    kwargs: Mapping[str, Any] = field(default_factory=dict)   # registry / factory arguments
    weights: Path | None = None                   # a state_dict checkpoint (torch.load weights_only)
    custom_modules: Path | None = None            # a .py file whose classes a model YAML may name
    trust_checkpoint: bool = False                # allow loading a pickled (ultralytics) checkpoint: runs code
    imgsz: tuple[int, int] | None = None          # detectors: (H, W) of the example, as ultralytics spells it
    batch: int | None = None                      # detectors: N of the example
    # detectors' post-processing, as ultralytics' exporter names it: None = outputs for external NMS (the default),
    # True ("embed") = NMS in the graph, False ("free") = the NMS-free one-to-one head (YOLO26, YOLOv10)
    nms: bool | None = None
    max_det: int | None = None                    # detections per image with nms=True/False (ultralytics: 300)
    conf: float | None = None                     # nms=True: score threshold in the graph (ultralytics: 0.25)
    iou: float | None = None                      # nms=True: NMS IoU threshold (ultralytics: 0.7)
    agnostic_nms: bool = False                    # nms=True/False: one NMS / top-k over all classes
    # export
    opset: int = DEFAULT_OPSET
    dynamic: bool = True
    exporter: str = "auto"
    deform_conv: str = "auto"
    rewrites: bool = True
    deploy_twins: bool = True                     # swap registered reference modules for their twins
    simplify: bool = True
    # parity
    parity_shapes: tuple[Shape, ...] | None = None
    seed: int = 0
    inputs: Any = None                            # parity inputs: (K, C, H, W) array, .npy/.npz, or image folder
    atol: float | None = None
    rtol: float | None = None
    backends: tuple[str, ...] = ("onnxruntime-cpu",)
    # reduced precision
    precision: str = "fp32"
    calibration: Any = None                       # (K, C, H, W) array, .npy/.npz, or a folder of images
    keep_fp32: tuple[str, ...] = ()               # module-path patterns kept fp32 ("model.9.*", "*.softmax")
    int8_target: float = 0.99                     # output cosine the int8 search must reach
    int8_flavour: str = "trt"
    calibration_method: str = "minmax"
    # TensorRT engine, and where the report goes
    engine: EngineSettings | None = None
    out_dir: Path | None = None                   # the folder when out_path is not given; default models/<name>
    report: bool = False                          # write report.json beside the model

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "source", check.source(self.source))
        set_(self, "example", check.example(self.example))
        set_(self, "out_path", check.out_path(self.out_path))
        set_(self, "name", check.name(self.name))
        set_(self, "kwargs", check.kwargs(self.kwargs))
        set_(self, "weights", check.optional_path(self.weights, "weights"))
        set_(self, "custom_modules", check.optional_path(self.custom_modules, "custom_modules"))
        check.flag(self.trust_checkpoint, "trust_checkpoint")
        set_(self, "imgsz", check.imgsz(self.imgsz))
        set_(self, "batch", None if self.batch is None else check.integer(self.batch, "batch", 1, 1 << 16))
        set_(self, "nms", check.nms_mode(self.nms))
        set_(self, "max_det", None if self.max_det is None else check.integer(self.max_det, "max_det", 1, 1 << 16))
        for option in ("conf", "iou"):
            value = getattr(self, option)
            set_(self, option, None if value is None else check.fraction(value, option))
        check.flag(self.agnostic_nms, "agnostic_nms")
        check.nms_options(self.nms, max_det=self.max_det, conf=self.conf, iou=self.iou, agnostic_nms=self.agnostic_nms)
        set_(self, "opset", check.opset(self.opset))
        check.flag(self.dynamic, "dynamic")
        check.choice(self.exporter, "exporter", EXPORTERS)
        check.exporter_opset(self.exporter, self.opset)
        check.choice(self.deform_conv, "deform_conv", DEFORM_CONV_LOWERINGS)
        if self.deform_conv != "auto":  # an explicit lowering the opset cannot express is bad input, before any run
            from attndeploy.lowering.deformconv import resolve_deform_lowering

            resolve_deform_lowering(self.deform_conv, self.opset)
        for flag in ("rewrites", "deploy_twins", "simplify"):
            check.flag(getattr(self, flag), flag)
        set_(self, "parity_shapes", check.parity_shapes(self.parity_shapes, self.example))
        set_(self, "seed", check.seed(self.seed))
        check.data(self.inputs, "inputs")
        set_(self, "atol", check.tolerance(self.atol, "atol"))
        set_(self, "rtol", check.tolerance(self.rtol, "rtol"))
        set_(self, "backends", check.names(self.backends, "backends", PARITY_BACKENDS))
        check.choice(self.precision, "precision", PRECISIONS)
        set_(self, "keep_fp32", check.patterns(self.keep_fp32, "keep_fp32"))
        set_(self, "int8_target", check.fraction(self.int8_target, "int8_target"))
        check.choice(self.int8_flavour, "int8_flavour", INT8_FLAVOURS)
        check.choice(self.calibration_method, "calibration_method", CALIBRATION_METHODS)
        check.calibration(self.calibration, self.precision)
        if self.engine is not None and not isinstance(self.engine, EngineSettings):
            raise check.wrong_type("engine", "EngineSettings or None", self.engine)
        set_(self, "out_dir", check.out_dir(self.out_dir))
        check.flag(self.report, "report")

    @classmethod
    def create(cls, source: nn.Module | str, example: Any = None, out_path: Any = None,
               **options: Any) -> ExportSettings:
        """Validated settings; `options` are field names (an unknown one suggests the closest)."""
        names = [f.name for f in dataclasses.fields(cls)][3:]
        for key in options:
            if key not in names:
                raise unknown_name("export option", key, names)
        return cls(source, example, out_path, **options)

    def replace(self, **changes: Any) -> ExportSettings:
        """A copy with `changes` applied and validated again."""
        return dataclasses.replace(self, **changes)

    def resolved_out_path(self, name: str) -> Path:
        """Where the model goes once its name is known: `out_path`, else `<out_dir or models/name>/<name>.onnx`."""
        if self.out_path is not None:
            return self.out_path
        return (self.out_dir if self.out_dir is not None else Path("models") / name) / f"{name}.onnx"

    def report_path(self, name: str) -> Path | None:
        """`report.json` beside the model, when `report` asks for it."""
        return self.resolved_out_path(name).parent / "report.json" if self.report else None
