"""The validators behind `ExportSettings`: each returns the normalised value or raises `UsageError`.

Every message names the option as the Python API spells it, the expected and the actual
value (`opset must be an int: expected an int in 13..20, got '17' (str)`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attndeploy.defaults import DYNAMO_MIN_OPSET, MAX_OPSET, MIN_OPSET
from attndeploy.errors import UsageError, require, unknown_name
from attndeploy.fileio import check_output_file
from attndeploy.limits import check_model_arguments, check_seed, check_tensor_bytes
from attndeploy.shapes import Shape, format_shape


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def wrong_type(option: str, expected: str, value: Any) -> UsageError:
    return UsageError(f"{option} has the wrong type", expected, _show(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(value: Any, option: str, lo: int, hi: int) -> int:
    require(_is_int(value), f"{option} must be an int", f"an int in {lo}..{hi}", _show(value))
    require(lo <= int(value) <= hi, f"{option} is out of range", f"{lo}..{hi}", int(value))
    return int(value)


def flag(value: Any, option: str) -> None:
    require(isinstance(value, bool), f"{option} must be True or False", "a bool", _show(value))


def choice(value: Any, option: str, valid: Iterable[str]) -> None:
    valid = tuple(valid)
    require(isinstance(value, str), f"{option} must be a string", "one of " + ", ".join(valid), _show(value))
    if value not in valid:
        raise unknown_name(option.replace("_", " "), value, valid)


def names(values: Any, option: str, valid: Iterable[str]) -> tuple[str, ...]:
    require(isinstance(values, (list, tuple)) and len(values) > 0, f"{option} must be a non-empty list",
            "e.g. ['onnxruntime-cpu']", _show(values))
    for v in values:
        choice(v, option, valid)
    return tuple(dict.fromkeys(values))


def opset(value: Any) -> int:
    return integer(value, "opset", MIN_OPSET, MAX_OPSET)


def exporter_opset(exporter: str, value: int) -> None:
    require(exporter != "dynamo" or value >= DYNAMO_MIN_OPSET, "the dynamo exporter cannot write opsets below 18",
            f"opset >= {DYNAMO_MIN_OPSET} with --exporter dynamo", value, "use --exporter torchscript or auto")


def seed(value: Any) -> int:
    require(_is_int(value), "seed must be an int", "an int in 0..2**63-1", _show(value))
    check_seed(int(value), "seed")
    return int(value)


def shape(value: Any, option: str) -> Shape:
    """A tuple of positive ints that fits in memory as float32."""
    require(isinstance(value, (tuple, list, torch.Size)) and len(value) > 0, f"{option} must be a shape",
            "a tuple of positive ints, e.g. (1, 3, 224, 224)", _show(value))
    require(all(_is_int(d) for d in value), f"{option} must hold ints", "e.g. (1, 3, 224, 224)", repr(tuple(value)))
    dims = tuple(int(d) for d in value)
    require(all(d > 0 for d in dims), f"{option} dimensions must be positive", "every dim >= 1", format_shape(dims))
    check_tensor_bytes(dims, option)
    return dims


def example(value: Any) -> torch.Tensor | Shape | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        require(value.is_floating_point(), "example_input must be a floating-point tensor", "float32",
                str(value.dtype))
        require(value.dim() >= 1 and value.numel() > 0, "example_input must not be empty", "a (N, C, H, W) tensor",
                tuple(value.shape))
        require(bool(torch.isfinite(value).all()), "example_input must be finite", "no NaN/Inf",
                "non-finite values")
        return value.detach()
    return shape(value, "example_input")


def parity_shapes(values: Any, example_value: torch.Tensor | Shape | None) -> tuple[Shape, ...] | None:
    """Shapes of the example's rank with its channel count (dim 1)."""
    if values is None:
        return None
    require(isinstance(values, (list, tuple)) and len(values) > 0 and not _is_int(values[0]),
            "parity_shapes must be a list of shapes", "e.g. [(1, 3, 640, 640), (2, 3, 480, 640)]", _show(values))
    shapes = tuple(shape(v, "parity_shapes entry") for v in values)
    if example_value is not None:
        ref = tuple(example_value.shape) if isinstance(example_value, torch.Tensor) else example_value
        for s in shapes:
            require(len(s) == len(ref), "parity_shapes must have the example's rank", f"rank {len(ref)}",
                    format_shape(s))
            require(len(s) < 2 or s[1] == ref[1], "parity_shapes must keep the example's channels",
                    f"C = {ref[1]}", format_shape(s))
    return shapes


def tolerance(value: Any, option: str) -> float | None:
    if value is None:
        return None
    require(isinstance(value, (int, float)) and not isinstance(value, bool), f"{option} must be a number",
            "a finite number >= 0", _show(value))
    require(math.isfinite(value) and value >= 0, f"{option} must be finite and >= 0", ">= 0", value)
    return float(value)


def fraction(value: Any, option: str) -> float:
    require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 < value <= 1, f"{option} must be a number in (0, 1]", "e.g. 0.99", _show(value))
    return float(value)


