"""The checks behind each declared option (`attndeploy.options`): `check(value, label) -> normalised value`.

`label` is the option as the caller spells it: `opset` from the API, `--opset` from the CLI,
`[export].opset` from a recipe. Every message names it, the expected and the actual value
(`opset must be an int: expected an int in 13..20, got '17' (str)`). Text is accepted where a
recipe or the CLI writes a shape (`"1x3x640x640"`), a list (`"a,b"`) or an image size (`"480,640"`).
torch is imported only to recognise a tensor or a module.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from attndeploy.defaults import DYNAMO_MIN_OPSET, MAX_OPSET, MIN_OPSET
from attndeploy.errors import UsageError, require, unknown_name
from attndeploy.limits import check_model_arguments, check_seed, check_tensor_bytes
from attndeploy.options import Check
from attndeploy.settings_paths import data, optional_path, out_dir, out_path, path, paths  # noqa: F401 (checks)
from attndeploy.settings_paths import is_tensor as _is_tensor
from attndeploy.settings_paths import show as _show
from attndeploy.shapes import Shape, format_shape, parse_imgsz, parse_shape, parse_shapes
from attndeploy.source_kind import classify_source


def wrong_type(option: str, expected: str, value: Any) -> UsageError:
    return UsageError(f"{option} has the wrong type", expected, _show(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def integer(value: Any, option: str, lo: int, hi: int) -> int:
    require(_is_int(value), f"{option} must be an int", f"an int in {lo}..{hi}", _show(value))
    require(lo <= int(value) <= hi, f"{option} is out of range", f"{lo}..{hi}", int(value))
    return int(value)


def integer_in(lo: int, hi: int) -> Check:
    return lambda value, option: integer(value, option, lo, hi)


def optional(check: Check) -> Check:
    """`check`, letting None through."""
    return lambda value, option: None if value is None else check(value, option)


def boolean(value: Any, option: str) -> bool:
    require(isinstance(value, bool), f"{option} must be True or False", "a bool", _show(value))
    return value


def flag(value: Any, option: str) -> None:
    boolean(value, option)


def optional_bool(value: Any, option: str) -> bool | None:
    require(value is None or isinstance(value, bool), f"{option} must be True, False or None", "a bool or None",
            _show(value))
    return value


def choice(value: Any, option: str, valid: Iterable[str]) -> str:
    valid = tuple(valid)
    require(isinstance(value, str), f"{option} must be a string", "one of " + ", ".join(valid), _show(value))
    if value not in valid:
        plain = re.split(r"[.\]]", option)[-1].lstrip("-").replace("_", " ").replace("-", " ")
        err = unknown_name(plain, value, valid)
        if option.startswith("recipe"):  # say which key of which table
            raise UsageError(f"{option}: {err.rule}", err.expected, err.actual, err.hint)
        raise err
    return value


def one_of(valid: Iterable[str]) -> Check:
    valid = tuple(valid)
    return lambda value, option: choice(value, option, valid)


def names(values: Any, option: str, valid: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",")]
    require(isinstance(values, (list, tuple)) and len(values) > 0, f"{option} must be a non-empty list",
            "e.g. ['onnxruntime-cpu']", _show(values))
    for v in values:
        choice(v, option, valid)
    return tuple(dict.fromkeys(values))


def names_of(valid: Iterable[str]) -> Check:
    valid = tuple(valid)
    return lambda values, option: names(values, option, valid)


def opset(value: Any, option: str = "opset") -> int:
    return integer(value, option, MIN_OPSET, MAX_OPSET)


def exporter_opset(exporter: str, value: int) -> None:
    require(exporter != "dynamo" or value >= DYNAMO_MIN_OPSET, "the dynamo exporter cannot write opsets below 18",
            f"opset >= {DYNAMO_MIN_OPSET} with --exporter dynamo", value, "use --exporter torchscript or auto")


def seed(value: Any, option: str = "seed") -> int:
    require(_is_int(value), f"{option} must be an int", "an int in 0..2**63-1", _show(value))
    check_seed(int(value), option)
    return int(value)


def shape(value: Any, option: str) -> Shape:
    """A tuple of positive ints (or text `1x3x224x224`) that fits in memory as float32."""
    if isinstance(value, str):
        try:
            return parse_shape(value)
        except UsageError as err:
            raise UsageError(f"{option} must be a shape: {err.rule}", err.expected, err.actual, err.hint) from err
    require(isinstance(value, (tuple, list)) or type(value).__name__ == "Size", f"{option} must be a shape",
            "a tuple of positive ints, e.g. (1, 3, 224, 224)", _show(value))
    require(len(value) > 0 and all(_is_int(d) for d in value), f"{option} must be a shape of ints",
            "e.g. (1, 3, 224, 224)", repr(tuple(value)))
    dims = tuple(int(d) for d in value)
    require(all(d > 0 for d in dims), f"{option} dimensions must be positive", "every dim >= 1", format_shape(dims))
    check_tensor_bytes(dims, option)
    return dims


def example(value: Any, option: str = "example_input") -> Any:
    """None, a finite floating-point tensor (detached), or a shape."""
    if value is None:
        return None
    if _is_tensor(value):
        require(value.is_floating_point(), f"{option} must be a floating-point tensor", "float32", str(value.dtype))
        require(value.dim() >= 1 and value.numel() > 0, f"{option} must not be empty", "a (N, C, H, W) tensor",
                tuple(value.shape))
        require(value.device.type != "meta", f"{option} must hold values", "a tensor on the CPU or a GPU",
                "a tensor on the meta device (shapes only, no values)")
        import torch

        require(bool(torch.isfinite(value).all()), f"{option} must be finite", "no NaN/Inf", "non-finite values")
        return value.detach()
    return shape(value, option)


def shapes(values: Any, option: str) -> tuple[Shape, ...] | None:
    """A non-empty list of shapes (or text `1x3x640x640,2x3x480x640`)."""
    if values is None:
        return None
    if isinstance(values, str):
        values = parse_shapes(values)
    require(isinstance(values, (list, tuple)) and len(values) > 0 and not _is_int(values[0]),
            f"{option} must be a list of shapes", "e.g. [(1, 3, 640, 640), (2, 3, 480, 640)]", _show(values))
    return tuple(shape(v, f"{option} entry") for v in values)


def parity_shapes_fit(values: tuple[Shape, ...] | None, example_value: Any) -> None:
    """Shapes of the example's rank with its channel count (dim 1)."""
    if values is None or example_value is None:
        return
    ref = tuple(example_value.shape) if _is_tensor(example_value) else example_value
    for s in values:
        require(len(s) == len(ref), "parity_shapes must have the example's rank", f"rank {len(ref)}", format_shape(s))
        require(len(s) < 2 or s[1] == ref[1], "parity_shapes must keep the example's channels", f"C = {ref[1]}",
                format_shape(s))


