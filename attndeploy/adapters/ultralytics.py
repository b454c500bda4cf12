"""Ultralytics YOLO models (detect, segment, pose, obb, classify), prepared as ultralytics' own ONNX exporter does.

    res = attndeploy.export(YOLO("yolov8n-cbam.yaml").model, None, "out/yolov8n-cbam.onnx", imgsz=640)

Chosen by type: the root is an ultralytics `Model` wrapper (`YOLO(...)`, unwrapped to its
`.model`) or an ultralytics `BaseModel` (`DetectionModel` ...), or a subclass of either.
Nothing is patched at import, and ultralytics is imported only when such a model arrives.

What `prepare` does, in the order of `ultralytics.engine.exporter.Exporter.__call__`
(format "onnx"): gradients off, eval, float32; the head branch `settings.nms` asks for
(`ultralytics_nms`: the NMS-free one-to-one branch only for nms=False); `model.fuse()`
(Conv+BN, RepConv, the unused head branch); every `Detect`-family head and `RTDETRDecoder` in
export mode with dynamic anchors when the export is dynamic (`export=True, dynamic=...,
format="onnx"`, `max_det` clamped to the anchors), `Classify`-like heads in export mode, `C2f`
blocks on `forward_split`; for nms=True, ultralytics' `NMSModel` around it. Then: input
`images` (N, C, H, W); outputs `output0` (N, 4 + nc [+ extra], A) — dynamic on N and the
anchor count A only — or, with nms=True/False, detection rows (N, max_det, 6 [+ extra]); and
`output1` (N, 32, H/4, W/4) for segment models; the shape rule "H, W multiples of the largest
stride"; the example `(batch, C, *imgsz)`; ultralytics' metadata so `YOLO("x.onnx")` reads the
class names back; and a detection-level check (`ultralytics_task`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attndeploy.adapters.base import Prepared, metadata_strings
from attndeploy.adapters.ultralytics_lint import refine_findings
from attndeploy.adapters.ultralytics_nms import PostProcess, choose_postprocess, head_options, output_layout, wrap_for_nms
from attndeploy.errors import UsageError, require
from attndeploy.lint.findings import TorchFinding
from attndeploy.settings import ExportSettings
from attndeploy.shapes import format_shape

WRAPPER = ("ultralytics.engine.model", "Model")            # YOLO(...), RTDETR(...)
BASE_MODEL = ("ultralytics.nn.tasks", "BaseModel")         # DetectionModel, SegmentationModel ...
DEFAULT_IMGSZ = 640
INPUT = "images"
NMS_ARGS = ("max_det", "conf", "iou", "agnostic_nms")   # ultralytics' export arguments, in the metadata's args


def _in_mro(obj: Any, where: tuple[str, str]) -> bool:
    return any((c.__module__, c.__qualname__) == where for c in type(obj).__mro__)


def is_ultralytics_model(model: Any) -> bool:
    """A `YOLO(...)` wrapper or an ultralytics `BaseModel` (by class, without importing ultralytics)."""
    return _in_mro(model, WRAPPER) or _in_mro(model, BASE_MODEL)


def unwrap(model: nn.Module) -> tuple[Any, list[str]]:
    """The ultralytics `BaseModel` inside `model` (a `YOLO(...)` wrapper's `.model`), and a note when unwrapped."""
    if _in_mro(model, WRAPPER):
        inner: Any = getattr(model, "model", None)
        require(isinstance(inner, nn.Module), "a YOLO(...) wrapper must hold its model in .model",
                "an nn.Module", type(inner).__name__, "build it from a YAML or a .pt file first")
        return inner, [f"unwrapped the {type(model).__name__}(...) wrapper to its {type(inner).__name__} (.model)"]
    return model, []


def _detect_like() -> tuple[Any, ...]:
    from ultralytics.nn.modules.head import Detect, RTDETRDecoder

    return Detect, RTDETRDecoder


def _export_only_heads() -> tuple[Any, ...]:
    """Heads ultralytics' exporter only switches to export mode (no anchors)."""
    from ultralytics.nn.modules import head

    return tuple(getattr(head, n) for n in ("Classify", "SemanticSegment", "Depth") if hasattr(head, n))


def class_names(net: Any, nc: int) -> dict[int, str]:
    """`net.names` as ultralytics checks them (a dict int -> str), or `class0 ...` when the model has none."""
    from ultralytics.nn.autobackend import check_class_names, default_class_names

    names = getattr(net, "names", None)
    return check_class_names(names) if names else default_class_names(nc=nc)


def model_name(net: Any) -> str | None:
    """The YAML's or checkpoint's file stem (`yolov8n-cbam`, `best`), what ultralytics names its export after."""
    yaml = getattr(net, "yaml", None)
    source = getattr(net, "pt_path", None) or getattr(net, "yaml_file", None) \
        or (yaml.get("yaml_file") if isinstance(yaml, dict) else None)
    return Path(str(source)).stem if source else None


def fit_imgsz(settings: ExportSettings, stride: int) -> tuple[int, tuple[int, int], list[str]]:
    """(N, (H, W), notes) of the example: the example's own, else `batch` (1) and `imgsz` rounded up to
    multiples of `stride` (640 when not given)."""
    example = settings.example
    if example is not None:
        shape = tuple(example.shape) if isinstance(example, torch.Tensor) else tuple(example)
        require(len(shape) == 4 and shape[2] % stride == 0 and shape[3] % stride == 0,
                f"a YOLO input's H and W must be multiples of its largest stride {stride}",
                f"N x C x {stride}k x {stride}k", format_shape(shape))
        return int(shape[0]), (int(shape[2]), int(shape[3])), []
    asked = settings.imgsz or (DEFAULT_IMGSZ, DEFAULT_IMGSZ)
    fitted = (max(math.ceil(asked[0] / stride), 1) * stride, max(math.ceil(asked[1] / stride), 1) * stride)
    notes = [] if fitted == asked else [f"imgsz {asked[0]}x{asked[1]} rounded up to {fitted[0]}x{fitted[1]} "
                                        f"(multiples of the stride {stride}, as ultralytics does)"]
    return settings.batch or 1, fitted, notes


def _set_heads(net: Any, dynamic: bool, imgsz: tuple[int, int], post: PostProcess) -> list[str]:
    """Heads in export mode as ultralytics' exporter sets them (format onnx, `post`'s NMS options); returns notes."""
    detect_like, export_only = _detect_like(), _export_only_heads()
    notes: list[str] = []
    available = sum(int(imgsz[0] / s) * int(imgsz[1] / s) for s in net.stride.tolist())
    m: Any
    for path, m in net.named_modules():
        if isinstance(m, detect_like):
            m.dynamic, m.export, m.format = dynamic, True, "onnx"
            head_options(m, post, m.num_queries if hasattr(m, "num_queries") else available)
            m.shape = None
            if isinstance(vars(m).get("stride"), torch.Tensor):  # a build-time constant, read in forward
                stride = m.stride.clone()  # the model's .stride is the same tensor
                delattr(m, "stride")
                m.register_buffer("stride", stride, persistent=False)
            anchors = ("dynamic anchors (rebuilt from each input's H, W)" if dynamic
                       else f"anchors baked for {imgsz[0]}x{imgsz[1]} (static export)")
            notes.append(f"{type(m).__name__} head {path}: export mode, {anchors}, format 'onnx'")
        elif isinstance(m, export_only):
            m.export, m.format = True, "onnx"
            notes.append(f"{type(m).__name__} head {path}: export mode")
    return notes


def _split_c2f(net: Any) -> int:
    from ultralytics.nn.modules.block import C2f

    blocks = [m for m in net.modules() if isinstance(m, C2f)]
    for m in blocks:
        setattr(m, "forward", m.forward_split)  # ultralytics' exporter does this for every non-TensorFlow format
    return len(blocks)


def _norms(net: Any) -> int:
    return sum(1 for m in net.modules() if isinstance(m, nn.BatchNorm2d))


def extra_channels(head: Any) -> int:
    """The task values after a detection's class scores: mask coefficients, keypoints, or an OBB's angle."""
    from ultralytics.nn.modules.head import OBB

    return int(getattr(head, "nm", 0) or 0) + int(math.prod(getattr(head, "kpt_shape", (0,)) or (0,))) \
        + (1 if isinstance(head, OBB) else 0)


def outputs_of(net: Any, post: PostProcess) -> tuple[list[str], dict[str, tuple[int, ...]], str]:
    """Output names, their dynamic dims, and a one-line description of `output0`, from the model's head."""
    from ultralytics.nn.modules import head as H

    last = net.model[-1]
    nc = int(getattr(last, "nc", len(getattr(net, "names", {})) or 0))
    if isinstance(last, H.Classify):
        return ["output0"], {"output0": (0,)}, f"(batch, {nc} class probabilities)"
    if isinstance(last, H.RTDETRDecoder):
        return ["output0"], {"output0": (0,)}, f"(batch, {last.max_det} rows: cx, cy, w, h (0..1), score, class)"
    if not isinstance(last, H.Detect):
        return ["output0"], {"output0": (0, 2, 3)}, "(batch, C, H, W)"
    extra = extra_channels(last)
    what = f"4 box + {nc} class scores" + (f" + {extra} task values" if extra else "")
    raw_axes: dict[str, tuple[int, ...]] = {"output0": (0, 2)}
    axes, desc = output_layout(post, net.task, nc, extra) if post.rows \
        else (raw_axes, f"(batch, {4 + nc + extra} = {what}, anchors)")
    names = ["output0"]
    if isinstance(last, H.Segment):
        names.append("output1")
        axes["output1"] = (0, 2, 3) if 0 in axes["output0"] else (2, 3)
    return names, axes, desc


def channels_of(net: Any) -> int:
    """The input channels the model's YAML declares (3 when it says nothing)."""
    yaml = getattr(net, "yaml", None)
    return int(yaml.get("channels", 3)) if isinstance(yaml, dict) else 3


def metadata_for(net: Any, names: dict[int, str], imgsz: tuple[int, int], batch: int, settings: ExportSettings,
                 post: PostProcess) -> dict[str, str]:
    """What ultralytics' exporter writes into `metadata_props` (its loader reads these back), plus our version."""
    import ultralytics

    from attndeploy.version import __version__

    last = net.model[-1]
    stem = model_name(net) or type(net).__name__
    meta: dict[str, Any] = {
        "description": f"Ultralytics {stem.replace('yolo', 'YOLO')} model exported by attndeploy {__version__}",
        "author": "attndeploy", "date": datetime.now().astimezone().isoformat(), "version": ultralytics.__version__,
        "exporter": "attndeploy", "attndeploy": __version__, "stride": int(max(net.stride)),
        "task": getattr(net, "task", None) or "detect", "head": type(last).__name__, "batch": batch,
        "imgsz": list(imgsz), "names": names, "channels": channels_of(net),
        "end2end": bool(getattr(net, "end2end", False)),
        "args": {"batch": batch, "dynamic": settings.dynamic, "half": False, "int8": False,
                 "nms": post.mode == "embedded", "opset": settings.opset, "simplify": settings.simplify,
                 "imgsz": list(imgsz), **{k: v for k, v in post.to_dict().items() if k in NMS_ARGS}},
    }
    if getattr(last, "kpt_shape", None) is not None:
        meta["kpt_shape"] = list(last.kpt_shape)
        if getattr(net, "kpt_names", None):
            meta["kpt_names"] = net.kpt_names
    return metadata_strings(meta)


class UltralyticsAdapter:
    """Ultralytics YOLO models: prepared as `yolo export format=onnx` prepares them (see the module docstring)."""

    family = "ultralytics"

    def matches(self, model: nn.Module) -> bool:
        return is_ultralytics_model(model)

    def refine_findings(self, model: nn.Module, findings: list[TorchFinding]) -> list[TorchFinding]:
        """The lint's findings about ultralytics heads anywhere in `model`, in ultralytics' terms."""
        return refine_findings(model, findings)

    def prepare(self, model: nn.Module, settings: ExportSettings) -> Prepared:
        net: Any
        net, notes = unwrap(model)
        require(isinstance(getattr(net, "model", None), nn.Sequential) and hasattr(net, "stride"),
                "an ultralytics model must have its layers in .model and a .stride", "a DetectionModel, "
                "SegmentationModel, PoseModel, OBBModel or ClassificationModel", type(net).__name__)
        from ultralytics.nn.tasks import guess_model_task

        task = getattr(net, "task", None) or guess_model_task(net)
        net.task = task
        head = net.model[-1]
        names = class_names(net, int(getattr(head, "nc", 0) or len(getattr(net, "names", {})) or 80))
        net.names = names
        for p in net.parameters():
            p.requires_grad = False
        net.eval().float()
        post, post_notes = choose_postprocess(net, settings, task)
        norms = _norms(net)
        net = net.fuse(verbose=False)
        pairs = norms - _norms(net)
        notes.append(f"eval, float32, gradients off; fused {pairs} Conv+BatchNorm pair(s) (ultralytics' fuse)")
        stride = int(max(net.stride))
        batch, imgsz, size_notes = fit_imgsz(settings, stride)
        post = replace(post, batch=batch) if post.batch is not None else post   # NMS in the graph: the example's N
        notes += size_notes
        notes += _set_heads(net, settings.dynamic, imgsz, post)
        split = _split_c2f(net)
        if split:
            notes.append(f"{split} C2f block(s) on forward_split (as ultralytics exports them)")
        output_names, output_axes, desc = outputs_of(net, post)
        notes += [*post_notes, post.describe(), f"input images (batch, 3, H, W), H and W multiples of {stride}; "
                  f"output0 {desc}" + ("; output1 mask prototypes (batch, 32, H/4, W/4)" if len(output_names) > 1
                                       else "")]
        channels = channels_of(net)
        from attndeploy.adapters.ultralytics_task import task_checker

        check_conf = None if post.mode == "embedded" else settings.conf
        task_inputs, task_check = task_checker(net, task, imgsz, post, check_conf) or (None, None)
        return Prepared(
            model=wrap_for_nms(net, post, settings), family=self.family, notes=notes, input_name=INPUT,
            output_names=output_names, output_axes=output_axes if settings.dynamic else {}, hw_multiple=stride,
            example=(batch, channels, *imgsz), metadata=metadata_for(net, names, imgsz, batch, settings, post),
            name=model_name(net), task=task, task_inputs=task_inputs, task_batch=post.batch, task_check=task_check,
            engine_shapes=engine_profile((batch, channels, *imgsz), stride, post.batch is not None),
            postprocess=post.to_dict(), row_outputs=("output0",) if post.rows else ())


def engine_profile(example: tuple[int, ...], stride: int,
                   fixed_batch: bool = False) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) input shapes of a TensorRT profile as ultralytics' own engine export derives them.

    `example` (N, C, H, W) from `--batch` / `--imgsz`: min (1, C, stride, stride), opt the
    example, max (N, C, 2H, 2W) — ultralytics uses (1, C, 32, 32) / (N, C, H, W) / (N, C, 2H, 2W);
    `fixed_batch` (NMS in the graph): N in all three.
    """
    n, c, h, w = example
    return (n if fixed_batch else 1, c, stride, stride), (n, c, h, w), (n, c, 2 * h, 2 * w)


def check_ultralytics_installed() -> None:
    """`UsageError` with the install line unless ultralytics imports."""
    try:
        import ultralytics  # noqa: F401
    except ImportError as err:
        raise UsageError("YOLO models need the ultralytics package", "ultralytics installed",
                         "ImportError", "pip install ultralytics") from err


__all__ = ["UltralyticsAdapter", "channels_of", "class_names", "engine_profile", "is_ultralytics_model", "metadata_for",
           "model_name", "outputs_of", "unwrap"]