def patterns(values: Any, option: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = values.split(",")
    require(isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values),
            f"{option} must be module-path patterns", "e.g. ['model.9.*', '*.softmax']", _show(values))
    return tuple(v.strip() for v in values if v.strip())


def path(value: Any, option: str) -> Path:
    require(isinstance(value, (str, Path)) and str(value).strip() != "", f"{option} must be a path",
            "a file path", _show(value))
    return Path(value).expanduser()


def optional_path(value: Any, option: str) -> Path | None:
    return None if value is None else path(value, option)


def out_path(value: Any, option: str = "out_path") -> Path | None:
    """A file path whose folder can be written and which is not a directory (checked before any work)."""
    if value is None:
        return None
    result = path(value, option)
    check_output_file(result)
    return result


def out_dir(value: Any) -> Path | None:
    """A folder that can be made and written (checked before any work, creating nothing)."""
    if value is None:
        return None
    result = path(value, "out_dir")
    require(not result.exists() or result.is_dir(), "the output folder must be a directory", "a folder path",
            f"{result} (a file)")
    check_output_file(result / ".attndeploy-probe")
    return result


def name(value: Any) -> str | None:
    if value is None:
        return None
    require(isinstance(value, str) and value.strip() != "" and "/" not in value and "\\" not in value
            and value not in (".", ".."), "name must be a plain file name", "e.g. 'yolov8n-cbam'", _show(value))
    return value


def kwargs(value: Any) -> dict[str, Any]:
    require(isinstance(value, Mapping) and all(isinstance(k, str) for k in value), "kwargs must be a dict",
            "a dict of argument names", _show(value))
    check_model_arguments(value)
    return dict(value)


def source(value: Any) -> nn.Module | str:
    if isinstance(value, nn.Module):
        return value
    require(isinstance(value, str) and value.strip() != "", "the model must be an nn.Module or a name",
            "an nn.Module, a registry name, 'pkg.module:factory' or 'path/to/file.py[:factory]'", _show(value))
    return value


def source_label(value: str) -> str:
    """`pkg.module:factory` -> factory; `path/to/file.py` (.yaml, .pt ...) -> file; a registry name -> itself."""
    if ":" in value.replace(":\\", ""):
        return value.rsplit(":", 1)[-1]
    return Path(value).stem if is_model_file(value) else value


YAML_SUFFIXES = (".yaml", ".yml")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def is_model_file(value: str) -> bool:
    """A Python file, a model YAML or a checkpoint, by its suffix (any case)."""
    return value.lower().endswith((".py", *YAML_SUFFIXES, *CHECKPOINT_SUFFIXES))


def imgsz(value: Any) -> tuple[int, int] | None:
    """`640` -> (640, 640); `(480, 640)` stays (H, W)."""
    if value is None:
        return None
    if _is_int(value):
        value = (value, value)
    require(isinstance(value, (tuple, list)) and len(value) == 2, "imgsz must be one size or (H, W)",
            "e.g. 640 or (480, 640)", _show(value))
    h, w = (integer(v, "imgsz", 1, 1 << 15) for v in value)
    return (h, w)


def data(value: Any, option: str) -> None:
    """Input data: an array, or a path to a .npy/.npz file or a folder of images (read where it is used)."""
    if value is None:
        return
    require(isinstance(value, (np.ndarray, torch.Tensor, str, Path)), f"{option} must be data or a path",
            "a (K, C, H, W) array, a .npy/.npz file or a folder of images", _show(value))
    if isinstance(value, (str, Path)):
        require(Path(value).expanduser().exists(), f"{option} must exist", "an existing file or folder", str(value))


def calibration(value: Any, precision: str) -> None:
    if value is None:
        require(precision != "int8", "precision='int8' needs calibration data", "calibration=<(K, C, H, W) array, "
                ".npy/.npz file or image folder> (CLI: --calib PATH)", "none", "int8 scales come from real inputs")
        return
    require(precision == "int8", "calibration data is used by precision='int8' only", "precision='int8'",
            f"precision={precision!r}")
    data(value, "calibration")


NMS_MODES = {"embed": True, "free": False, "external": None}


def nms_mode(value: Any) -> bool | None:
    """`nms` as ultralytics spells it: True / "embed" (NMS in the graph), False / "free" (the NMS-free one-to-one
    head), None / "external" (outputs for the user's NMS)."""
    if value is None or isinstance(value, bool):
        return value
    require(isinstance(value, str) and value in NMS_MODES, "nms must be True, False or None",
            "True/'embed', False/'free' or None/'external'", _show(value))
    return NMS_MODES[value]


def nms_options(nms: bool | None, **given: Any) -> None:
    """`conf` and `iou` act on NMS in the graph only, `max_det` and `agnostic_nms` on nms=True or False."""
    for option in ("conf", "iou"):
        require(given[option] is None or nms is True, f"{option} is used by nms=True only",
                f"nms=True (CLI --nms embed) with {option}", f"nms={nms!r}")
    for option, unset in (("max_det", None), ("agnostic_nms", False)):
        require(given[option] == unset or nms is not None, f"{option} is used by nms=True or nms=False only",
                f"nms=True or False (CLI --nms embed|free) with {option}", f"nms={nms!r}")