def tolerance(value: Any, option: str) -> float | None:
    if value is None:
        return None
    require(_is_number(value), f"{option} must be a number", "a finite number >= 0", _show(value))
    require(math.isfinite(value) and value >= 0, f"{option} must be finite and >= 0", ">= 0", value)
    return float(value)


def cosine_target(value: Any, option: str) -> float:
    """A cosine some graph can reach: in (0, 1), since a quantized graph never reaches 1 exactly."""
    require(_is_number(value) and math.isfinite(value) and 0 < value < 1,
            f"{option} must be a cosine a quantized graph can reach", "a number in (0, 1), e.g. 0.99", _show(value),
            "cosine 1 means no rounding at all, which no INT8 graph has")
    return float(value)


def unit_interval(value: Any, option: str) -> float:
    require(_is_number(value) and math.isfinite(value) and 0 <= value <= 1, f"{option} must be a number in [0, 1]",
            "e.g. 0.25", _show(value))
    return float(value)


def positive_fraction(value: Any, option: str) -> float:
    require(_is_number(value) and math.isfinite(value) and 0 < value <= 1, f"{option} must be a number in (0, 1]",
            "e.g. 0.7", _show(value))
    return float(value)


# one segment of a module path: names, digits, fnmatch wildcards (* ? [seq] [!seq]); "<root>" alone
_SEGMENT = re.compile(r"(?:[^\s.,/\\:\[\]]|\[!?[^\s.,/\\:\[\]]+\])+")
PATTERN_RULE = "a dotted module path with fnmatch wildcards, e.g. 'model.9.*', '*.softmax' or '<root>'"


def pattern(text: str, option: str) -> str:
    """One keep-fp32 pattern (`attndeploy.precision.policy`): segments joined by '.', or `<root>`."""
    ok = text == "<root>" or all(_SEGMENT.fullmatch(s) for s in text.split("."))
    hint = ("ONNX node names are matched through their module: '/model.9/Conv' is 'model.9.*'"
            if "/" in text else "")
    require(ok, f"{option} pattern {text!r} does not parse", PATTERN_RULE, repr(text), hint)
    return text


def patterns(values: Any, option: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = values.split(",")
    require(isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values),
            f"{option} must be module-path patterns", "e.g. ['model.9.*', '*.softmax']", _show(values))
    return tuple(pattern(v.strip(), option) for v in values if v.strip())


def name(value: Any, option: str = "name") -> str | None:
    if value is None:
        return None
    require(isinstance(value, str) and value.strip() != "" and "/" not in value and "\\" not in value
            and value not in (".", ".."), f"{option} must be a plain file name", "e.g. 'yolov8n-cbam'", _show(value))
    return value


def kwargs(value: Any, option: str = "kwargs") -> dict[str, Any]:
    require(isinstance(value, Mapping) and all(isinstance(k, str) for k in value), f"{option} must be a dict",
            "a dict of argument names", _show(value))
    check_model_arguments(value)
    return dict(value)


def source(value: Any, option: str = "source") -> Any:
    if isinstance(value, str) and value.strip() != "":
        return value
    nn = sys.modules.get("torch.nn")
    require(nn is not None and isinstance(value, nn.Module), "the model must be an nn.Module or a name",
            "an nn.Module, a registry name, 'pkg.module:factory' or 'path/to/file.py[:factory]'", _show(value))
    return value


def source_label(value: str) -> str:
    """`pkg.module:factory` -> factory; `path/to/file.py` (.yaml, .pt ...) -> file; a registry name -> itself."""
    return classify_source(value).label


def is_model_file(value: str) -> bool:
    """A Python file, a model YAML or a checkpoint (`attndeploy.source_kind.classify_source`)."""
    return classify_source(value).is_file


def imgsz(value: Any, option: str = "imgsz") -> tuple[int, int] | None:
    """`640` (or "640") -> (640, 640); `(480, 640)` (or "480,640") stays (H, W)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_imgsz(value, option)
    if _is_int(value):
        value = (value, value)
    require(isinstance(value, (tuple, list)) and len(value) == 2, f"{option} must be one size or (H, W)",
            "e.g. 640 or (480, 640)", _show(value))
    h, w = (integer(v, option, 1, 1 << 15) for v in value)
    return (h, w)
